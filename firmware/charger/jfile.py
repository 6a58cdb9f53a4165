"""The session journal's file: records, appends, the boot replay, compaction.

Loaded on demand and forgotten after: for each write (charger/outbox.py Journal.write()),
and at boot (main.py). Runs under MicroPython; `records()` and `record()` under CPython too
(tests read journals with them). Few names on purpose: every identifier of a loaded module is
interned for good, and the firmware's qstrs stay under the pool's next 3.5 KB chunk.

Record (little-endian; docs/architecture.md "Session journal"):

    0x4A | kind (1 B) | L (1 B) | payload (L B, 0..255) | CRC-32 of kind, L, payload (4 B)

Kinds (payload: uint32 unless said): 1 OPEN (session_id, wh, ts: the session is open, its
latest register), 2 READINGS (the first reading's number, then up to 10 readings of 24 B:
session_id, wh, ts, then v, a, w as float32), 3 EVENT (event number, the outbox's kind 1..6,
session_id, wh, ts), 4 END (session_id: the server ended it), 5 ACK (readings, events removed
from the outbox so far: acknowledged, or a reading dropped by a full outbox). 0xFFFFFFFF
stands for None. Other modules use kinds 32..255. A write appends whole records in one
`write()`: a power cut tears at most its last record.

- `append(j, data)`: one flash write (one open/write/close of the file): the readings not
  written yet, OPEN of the open session, ACK (`flush()` makes those), then `data`. Past
  `_LIMIT` bytes the file is compacted first: what is still needed (other modules' records,
  the outbox's entries in put order, the open session, the ACK) goes to a new file renamed
  over the journal (littlefs renames atomically: the old file or the new one, never a mix).
  A file system error is counted (`state[5]`) and logged: the outbox still holds everything,
  the charger goes on.
- `records(data)`: (kind, offset, length) of each intact record of the file's bytes: one
  whose length or CRC-32 does not hold (torn by a power cut, a flipped bit) is skipped and
  the scan goes on at the next byte.
- `boot(j, power_loss)`: replays what the server has not acknowledged into the new, empty
  outbox `j`, queues the stop of the session the board was running when it died (reason
  `power_loss` after a power-on or brown-out reset, `charger_reset` after a watchdog or soft
  reset) with its last journaled register, compacts, turns journaling on.
"""

import os
from array import array
from binascii import crc32

from charger.outbox import _KINDS

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_OPEN = const(1)
_READINGS = const(2)
_EVENT = const(3)
_END = const(4)
_ACK = const(5)
_LIMIT = const(12288)  # bytes: past it, the next write compacts the file first
_NONE = const(0xFFFFFFFF)


def record(kind, data):
    """One record's bytes: `data` is the payload (bytes), or uint32s (a tuple)."""
    if isinstance(data, tuple):
        data = bytes(array("I", data))
    data = bytes((kind, len(data))) + data
    return b"\x4a" + data + bytes(array("I", (crc32(data) & _NONE,)))


def readings(self, n, count):
    """Readings number n.. (still in the outbox `self`) as READINGS records, 10 a record."""
    out = b""
    while count > 0:
        data = bytes(array("I", (n,)))
        for r in range(n, n + min(10, count)):
            k = (self._n[0] + r - (self._n[5] - self.readings)) % self._n[6] * 3
            data += bytes(memoryview(self._i)[k:k + 3]) + bytes(memoryview(self._f)[k:k + 3])
        out += record(_READINGS, data)
        n += 10
        count -= 10
    return out


def flush(self):
    """The records of the readings not written yet, of the open session and of the
    acknowledgement; those readings count as written."""
    state = self.state
    put = self._n[5]
    n = max(state[2], put - self.readings)  # the older ones left the outbox: acknowledged
    out = readings(self, n, put - n)
    state[2] = put
    if state[6] is not None:
        out += record(_OPEN, (state[6][0], _NONE if state[6][1] is None else state[6][1],
                              state[6][2] or 0))
    return out + record(_ACK, (put - self.readings, state[1] - self._n[3]))


def append(self, data):
    """One flash write (see the module docstring); the file compacted first when past its
    limit (boot() makes it so)."""
    state = self.state
    try:
        if state[3] > _LIMIT:
            # what the journal still needs, to a new file renamed over it: the outbox's
            # entries in put order, other modules' records, the open session, the ACK
            n = self._n
            ints = self._i
            first = n[5] - self.readings  # the oldest reading still in the outbox
            with open(self.path + ".new", "wb") as f:
                state[3] = 0
                for out in state[7]:
                    state[3] += f.write(out) or 0
                for e in range(n[3] + 1):
                    # the readings put before event e (after the last one: all the rest), e
                    k = 3 * n[6] + 5 * ((n[2] + e) % n[7])
                    upto = ints[k] if e < n[3] else n[5]
                    out = b""
                    if upto > first:  # (readings put before an acknowledged one are gone)
                        out = readings(self, first, upto - first)
                        first = upto
                    if e < n[3]:
                        out += record(_EVENT, (state[1] - n[3] + e, ints[k + 1], ints[k + 2],
                                               ints[k + 3], ints[k + 4]))
                    state[3] += f.write(out) or 0
                state[2] = n[5]
                state[3] += f.write(flush(self)) or 0
            os.rename(self.path + ".new", self.path)
            state[4] += 1
        out = flush(self)
        if isinstance(data, tuple):  # an event: its number is the last one put
            out += record(_EVENT, (state[1] - 1, _KINDS.index(data[0]) + 1,
                                   _NONE if data[1] is None else data[1],
                                   _NONE if data[2] is None else data[2], data[3] or 0))
        elif isinstance(data, int):
            out += record(_END, (data,))
        elif data:
            out += data
        with open(self.path, "ab") as f:
            f.write(out)
        state[3] += len(out)
        state[4] += 1
    except OSError as e:
        state[5] += 1
        print("[charger]", "journal", e)


def records(data):
    """(kind, offset of the payload, payload length) of each intact record of `data`."""
    i = 0
    view = memoryview(data)
    while i + 7 <= len(data):
        if data[i] == 0x4A:
            end = i + 3 + data[i + 2]
            if end + 4 <= len(data) and (bytes(array("I", (crc32(view[i + 1:end]) & _NONE,)))
                                         == data[end:end + 4]):
                yield data[i + 1], i + 3, end - i - 3
                i = end + 4
                continue
        i += 1


def boot(self, value):
    """Replay the journal file into the new, empty outbox `self` (see the module docstring;
    `value`: a power-on or brown-out reset). Other modules' records (kinds 32..255) go to
    `state[7]`, in order: kept by compaction until their owner removes them. Returns the
    session_id of the interrupted session, or None. MicroPython only (arrays of raw bytes)."""
    try:
        with open(self.path, "rb") as f:
            data = f.read()
    except OSError:  # no journal yet
        data = b""
    removed = (0, 0)  # readings, events removed from the outbox before the board died
    opened = None  # [session_id, wh, ts] of the session open when it died
    for kind, at, n in records(data):
        if kind == _ACK and n == 8 or kind == _OPEN and n == 12:
            r = array("I", data[at:at + n])
            if kind == _ACK:
                removed = r
            else:
                opened = r
        elif (kind == _EVENT and n == 20 or kind == _END and n == 4) and opened and \
                array("I", data[at:at + n])[2 if kind == _EVENT else 0] == opened[0]:
            opened = None
    for kind, at, n in records(data):
        if kind == _READINGS and n % 24 == 4:
            first = array("I", data[at:at + 4])[0]
            for i in range(n // 24):
                if first + i >= removed[0]:
                    r = array("I", data[at + 4 + 24 * i:at + 16 + 24 * i])
                    v = array("f", data[at + 16 + 24 * i:at + 28 + 24 * i])
                    self.put_reading(r[0], v[0], v[1], v[2], None if r[1] == _NONE else r[1],
                                     r[2])
        elif kind == _EVENT and n == 20:
            r = array("I", data[at:at + 20])
            if r[0] >= removed[1] and 0 < r[1] <= len(_KINDS):
                self.put_event(_KINDS[r[1] - 1], None if r[2] == _NONE else r[2],
                               None if r[3] == _NONE else r[3], r[4])
        elif kind >= 32:
            self.state[7].append(record(kind, data[at:at + n]))
    del data
    self.state[6] = None  # no session is open after a reboot
    if opened:  # _KINDS[4] "power_loss", [5] "charger_reset"
        self.put_event(_KINDS[4 if value else 5], opened[0],
                       None if opened[1] == _NONE else opened[1], opened[2])
    self.state[3] = _LIMIT + 1  # compact: the file holds only what is still needed
    append(self, None)
    self.state[0] = True
    return opened[0] if opened else None
