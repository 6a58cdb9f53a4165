"""Limits at the door and per connection, against a real server: frame size (1009), message rate
(RATE_LIMITED, then 1008; a charger is slowed, never dropped), connection cap (503), Origin
allowlist (403), handshake timeout, TLS, and their configuration values."""

import asyncio
import ssl

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from server.config import ConfigError, load_config
from tests.certs import needs_openssl, self_signed
from tests.live_server import (
    base_url,
    close_code,
    connect,
    publisher,
    receive_json,
    receive_type,
    running_server,
    send_json,
    token_for,
)

CARD = "VIRTUAL-1-A4F2E8"


async def test_a_frame_above_max_frame_bytes_closes_1009_and_one_below_is_answered(tmp_path):
    async with running_server(tmp_path / "db.sqlite3", max_frame_bytes=1024) as app:
        charger = await publisher(base_url(app))
        async with charger:
            await charger.send('{"type":"nfc_scan","nfc_uid":"' + "A" * 900 + '"}')  # < 1 KiB
            assert (await receive_json(charger))["type"] == "error"
            await charger.send('{"type":"nfc_scan","nfc_uid":"' + "A" * 1100 + '"}')
            assert await close_code(charger) == 1009


async def test_a_flooding_dashboard_gets_rate_limited_then_closed_1008_and_others_keep_working(
    tmp_path,
):
    async with running_server(tmp_path / "db.sqlite3", rate_limit=0.001, rate_burst=3) as app:
        url = base_url(app)
        async with connect(url, "client", 1) as calm, connect(url, "client", 1) as flood:
            await receive_type(calm, "init")
            await receive_type(flood, "init")
            for _ in range(3):  # the burst is served
                await send_json(flood, {"type": "stop"})
                assert (await receive_type(flood, "error"))["code"] == "CHARGER_OFFLINE"
            for _ in range(3):  # over the limit: refused, still connected
                await send_json(flood, {"type": "stop"})
                assert (await receive_type(flood, "error"))["code"] == "RATE_LIMITED"
            await send_json(flood, {"type": "stop"})  # sustained: closed
            assert await close_code(flood) == 1008
            await send_json(calm, {"type": "stop"})
            assert (await receive_type(calm, "error"))["code"] == "CHARGER_OFFLINE"


async def test_a_charger_over_the_rate_is_slowed_down_but_every_reading_is_stored(tmp_path):
    async with running_server(tmp_path / "db.sqlite3", rate_limit=20, rate_burst=5) as app:
        charger = await publisher(base_url(app))
        async with charger:
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
            session_id = (await receive_type(charger, "start"))["session_id"]
            for k in range(
                8
            ):  # tap + 8 readings + marker: 5 frames over the burst of 5 wait their turn
                await send_json(
                    charger,
                    {
                        "type": "metrics",
                        "session_id": session_id,
                        "v": 230,
                        "a": 10,
                        "w": 2300,
                        "ts": 1_750_000_000 + k,
                    },
                )
            await send_json(charger, {"type": "unknown-marker"})  # answered after all readings
            assert (await receive_type(charger, "error"))["code"] == "INVALID_MESSAGE"
            await app.storage.flush()
            assert len(await app.storage.readings(session_id)) == 8


async def test_connections_above_max_connections_are_refused_503_until_one_leaves(tmp_path):
    async with running_server(tmp_path / "db.sqlite3", max_connections=2) as app:
        url = base_url(app)
        first, second = await connect(url, "client", 1), await connect(url, "client", 1)
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, "client", 1)
        assert refused.value.response.status_code == 503
        await first.close()
        await second.close()
        async with asyncio.timeout(10):
            while True:  # the server forgets closed connections asynchronously
                try:
                    async with connect(url, "client", 1) as again:
                        assert (await receive_json(again))["type"] == "subscribed"
                        break
                except InvalidStatus:
                    await asyncio.sleep(0.05)


async def test_browsers_connect_only_from_the_servers_own_origin_or_an_allowed_one(tmp_path):
    async with running_server(
        tmp_path / "db.sqlite3", allowed_origins=("https://backoffice.example",)
    ) as app:
        url = base_url(app)
        query = f"/ws?role=client&estacionId=1&token={token_for(url, 'client')}"
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(url + query, origin="http://evil.example")
        assert refused.value.response.status_code == 403
        for origin in (f"http://127.0.0.1:{app.port}", "https://backoffice.example", None):
            async with ws_connect(url + query, origin=origin) as dashboard:
                assert (await receive_json(dashboard))["type"] == "subscribed"


async def test_a_client_that_never_finishes_the_handshake_is_disconnected(tmp_path):
    async with running_server(tmp_path / "db.sqlite3", handshake_timeout=0.5) as app:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        writer.write(b"GET /ws?role=client&estacionId=1 HTTP/1.1\r\n")  # and nothing more
        await writer.drain()
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""  # the server hung up
        finally:
            writer.close()


@pytest.mark.parametrize(
    "variable, value, words",
    [
        ("AUTH", "maybe", "must be on or off"),
        ("MAX_FRAME_BYTES", "10", "must be an integer from 256"),
        ("RATE_LIMIT", "0", "greater than 0"),
        ("RATE_BURST", "-1", "must be an integer from 233"),
        ("MAX_CONNECTIONS", "lots", "must be an integer"),
        ("HANDSHAKE_TIMEOUT", "nan", "finite"),
        ("ALLOWED_ORIGINS", "ftp://x", "http(s)://host"),
        ("TLS_CERT", "/nonexistent/cert.pem", "TLS_CERT and TLS_KEY must be given together"),
    ],
)
def test_bad_security_settings_stop_the_start_with_one_line(tmp_path, variable, value, words):
    with pytest.raises(ConfigError) as problem:
        load_config(
            ["--db", str(tmp_path / "db.sqlite3")], environ={variable: value}, dotenv_path=None
        )
    assert words in str(problem.value) and "\n" not in str(problem.value)


def test_auth_is_on_unless_configured_off(tmp_path):
    db = ["--db", str(tmp_path / "db.sqlite3")]
    assert load_config(db, environ={}, dotenv_path=None).auth is True
    assert load_config(db, environ={"AUTH": "off"}, dotenv_path=None).auth is False


@needs_openssl
async def test_tls_configuration_serves_wss_and_https(tmp_path):
    key, cert = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    async with running_server(tmp_path / "db.sqlite3", tls_cert=cert, tls_key=key) as app:
        url = f"wss://127.0.0.1:{app.port}/ws?role=publisher&estacionId=1&token={token_for(base_url(app), 'publisher', 1)}"
        async with ws_connect(url, ssl=trust) as charger:
            assert (await receive_json(charger))["type"] == "connected"
        with pytest.raises(
            (InvalidHandshake, ConnectionError)
        ):  # plain ws:// on a TLS port gets no HTTP answer
            await connect(base_url(app), "client", 1)
