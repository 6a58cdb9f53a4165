"""The outbox: what the charger must deliver to the server, kept while the link is down.

Owns two preallocated rings, one of readings (`metrics`) and one of session events (`stop`,
`emergency`); every entry carries a sequence number and `peek()` takes the older of the two
heads, so the order of everything is the order of the puts. Storage is typed arrays
allocated once (a reading costs 28 bytes, an event 17) and an entry becomes JSON text only
when the link sends it: `put_*` allocates nothing, and dropping a reading is moving a head
index, never copying entries (copying floats out of an array would allocate). Rules:

- at most `readings` readings; when full, the OLDEST READING is dropped (`dropped` counts);
- `stop` and `emergency` have their own `events` slots and are never dropped. Only when
  all of them are taken (that many sessions ended while offline) is a new event refused:
  `put_event` returns False and `lost_events` counts;
- delivery is confirmed, not assumed: the link takes entries with `next_unsent()` (they
  stay in the outbox, marked sent), and removes them with `confirm()` once the server has
  proven it read them (a pong to a ping sent after them); when the connection dies first,
  `rewind()` makes them unsent again, so a half-open link that swallowed frames loses
  nothing. A replayed entry may reach the server twice (it ignores a repeated `ts`; a
  repeated `stop` is harmless);
- `peek()` gives the oldest entry as JSON and `pop()` removes it (the simple API); if the
  peeked reading was dropped meanwhile, `pop()` removes nothing.

A reading with a value that is not a finite number, or `wh`/`ts` out of range, is refused
(`put_reading` returns False, `rejected` counts) instead of becoming invalid JSON.
Runs under MicroPython and CPython.
"""

import array

from charger import messages

_STOP = 1
_EMERGENCY = 2
_SEQ_MASK = 0x3FFFFFFF  # sequence numbers stay small ints on the 32-bit ESP32
_SEQ_HALF = 0x20000000
_NONE = -2147483648  # int32 sentinel: session_id / wh is None
_INF = float("inf")
_NINF = float("-inf")
_MAX_I32 = 2147483647
_MAX_U32 = 4294967295


_NUMBER = (int, float)


def _bad_number(x):
    return not isinstance(x, _NUMBER) or x != x or x == _INF or x == _NINF


def _int_or_none(x):
    # None -> sentinel; int32 range checked; False when out of range
    if x is None:
        return _NONE
    if not isinstance(x, int):
        if _bad_number(x):
            return False
        x = int(x)
    if x < -_MAX_I32 or x > _MAX_I32:
        return False
    return x


class Outbox:
    """Bounded, preallocated, ordered outbox (see the module docstring)."""

    def __init__(self, readings=200, events=32):
        if readings < 1 or events < 1:
            raise ValueError("an outbox needs room for at least 1 reading and 1 event")
        self._rcap = readings
        self._ecap = events
        zr = bytes(4 * readings)
        ze = bytes(4 * events)
        # readings ring
        self._rseq = array.array("I", zr)
        self._rsid = array.array("i", zr)
        self._v = array.array("f", zr)
        self._a = array.array("f", zr)
        self._w = array.array("f", zr)
        self._rwh = array.array("i", zr)
        self._rts = array.array("I", zr)
        self._rhead = 0
        self._rlen = 0
        # events ring
        self._eseq = array.array("I", ze)
        self._ekind = bytearray(events)
        self._esid = array.array("i", ze)
        self._ewh = array.array("i", ze)
        self._ets = array.array("I", ze)
        self._ehead = 0
        self._elen = 0
        self._rsent = 0    # entries at the head of each ring sent but not confirmed yet
        self._esent = 0
        self._seq = 1
        self._peeked = 0   # sequence number of the entry the last peek() returned; 0: none
        self.dropped = 0
        self.lost_events = 0
        self.rejected = 0

    def __len__(self):
        return self._rlen + self._elen

    @property
    def readings(self):
        """How many readings are waiting."""
        return self._rlen

    @property
    def capacity(self):
        return self._rcap + self._ecap

    def _next_seq(self):
        seq = self._seq
        nxt = (seq + 1) & _SEQ_MASK
        self._seq = nxt if nxt else 1
        return seq

    # ---- put --------------------------------------------------------------------------
    def put_reading(self, session_id, v, a, w, wh, ts):
        """Queue a `metrics` reading; False (and nothing stored) if a value is invalid."""
        sid = _int_or_none(session_id)
        whi = _int_or_none(wh)
        if (session_id is None or sid is False or whi is False or _bad_number(v)
                or _bad_number(a) or _bad_number(w) or not _ts_ok(ts)):
            self.rejected += 1
            return False
        if self._rlen == self._rcap:  # full: the oldest reading goes
            self._rhead = _slot(self._rhead, 1, self._rcap)
            self._rlen -= 1
            if self._rsent:
                self._rsent -= 1  # it was sent already, just not confirmed
            self.dropped += 1
        i = _slot(self._rhead, self._rlen, self._rcap)
        self._rseq[i] = self._next_seq()
        self._rsid[i] = sid
        self._v[i] = v
        self._a[i] = a
        self._w[i] = w
        self._rwh[i] = whi
        self._rts[i] = 0 if ts is None else int(ts)
        self._rlen += 1
        return True

    def put_event(self, kind, session_id, wh, ts):
        """Queue `stop` or `emergency`; never dropped (see the module docstring)."""
        if kind == "stop":
            code = _STOP
        elif kind == "emergency":
            code = _EMERGENCY
        else:
            raise ValueError("event kind must be 'stop' or 'emergency'")
        sid = _int_or_none(session_id)
        whi = _int_or_none(wh)
        if sid is False or whi is False or not _ts_ok(ts):
            raise ValueError("event %s has an invalid session_id, wh or ts" % kind)
        if self._elen == self._ecap:
            self.lost_events += 1
            return False
        i = _slot(self._ehead, self._elen, self._ecap)
        self._eseq[i] = self._next_seq()
        self._ekind[i] = code
        self._esid[i] = sid
        self._ewh[i] = whi
        self._ets[i] = 0 if ts is None else int(ts)
        self._elen += 1
        return True

    # ---- take: one entry at a time --------------------------------------------------
    def _reading_first(self, roff, eoff):
        # Is the older of the entries at offsets roff / eoff of the two rings a reading?
        # (sequence numbers compared modulo _SEQ_MASK); callers ensure one of them exists
        if eoff >= self._elen:
            return True
        if roff >= self._rlen:
            return False
        ri = _slot(self._rhead, roff, self._rcap)
        ei = _slot(self._ehead, eoff, self._ecap)
        return ((self._eseq[ei] - self._rseq[ri]) & _SEQ_MASK) < _SEQ_HALF

    def _reading_text(self, i):
        return messages.metrics(self._rsid[i], self._v[i], self._a[i], self._w[i],
                                _none(self._rwh[i]), self._rts[i])

    def _event_text(self, i):
        sid = _none(self._esid[i])
        wh = _none(self._ewh[i])
        if self._ekind[i] == _STOP:
            return messages.stop(sid, wh, self._ets[i])
        return messages.emergency(sid, wh, self._ets[i])

    def peek(self):
        """The oldest entry as the JSON text to send, or None when empty."""
        if not (self._rlen or self._elen):
            self._peeked = 0
            return None
        if self._reading_first(0, 0):
            self._peeked = self._rseq[self._rhead]
            return self._reading_text(self._rhead)
        self._peeked = self._eseq[self._ehead]
        return self._event_text(self._ehead)

    def pop(self):
        """Remove the entry the last peek() returned, if it is still the oldest one."""
        if not (self._rlen or self._elen) or not self._peeked:
            return
        if self._reading_first(0, 0):
            if self._rseq[self._rhead] == self._peeked:
                self._rhead = _slot(self._rhead, 1, self._rcap)
                self._rlen -= 1
                self._rsent = max(0, self._rsent - 1)
        elif self._eseq[self._ehead] == self._peeked:
            self._ehead = _slot(self._ehead, 1, self._ecap)
            self._elen -= 1
            self._esent = max(0, self._esent - 1)
        self._peeked = 0

    # ---- take: send, then confirm delivery -------------------------------------------
    def next_unsent(self):
        """The oldest entry not sent yet on this connection, as JSON, now marked sent;
        None when everything was sent. Sent entries stay until confirm()."""
        if self._rsent >= self._rlen and self._esent >= self._elen:
            return None
        if self._reading_first(self._rsent, self._esent):
            i = _slot(self._rhead, self._rsent, self._rcap)
            self._rsent += 1
            return self._reading_text(i)
        i = _slot(self._ehead, self._esent, self._ecap)
        self._esent += 1
        return self._event_text(i)

    @property
    def unconfirmed(self):
        """How many entries were sent but not confirmed yet."""
        return self._rsent + self._esent

    def confirm(self):
        """The server has everything next_unsent() returned so far: remove those entries."""
        self._rhead = _slot(self._rhead, self._rsent, self._rcap)
        self._rlen -= self._rsent
        self._ehead = _slot(self._ehead, self._esent, self._ecap)
        self._elen -= self._esent
        self._rsent = 0
        self._esent = 0

    def rewind(self):
        """The connection ended before confirm(): the sent entries are to be sent again."""
        self._rsent = 0
        self._esent = 0


def _slot(head, k, cap):
    # index of the k-th entry of a ring that starts at `head`
    i = head + k
    return i - cap if i >= cap else i


def _none(x):
    return None if x == _NONE else x


def _ts_ok(ts):
    if ts is None:
        return True
    if not isinstance(ts, int) and _bad_number(ts):
        return False
    return 0 <= ts <= _MAX_U32
