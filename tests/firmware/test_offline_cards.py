"""Offline cards end to end (issue 13): the real firmware on the MicroPython unix port against
the real server. The charger keeps the signed list the server pushed (on flash, across a
restart), starts a listed card while its network is down, and on reconnect the server turns
that offline start into a session billed by the meter; plus the charger's HMAC against
RFC 4231 and against the server's signature."""

import asyncio
import hashlib
import hmac

import pytest

from server.offline_auth import canonical, key_digest_hex, sign
from tests.firmware.mpy import requires_micropython, run_mpy
from tests.live_server import base_url, connect, receive_type, running_server
from tests.server.bills import metered
from tools.sim_charger import SimCharger

pytestmark = [requires_micropython, pytest.mark.timeout(180)]

CARD = "04A1B2C3D4E5F6"  # a 7-byte UID: read through cascade level 2
LOCAL = 0x80000000

# RFC 4231 test cases 1, 2 and 6 (a key longer than the block): key, data, HMAC-SHA256
RFC4231 = [
    (
        "0b" * 20,
        b"Hi There".hex(),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe".hex(),
        b"what do ya want for nothing?".hex(),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        "aa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
]


def test_the_chargers_hmac_matches_rfc_4231_and_the_servers_signature():
    key = "k3y-of-station-7"
    text = canonical(7, 12, True, ["04A1B2C3", "VIRTUAL-1-A4F2E8"])
    cases = RFC4231 + [
        (
            hashlib.sha256(key.encode()).hexdigest(),
            text.encode().hex(),
            sign(key_digest_hex(key), text),
        )
    ]
    script = "from binascii import hexlify, unhexlify\nfrom charger.offline import digest\n"
    for key_hex, data, _ in cases:
        script += "print(hexlify(digest(unhexlify(%r), unhexlify(%r))).decode())\n" % (
            key_hex,
            data,
        )
    assert run_mpy(script).split() == [expected for _, _, expected in cases]
    assert (
        cases[-1][2]
        == hmac.new(hashlib.sha256(key.encode()).digest(), text.encode(), "sha256").hexdigest()
    )


async def _card(app):
    user = (await app.storage.list_users())[0]
    await app.storage.add_card(CARD, user.id)


async def _wait_ended(app, session_id):
    for _ in range(400):
        record = await app.storage.get_session(session_id)
        if record is not None and record.ended_at is not None:
            return record
        await asyncio.sleep(0.05)  # polling interval, not a synchronization
    raise AssertionError("session %s never ended" % session_id)


async def test_a_listed_card_charges_offline_and_the_server_bills_it_on_reconnect(tmp_path):
    async with running_server(tmp_path / "evse.sqlite3") as app:
        await _card(app)
        sim = SimCharger(tmp_path, base_url(app) + "/ws", token=app.demo_key)
        await sim.start()
        try:
            await sim.wait_line(lambda line: "[charger] offline list 1 " in line)
            async with connect(base_url(app), "client", 1) as dash:
                await receive_type(dash, "init")
                await sim.command("link down")
                await sim.wait_status(lambda s: not s["link"])
                wh_before = (await sim.status())["wh"]
                await sim.command("tap " + CARD)
                st = await sim.wait_status(lambda s: s["state"] == "charging")
                assert st["relay"] is True and st["session_id"] >= LOCAL
                await sim.wait_status(lambda s: s["readings_queued"] >= 3)
                assert await app.storage.open_sessions() == []  # the server knows nothing yet
                await sim.command("link up")
                st = await sim.wait_status(
                    lambda s: s["link"] and s["outbox"] == 0 and s["session_id"] < LOCAL
                )
                session_id = st["session_id"]
                started = await receive_type(dash, "session_started")
                assert started["session_id"] == session_id and started["offline"] is True
                await sim.command("press stop")
                st = await sim.wait_status(lambda s: s["state"] == "idle" and s["outbox"] == 0)
                record = await _wait_ended(app, session_id)
            assert record.end_reason == "local_stop" and record.card_uid == CARD
            meter_delta_wh = st["wh"] - wh_before
            assert meter_delta_wh > 0
            assert round(record.kwh * 1000) == meter_delta_wh  # billed exactly the meter's delta
            readings = await app.storage.readings(session_id)
            # every reading queued offline stored, then the stop's final register (the bill's end)
            assert len(metered(readings, record)) == st["readings_queued"]
            assert readings[-1].kwh == record.kwh
            assert await app.storage.list_alerts(station_id=1) == []
            assert [s.id for s in await app.storage.open_sessions()] == []
        finally:
            await sim.stop()


async def test_the_list_survives_a_restart_and_decides_taps_without_the_server(tmp_path):
    async with running_server(tmp_path / "evse.sqlite3") as app:
        await _card(app)
        sim = SimCharger(tmp_path, base_url(app) + "/ws", token=app.demo_key)
        await sim.start()
        try:
            await sim.wait_line(lambda line: "[charger] offline list 1 " in line)
        finally:
            await sim.stop()
        stored = (tmp_path / "authlist.txt").read_text().split("\n")
        assert stored[0] == "1" and CARD in stored
    # restarted with no server at all (the port is closed now)
    sim = SimCharger(tmp_path, "ws://127.0.0.1:9/ws", token="not-needed-for-offline")
    await sim.start()
    try:
        await sim.command("tap 04DEADBE")  # not listed: refused at once
        await sim.wait_line(lambda line: "offline: card not allowed" in line)
        assert (await sim.status())["relay"] is False
        await sim.command("tap " + CARD)
        st = await sim.wait_status(lambda s: s["state"] == "charging")
        assert st["relay"] is True and st["session_id"] >= LOCAL
    finally:
        await sim.stop()


async def test_an_offline_start_cut_by_a_power_loss_is_reported_and_billed_after_the_reboot(
    tmp_path,
):
    # the journal (charger/outbox.py Journal) keeps the offline start, its uid and version and
    # its readings: after the reboot the charger reports it, then its stop (power_loss)
    from charger.jboot import records
    from tests.firmware.test_journal import journal_of

    def kinds():  # the journal's record kinds (32: an offline start awaiting its answer)
        return {kind for kind, _, _ in records((tmp_path / "journal.bin").read_bytes())}

    async with running_server(tmp_path / "evse.sqlite3") as app:
        await _card(app)
        sim = SimCharger(tmp_path, base_url(app) + "/ws", token=app.demo_key)
        await sim.start()
        try:
            await sim.wait_line(lambda line: "[charger] offline list 1 " in line)
            await sim.command("link down")
            await sim.wait_status(lambda s: not s["link"])
            wh_before = (await sim.status())["wh"]
            await sim.command("tap " + CARD)
            st = await sim.wait_status(lambda s: s["state"] == "charging")
            local = st["session_id"]
            await sim.wait_status(lambda s: s["readings_queued"] >= 12)  # a journal batch
        finally:
            await sim.stop()  # SIGKILL: the power cut, the link still down
        journaled, last = journal_of(tmp_path / "journal.bin")
        assert local >= LOCAL and journaled[local] and local in last
        assert 32 in kinds()
        sim = SimCharger(tmp_path, base_url(app) + "/ws", token=app.demo_key)
        sim.env["SIM_RESET_CAUSE"] = "1"  # a power-on reset
        await sim.start()
        try:
            st = await sim.wait_status(lambda s: s["link"] and s["outbox"] == 0)
            assert st["relay"] is False and st["state"] == "idle"
        finally:
            await sim.stop()
        # answered: its record is gone (a boot no longer loads charger/offline.py for it)
        assert 32 not in kinds()
        sessions, _ = await app.storage.list_sessions(station_id=1)
        assert len(sessions) == 1
        record = await _wait_ended(app, sessions[0].id)
        assert record.end_reason == "power_loss" and record.card_uid == CARD
        stored = [r.wh for r in await app.storage.readings(record.id)]
        assert sorted(stored) == sorted(journaled[local])  # every journaled reading
        assert round(record.kwh * 1000) == last[local] - wh_before > 0
