# A MicroPython script (tests/firmware/test_journal.py runs it): the session journal's write
# path cut at every byte, and its file truncated and corrupted byte by byte, in ONE process.
#
#     micropython tests/firmware/journal_cuts.py DIR
#
# A "power cut" is the file layer refusing to write past a byte budget: the record being
# written is torn there (its first bytes are on the file, as on a flash whose power failed
# mid-program) and the firmware stops (an exception out of the put). Then the journal is
# opened as at boot (charger/jboot.py boot()) and what it recovers is compared with what
# the file cut at the last whole record recovers: at most the torn record may be lost. And
# with what the history had journaled: the session open at the last completed write (or one
# the torn write's whole records opened) is recovered, with at least the register that write
# left on the file (an OPEN is written only when no reading of the write carries it). Prints
# one line per check kind: "<kind> <cut points> <failures>" and the failures' details.
import json
import os
import sys

import charger

charger.forget = lambda name: None  # the journal unloads modules: this script keeps them
from charger import jboot, jfile  # noqa: E402
from charger.outbox import Journal  # noqa: E402

DIR = sys.argv[1]
P = DIR + "/journal.bin"
T = 1750000000
real_open = open


class Cut(Exception):
    pass


budget = [-1]  # bytes the file layer still writes; -1: no limit
J = [None]  # the journal the history writes
committed = [None]  # [session_id, wh] open at its last whole write, or None
last = {}  # session_id: the wh of its last reading put


class CutFile:
    def __init__(self, f):
        self.f = f

    def write(self, data):
        data = bytes(data)  # (the journal writes arrays too: their bytes are what counts)
        if budget[0] >= 0 and len(data) > budget[0]:
            self.f.write(data[: budget[0]])  # the torn record's first bytes reach the flash
            budget[0] = 0
            raise Cut()
        if budget[0] >= 0:
            budget[0] -= len(data)
        return self.f.write(data)

    def read(self):
        return self.f.read()

    def tell(self):
        return self.f.tell()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        if exc[0] is None:  # a whole write: what the journal holds now (a compaction's
            # new file: renamed over the journal right after)
            committed[0] = J[0].state[6] and J[0].state[6][:2]


def cut_open(path, mode="r"):
    return CutFile(real_open(path, mode))


def rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def drain(j, n):
    # the link sends n entries and the server acknowledges them
    for _ in range(n):
        if j.next_unsent() is None:
            break
    j.confirm()


compactions = [True]


def big(j):
    # the file looks past its limit: the next write compacts it first
    if compactions[0]:
        j.state[3] = 1 << 30


def reading(j, sid, wh, ts):
    last[sid] = wh
    j.put_reading(sid, 230.0, 8.7, 2000.0, wh, ts)


def history(j):
    """A charger's day, through the real write path: sessions stopped, acknowledged,
    ended by the server, an emergency, a session started while its predecessor's stop was
    unsent (their acknowledgement, of readings too, makes a write without readings: its
    OPEN carries the register), and a session still open at the end."""
    for i in range(23):
        reading(j, 5, 100 + i, T + i)
        if i == 12:
            drain(j, 8)
            big(j)
    j.put_event("stop", 5, 122, T + 22)
    drain(j, 40)
    for i in range(12):
        reading(j, 6, 200 + i, T + 100 + i)
    j.stop(6)  # the server's stop
    big(j)
    j.put_event("emergency", None, 211, T + 111)
    for i in range(25):
        reading(j, 7, 300 + i, T + 200 + i)
        if i == 15:
            big(j)
    drain(j, 5)
    for i in range(4):
        reading(j, 7, 330 + i, T + 230 + i)
    j.put_event("stop", 7, 333, T + 233)
    for i in range(5):
        reading(j, 8, 400 + i, T + 300 + i)
    drain(j, 60)  # all acknowledged, the stop of 7 too: a write, no reading of 8 to write
    for i in range(12):  # a write of 10 of them (their newest: the register), 2 not written
        reading(j, 8, 405 + i, T + 305 + i)


def fresh():
    rm(P)
    rm(P + ".new")
    j = J[0] = Journal(P)
    jboot.boot(j, True)
    committed[0] = None
    last.clear()
    return j


def journaled(got, n):
    # what a boot recovered (got: the interrupted session, the outbox's texts) against what
    # the history had journaled when its write was cut (at byte n)
    torn = J[0].state[6] and J[0].state[6][:2]  # the write being made: its session
    sid = got[0]
    if sid not in (committed[0] and committed[0][0], torn and torn[0]):
        fail("session", n, sid, committed[0], torn)
    elif sid is not None:  # its power_loss stop, the last entry: the register
        wh = json.loads(got[-1])["wh"]
        low = committed[0][1] if committed[0] and committed[0][0] == sid else 0
        if not low <= wh <= last[sid]:
            fail("register", n, sid, wh, committed[0], last[sid])


def recovered(data):
    """What a boot makes of a journal file holding `data`: the interrupted session and the
    outbox's entries as they would be sent."""
    rm(P + ".new")
    with real_open(P, "wb") as f:
        f.write(data)
    j = Journal(P)
    sid = jboot.boot(j, True)
    out = [sid]
    while True:
        text = j.next_unsent()
        if text is None:
            return out
        out.append(text)


memo = [None, None]


def whole_records(data):
    """recovered() of data's leading whole records (the torn tail cut off); the last answer
    kept: consecutive cut points inside one record share it (half the boots)."""
    data = data[: boundary(data)]
    if memo[0] != data:
        memo[0], memo[1] = data, recovered(data)
    return memo[1]


def read():
    try:
        with real_open(P, "rb") as f:
            return f.read()
    except OSError:
        return b""


def boundary(data):
    # the length of data's leading whole records (the torn tail cut off)
    end = 0
    for _kind, at, size in jboot.records(data):
        if at - 3 == end:
            end = at + size + 4
    return end


failures = {}  # kind: how many
details = []


def fail(*what):
    failures[what[0]] = failures.get(what[0], 0) + 1
    if len(details) < 4:
        details.append(what)


# 1. the write path cut at every byte (compactions included: history() makes the file look
# past its limit at 3 points, so that the next write compacts it first)
jfile.open = jboot.open = cut_open  # (appends; compactions)
# the bytes the history writes in all (appends and compactions): cut at each of them
budget[0] = 10**9
j = fresh()
history(j)
total = j.state[4]
written = 10**9 - budget[0]
cuts = 0
for n in range(written + 1):
    j = fresh()
    budget[0] = n
    try:
        history(j)
    except Cut:
        pass
    budget[0] = -1
    data = read()
    try:
        jfile.open = jboot.open = real_open  # (the boots below: not the history's)
        got = recovered(data)
        journaled(got, n)
        want = whole_records(data)
        if got != want:
            fail("cut", n, got, want)
    except Exception as e:  # noqa: BLE001 - a boot that raises is the failure looked for
        fail("cut", n, repr(e))
    jfile.open = jboot.open = cut_open
    cuts += 1
print("cut", cuts, failures.get("cut", 0), "writes", total, "bytes", written)
print("journaled", cuts, failures.get("session", 0) + failures.get("register", 0))

# 2. a whole journal (no compaction) truncated at every byte and each byte corrupted
compactions[0] = False
jfile.open = jboot.open = real_open
j = fresh()
history(j)
whole = read()
full = recovered(whole)
spans = [(at - 3, at + size + 4) for kind, at, size in jboot.records(whole)]
n_trunc = n_flip = 0
for c in range(len(whole) + 1):
    try:
        got = recovered(whole[:c])
        if got != whole_records(whole[:c]):
            fail("truncate", c, got)
    except Exception as e:  # noqa: BLE001
        fail("truncate", c, repr(e))
    n_trunc += 1
for i in range(len(whole)):
    bad = bytearray(whole)
    bad[i] ^= 0x5A
    start, end = [s for s in spans if s[0] <= i < s[1]][0]
    try:
        got = recovered(bytes(bad))
        want = recovered(whole[:start] + whole[end:])  # that record lost, no other
        if got != want:
            fail("corrupt", i, got, want)
    except Exception as e:  # noqa: BLE001
        fail("corrupt", i, repr(e))
    n_flip += 1
print("truncate", n_trunc, failures.get("truncate", 0))
print("corrupt", n_flip, failures.get("corrupt", 0))
print(
    "whole", len(whole), "records", len(spans), "recovered", len(full) - 1, "interrupted", full[0]
)


# 3. a journal written as before the OPEN was dropped from writes whose readings carry the
# register (an OPEN with every write while a session is open, as the firmware before wrote
# it): the boot recovers the same from it
class Old(Journal):
    def write(self, data):
        if self.state[6] is not None:
            del self.state[6][3:]  # (unmarked: flush() writes its OPEN)
        Journal.write(self, data)


rm(P)
j = J[0] = Old(P)
jboot.boot(j, True)
history(j)
old = read()
if recovered(old) != full:
    fail("old", len(old), recovered(old), full)
print("old", len(old), failures.get("old", 0), "new", len(whole))
for f in details:
    print("FAILURE", f)
