"""Shared test helpers: a real server in-process on an ephemeral port, and JSON WebSocket I/O.

Use the fixtures in tests/conftest.py (`server_url`, `live_app`), or `running_server()` when a
test needs to restart the server on the same database:

    async with running_server(tmp_path / "evse.sqlite3") as app:
        url = base_url(app)                       # "ws://127.0.0.1:PORT"
        async with connect(url, "publisher", 1) as charger:
            assert (await receive_json(charger))["type"] == "connected"
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect

from server.app import App
from server.config import Config

RECEIVE_TIMEOUT = 10.0  # generous: only a failing test ever waits this long


@asynccontextmanager
async def running_server(db_path, *, demo: bool = True, **config_overrides):
    """Start the real server.app on 127.0.0.1:0 with `db_path`; yield the running App."""
    settings = dict(ping_interval=5.0, ping_timeout=5.0)
    settings.update(config_overrides)
    token_check = settings.pop("token_check", None)
    config = Config(host="127.0.0.1", port=0, db_path=Path(db_path), demo=demo, **settings)
    app = await App.start(config, **({"token_check": token_check} if token_check else {}))
    try:
        yield app
    finally:
        await app.stop()


def base_url(app: App) -> str:
    return f"ws://127.0.0.1:{app.port}"


def http_url(app: App, path: str = "/") -> str:
    return f"http://127.0.0.1:{app.port}{path}"


def connect(url: str, role: str, estacion_id=None, **query):
    """Open `url/ws?role=..&estacionId=..` with a real websockets client (async context manager)."""
    params = {"role": role, **({"estacionId": estacion_id} if estacion_id is not None else {}), **query}
    text = "&".join(f"{key}={value}" for key, value in params.items())
    return ws_connect(f"{url}/ws?{text}", compression=None, open_timeout=RECEIVE_TIMEOUT)


async def send_json(websocket, message: dict) -> None:
    await websocket.send(json.dumps(message))


async def receive_json(websocket, timeout: float = RECEIVE_TIMEOUT) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout))


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
