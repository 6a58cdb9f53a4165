"""Shared test helpers: a real server in-process on an ephemeral port, and JSON WebSocket I/O.

Use the fixtures in tests/conftest.py (`server_url`, `live_app`), or `running_server()` when a
test needs to restart the server on the same database:

    async with running_server(tmp_path / "evse.sqlite3") as app:
        url = base_url(app)                       # "ws://127.0.0.1:PORT"
        async with connect(url, "publisher", 1) as charger:
            assert (await receive_json(charger))["type"] == "connected"

Authentication is on: `connect()` adds a valid token for the role (an admin dashboard token, or
a JWT bound to the charger's station) unless the test passes `token=...` itself (`token=None`
sends none). `token_for(url, role, estacion_id)` mints one for hand-built URLs, and
`tokens_for_db(db_path)` does the same for a `python -m server` subprocess (its secret file).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.client import connect as ws_connect

from server.app import App
from server.auth import ADMIN, STATION, load_or_create_secret, mint_token
from server.config import Config

RECEIVE_TIMEOUT = 10.0  # generous: only a failing test ever waits this long


@asynccontextmanager
async def running_server(db_path, *, demo: bool = True, **config_overrides):
    """Start the real server.app on 127.0.0.1:0 with `db_path`; yield the running App."""
    settings = dict(ping_interval=5.0, ping_timeout=5.0)
    settings.update(config_overrides)
    clock = settings.pop("clock", None) or ServerClock()  # a fake server clock, or the real one
    config = Config(host="127.0.0.1", port=0, db_path=Path(db_path), demo=demo, **settings)
    app = await App.start(config, clock=clock)
    _SECRETS[base_url(app)] = app.auth.secret
    _CLOCKS[base_url(app)] = clock
    try:
        yield app
        await _check_bills(app)
    finally:
        _SECRETS.pop(base_url(app), None)
        _CLOCKS.pop(base_url(app), None)
        await app.stop()


async def _check_bills(app) -> None:
    """Every closed session's bill is what its reading rows give (tests/server/bills.py); not
    checked when the test left the database unreadable (it broke or closed it on purpose)."""
    from tests.server.bills import closed_session_bill_problems

    try:
        problems = await asyncio.wait_for(closed_session_bill_problems(app.storage), 30)
    except Exception:  # noqa: BLE001 - a database the test broke: nothing to check
        return
    assert problems == [], "bills not given by their readings:\n" + "\n".join(problems)


def server_storage(target, tmp_path) -> tuple:
    """running_server's (db_path, overrides) for a storage `target` (tests/conftest.py): a
    SQLite file, or a PostgreSQL URL (the secret file then lives in tmp_path)."""
    if isinstance(target, str):
        return tmp_path / "evse.sqlite3", {"database_url": target}
    return target, {}


class ServerClock:
    """The server's wall clock in tests: real time plus whatever the test advanced it by (the
    server bounds billed time by its own clock, so a test charger that claims an hour of
    charging must let the server see that hour pass)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def server_clock(url: str):
    """The clock of a server started by running_server (url as base_url gives it): a
    ServerClock unless the test passed its own."""
    parts = urlsplit(url)
    return _CLOCKS.get(f"ws://{parts.netloc}")


_SECRETS: dict[str, bytes] = {}  # "ws://127.0.0.1:PORT" -> that running server's signing secret
_CLOCKS: dict[str, object] = {}  # "ws://127.0.0.1:PORT" -> that running server's clock


def mint(secret: bytes, role: str, estacion_id=None) -> str | None:
    """A token for `role`: an admin dashboard token, or a JWT bound to a numeric station (else None)."""
    if role == "publisher":
        text = str(estacion_id)
        return (
            mint_token(secret, f"test-station-{text}", STATION, [int(text)])
            if text.isdigit() and int(text) > 0
            else None
        )
    return mint_token(secret, "test-admin", ADMIN)


def token_for(url: str, role: str, estacion_id=None) -> str | None:
    """A valid token for a server started by running_server (url as base_url gives it)."""
    parts = urlsplit(url)
    return mint(_SECRETS[f"ws://{parts.netloc}"], role, estacion_id)


def fleet_token(url: str, stations=range(1, 201)) -> str:
    """One JWT bound to several stations, for a simulator that runs a fleet (`--token`)."""
    parts = urlsplit(url)
    return mint_token(_SECRETS[f"ws://{parts.netloc}"], "test-fleet", STATION, list(stations))


def tokens_for_db(db_path, role: str = "client", estacion_id=None) -> str | None:
    """A valid token for a `python -m server` subprocess using `db_path` (secret file beside it)."""
    return mint(load_or_create_secret(Path(db_path).parent / "secret.key"), role, estacion_id)


def base_url(app: App) -> str:
    return f"ws://127.0.0.1:{app.port}"


def http_url(app: App, path: str = "/", token: str | None = "admin") -> str:
    """`http://127.0.0.1:PORT{path}` with a dashboard token of role `token` in the query (before
    any `#fragment`), as the printed dashboard URL carries it; token=None adds none."""
    if token is None:
        return f"http://127.0.0.1:{app.port}{path}"
    path, hash_mark, fragment = path.partition("#")
    credential = mint_token(app.auth.secret, f"test-{token}", token)
    path += ("&" if "?" in path else "?") + f"token={credential}"
    return f"http://127.0.0.1:{app.port}{path}{hash_mark}{fragment}"


def connect(url: str, role: str, estacion_id=None, **query):
    """Open `url/ws?role=..&estacionId=..` with a real websockets client (async context manager)."""
    if "token" not in query:
        query["token"] = token_for(url, role, estacion_id)
    params = {
        "role": role,
        **({"estacionId": estacion_id} if estacion_id is not None else {}),
        **query,
    }
    text = "&".join(f"{key}={value}" for key, value in params.items() if value is not None)
    return ws_connect(f"{url}/ws?{text}", compression=None, open_timeout=RECEIVE_TIMEOUT)


async def send_json(websocket, message: dict) -> None:
    await websocket.send(json.dumps(message))


async def receive_json(websocket, timeout: float = RECEIVE_TIMEOUT) -> dict:
    """The next message, skipping `ack`s: the tests' chargers are old-style chargers that
    ignore acknowledgements (the server sends them after commits, interleaved with the rest).
    Tests of acknowledged delivery read them with `receive_type(websocket, "ack")`."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await websocket.recv())
            if message.get("type") != "ack":
                return message


async def receive_type(websocket, kind: str, timeout: float = RECEIVE_TIMEOUT) -> dict:
    """Skip messages until one of type `kind` arrives (fails after `timeout` seconds)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await websocket.recv())
            if message.get("type") == kind:
                return message


async def publisher(url: str, station_id=1):
    """Connect a charger and consume its `connected` message; caller must close it."""
    websocket = await connect(url, "publisher", station_id)
    assert (await receive_json(websocket))["type"] == "connected"
    return websocket


async def close_code(websocket, timeout: float = RECEIVE_TIMEOUT) -> int | None:
    """Wait until the server closes `websocket`; return the close code it sent."""
    await asyncio.wait_for(websocket.wait_closed(), timeout)
    return websocket.close_code
