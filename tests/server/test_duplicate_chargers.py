"""Two chargers configured with the same station take it from each other: every connection
replaces the other's (close 4008). One replacement is normal (a rebooted charger's half-open
socket); a burst is logged with both peers and alerted once. Real server, real websockets
clients; the burst's minute runs on a fake server clock the test moves."""

import logging

from tests.live_server import base_url, close_code, connect, publisher, receive_type, running_server
from tests.server.handled import drain, handled, of_type

T0 = 1_800_000_000.0


async def replace(url, chargers) -> None:
    """Connect one more charger to station 1 and wait until its connection was set up (the
    replacement is handled before the first frame it sends)."""
    chargers.append(await publisher(url))
    await handled(chargers[-1])


async def test_more_than_three_replacements_in_a_minute_raise_one_duplicate_charger_alert_per_burst(
    tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="server.ws")
    now = [T0]
    chargers = []
    async with running_server(tmp_path / "evse.sqlite3", clock=lambda: now[0]) as app:
        url = base_url(app)
        try:
            async with connect(url, "client", 1) as dashboard:
                await receive_type(dashboard, "init")
                await replace(url, chargers)
                for _ in range(
                    3
                ):  # three replacements within a minute: rebooted chargers, no alert
                    now[0] += 10
                    await replace(url, chargers)
                assert await app.storage.list_alerts() == []
                now[0] += 10
                await replace(url, chargers)  # the fourth: two chargers fight over station 1
                for _ in range(5):  # the same burst goes on: no second alert
                    now[0] += 10
                    await replace(url, chargers)
                first_burst = of_type(await drain(dashboard), "alert")
                now[0] += 61  # a quiet minute ends the burst; a new burst alerts again
                for _ in range(5):
                    now[0] += 1
                    await replace(url, chargers)
                second_burst = of_type(await drain(dashboard), "alert")
            assert await close_code(chargers[0]) == 4008
        finally:
            for charger in chargers:
                await charger.close()
        alerts = await app.storage.list_alerts()
    assert [(a["kind"], a["charger_id"], a["session_id"]) for a in first_burst] == [
        ("duplicate_charger", 1, None)
    ]
    assert "4 veces en un minuto" in first_burst[0]["message"]
    assert [a["kind"] for a in second_burst] == ["duplicate_charger"]
    assert [(a.kind, a.station_id) for a in alerts] == [("duplicate_charger", 1)] * 2
    # every replacement is logged with both peers (the old connection's and the new one's)
    old, new = chargers[-2].local_address, chargers[-1].local_address
    assert any(
        f"{old[0]}:{old[1]}" in line and f"{new[0]}:{new[1]}" in line and "4008" in line
        for line in caplog.messages
    )
    assert (
        sum("replaced by a newer connection" in line for line in caplog.messages)
        == len(chargers) - 1
    )
