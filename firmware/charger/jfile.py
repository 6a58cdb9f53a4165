"""The session journal's file: its records and the append (loaded for each write, forgotten).

Record (little-endian; docs/architecture.md "Session journal"):

    0x4A | kind (1 B) | L (1 B) | payload (L B, 0..255) | CRC-32 of kind, L, payload (4 B)

Kinds: 1 OPEN (session_id, wh, ts: the session is open, its latest register), 2 READINGS (the
first reading's number, then up to 10 readings of 24 B: session_id, v, a, w as float32, wh,
ts), 3 EVENT (event number, the outbox kind 1..6, session_id, wh, ts), 4 END (session_id: the
server ended it), 5 ACK (readings and events removed from the outbox so far: acknowledged, or
a reading dropped by a full outbox). Other modules use 32..255. A record is written whole
in one append with the others of its write; a power cut tears at most the last one.

`append(j, what)` writes in one `open/write/close` (charger/journal.py Journal.write()); when
the file is past `LIMIT` it first has charger/recover.py compact it (a new file renamed over
it). A file system error is counted (`j.failed`) and logged: the outbox still holds
everything and the charger goes on.
"""

from binascii import crc32
from struct import pack

from charger.outbox import _KINDS

OPEN = 1
READINGS = 2
EVENT = 3
END = 4
ACK = 5
LIMIT = 12288  # bytes: past it, the next write compacts the file first
_NONE = 0xFFFFFFFF


def record(kind, payload):
    """One record's bytes."""
    head = bytes((kind, len(payload))) + payload
    return b"\x4a" + head + pack("<I", crc32(head) & _NONE)


def readings(j, first, count):
    """Readings number first.. (still in the outbox) as one READINGS record."""
    n = j._n
    out = pack("<I", first)
    for r in range(first, first + count):
        k = (n[0] + r - (n[5] - j.readings)) % n[6] * 3
        out += pack("<IfffII", j._i[k], j._f[k], j._f[k + 1], j._f[k + 2], j._i[k + 1],
                    j._i[k + 2])
    return record(READINGS, out)


def pending(j):
    """The records of the readings not written yet (oldest first), of the open session and
    of the acknowledgement; those readings count as written."""
    n = j._n
    put = n[5]
    first = max(j.flushed, put - j.readings)  # the older ones left the outbox: acknowledged
    out = b""
    while first < put:
        count = min(10, put - first)
        out += readings(j, first, count)
        first += count
    j.flushed = put
    if j.last is not None:
        out += record(OPEN, pack("<III", j.last[0], _NONE if j.last[1] is None else j.last[1],
                                 j.last[2] or 0))
    return out + record(ACK, pack("<II", put - j.readings, j.events_put - n[3]))


def append(j, what):
    """One flash write (see the module docstring)."""
    try:
        if j.size > LIMIT:
            from charger import forget
            from charger.recover import compact
            compact(j)
            del compact
            forget("charger.recover")
        out = pending(j)
        if isinstance(what, tuple):  # an event: its number is the last one put
            out += record(EVENT, pack("<IBIII", j.events_put - 1, _KINDS.index(what[0]) + 1,
                                      _NONE if what[1] is None else what[1],
                                      _NONE if what[2] is None else what[2], what[3] or 0))
        elif isinstance(what, int):
            out += record(END, pack("<I", what))
        elif what:
            out += what
        with open(j.path, "ab") as f:
            f.write(out)
        j.size += len(out)
        j.writes += 1
    except OSError as e:
        j.failed += 1
        print("[journal]", "failed", e)
