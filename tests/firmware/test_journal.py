"""The power-cut-safe session journal (issue 13): the real firmware's journal on the real
MicroPython unix port and real files, and the real server.

- tests/firmware/journal_cuts.py, in one MicroPython process: the write path cut at every
  byte (compactions included), the file truncated at every byte and each byte corrupted: the
  journal always opens and loses at most the torn (or corrupted) record; after every cut the
  session open at the last whole write is recovered with at least the register that write
  journaled (in a reading, or in an OPEN when no reading of the write carried it); a journal
  written as before (an OPEN with every write) recovers the same.
- the firmware (tools/sim_charger.py) boots with the relay off whatever is in its journal.
- end to end: a session, the link lost (readings pile up, journaled), the board's power cut
  (SIGKILL of the MicroPython process), the firmware started again on the same directory: the
  server stores every journaled reading, ends the session `power_loss` (or `charger_reset`
  after a watchdog reset) and bills the last journaled register minus the start register.
"""

import asyncio
import binascii
import shutil
import struct

import pytest

from charger.jboot import records
from tests.firmware.mpy import requires_micropython, run_mpy, run_mpy_file
from tests.live_server import base_url, token_for
from tools.faultproxy import FaultProxy
from tools.sim_charger import ROOT, SimCharger

pytestmark = [requires_micropython, pytest.mark.timeout(240)]

CARD = "04A1B2C3D4E5F6"
OPEN, READINGS, EVENT = 1, 2, 3  # record kinds (charger/jfile.py)
WAIT_S = 60.0  # generous: only a failing test waits this long


def test_the_journal_survives_a_cut_at_every_byte_of_its_writes_truncation_and_corruption(tmp_path):
    out = run_mpy_file(ROOT / "tests" / "firmware" / "journal_cuts.py", tmp_path, timeout=600)
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert "FAILURE" not in lines, out
    cut, trunc, corrupt = lines["cut"], lines["truncate"], lines["corrupt"]
    # hundreds of cut points each: every byte the history writes (compactions included)
    assert int(cut[1]) > 2000 and int(cut[2]) == 0, out
    assert int(cut[4]) >= 10, out  # the history makes that many flash writes
    assert int(trunc[1]) > 1500 and int(trunc[2]) == 0, out
    assert int(corrupt[1]) > 1500 and int(corrupt[2]) == 0, out
    # at every cut: the open session and at least its last journaled register
    assert lines["journaled"][1:] == [cut[1], "0"], out
    # the whole journal: the session open at the end is the interrupted one
    assert lines["whole"][-1] == "8", out
    # a journal of the firmware before this layout (an OPEN in every write: more bytes)
    old = lines["old"]
    assert old[2] == "0" and int(old[1]) > int(old[4]), out


NO_HEAP = """
import micropython
from charger.outbox import Journal
P = %r
j = Journal(P)
j.state[0] = True  # journaling on, as after the boot replay
for i in range(10):  # the first one written at once, the 11th puts the next write due
    j.put_reading(5, 230.0, 8.7, 2000.0, 100 + i, 1750000000 + i)
put = None
micropython.heap_lock()  # the write's load of charger/jfile.py finds no heap
try:
    put = j.put_reading(5, 230.0, 8.7, 2000.0, 110, 1750000010)
finally:
    micropython.heap_unlock()
print("put", put, len(j), j.state[5])
j.put_reading(5, 230.0, 8.7, 2000.0, 111, 1750000011)  # the next write has heap again
print("after", len(j), j.state[5])
from charger import jboot  # (after the writes: each unloads jfile, whose code jboot uses)
k = Journal(P)
print("replayed", jboot.boot(k, True), len(k), k.readings)
"""


@requires_micropython
def test_a_journal_write_without_heap_loses_no_reading_and_the_put_stands(tmp_path):
    # The chaos run under -X heapsize=96K: a MemoryError out of the journal's write escaped
    # put_reading after the outbox had stored the reading, so the app skipped its count and
    # its notify ("stored 27 of 26"). Now the write is refused (counted, logged), the put
    # stands, and the next write carries the reading to the file.
    out = run_mpy(NO_HEAP % str(tmp_path / "journal.bin"))
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert lines["put"] == ["True", "11", "1"], out
    assert any("journal MemoryError" in line for line in out.splitlines()), out
    assert lines["after"] == ["12", "1"], out  # the 12th write succeeded
    # a reboot replays all 12 readings (and stops the open session 5: power_loss)
    assert lines["replayed"] == ["5", "13", "12"], out


FAILED_WRITE = """
import json
import charger
charger.forget = lambda name: None  # the journal unloads jfile: this script patches it
from charger import jboot, jfile
from charger.outbox import Journal
real_open = open
fail = [-1, None]  # bytes of the next write that reach the file before fail[1]; -1: all


class BadFile:  # littlefs: an open file's writes reach the flash when it is closed, and a
    # file system error (ENOSPC, EIO, no heap for its buffer) surfaces there, the data torn
    def __init__(self, path, mode):
        self.path, self.mode, self.data = path, mode, b""

    def write(self, data):
        self.data += bytes(data)

    def tell(self):
        return len(self.data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with real_open(self.path, self.mode) as f:
            if fail[0] < 0:
                f.write(self.data)
            else:
                f.write(self.data[: fail[0]])
                fail[0] = -1
                raise fail[1]


jfile.open = jboot.open = BadFile
for name, error in (
    ("ENOSPC", OSError(28)),
    ("EIO", OSError(5)),
    ("heap", MemoryError()),
    ("compaction", OSError(28)),
):
    P = %r + "/" + name + ".bin"
    j = Journal(P)
    j.state[0] = True  # journaling on, as after the boot replay
    put = []
    for i in range(12):  # the first written at once, the 11th puts the next write due: its
        if i == 10:  # file refused, its READINGS record torn after its head
            fail[0], fail[1] = 5, error
            if name == "compaction":  # the file past its limit: that write compacts first
                j.state[3] = 1 << 30
        writes = j.state[4]  # (before the 12th: did its put write to the file?)
        put.append(100 + i)
        j.put_reading(5, 230.0, 8.7, 2000.0, 100 + i, 1750000000 + i)
    k = Journal(P)  # the power cut right after: a boot from the file
    jboot.open = real_open
    jboot.boot(k, True)
    jboot.open = BadFile
    got = []
    for _ in range(len(k)):
        m = json.loads(k.next_unsent())
        if m["type"] == "metrics":
            got.append(m["wh"])
    print(name, j.state[5], j.state[4] > writes, put == got, put, got)
"""


@requires_micropython
def test_a_failed_journal_write_is_retried_and_a_boot_recovers_every_reading(tmp_path):
    # A write the file system refused (ENOSPC, EIO, no heap mid-write) counted its readings
    # as written: the next write went on after them, so they reached the file only at the
    # next compaction and a power cut before it lost them. Now they count once on the file:
    # the next write carries them, and a boot right after it recovers every reading put.
    out = run_mpy(FAILED_WRITE % str(tmp_path))
    lines = {line.split()[0]: line.split()[1:4] for line in out.splitlines() if line.strip()}
    for name in ("ENOSPC", "EIO", "heap", "compaction"):
        # refused once, the next reading's put wrote, a boot got every reading back
        assert lines[name] == ["1", "True", "True"], out


def journal_of(path):
    """{session_id: [wh of each journaled reading]} and {session_id: last register} of the
    sessions an OPEN opened: the newest of its OPEN and the readings journaled after it."""
    data = path.read_bytes()
    readings, last = {}, {}
    for kind, at, size in records(data):
        if kind == READINGS:
            for i in range(size // 24):
                sid, wh = struct.unpack_from("<2I", data, at + 4 + 24 * i)
                readings.setdefault(sid, []).append(wh)
                if sid in last:
                    last[sid] = wh
        elif kind == OPEN:
            sid, wh, _ = struct.unpack_from("<III", data, at)
            last[sid] = wh
    return readings, last


@pytest.mark.parametrize("garbage", ["noise", "torn", "directory"])
async def test_the_firmware_boots_with_the_relay_off_whatever_its_journal_holds(
    live_app, tmp_path, garbage
):
    journal = tmp_path / "journal.bin"
    if garbage == "noise":
        journal.write_bytes(bytes(range(256)) * 8 + b"\x4a\x01\x0c" + b"\xff" * 40)
    elif garbage == "torn":  # a session open, its last record torn
        head = bytes((OPEN, 12)) + struct.pack("<III", 9, 1234, 1750000000)
        whole = b"\x4a" + head + struct.pack("<I", binascii.crc32(head))
        journal.write_bytes(whole + whole[:9])
    else:
        journal.mkdir()
    sim = SimCharger(
        tmp_path, base_url(live_app) + "/ws", token=token_for(base_url(live_app), "publisher", 1)
    )
    await sim.start()
    try:
        st = await sim.wait_status(lambda s: "state" in s, timeout=WAIT_S)
        assert st["relay"] is False
        if garbage == "torn":  # the whole record before the torn one counted: session 9 was
            # open when the board died: its stop is journaled (kind 5, the outbox's power_loss)
            data = journal.read_bytes()
            events = [
                struct.unpack_from("<5I", data, at)[1:]
                for kind, at, size in records(data)
                if kind == EVENT
            ]
            assert events == [(5, 9, 1234, 1750000000)]
        st = await sim.wait_status(lambda s: s["link"] and s["outbox"] == 0, timeout=WAIT_S)
        assert st["state"] == "idle" and st["relay"] is False
        if garbage != "directory":  # (a directory cannot be replaced: no journal then)
            assert journal.is_file()
    finally:
        await sim.stop()


async def _wait_ended(app, session_id):
    async with asyncio.timeout(WAIT_S):
        while True:
            record = await app.storage.get_session(session_id)
            if record.ended_at is not None:
                return record
            await asyncio.sleep(0.1)  # polling interval, not a synchronization


@pytest.mark.parametrize("cause, reason", [(1, "power_loss"), (3, "charger_reset")])
async def test_a_session_cut_by_a_reboot_is_ended_with_its_journaled_readings_and_register(
    live_app, tmp_path, cause, reason
):
    user = (await live_app.storage.list_users())[0]
    await live_app.storage.add_card(CARD, user.id)
    token = token_for(base_url(live_app), "publisher", 1)
    async with FaultProxy(int(base_url(live_app).rsplit(":", 1)[1])) as proxy:
        sim = SimCharger(tmp_path, proxy.url + "/ws", token=token)
        await sim.start()
        drop = None
        try:
            await sim.wait_status(lambda s: s["link"], timeout=WAIT_S)
            wh_before = (await sim.status())["wh"]
            await sim.command("tap " + CARD)
            st = await sim.wait_status(lambda s: s["state"] == "charging", timeout=WAIT_S)
            session_id = st["session_id"]
            await sim.command("remove")
            st = await sim.wait_status(
                lambda s: s["readings_queued"] >= 3 and s["outbox"] == 0, timeout=WAIT_S
            )
            # the link goes (readings pile up unacknowledged, journaled 10 at a time), then
            # the power: at least one batch of them is on flash
            drop = asyncio.create_task(proxy.drop(WAIT_S))
            await sim.wait_status(lambda s: not s["link"], timeout=WAIT_S)
            queued = (await sim.status())["readings_queued"]
            # a flush every 10 readings: 11 more make sure one happened offline
            st = await sim.wait_status(
                lambda s: s["readings_queued"] >= queued + 11, timeout=WAIT_S
            )
            # batched: a flash write per 10 readings, plus the session's first reading and
            # the boot's two (the compaction, its append), not one per reading
            assert st["journal_writes"] <= st["readings_queued"] // 10 + 3, st
            stored_before = [r.wh for r in await live_app.storage.readings(session_id)]
        finally:
            await sim.stop()  # SIGKILL: the power cut
            if drop is not None:
                drop.cancel()
    cut = tmp_path / "journal-at-the-cut.bin"
    shutil.copy(tmp_path / "journal.bin", cut)
    journaled, last = journal_of(cut)
    # the journal holds readings the server never had (the replay has work to do), and the
    # session still open with its last register
    assert set(journaled[session_id]) - set(stored_before) and session_id in last
    # the board starts again on the same file system, the link back (straight to the server)
    sim = SimCharger(tmp_path, base_url(live_app) + "/ws", token=token)
    sim.env["SIM_RESET_CAUSE"] = str(cause)
    await sim.start()
    try:
        st = await sim.wait_status(lambda s: "state" in s, timeout=WAIT_S)
        assert st["relay"] is False and st["state"] == "idle"
        record = await _wait_ended(live_app, session_id)
        await sim.wait_status(lambda s: s["link"] and s["outbox"] == 0, timeout=WAIT_S)
    finally:
        await sim.stop()
    assert record.end_reason == reason
    stored = [r.wh for r in await live_app.storage.readings(session_id)]
    assert sorted(stored) == sorted(set(stored_before) | set(journaled[session_id]))
    assert round(record.kwh * 1000) == last[session_id] - wh_before > 0
