"""HTTP on the WebSocket port, and the seed's wscat example with an independent client library."""

import asyncio
import json
import threading
import urllib.error
import urllib.request

import websocket  # websocket-client: synchronous, independent of the server's library

from tests.live_server import http_url, publisher, send_json, token_for


def http_get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_healthz_reports_connected_chargers_and_open_sessions(live_app, server_url):
    status, body = await asyncio.to_thread(http_get, http_url(live_app, "/healthz"))
    assert status == 200 and body == {"ok": True, "chargers_connected": 0, "open_sessions": 0}
    charger = await publisher(server_url)
    async with charger:
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": "VIRTUAL-1-A4F2E8"})
        await charger.recv()
        status, body = await asyncio.to_thread(http_get, http_url(live_app, "/healthz"))
        assert body == {"ok": True, "chargers_connected": 1, "open_sessions": 1}


async def test_unknown_path_is_404(live_app):
    status, body = await asyncio.to_thread(http_get, http_url(live_app, "/nothing/here?x=1"))
    assert status == 404 and body["code"] == "NOT_FOUND"


async def test_routes_added_by_other_modules_are_served(live_app):
    from server.http import json_response

    live_app.http_routes.add_prefix(
        "/extension/", lambda request: json_response(200, {"path": request.path})
    )
    status, body = await asyncio.to_thread(http_get, http_url(live_app, "/extension/x?y=1"))
    assert status == 200 and body == {"path": "/extension/x"}


def wscat_session(url: str, received: list, ready: threading.Event) -> None:
    """What `wscat -c "ws://localhost:3000/ws?role=client&estacionId=1"` does, in a thread."""
    client = websocket.create_connection(
        f"{url}/ws?role=client&estacionId=1&token={token_for(url, 'client')}", timeout=10
    )
    try:
        received.append(json.loads(client.recv()))
        received.append(json.loads(client.recv()))
        ready.set()
        received.append(json.loads(client.recv()))
    finally:
        client.close()


async def test_seed_wscat_example_works_with_an_independent_client(server_url):
    received, ready = [], threading.Event()
    thread = threading.Thread(target=wscat_session, args=(server_url, received, ready), daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 10)
    charger = await publisher(server_url)
    async with charger:
        await asyncio.to_thread(thread.join, 10)
    assert received == [
        {"type": "subscribed", "estacionId": "1"},
        {"type": "init", "charger": {"id": 1, "status": "desconectado", "session": None}},
        {"type": "status", "charger_id": 1, "status": "disponible"},
    ]
