"""Bad frames get an `error` with a code; the connection, the server and the database survive."""

import sqlite3

import pytest

from tests.live_server import connect, publisher, receive_json, receive_type, send_json

CARD = "VIRTUAL-1-A4F2E8"


async def database_rows(app) -> dict:
    """Every row of every table, as committed on disk."""
    await app.storage.flush()
    with sqlite3.connect(app.config.db_path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {table: db.execute(f"SELECT * FROM {table}").fetchall() for table in tables}


def metrics(session_id, **changes):
    message = {
        "type": "metrics",
        "session_id": session_id,
        "v": 230.0,
        "a": 10.0,
        "w": 2300.0,
        "ts": 0,
    }
    message.update(changes)
    return message


BAD_CHARGER_FRAMES = [
    ("not json", "{type: metrics"),
    ("a JSON array", "[1, 2, 3]"),
    ("no type", '{"session_id": 1}'),
    ("unknown type", '{"type": "teleport"}'),
    ("NaN voltage", '{"type":"metrics","session_id":SID,"v":NaN,"a":1,"w":1}'),
    ("infinite power", '{"type":"metrics","session_id":SID,"v":230,"a":1,"w":Infinity}'),
    ("deep nesting", "[" * 2_000 + "]" * 2_000),  # deeper than the JSON parser recurses, < 4 KiB
]
BAD_CHARGER_MESSAGES = [
    ("missing v", {"type": "metrics", "session_id": "SID", "a": 1.0, "w": 1.0}),
    ("string current", metrics("SID", a="16")),
    ("negative power", metrics("SID", w=-5.0)),
    ("huge voltage", metrics("SID", v=1e308)),
    ("bool session", metrics(True)),
    ("negative ts", metrics("SID", ts=-1)),
    ("negative register", metrics("SID", wh=-10)),
    ("nfc uid not a string", {"type": "nfc_scan", "nfc_uid": 12345}),
    ("nfc uid with quotes", {"type": "nfc_scan", "nfc_uid": "'; DROP TABLE cards;--"}),
    ("unknown state", {"type": "status", "state": "dancing"}),
    ("charging without session", {"type": "status", "state": "charging"}),
    ("unknown stop reason", {"type": "stop", "session_id": "SID", "reason": "tired"}),
    ("stop reason not a string", {"type": "stop", "session_id": "SID", "reason": 1}),
]


async def test_every_bad_charger_frame_gets_invalid_message_and_changes_nothing(
    live_app, server_url
):
    charger = await publisher(server_url)
    async with charger:
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
        session_id = (await receive_json(charger))["session_id"]
        before = await database_rows(live_app)
        frames = [frame.replace("SID", str(session_id)) for _, frame in BAD_CHARGER_FRAMES]
        for _, message in BAD_CHARGER_MESSAGES:
            message = {k: (session_id if v == "SID" else v) for k, v in message.items()}
            frames.append(message)
        frames.append(b"\x00\x01binary")
        for frame in frames:
            if isinstance(frame, dict):
                await send_json(charger, frame)
            else:
                await charger.send(frame)
            answer = await receive_json(charger)
            assert answer["type"] == "error" and answer["code"] == "INVALID_MESSAGE", frame
            assert answer["message"] and "Traceback" not in answer["message"]
        assert await database_rows(live_app) == before
        # the connection still works: a good reading is accepted and priced
        async with connect(server_url, "client", 1) as dashboard:
            await receive_type(dashboard, "init")
            await receive_type(charger, "sync_request")
            await send_json(charger, metrics(session_id, ts=0))
            assert (await receive_type(dashboard, "metrics"))["session_id"] == session_id


async def test_metrics_for_another_stations_session_are_refused_and_not_stored(
    live_app, server_url
):
    await live_app.storage.add_station("Estación 2", 7.0, station_id=2)
    user = await live_app.storage.add_user("Ana")
    await live_app.storage.add_card("04A1B2C3", user.id)
    one, two = await publisher(server_url, 1), await publisher(server_url, 2)
    async with one, two:
        await send_json(one, {"type": "nfc_scan", "nfc_uid": CARD})
        session_one = (await receive_json(one))["session_id"]
        before = await database_rows(live_app)
        await send_json(two, metrics(session_one))
        answer = await receive_json(two)
        assert answer["type"] == "error" and answer["code"] == "SESSION_MISMATCH"
        await send_json(two, metrics(987654))  # a session that never existed
        assert (await receive_json(two))["code"] == "SESSION_MISMATCH"
        assert await database_rows(live_app) == before


@pytest.mark.parametrize(
    "frame",
    ["nope", '{"type":"stop","session_id":"x"}', '{"type":"nfc_scan","nfc_uid":"X"}', b"\x01"],
)
async def test_bad_dashboard_frames_get_invalid_message_and_the_dashboard_stays(
    live_app, server_url, frame
):
    async with connect(server_url, "client", 1) as dashboard:
        await receive_type(dashboard, "init")
        before = await database_rows(live_app)
        await dashboard.send(frame)
        answer = await receive_json(dashboard)
        assert answer["type"] == "error" and answer["code"] == "INVALID_MESSAGE"
        await send_json(dashboard, {"type": "stop"})
        assert (await receive_json(dashboard))["code"] == "CHARGER_OFFLINE"  # still served
        assert await database_rows(live_app) == before


async def test_oversized_frame_closes_only_that_connection(live_app, server_url):
    async with connect(server_url, "client", 1) as other:
        await receive_type(other, "init")
        charger = await publisher(server_url)
        async with charger:
            await charger.send('{"type":"nfc_scan","nfc_uid":"' + "A" * 200_000 + '"}')
            await charger.wait_closed()
            assert charger.close_code == 1009  # message too big (RFC 6455 7.4.1)
        await send_json(other, {"type": "stop"})
        assert (await receive_type(other, "error"))["type"] == "error"
