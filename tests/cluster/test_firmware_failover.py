"""Failover without a balancer: the real firmware (MicroPython unix port, tools/sim_charger.py)
with `server_urls` listing two processes of a real fleet (PostgreSQL, nats-server). It charges
on the first; the first is SIGKILLed mid-session; the charger's link tries the next URL, the
second process takes the station and its open session, and the STOP button ends it billed
exactly the meter's delta, every reading the charger queued stored once.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from tests.firmware.mpy import requires_micropython
from tools.cluster import Cluster
from tools.sim_charger import SimCharger

pytestmark = [requires_micropython, pytest.mark.timeout(150)]
CARD = "04C0FFEE"  # the demo card an RC522 can read
WAIT_S = 60.0


async def test_a_charger_with_server_urls_moves_to_the_next_process_and_its_session_bills_the_meter_delta(
    tmp_path, postgres_server, nats_server
):
    database_url = postgres_server.create_database("firmware_failover")
    async with Cluster(database_url, nats_server.url, 2) as fleet:
        first, second = fleet.members
        sim = SimCharger(tmp_path, first.url, token=fleet.demo_key())
        cfg = json.loads(sim.config_path.read_text())
        del cfg["server_url"]  # one or the other
        cfg["server_urls"] = [first.url, second.url]
        sim.config_path.write_text(json.dumps(cfg))
        await sim.start()
        try:
            await sim.wait_status(lambda s: s["link"], timeout=WAIT_S)
            wh_before = (await sim.status())["wh"]
            await sim.command("tap " + CARD)
            st = await sim.wait_status(lambda s: s["state"] == "charging", timeout=WAIT_S)
            session_id = st["session_id"]
            await sim.wait_status(lambda s: s["readings_queued"] >= 3, timeout=WAIT_S)
            mark = len(sim.lines)
            await fleet.kill(0)  # the first process dies under its charger
            await sim.wait_status(lambda s: not s["link"], timeout=WAIT_S)
            await sim.wait_line(
                lambda line: "to 127.0.0.1 %d" % second.port in line, timeout=WAIT_S, start=mark
            )
            st = await sim.wait_status(
                lambda s: s["link"] and s["readings_queued"] >= 6, timeout=WAIT_S
            )
            assert st["state"] == "charging" and st["session_id"] == session_id
            await sim.command("press stop")
            st = await sim.wait_status(
                lambda s: s["state"] == "idle" and s["outbox"] == 0, timeout=WAIT_S
            )
        finally:
            await sim.stop()
        database = await asyncpg.connect(database_url)
        try:
            async with asyncio.timeout(WAIT_S):
                while (
                    session := await database.fetchrow(
                        "SELECT kwh, end_reason FROM sessions WHERE id = $1", session_id
                    )
                )["end_reason"] is None:
                    await asyncio.sleep(0.1)
            # the meter's readings: not the stop's final register (the session's last row,
            # received when it ended, at 0 W)
            metered = (
                " FROM readings r JOIN sessions s ON s.id = r.session_id WHERE r.session_id = $1"
                " AND NOT (r.received_at = s.ended_at AND r.w = 0 AND r.a = 0)"
            )
            stored = await database.fetchval("SELECT count(*)" + metered, session_id)
            distinct = await database.fetchval(
                "SELECT count(DISTINCT r.charger_ts)" + metered, session_id
            )
        finally:
            await database.close()
    meter_delta_wh = st["wh"] - wh_before
    assert meter_delta_wh > 0
    assert session["end_reason"] == "local_stop"
    assert round(session["kwh"] * 1000) == meter_delta_wh  # billed exactly the meter's delta
    assert stored == distinct == st["readings_queued"]  # every reading the charger queued, once
