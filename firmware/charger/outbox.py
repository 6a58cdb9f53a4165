"""The outbox: what the charger must deliver to the server, kept while the link is down,
and (`Journal`) on flash across a power cut or a reset.

Owns two preallocated rings, one of readings (`metrics`) and one of session events (`stop`,
`emergency`), stored in TWO typed arrays allocated once: a float32 array (v, a, w of each
reading) and a uint32 array (each reading's session_id, wh, ts, then each event's put number,
kind, session_id, wh, ts): 24 bytes a reading, 20 an event. A reading's place in the order of
puts follows from its place in the ring and the count of readings ever put, so
`next_unsent()` takes the older of the two ring heads without a sequence number per reading:
the order of everything is the order of the puts. An entry becomes JSON text only when the
link sends it: `put_*` allocates nothing (array stores), taking an entry allocates only its
text and the values read back (no record tuple), and dropping a reading is moving a head
index, never copying entries. Rules:

- at most `readings` readings; when full, the OLDEST READING is dropped (`dropped` counts);
- `stop` (with or without its fault `reason`) and `emergency` have their own `events` slots
  and are never dropped. Only when all of them are taken (that many sessions ended while
  offline) is a new event refused: `put_event` returns False and `lost_events` counts;
- delivery is confirmed, not assumed: the link takes entries with `next_unsent()` (they
  stay in the outbox, marked sent), and removes them with `confirm()` once the server's
  `ack` says it committed them (charger/link.py); when the connection ends first,
  `rewind()` makes them unsent again, so a server that read them but died before its
  commit, or a half-open link that swallowed them, loses nothing. A replayed entry may
  reach the server twice (it ignores a repeated `ts`; a
  repeated `stop` is harmless). A sent reading dropped by a put (outbox full) before its
  confirmation is simply gone: `confirm()` removes only what is still there.

Offline starts (issue 13, charger/offline.py): a session the charger started without the
server runs under a local session id (2**31..2**31+2**30-1, never a server's id: the app
takes server session ids below 2**31 only). Its entries are
queued as usual after an `offline_start` event (kind 7; sent as the text charger/offline.py
puts in `data`: `offline_start","local_id":L,"uid":...,"version":V`, the message's head;
charger/offline.py allows one `offline_start` in the outbox at a time) but held:
`next_unsent()` stops at the first entry of a local session other than the `offline_start`
itself, until charger/offline.py re-labels them with the server's session id (or drops them
when the server refuses).

A reading with a v/a/w that is not a finite number, or a session_id/wh/ts that is not a
whole number 0..2**32-2 (ts: 0..2**32-1; the meter's energy register is uint32 too), is
refused (`put_reading` returns False, `rejected` counts) instead of becoming invalid JSON.
`put_event` raises ValueError for a bad kind or value (a caller's bug).

`Journal(path)` is the outbox charger/startup.py builds: the same outbox (app and link
unchanged), each put also written to a bounded, append-only file (littlefs on the ESP32, a real
file on the unix port: the session journal), so after a power cut or a reset the charger still
knows the session that was open, its last register, and every entry the server has not
acknowledged. The class only decides WHEN to write (it stays loaded: kept small); the records
are made, written, read back at boot and compacted by charger/jfile.py, loaded for that and
forgotten after (docs/architecture.md, "Session journal"). When: readings 10 at a time (every 30 s at
the default 3 s interval), a session's first reading at once (the session is open), a stop
or emergency at once (after the readings not written yet), the server's stop of a session
at once (`stop()`), an acknowledged stop or emergency at once (so that it is not replayed
after a reboot). Readings and events are numbered from 0 at boot in put order (`_n[_PUT]`
counts the readings, `state[1]` the events). Its state is one list, `state` (few names: each is
interned for good): [0] on (journaling starts once the boot replay is done), [1] events put,
[2] readings numbered below this are written (or were acknowledged first), [3] the file's
bytes, [4] flash writes since boot, [5] writes the file system refused, [6] the open session
[session_id, wh, ts] (its latest register), with a 4th item once that register is on the file
(the put count then: charger/jfile.py), or None, [7] other modules' records (bytes, oldest
first) that compaction keeps. A write the file system refused leaves [2] as it was: the next
put writes again, with those readings.

Compact on purpose (docs/architecture.md, "Firmware memory rules"):
two arrays instead of one per field, the ring indices in one small list indexed by
private consts, plain attributes (`readings`, `unconfirmed`) kept up to date instead of
properties, one validation helper. Runs under MicroPython and CPython.
"""

import array

from charger import messages

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):  # (`value`: a name MicroPython has interned already)
        return value


# storage (module docstring): reading r at 3*r in both arrays, event e at 3*cap + 5*e of the
# uint32 one. Not struct records in one bytearray: unpack_from() allocates a tuple per send.
# An event's kind is stored as its place in _KINDS + 1: 1 stop, 2 emergency, 3 to 6 a stop
# the charger made for a fault or reports after a reboot (charger/jfile.py), sent with that
# word as its `reason`. One tuple for both ways:
# each 13-character word is a string object in RAM (no qstr), so it is written only once.
_EMERGENCY = const(2)
_KINDS = (
    "stop",
    "emergency",
    "meter_failure",
    "offline_limit",
    "power_loss",
    "charger_reset",
    "offline_start",
)
_OFFLINE_START = const(7)
# indices into Outbox._n, the ring state
_RHEAD = const(0)  # slot of the oldest reading
_RSENT = const(1)  # readings at the head sent but not confirmed yet
_EHEAD = const(2)
_ELEN = const(3)  # events waiting (readings waiting: the public `readings`)
_ESENT = const(4)
_PUT = const(5)  # readings ever put (modulo _MASK): the put number of the next reading
_RCAP = const(6)
_ECAP = const(7)
_MASK = const(0x3FFFFFFF)  # put numbers stay small ints on the 32-bit ESP32
_HALF = const(0x20000000)
_NONE = const(0xFFFFFFFF)  # session_id / wh is None (a constant object on the ESP32)
_BATCH = const(10)  # Journal: readings a flush waits for (also the most in one record)
_MAX = const(0xFFFFFFFE)


def _num(value, key):
    # value when it is a valid number of its key, else False; key 0: a session_id or wh
    # (0.._MAX; None refused), 1: the same, None stored as _NONE, 2: a ts (0..2**32-1; None
    # -> 0), 3: a float32 (NaN and the infinities never pass). Comparisons only: nothing is
    # allocated. Two arguments, so put_reading() stays within 11 frame slots (no heap frame
    # per reading); their names are interned names MicroPython has built in.
    if value is None:
        return _NONE if key == 1 else 0 if key == 2 else False
    if not (isinstance(value, int) or isinstance(value, float)):
        return False
    if key == 3:
        return value if -3e38 <= value <= 3e38 else False
    return value if 0 <= value <= (_NONE if key == 2 else _MAX) else False


class Outbox:
    """Bounded, preallocated, ordered outbox (see the module docstring)."""

    def __init__(self, readings=200, events=32):
        if readings < 1 or events < 1:
            raise ValueError("outbox needs readings >= 1, events >= 1")
        self._f = array.array("f", bytes(12 * readings))
        self._i = array.array("I", bytes(12 * readings + 20 * events))
        self._n = [0, 0, 0, 0, 0, 0, readings, events]
        self.readings = 0  # readings waiting
        self.unconfirmed = 0  # entries sent but not confirmed yet
        self.dropped = 0
        self.lost_events = 0
        self.rejected = 0
        self.data = None  # the offline start's message head (see above)

    def __len__(self):
        return self.readings + self._n[_ELEN]

    def put_reading(self, session_id, v, a, w, wh, ts):
        """Queue a `metrics` reading; False (and nothing stored) if a value is invalid."""
        # Within 11 frame slots (the 7 arguments, k and a stack of 3: no other local, no
        # `x[k + 1] = y`): one slot more and every reading would allocate a heap frame.
        session_id = _num(session_id, 0)  # None too: a reading belongs to a session
        wh = _num(wh, 1)
        ts = _num(ts, 2)
        if (
            session_id is False
            or wh is False
            or ts is False
            or _num(v, 3) is False
            or _num(a, 3) is False
            or _num(w, 3) is False
        ):
            self.rejected += 1
            return False
        if self.readings == self._n[_RCAP]:  # full: the oldest reading goes
            self._n[_RHEAD] = (self._n[_RHEAD] + 1) % self._n[_RCAP]
            self.readings -= 1
            if self._n[_RSENT]:  # it was sent already, just not confirmed
                self._n[_RSENT] = self._n[_RSENT] - 1  # (`-=` needs a 4th stack slot)
                self.unconfirmed -= 1
            self.dropped += 1
        self._n[_PUT] = (self._n[_PUT] + 1) & _MASK
        k = (self._n[_RHEAD] + self.readings) % self._n[_RCAP] * 3
        self.readings += 1
        self._f[k] = v
        self._i[k] = int(session_id)
        k += 1
        self._f[k] = a
        self._i[k] = int(wh)
        k += 1
        self._f[k] = w
        self._i[k] = int(ts)
        return True

    def put_event(self, kind, session_id, wh, ts):
        """Queue `stop` or `emergency`, or a stop the charger made for a fault, kind
        `meter_failure` or `offline_limit` (sent as a `stop` with that `reason`); never
        dropped (see the module docstring)."""
        # session_id None (`null`) only for an emergency: a stop is about a session, and
        # stop() could not format None (a stop taken for sending would raise at every replay)
        sid = _num(session_id, 1 if kind == "emergency" else 0)
        wh = _num(wh, 1)
        ts = _num(ts, 2)
        if kind not in _KINDS or sid is False or wh is False or ts is False:
            # a caller's bug, not a reading to skip: a clear error
            raise ValueError(
                "bad event %r: kind one of %s, session_id/wh/ts uint32" % (kind, _KINDS)
            )
        n = self._n
        if n[_ELEN] == n[_ECAP]:
            self.lost_events += 1
            return False
        k = 3 * n[_RCAP] + 5 * ((n[_EHEAD] + n[_ELEN]) % n[_ECAP])
        ints = self._i
        ints[k] = n[_PUT]
        ints[k + 1] = _KINDS.index(kind) + 1
        ints[k + 2] = int(sid)
        ints[k + 3] = int(wh)
        ints[k + 4] = int(ts)
        n[_ELEN] += 1
        return True

    def next_unsent(self):
        """The oldest entry not sent yet on this connection, as JSON, now marked sent;
        None when everything was sent. Sent entries stay until confirm()."""
        n = self._n
        ints = self._i
        r = n[_RSENT] < self.readings  # an unsent reading, an unsent event
        e = n[_ESENT] < n[_ELEN]
        if not (r or e):
            return None
        k = 3 * n[_RCAP] + 5 * ((n[_EHEAD] + n[_ESENT]) % n[_ECAP])
        # the older of the two heads goes first: the reading when its put number (readings
        # put minus those waiting, plus those sent) is below the event's (modulo _MASK)
        if not e or r and (n[_PUT] - self.readings + n[_RSENT] - ints[k]) & _MASK >= _HALF:
            k = 3 * ((n[_RHEAD] + n[_RSENT]) % n[_RCAP])
            if ints[k] >> 30 == 2:  # a local session's: held until it is re-labelled
                return None
            self.unconfirmed += 1
            n[_RSENT] += 1
            floats = self._f
            wh = ints[k + 1]
            return messages.metrics(
                ints[k],
                floats[k],
                floats[k + 1],
                floats[k + 2],
                None if wh == _NONE else wh,
                ints[k + 2],
            )
        sid = ints[k + 2]
        e = ints[k + 1]  # the kind (put_event)
        if sid >> 30 == 2 and e != _OFFLINE_START:
            return None  # held, like a local session's reading
        self.unconfirmed += 1
        n[_ESENT] += 1
        sid = None if sid == _NONE else sid
        wh = ints[k + 3]
        wh = None if wh == _NONE else wh
        if e == _EMERGENCY:
            return messages.emergency(sid, wh, ints[k + 4])
        return messages.stop(  # a fault's reason, or the offline start's own head (`data`)
            sid,
            wh,
            ints[k + 4],
            self.data if e == _OFFLINE_START else None,
            _KINDS[e - 1] if _EMERGENCY < e < _OFFLINE_START else None,
        )

    def stop(self, session_id):
        """The server ended the session (the journal's hook: Journal.stop())."""

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


class Journal(Outbox):
    """The outbox, journaled to `path` once `state[0]` is set (jfile.boot() sets it); see the
    module docstring."""

    def __init__(self, path, readings=200, events=32):
        Outbox.__init__(self, readings, events)
        self.path = path
        self.state = [False, 0, 0, 0, 0, 0, None, []]

    def put_reading(self, session_id, v, a, w, wh, ts):
        if not Outbox.put_reading(self, session_id, v, a, w, wh, ts):
            return False
        state = self.state
        if state[6] is None or state[6][0] != session_id:  # a new session: written at once
            state[6] = [session_id, wh, ts]
            if state[0]:
                self.write(None)
            return True
        state[6][1] = wh
        state[6][2] = ts
        if state[0] and self._n[_PUT] - state[2] >= _BATCH:
            self.write(None)
        return True

    def put_event(self, kind, session_id, wh, ts):
        if not Outbox.put_event(self, kind, session_id, wh, ts):
            return False
        state = self.state
        if state[6] is not None and session_id == state[6][0]:
            state[6] = None  # the session is over
        state[1] += 1
        if state[0]:
            self.write((kind, session_id, wh, ts))
        return True

    def stop(self, session_id):
        """The server ended the session (its `stop`): nothing to report after a reboot."""
        if self.state[6] is not None and self.state[6][0] == session_id:
            self.state[6] = None
            if self.state[0]:
                self.write(session_id)

    def confirm(self):
        sent = self._n[_ESENT]  # events among the confirmed entries
        Outbox.confirm(self)
        if sent and self.state[0]:  # an acknowledged stop/emergency must not come back at boot
            self.write(None)

    def write(self, data):
        """Append the readings not written yet, the open session, the acknowledgement, then
        `data`: None, an event (kind, session_id, wh, ts), a session_id the server ended, or
        a record's bytes (another module's kind: jfile.record()). No heap for it (loading
        jfile, its buffers) is a refused write as a file system error is (jfile.append()):
        counted, logged (the readings not written yet go with the next write); the put that
        asked for it stands (it is in the outbox: the caller goes on)."""
        try:
            from charger import forget, jfile

            try:
                jfile.append(self, data)
            finally:
                forget("charger.jfile")
        except MemoryError as e:  # (its handling allocates nothing: there may be no heap)
            self.state[5] += 1
            print("[charger]", "journal", "MemoryError", e)
