"""A dashboard subscribing during a card tap makes the server send `sync_request` before the
`start`; the charger's truthful answer (`status` idle) then arrives after the session opened.
It crossed the `start` on the wire: the session must not end as `charger_reset` (it did, and
every reading of that session was then refused). The server asks again; the second answer is
the truth, so a charger that really is idle still ends it (no stuck session)."""

from tests.live_server import connect, publisher, receive_json, receive_type, send_json

CARD = "VIRTUAL-1-A4F2E8"


async def crossed_start(server_url):
    """A charger whose idle answer to a pre-start sync_request arrives after the start."""
    charger = await publisher(server_url)
    dashboard = await connect(server_url, "client", 1)
    await receive_type(dashboard, "init")
    assert await receive_json(charger) == {"type": "sync_request", "from": "server"}
    await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
    session_id = (await receive_type(charger, "start"))["session_id"]
    await send_json(charger, {"type": "status", "state": "idle", "session_id": None, "wh": 500})
    return charger, dashboard, session_id


async def test_an_idle_status_that_crossed_the_start_does_not_end_the_session(server_url):
    charger, dashboard, session_id = await crossed_start(server_url)
    async with charger, dashboard:
        assert await receive_json(charger) == {
            "type": "sync_request",
            "from": "server",
        }  # asked again
        await send_json(
            charger, {"type": "status", "state": "charging", "session_id": session_id, "wh": 500}
        )
        await send_json(
            charger,
            {
                "type": "metrics",
                "session_id": session_id,
                "v": 230.0,
                "a": 10.0,
                "w": 2300.0,
                "wh": 501,
            },
        )
        while (message := await receive_json(dashboard))["type"] != "metrics":
            assert message["type"] != "session_ended", message
        assert message["session_id"] == session_id


async def test_a_charger_still_idle_when_asked_again_ends_the_session(server_url, live_app):
    charger, dashboard, session_id = await crossed_start(server_url)
    async with charger, dashboard:
        assert await receive_json(charger) == {"type": "sync_request", "from": "server"}
        await send_json(charger, {"type": "status", "state": "idle", "session_id": None, "wh": 500})
        ended = await receive_type(dashboard, "session_ended")
    assert ended["session_id"] == session_id and ended["reason"] == "charger_reset"
    assert (await live_app.storage.get_session(session_id)).end_reason == "charger_reset"
