"""Reading the session journal back: the records, the boot replay, the compaction.

Owns what is done with the journal file (charger/jfile.py writes it) other than appending:
`records()` finds the intact records of its bytes (whatever a power cut or a flipped bit left:
a record whose length or CRC-32 does not hold is skipped and the scan goes on at the next
byte), `boot()` replays what the server has not acknowledged into the empty outbox and queues
the stop of the session the board was running when it died (reason `power_loss` after a
power-on or brown-out reset, `charger_reset` after a watchdog or soft reset, with the
session's last journaled register), then `compact()` writes the entries still needed to a new
file and renames it over the journal (littlefs renames atomically: the old file or the new
one, never half of one). Loaded on demand (at boot, and when the file passes its limit) and
forgotten after. Runs under MicroPython and CPython (tests read journals with it).
"""

import os
from binascii import crc32
from struct import pack, unpack_from

from charger.jfile import ACK, END, EVENT, OPEN, READINGS, pending, readings, record
from charger.outbox import _KINDS

_NONE = 0xFFFFFFFF


def records(data):
    """(kind, offset of the payload, payload length) of each intact record of `data`."""
    i = 0
    mv = memoryview(data)
    while i + 7 <= len(data):
        if data[i] == 0x4A:
            end = i + 3 + data[i + 2]
            if end + 4 <= len(data) and (crc32(mv[i + 1:end]) & _NONE
                                         == unpack_from("<I", data, end)[0]):
                yield data[i + 1], i + 3, end - i - 3
                i = end + 4
                continue
        i += 1


def _none(x):
    return None if x == _NONE else x


def boot(j, power_loss, other=None):
    """Replay the journal file into the Journal `j` (new, empty, not `on` yet); queue the
    interrupted session's stop; compact; turn journaling on. `other(kind, payload)` is called
    for each record of another module's kind (32..255), in order. Returns the session_id of
    the interrupted session, or None."""
    try:
        with open(j.path, "rb") as f:
            data = f.read()
    except OSError:  # no journal yet
        data = b""
    removed = (0, 0)  # readings, events removed from the outbox before the board died
    opened = None  # (session_id, wh, ts) of the session open when it died
    for kind, at, size in records(data):
        if kind == ACK and size == 8:
            removed = unpack_from("<II", data, at)
        elif kind == OPEN and size == 12:
            opened = unpack_from("<III", data, at)
        elif (kind == EVENT and size == 17 or kind == END and size == 4) and opened and \
                unpack_from("<I", data, at + (5 if kind == EVENT else 0))[0] == opened[0]:
            opened = None
    for kind, at, size in records(data):
        if kind == READINGS and size % 24 == 4:
            first = unpack_from("<I", data, at)[0]
            for i in range(size // 24):
                if first + i >= removed[0]:
                    sid, v, a, w, wh, ts = unpack_from("<IfffII", data, at + 4 + 24 * i)
                    j.put_reading(sid, v, a, w, _none(wh), ts)
        elif kind == EVENT and size == 17:
            num, k, sid, wh, ts = unpack_from("<IBIII", data, at)
            if num >= removed[1] and 0 < k <= len(_KINDS):
                j.put_event(_KINDS[k - 1], _none(sid), _none(wh), ts)
        elif kind >= 32 and other is not None:
            other(kind, bytes(data[at:at + size]))
    del data
    j.last = None  # no session is open after a reboot
    if opened:
        j.put_event("power_loss" if power_loss else "charger_reset", opened[0],
                    _none(opened[1]), opened[2])
    compact(j)
    j.on = True
    return opened[0] if opened else None


def compact(j):
    """Write what the journal still needs (the outbox's entries in put order, the open
    session, the acknowledgement, `j.extra`) to a new file, then rename it over the journal."""
    n = j._n
    ints = j._i
    first = n[5] - j.readings  # the oldest reading still in the outbox
    new = j.path + ".new"
    with open(new, "wb") as f:
        for rec in j.extra:
            f.write(rec)
        size = sum(len(rec) for rec in j.extra)
        for e in range(n[3] + 1):
            # the readings put before event e (all the rest after the last one), then e
            upto = n[5]
            if e < n[3]:
                k = 3 * n[6] + 5 * ((n[2] + e) % n[7])
                upto = ints[k]
            while first < upto:
                count = min(10, upto - first)
                rec = readings(j, first, count)
                f.write(rec)
                size += len(rec)
                first += count
            if e < n[3]:
                rec = record(EVENT, pack("<IBIII", j.events_put - n[3] + e, ints[k + 1],
                                         ints[k + 2], ints[k + 3], ints[k + 4]))
                f.write(rec)
                size += len(rec)
        j.flushed = n[5]
        rec = pending(j)  # the open session and the acknowledgement (no readings left)
        f.write(rec)
        j.size = size + len(rec)
    os.rename(new, j.path)
    j.writes += 1
