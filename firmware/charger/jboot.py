"""The session journal's rarely-run part: compaction, reading records back, the boot replay.

Loaded at boot (charger/startup.py) and when a write finds the file past its limit
(charger/jfile.py `append()`, every ~12 KB of journal), forgotten after: a journal write loads
only charger/jfile.py, so its peak heap stays small (under `-X heapsize=96K` a write that
loaded all of this while the link was reconnecting failed with MemoryError). Runs under
MicroPython; `records()` under CPython too.

- `write(j)`, the compaction: what the journal still needs (other modules' records, the
  outbox's entries in put order, the open session, the ACK) goes to a new file renamed over
  the journal (littlefs renames atomically: the old file or the new one, never a mix).
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

from charger.jfile import append, flush, put, readings, record
from charger.outbox import _KINDS

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):  # (`value`: a name MicroPython has interned already)
        return value


# as in charger/jfile.py (a const is no module attribute under MicroPython: not importable)
_OPEN = const(1)
_READINGS = const(2)
_EVENT = const(3)
_END = const(4)
_ACK = const(5)
_LIMIT = const(12288)
_NONE = const(0xFFFFFFFF)


def write(self):
    """Compact the journal of the outbox `self` (charger/jfile.py append() calls it past the
    file's limit): what it still needs, to a new file renamed over it. OSError as it comes
    (the file's size stays past the limit: the next write tries again; the readings not
    written before it count as not written still).
    (Named `write`, a name the firmware has interned already: a new one costs a qstr.)"""
    state = self.state
    # what the journal still needs, to a new file renamed over it: the outbox's
    # entries in put order, other modules' records, the open session, the ACK
    n = self._n
    ints = self._i
    first = n[5] - self.readings  # the oldest reading still in the outbox
    value = state[2]  # the readings written: as they were when this fails
    try:
        with open(self.path + ".new", "wb") as f:
            for out in state[7]:
                f.write(out)
            for e in range(n[3] + 1):
                # the readings put before event e (after the last one: all the rest), e
                k = 3 * n[6] + 5 * ((n[2] + e) % n[7])
                upto = ints[k] if e < n[3] else n[5]
                if upto > first:  # (readings put before an acknowledged one are gone)
                    readings(self, first, upto - first, f)
                    first = upto
                if e < n[3]:
                    put(
                        f,
                        _EVENT,
                        (state[1] - n[3] + e, ints[k + 1], ints[k + 2], ints[k + 3], ints[k + 4]),
                    )
            state[2] = n[5]
            out = state[6]
            if out is not None:  # its OPEN (the acknowledged readings are not copied): due
                del out[3:]
            flush(self, f)
            first = f.tell()  # (the new file's size)
        os.rename(self.path + ".new", self.path)
    except BaseException:  # (OSError, MemoryError) their next write carries them again
        state[2] = value
        raise
    state[3] = first
    state[4] += 1
    if out is not None:  # its register is on the file (append() marks it so too)
        out.append(n[5])


def records(data):
    """(kind, offset of the payload, payload length) of each intact record of `data`."""
    i = 0
    view = memoryview(data)
    while i + 7 <= len(data):
        if data[i] == 0x4A:
            end = i + 3 + data[i + 2]
            if end + 4 <= len(data) and (
                bytes(array("I", (crc32(view[i + 1 : end]) & _NONE,))) == data[end : end + 4]
            ):
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
            r = array("I", data[at : at + n])
            if kind == _ACK:
                removed = r
            else:
                opened = r
        elif kind == _READINGS and opened and n % 24 == 4:
            # the open session's register: its newest reading journaled after its OPEN (an
            # OPEN is written only when no reading of the write carries the register)
            for i in range(at + n - 24, at, -24):
                r = array("I", data[i : i + 12])
                if r[0] == opened[0]:
                    opened = r
                    break
        elif (
            (kind == _EVENT and n == 20 or kind == _END and n == 4)
            and opened
            and array("I", data[at : at + n])[2 if kind == _EVENT else 0] == opened[0]
        ):
            opened = None
    for kind, at, n in records(data):
        if kind == _READINGS and n % 24 == 4:
            first = array("I", data[at : at + 4])[0]
            for i in range(n // 24):
                if first + i >= removed[0]:
                    r = array("I", data[at + 4 + 24 * i : at + 16 + 24 * i])
                    v = array("f", data[at + 16 + 24 * i : at + 28 + 24 * i])
                    self.put_reading(r[0], v[0], v[1], v[2], None if r[1] == _NONE else r[1], r[2])
        elif kind == _EVENT and n == 20:
            r = array("I", data[at : at + 20])
            if r[0] >= removed[1] and 0 < r[1] <= len(_KINDS):
                self.put_event(
                    _KINDS[r[1] - 1],
                    None if r[2] == _NONE else r[2],
                    None if r[3] == _NONE else r[3],
                    r[4],
                )
        elif kind >= 32:
            self.state[7].append(record(kind, data[at : at + n]))
    del data
    self.state[6] = None  # no session is open after a reboot
    if opened:  # _KINDS[4] "power_loss", [5] "charger_reset"
        self.put_event(
            _KINDS[4 if value else 5],
            opened[0],
            None if opened[1] == _NONE else opened[1],
            opened[2],
        )
    self.state[3] = _LIMIT + 1  # compact: the file holds only what is still needed
    append(self, None)
    self.state[0] = True
    return opened[0] if opened else None
