"""The outbox: what the charger must deliver to the server, kept while the link is down.

Owns two preallocated rings in ONE bytearray, one of readings (`metrics`) and one of session
events (`stop`, `emergency`). A reading is a 24-byte record packed with `struct` (session id,
v, a, w as float32, wh, ts), an event a 17-byte record (kind, session id, wh, ts and how many
readings had been put before it). A reading's place in the order of puts is known from its
place in the ring and the count of readings ever put, so `next_unsent()` can take the older
of the two ring heads without a sequence number per reading: the order of everything is the
order of the puts. An entry becomes JSON text only
when the link sends it: `put_*` allocates nothing (`struct.pack_into` into the buffer), and
dropping a reading is moving a head index, never copying entries. Rules:

- at most `readings` readings; when full, the OLDEST READING is dropped (`dropped` counts);
- `stop` and `emergency` have their own `events` slots and are never dropped. Only when
  all of them are taken (that many sessions ended while offline) is a new event refused:
  `put_event` returns False and `lost_events` counts;
- delivery is confirmed, not assumed: the link takes entries with `next_unsent()` (they
  stay in the outbox, marked sent), and removes them with `confirm()` once the server has
  proven it read them (a pong to a ping sent after them); when the connection dies first,
  `rewind()` makes them unsent again, so a half-open link that swallowed frames loses
  nothing. A replayed entry may reach the server twice (it ignores a repeated `ts`; a
  repeated `stop` is harmless). A sent reading dropped by a put (outbox full) before its
  confirmation is simply gone: `confirm()` removes only what is still there.

A reading with a value that is not a finite number, or `wh`/`ts` out of range, is refused
(`put_reading` returns False, `rejected` counts) instead of becoming invalid JSON.

Compact on purpose (MicroPython heap: every method, attribute and identifier costs RAM):
one buffer instead of an array per field, the ring indices in one small list indexed by
private consts, plain attributes (`readings`, `unconfirmed`) kept up to date instead of
properties, one validation helper. Runs under MicroPython and CPython.
"""

import struct

from charger import messages

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# record layouts (struct, little endian, no padding); kept as literals at the use sites
# readings "<ifffiI": session_id, v, a, w, wh, ts                          -> 24 bytes
# events   "<IBiiI":  readings put before it, kind (1 stop, 2 emergency), session_id, wh, ts
#                                                                          -> 17 bytes
_RSIZE = const(24)
_ESIZE = const(17)
_STOP = const(1)
# indices into Outbox._n, the ring state
_RHEAD = const(0)  # slot of the oldest reading
_RSENT = const(1)  # readings at the head sent but not confirmed yet
_EHEAD = const(2)
_ELEN = const(3)   # events waiting (readings waiting: the public `readings`)
_ESENT = const(4)
_PUT = const(5)    # readings ever put (modulo _MASK): the put number of the next reading
_RCAP = const(6)
_ECAP = const(7)
_MASK = const(0x3FFFFFFF)  # put numbers stay small ints on the 32-bit ESP32
_HALF = const(0x20000000)
_NONE = const(-2147483648)  # int32 sentinel: session_id / wh is None
_MAX_I32 = const(2147483647)
_MAX_U32 = const(4294967295)  # a constant object (not a small int) on the ESP32


def _num(x, none, lo, hi):
    # x when it is a number in lo..hi (NaN and the infinities never are), `none` when x is
    # None, else False. Comparisons only: nothing is allocated.
    if x is None:
        return none
    if (isinstance(x, int) or isinstance(x, float)) and lo <= x <= hi:
        return x
    return False


class Outbox:
    """Bounded, preallocated, ordered outbox (see the module docstring)."""

    def __init__(self, readings=200, events=32):
        if readings < 1 or events < 1:
            raise ValueError("outbox needs readings >= 1, events >= 1")
        self._buf = bytearray(_RSIZE * readings + _ESIZE * events)
        self._n = [0, 0, 0, 0, 0, 0, readings, events]
        self.readings = 0     # readings waiting
        self.unconfirmed = 0  # entries sent but not confirmed yet
        self.dropped = 0
        self.lost_events = 0
        self.rejected = 0

    def __len__(self):
        return self.readings + self._n[_ELEN]

    def put_reading(self, session_id, v, a, w, wh, ts):
        """Queue a `metrics` reading; False (and nothing stored) if a value is invalid."""
        sid = _num(session_id, False, -_MAX_I32, _MAX_I32)  # None too: a reading has a session
        wh = _num(wh, _NONE, -_MAX_I32, _MAX_I32)
        ts = _num(ts, 0, 0, _MAX_U32)
        if (sid is False or wh is False or ts is False or _num(v, False, -3e38, 3e38) is False
                or _num(a, False, -3e38, 3e38) is False or _num(w, False, -3e38, 3e38) is False):
            self.rejected += 1
            return False
        n = self._n
        cap = n[_RCAP]
        if self.readings == cap:  # full: the oldest reading goes
            n[_RHEAD] = (n[_RHEAD] + 1) % cap
            self.readings -= 1
            if n[_RSENT]:  # it was sent already, just not confirmed
                n[_RSENT] -= 1
                self.unconfirmed -= 1
            self.dropped += 1
        n[_PUT] = (n[_PUT] + 1) & _MASK
        struct.pack_into("<ifffiI", self._buf, _RSIZE * ((n[_RHEAD] + self.readings) % cap),
                         int(sid), v, a, w, int(wh), int(ts))
        self.readings += 1
        return True

    def put_event(self, kind, session_id, wh, ts):
        """Queue `stop` or `emergency`; never dropped (see the module docstring)."""
        sid = _num(session_id, _NONE, -_MAX_I32, _MAX_I32)
        wh = _num(wh, _NONE, -_MAX_I32, _MAX_I32)
        ts = _num(ts, 0, 0, _MAX_U32)
        if (kind != "stop" and kind != "emergency") or sid is False or wh is False or ts is False:
            # a caller's bug, not a reading to skip: a clear error
            raise ValueError("bad event %r: kind stop|emergency, session_id/wh int32, ts uint32"
                             % kind)
        n = self._n
        if n[_ELEN] == n[_ECAP]:
            self.lost_events += 1
            return False
        struct.pack_into("<IBiiI", self._buf,
                         _RSIZE * n[_RCAP] + _ESIZE * ((n[_EHEAD] + n[_ELEN]) % n[_ECAP]),
                         n[_PUT], 1 if kind == "stop" else 2, int(sid), int(wh), int(ts))
        n[_ELEN] += 1
        return True

    def next_unsent(self):
        """The oldest entry not sent yet on this connection, as JSON, now marked sent;
        None when everything was sent. Sent entries stay until confirm()."""
        n = self._n
        buf = self._buf
        rec = ev = None  # the oldest unsent reading and event records, if any
        if n[_RSENT] < self.readings:
            rec = struct.unpack_from("<ifffiI", buf,
                                     _RSIZE * ((n[_RHEAD] + n[_RSENT]) % n[_RCAP]))
        if n[_ESENT] < n[_ELEN]:
            ev = struct.unpack_from("<IBiiI", buf, _RSIZE * n[_RCAP]
                                    + _ESIZE * ((n[_EHEAD] + n[_ESENT]) % n[_ECAP]))
        if rec is None and ev is None:
            return None
        self.unconfirmed += 1
        # the older of the two heads goes first: the reading when its put number (readings
        # put minus those waiting, plus those sent) is below the event's (modulo _MASK)
        if ev is None or rec and (n[_PUT] - self.readings + n[_RSENT] - ev[0]) & _MASK >= _HALF:
            n[_RSENT] += 1
            wh = rec[4]
            return messages.metrics(rec[0], rec[1], rec[2], rec[3],
                                    None if wh == _NONE else wh, rec[5])
        n[_ESENT] += 1
        sid = None if ev[2] == _NONE else ev[2]
        wh = None if ev[3] == _NONE else ev[3]
        if ev[1] == _STOP:
            return messages.stop(sid, wh, ev[4])
        return messages.emergency(sid, wh, ev[4])

    def confirm(self):
        """The server has everything next_unsent() returned so far: remove those entries."""
        n = self._n
        n[_RHEAD] = (n[_RHEAD] + n[_RSENT]) % n[_RCAP]
        self.readings -= n[_RSENT]
        n[_EHEAD] = (n[_EHEAD] + n[_ESENT]) % n[_ECAP]
        n[_ELEN] -= n[_ESENT]
        self.rewind()

    def rewind(self):
        """The connection ended before confirm(): the sent entries are to be sent again."""
        n = self._n
        n[_RSENT] = n[_ESENT] = self.unconfirmed = 0
