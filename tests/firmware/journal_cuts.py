# A MicroPython script (tests/firmware/test_journal.py runs it): the session journal's write
# path cut at every byte, and its file truncated and corrupted byte by byte, in ONE process.
#
#     micropython tests/firmware/journal_cuts.py DIR
#
# A "power cut" is the file layer refusing to write past a byte budget: the record being
# written is torn there (its first bytes are on the file, as on a flash whose power failed
# mid-program) and the firmware stops (an exception out of the put). Then the journal is
# opened as at boot (charger/jboot.py boot()) and what it recovers is compared with what
# the file cut at the last whole record recovers: at most the torn record may be lost. Prints
# one line per check kind: "<kind> <cut points> <failures>" and the failures' details.
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


class CutFile:
    def __init__(self, f):
        self.f = f

    def write(self, data):
        if budget[0] >= 0 and len(data) > budget[0]:
            self.f.write(data[: budget[0]])  # the torn record's first bytes reach the flash
            budget[0] = 0
            raise Cut()
        if budget[0] >= 0:
            budget[0] -= len(data)
        return self.f.write(data)

    def read(self):
        return self.f.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


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


def history(j):
    """A charger's day, through the real write path: sessions stopped, acknowledged,
    ended by the server, an emergency, and a session still open at the end."""
    for i in range(23):
        j.put_reading(5, 230.0, 8.7, 2000.0, 100 + i, T + i)
        if i == 12:
            drain(j, 8)
            big(j)
    j.put_event("stop", 5, 122, T + 22)
    drain(j, 40)
    for i in range(12):
        j.put_reading(6, 229.5, 8.7, 1990.0, 200 + i, T + 100 + i)
    j.stop(6)  # the server's stop
    big(j)
    j.put_event("emergency", None, 211, T + 111)
    for i in range(25):
        j.put_reading(7, 231.0, 9.1, 2100.0, 300 + i, T + 200 + i)
        if i == 15:
            big(j)
    drain(j, 5)
    for i in range(4):
        j.put_reading(7, 231.0, 9.1, 2100.0, 330 + i, T + 230 + i)


def fresh():
    rm(P)
    rm(P + ".new")
    j = Journal(P)
    jboot.boot(j, True)
    return j


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


failures = []
details = []


def fail(*what):
    failures.append(what[:2])
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
        got = recovered(data)
        want = recovered(data[: boundary(data)])
        if got != want:
            fail("cut", n, got, want)
    except Exception as e:  # noqa: BLE001 - a boot that raises is the failure looked for
        fail("cut", n, repr(e))
    cuts += 1
print("cut", cuts, len([f for f in failures if f[0] == "cut"]), "writes", total, "bytes", written)

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
        if got != recovered(whole[: boundary(whole[:c])]):
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
print("truncate", n_trunc, len([f for f in failures if f[0] == "truncate"]))
print("corrupt", n_flip, len([f for f in failures if f[0] == "corrupt"]))
print(
    "whole", len(whole), "records", len(spans), "recovered", len(full) - 1, "interrupted", full[0]
)
for f in details:
    print("FAILURE", f)
