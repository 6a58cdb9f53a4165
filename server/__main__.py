"""`python -m server [--host H] [--port P] [--db PATH] [--demo]`: run the server until SIGINT/SIGTERM.

Configuration errors and start failures (port in use, unreadable database) print one line on
stderr and exit non-zero; no traceback reaches the operator. The banner's commands work as
printed from the shell that started the server: this interpreter (the venv's, so its
dependencies are there) and the port and host it listens on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import sqlite3
import sys
from pathlib import Path

import asyncpg

from server.app import App
from server.auth import ADMIN, mint_token
from server.cluster import FleetUnavailable
from server.config import ConfigError, load_config
from server.storage import StorageError

DEMO_TOKEN_DAYS = 7.0
REPO = Path(__file__).resolve().parents[1]
WILDCARDS = ("0.0.0.0", "::", "")


def shell_python(cwd: Path | None = None) -> str:
    """How to run this interpreter (the one running the server, so it has the dependencies)
    from a shell in `cwd` (default: the current directory): `.venv/bin/python` under
    `make run`, an absolute path when it is not below `cwd`. Never a bare `python`, which may
    be another interpreter without websockets. The checkout is installed in its venv
    (`pip install -e`), so `-m tools.simulator` works from any directory."""
    cwd = Path.cwd() if cwd is None else cwd
    executable = Path(sys.executable)
    if executable.is_absolute() and executable.is_relative_to(cwd):
        return shlex.quote(os.path.relpath(executable, cwd))
    return shlex.quote(str(executable))


def make_command(app: App, target: str, ws: str, local: str, port: int) -> str:
    """`make TARGET` with what it needs to reach this server: `-C` the checkout when the
    server runs elsewhere, the port when the rest is the Makefile's default, else the URL,
    and the demo key when it is not where the Makefile reads it (data/station-1.key)."""
    words = ["make"]
    if Path.cwd().resolve() != REPO:
        words += ["-C", shlex.quote(str(REPO))]
    words.append(target)
    words.append(
        f"PORT={port}"
        if local == "127.0.0.1" and ws == "ws"
        else f"SERVER_URL={ws}://{local}:{port}/ws"
    )
    words.append("STATION=1")
    key_file = app.config.db_path.parent / "station-1.key"
    if app.demo_key and key_file.resolve() != (REPO / "data" / "station-1.key").resolve():
        words.append(f"TOKEN={app.demo_key}")
    return " ".join(words)


def banner(app: App) -> str:
    """What an operator needs to start: URLs with credentials when this is the demo (make run).

    A real deployment prints no credential: tokens and keys come from `python -m server.admin`."""
    host = app.config.host
    shown = "localhost" if host in WILDCARDS else host
    local = "127.0.0.1" if host in WILDCARDS or host == "localhost" else host  # for MicroPython
    port = app.port
    python = shell_python()
    http, ws = ("https", "wss") if app.config.tls else ("http", "ws")
    lines = [f"EV charger server listening on {host}:{port} (database {app.config.storage_name})"]
    if not app.config.auth:
        token = key = ""
        lines.append(
            "  WARNING: AUTH=off -- anyone who reaches this port is an admin (bench use only)"
        )
    elif app.config.demo:
        token = "&token=" + mint_token(app.auth.secret, "make-run", ADMIN, days=DEMO_TOKEN_DAYS)
        key = "&token=" + app.demo_key if app.demo_key else "&token=<station key>"
    else:
        token, key = "&token=<dashboard token>", "&token=<station key>"
    lines += [
        f"  dashboard:  {http}://{shown}:{port}/?{token[1:]}".rstrip("?"),
        f"  simulator:  {python} -m tools.simulator --station 1 --card VIRTUAL-1-A4F2E8 "
        f"--url {ws}://{shown}:{port}/ws"
        + (f" --token={key[7:]}" if key else ""),  # "=": a key may begin with "-"
        f'  wscat:      wscat -c "{ws}://{shown}:{port}/ws?role=client&estacionId=1{token}"',
        f'              wscat -c "{ws}://{shown}:{port}/ws?role=publisher&estacionId=1{key}"',
    ]
    if app.config.demo:
        lines.append(
            f"  firmware:   {make_command(app, 'sim-charger', ws, local, port)}"
            " (then type: tap 04C0FFEE)"
        )
    if app.config.auth and not app.config.demo:
        lines.append(
            f"  credentials: {python} -m server.admin tokens issue --role admin "
            f"--sub NAME; {python} -m server.admin stations issue-key ID"
        )
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
        print(
            f"error: cannot start on {config.host}:{config.port}: {problem.strerror or problem}",
            file=sys.stderr,
        )
        return 1
    except (sqlite3.DatabaseError, asyncpg.PostgresError, StorageError) as problem:
        print(f"error: database {config.storage_name}: {problem}", file=sys.stderr)
        return 1
    except FleetUnavailable as problem:
        print(f"error: cannot join the fleet ({config.server_id}): {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
