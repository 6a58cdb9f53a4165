"""Connecting: the seed's URLs, handshake messages and close codes, against a real server."""

from urllib.parse import parse_qs

import pytest

from tests.live_server import close_code, connect, publisher, receive_json, receive_type, token_for


@pytest.mark.parametrize(
    "query, code",
    [
        ("estacionId=1", 4001),  # no role
        ("role=admin&estacionId=1", 4001),
        ("role=publisher", 4004),
        ("role=publisher&estacionId=", 4004),
        ("role=client", 4006),
        ("role=publisher&estacionId=42", 4005),
        ("role=client&estacionId=42", 4005),
        ("role=publisher&estacionId=abc", 4005),
        ("role=publisher&estacionId=all", 4005),
        ("role=client&estacionId=%C2%B2", 4005),  # "²": str.isdigit() is true, int() refuses it
        ("role=client&estacionId=%D9%A1", 4005),  # "١": str.isdecimal() is true and int() takes it
        ("role=client&estacionId=9007199254740993", 4005),  # above MAX_ID (2**53)
    ],
)
async def test_bad_connection_parameters_close_with_the_documented_code(server_url, query, code):
    from websockets.asyncio.client import connect as raw_connect

    params = parse_qs(query)  # a valid token for the role and station, so only the flaw remains
    token = token_for(
        server_url, (params.get("role") or ["client"])[0], (params.get("estacionId") or [""])[0]
    )
    async with raw_connect(
        f"{server_url}/ws?{query}" + (f"&token={token}" if token else "")
    ) as websocket:
        assert await close_code(websocket) == code


async def test_publisher_gets_connected_with_estacion_id_as_string(server_url):
    async with connect(server_url, "publisher", 1) as charger:
        assert await receive_json(charger) == {
            "type": "connected",
            "role": "publisher",
            "estacionId": "1",
        }


async def test_client_gets_subscribed_and_the_seed_init(server_url):
    async with connect(server_url, "client", 1) as dashboard:
        assert await receive_json(dashboard) == {"type": "subscribed", "estacionId": "1"}
        assert await receive_json(dashboard) == {
            "type": "init",
            "charger": {"id": 1, "status": "desconectado", "session": None},
        }


async def test_deprecated_type_dashboard_is_a_client_and_role_wins(server_url):
    from websockets.asyncio.client import connect as raw_connect

    dashboard_token, charger_token = (
        token_for(server_url, "client"),
        token_for(server_url, "publisher", 1),
    )
    async with raw_connect(
        f"{server_url}/ws?type=dashboard&estacionId=1&token={dashboard_token}"
    ) as dashboard:
        assert await receive_json(dashboard) == {"type": "subscribed", "estacionId": "1"}
    async with raw_connect(
        f"{server_url}/ws?role=publisher&type=dashboard&estacionId=1&token={charger_token}"
    ) as charger:
        assert (await receive_json(charger))["type"] == "connected"


async def test_new_subscriber_triggers_sync_request_to_the_connected_charger(server_url):
    charger = await publisher(server_url)
    async with charger, connect(server_url, "client", 1) as dashboard:
        init = await receive_type(dashboard, "init")
        assert init["charger"]["status"] == "disponible"
        assert await receive_json(charger) == {"type": "sync_request", "from": "server"}


async def test_newer_publisher_replaces_the_old_one_with_4008(server_url):
    async with connect(server_url, "client", 1) as dashboard:
        await receive_type(dashboard, "init")
        old = await publisher(server_url)
        assert (await receive_type(dashboard, "status"))["status"] == "disponible"
        new = await publisher(server_url)
        async with old, new:
            assert await close_code(old) == 4008
            await new.send('{"type":"nfc_scan","nfc_uid":"VIRTUAL-1-A4F2E8"}')
            assert (await receive_json(new))["type"] == "start"  # the new one is the charger
            assert (await receive_type(dashboard, "status"))[
                "status"
            ] == "cargando"  # never desconectado


async def test_all_subscription_sees_every_station_and_its_pushes(live_app, server_url):
    await live_app.storage.add_station("Estación 2", 5.0, station_id=2)
    async with connect(server_url, "client", "all") as overview:
        assert await receive_json(overview) == {"type": "subscribed", "estacionId": "all"}
        init = await receive_json(overview)
        assert [(c["id"], c["name"], c["status"]) for c in init["chargers"]] == [
            (1, "Estación 1", "desconectado"),
            (2, "Estación 2", "desconectado"),
        ]
        async with connect(server_url, "publisher", 2) as charger:  # station added while running
            await receive_json(charger)
            assert await receive_json(overview) == {
                "type": "status",
                "charger_id": 2,
                "status": "disponible",
            }
