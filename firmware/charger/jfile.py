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
stands for None. Other modules use kinds 32..255. A write appends whole records, in order, in
one open/write/close of the file: a power cut tears at most the record being written.

- `append(j, data)`: one flash write: the readings not written yet, OPEN when the open
  session's latest register is not on the file otherwise (its first write; a write whose
  readings were all acknowledged before it: the newest reading of a write is the register),
  ACK (`flush()` writes those), then `data`. Past `_LIMIT` bytes the file is compacted first
  (charger/jboot.py `write()`, loaded for it). A file system error is counted (`state[5]`)
  and logged: the outbox still holds everything, the charger goes on. Its readings count as
  written (`state[2]`) only once the file is closed without an error, so the next write
  carries them again (a torn record is skipped at boot, a repeated reading dropped by the
  server): a refused write loses no reading to a power cut after the next one.
- the open session `state[6]` gets a 4th item once its register is on the file: the put
  count then (a new session's list has 3: its OPEN is due).
- the records go to the file in pieces (`put()`): a READINGS payload is built once in one
  array by typed slices of the outbox's arrays, and written as it is (no bytes per reading,
  no payload grown by `+=`, no whole write joined in RAM).
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
    from io import BytesIO

    f = BytesIO()
    put(f, kind, data)
    return f.getvalue()


def put(f, kind, data):
    """Write one record to the open file `f` in pieces, its payload `data` as it is (not
    copied): bytes, uint32s (a tuple) or an array of them."""
    if isinstance(data, tuple):
        data = array("I", data)
    kind = bytes((kind, len(data) * (4 if isinstance(data, array) else 1)))
    f.write(b"\x4a")
    f.write(kind)
    f.write(data)
    f.write(array("I", (crc32(data, crc32(kind)) & _NONE,)))


def readings(self, n, count, f):
    """Readings number n.. (still in the outbox `self`) written to the open file `f` as
    READINGS records, 10 a record. Each record's payload is built once, in one array, by
    slices of the outbox's own arrays (typed views: no bytes copy)."""
    ints = memoryview(self._i)
    floats = memoryview(self._f)
    while count > 0:
        data = array("I", range(1 + 6 * min(10, count)))  # (no bytes made to fill it)
        data[0] = n
        k = 1
        for r in range(n, n + min(10, count)):
            i = (self._n[0] + r - (self._n[5] - self.readings)) % self._n[6] * 3
            data[k : k + 3] = ints[i : i + 3]
            data[k + 3 : k + 6] = floats[i : i + 3]
            k += 6
        put(f, _READINGS, data)
        n += 10
        count -= 10


def flush(self, f):
    """Write to the open file `f` the records of the readings not written yet, of the open
    session when its latest register is not on the file otherwise, and of the
    acknowledgement. Those readings count as written (`state[2]`) only once the file is
    closed without an error: the caller's (append(), charger/jboot.py write())."""
    state = self.state
    put_ = self._n[5]
    n = max(state[2], put_ - self.readings)  # the older ones left the outbox: acknowledged
    readings(self, n, put_ - n, f)
    o = state[6]
    # OPEN: a session not on the file yet (no mark), or whose latest reading is not in this
    # write (acknowledged before it) and not on the file already (its mark: the put count
    # when its register was last written, by append() or compaction)
    if o is not None and (len(o) < 4 or n == put_ and o[3] != put_):
        put(f, _OPEN, (o[0], _NONE if o[1] is None else o[1], o[2] or 0))
    put(f, _ACK, (put_ - self.readings, state[1] - self._n[3]))


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
        with open(self.path, "ab") as f:
            flush(self, f)
            if isinstance(data, tuple):  # an event: its number is the last one put
                put(
                    f,
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
                put(f, _END, (data,))
            elif data:
                f.write(data)
            state[3] = f.tell()  # (appending: the file's end)
        state[4] += 1
        state[2] = self._n[5]  # on the file now: a refused write leaves them to the next one
        data = state[6]
        if data is not None:  # its latest register is on the file now: marked
            del data[3:]
            data.append(self._n[5])
    except OSError as e:
        state[5] += 1
        print("[charger]", "journal", e)
