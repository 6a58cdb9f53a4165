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
from server.config import ConfigError, load_config
from server.storage import StorageError


def banner(app: App) -> str:
    host = app.config.host
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    port = app.port
    return "\n".join(
        [
            f"EV charger server listening on {host}:{port} (database {app.config.db_path})",
            f"  dashboard:  http://{shown}:{port}/",
            "  simulator:  python -m tools.simulator --station 1 --card VIRTUAL-1-A4F2E8",
            f'  wscat:      wscat -c "ws://{shown}:{port}/ws?role=client&estacionId=1"',
            f'              wscat -c "ws://{shown}:{port}/ws?role=publisher&estacionId=1"',
        ]
    )


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
