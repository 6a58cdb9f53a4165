"""`python -m server [--host H] [--port P] [--db PATH] [--demo]`: run the server until SIGINT/SIGTERM.

Configuration errors and start failures (port in use, unreadable database) print one line on
stderr and exit non-zero; no traceback reaches the operator.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import sys

from server.app import App
from server.auth import ADMIN, mint_token
from server.config import ConfigError, load_config
from server.storage import StorageError

DEMO_TOKEN_DAYS = 7.0


def banner(app: App) -> str:
    """What an operator needs to start: URLs with credentials when this is the demo (make run).

    A real deployment prints no credential: tokens and keys come from `python -m server.admin`."""
    host = app.config.host
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    port = app.port
    http, ws = ("https", "wss") if app.config.tls else ("http", "ws")
    lines = [f"EV charger server listening on {host}:{port} (database {app.config.db_path})"]
    if not app.config.auth:
        token = key = ""
        lines.append("  WARNING: AUTH=off -- anyone who reaches this port is an admin (bench use only)")
    elif app.config.demo:
        token = "&token=" + mint_token(app.auth.secret, "make-run", ADMIN, days=DEMO_TOKEN_DAYS)
        key = "&token=" + app.demo_key if app.demo_key else "&token=<station key>"
    else:
        token, key = "&token=<dashboard token>", "&token=<station key>"
    lines += [
        f"  dashboard:  {http}://{shown}:{port}/?{token[1:]}".rstrip("?"),
        f"  simulator:  python -m tools.simulator --station 1 --card VIRTUAL-1-A4F2E8 --url {ws}://{shown}:{port}/ws"
        + (f" --token {key[7:]}" if key else ""),
        f'  wscat:      wscat -c "{ws}://{shown}:{port}/ws?role=client&estacionId=1{token}"',
        f'              wscat -c "{ws}://{shown}:{port}/ws?role=publisher&estacionId=1{key}"',
    ]
    if app.config.demo:
        lines.append(f"  firmware:   make sim-charger SERVER_URL={ws}://127.0.0.1:{port}/ws STATION=1"
                     " (then type: tap 04C0FFEE)")
    if app.config.auth and not app.config.demo:
        lines.append("  credentials: python -m server.admin tokens issue --role admin --sub NAME; "
                     "python -m server.admin stations issue-key ID")
    return "\n".join(lines)


async def serve_until_signalled(config) -> None:
    app = await App.start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(banner(app), flush=True)
    try:
        await stop.wait()
    finally:
        logging.getLogger("server").info("shutting down")
        await app.stop()


def main(argv=None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level_number, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_until_signalled(config))
    except OSError as problem:
        print(f"error: cannot start on {config.host}:{config.port}: {problem.strerror or problem}", file=sys.stderr)
        return 1
    except (sqlite3.DatabaseError, StorageError) as problem:
        print(f"error: database {config.db_path}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
