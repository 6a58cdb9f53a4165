"""The session journal's file: records and the append of each write.

Loaded on demand and forgotten after, for each write (charger/outbox.py Journal.write()):
so it holds only what a write runs, the rarely-run rest (compaction, the boot replay, reading
records back) is charger/jboot.py. Runs under MicroPython; `record()` under CPython too (tests
read journals with it and jboot.records()). Few names on purpose: every identifier of a
loaded module is interned for good, and the firmware's qstrs stay under the pool's next
3.5 KB chunk.

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
  `_LIMIT` bytes the file is compacted first (charger/jboot.py `write()`, loaded for it).
  A file system error is counted (`state[5]`) and logged: the outbox still holds everything,
  the charger goes on.
"""

from array import array
from binascii import crc32

from charger.outbox import _KINDS

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):  # (`value`: a name MicroPython has interned already)
        return value


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
            data += bytes(memoryview(self._i)[k : k + 3]) + bytes(memoryview(self._f)[k : k + 3])
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
        out += record(
            _OPEN, (state[6][0], _NONE if state[6][1] is None else state[6][1], state[6][2] or 0)
        )
    return out + record(_ACK, (put - self.readings, state[1] - self._n[3]))


def append(self, data):
    """One flash write (see the module docstring); the file compacted first when past its
    limit (charger/jboot.py boot() makes it so)."""
    state = self.state
    try:
        if state[3] > _LIMIT:  # first compacted by charger/jboot.py, loaded for that
            import sys

            from charger import forget

            keep = "charger.jboot" in sys.modules  # (the boot replay's own call)
            from charger import jboot

            try:
                jboot.write(self)
            finally:
                if not keep:
                    forget("charger.jboot")
        out = flush(self)
        if isinstance(data, tuple):  # an event: its number is the last one put
            out += record(
                _EVENT,
                (
                    state[1] - 1,
                    _KINDS.index(data[0]) + 1,
                    _NONE if data[1] is None else data[1],
                    _NONE if data[2] is None else data[2],
                    data[3] or 0,
                ),
            )
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
