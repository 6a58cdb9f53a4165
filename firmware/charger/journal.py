"""The session journal: the outbox (charger/outbox.py), also kept in a file on flash.

Owns the journal file's appends while the charger runs. `Journal(path)` IS the outbox the app
and the link use (a subclass: they are unchanged): each put is also written to a bounded,
append-only file (littlefs on the ESP32, a real file on the unix port), so after a power cut
or a reset the charger still knows the session that was open, its last register, and every
entry the server has not acknowledged. Reading the file back at boot, replaying it and
compacting it is charger/recover.py's job (loaded on demand, then forgotten).

Record (little-endian; docs/architecture.md "Session journal"):

    0x4A | kind (1 B) | L (1 B) | payload (L B, 0..255) | CRC-32 of kind, L, payload (4 B)

Kinds written here: 1 OPEN (session_id, wh, ts: the session is open, its latest register),
2 READINGS (the number of the first reading, then up to 10 readings of 24 B: session_id, v, a,
w, wh, ts), 3 EVENT (event number, outbox kind 1..6, session_id, wh, ts), 4 END (session_id:
the server ended it), 5 ACK (readings and events removed from the outbox so far: acknowledged
or dropped). Readings and events are numbered from 0 at boot, in put order. Other modules add
kinds of their own with `append(kind, payload)` (numbers 32 and up; the records in `extra`
survive compaction).

Flash writes are batched: readings are written 10 at a time (every 30 s at the default 3 s
interval), with an OPEN carrying the latest register and an ACK; a session's first reading,
a stop or emergency, a server's stop, and an acknowledged event are written at once. One
write is one `open/write/close` of the file (`writes` counts them). When the file passes
`LIMIT` bytes, recover.compact() rewrites what is still needed into a new file and renames
it over the old one.
"""

from binascii import crc32
from struct import pack

from charger.outbox import _KINDS, Outbox

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

OPEN = const(1)
READINGS = const(2)
EVENT = const(3)
END = const(4)
ACK = const(5)
_BATCH = const(10)  # readings in one record, and the readings a flush waits for
LIMIT = 12288  # bytes: beyond it the next write compacts the file


def record(kind, payload):
    """One record's bytes."""
    head = bytes((kind, len(payload))) + payload
    return b"\x4a" + head + pack("<I", crc32(head) & 0xFFFFFFFF)


class Journal(Outbox):
    """The outbox, journaled to `path` once `on` is set (charger/recover.py sets it at boot)."""

    def __init__(self, path, readings=200, events=32):
        super().__init__(readings, events)
        self.path = path
        self.on = False
        self.events_put = 0  # events ever put since boot: the next event's number
        self.flushed = 0  # readings put before this number are in the file (or were acked)
        self.last = None  # [session_id, wh, ts]: the open session's latest register
        self.size = 0  # bytes in the file
        self.writes = 0  # flash writes since boot
        self.failed = 0  # writes the file system refused (full, worn out)
        self.extra = []  # other modules' records that compaction copies (oldest first)

    def put_reading(self, session_id, v, a, w, wh, ts):
        if not Outbox.put_reading(self, session_id, v, a, w, wh, ts):
            return False
        new = self.last is None or self.last[0] != session_id
        self.last = [session_id, wh, ts]
        if self.on and (new or self._n[5] - self.flushed >= _BATCH):
            self.write(None)
        return True

    def put_event(self, kind, session_id, wh, ts):
        if not Outbox.put_event(self, kind, session_id, wh, ts):
            return False
        if self.last is not None and session_id == self.last[0]:
            self.last = None  # the session is over
        self.events_put += 1
        if self.on:
            self.write(record(EVENT, pack("<IBIII", self.events_put - 1, _KINDS.index(kind)
                                          + 1, 0xFFFFFFFF if session_id is None else session_id,
                                          0xFFFFFFFF if wh is None else wh, ts or 0)))
        return True

    def closed(self, session_id):
        """The server ended the session (its `stop`): nothing to report after a reboot."""
        if self.last is not None and self.last[0] == session_id:
            self.last = None
            if self.on:
                self.write(record(END, pack("<I", session_id)))

    def confirm(self):
        events = self._n[4]  # events among the confirmed entries
        Outbox.confirm(self)
        if events and self.on:  # an acknowledged stop/emergency must not come back at boot
            self.write(None)

    def append(self, kind, payload):
        """Write a record of another module's kind (32..255) now."""
        self.write(record(kind, payload))

    def write(self, tail):
        """Append, in one write: the readings not in the file yet, the open session's
        register, how much was acknowledged, then `tail` (a record or None). A file system
        error is counted and logged: the outbox still has everything, the charger goes on."""
        try:
            if self.size > LIMIT:
                from charger import forget
                from charger.recover import compact
                compact(self)
                del compact
                forget("charger.recover")
            buf = self.pending()
            if tail:
                buf += tail
            with open(self.path, "ab") as f:
                f.write(buf)
            self.size += len(buf)
            self.writes += 1
        except OSError as e:
            self.failed += 1
            print("[journal]", "failed", e)

    def pending(self):
        """The records of the readings not in the file yet (oldest first), the open session
        (OPEN) and the acknowledgement (ACK), as bytes; marks those readings flushed."""
        n = self._n
        put = n[5]
        first = max(self.flushed, put - self.readings)  # the older ones were removed
        buf = b""
        while first < put:
            count = min(_BATCH, put - first)
            buf += record(READINGS, pack("<I", first) + self.readings_bytes(first, count))
            first += count
        self.flushed = put
        if self.last is not None:
            buf += record(OPEN, pack("<III", self.last[0], 0xFFFFFFFF if self.last[1] is None
                                     else self.last[1], self.last[2] or 0))
        return buf + record(ACK, pack("<II", put - self.readings, self.events_put - n[3]))

    def readings_bytes(self, first, count):
        # readings number first.. (still in the outbox) as 24-byte entries
        n = self._n
        out = b""
        for r in range(first, first + count):
            k = (n[0] + r - (n[5] - self.readings)) % n[6] * 3
            out += pack("<IfffII", self._i[k], self._f[k], self._f[k + 1], self._f[k + 2],
                        self._i[k + 1], self._i[k + 2])
        return out
