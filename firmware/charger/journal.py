"""The session journal: the outbox (charger/outbox.py), also kept in a file on flash.

`Journal(path)` IS the outbox the app and the link use (a subclass: they are unchanged). Each
put is also written to a bounded, append-only file (littlefs on the ESP32, a real file on the
unix port), so after a power cut or a reset the charger still knows the session that was
open, its last register, and every entry the server has not acknowledged. This module only
decides WHEN to write (it stays loaded: kept small); the bytes are made and written by
charger/jfile.py, loaded for each write and forgotten after; reading the file back at boot
and compacting it is charger/recover.py's (docs/architecture.md, "Session journal").

When: readings 10 at a time (every 30 s at the default 3 s interval), a session's first
reading at once (the session is open), a stop or emergency at once (after the readings not
written yet), the server's stop of a session at once (END), and an acknowledged stop or
emergency at once (so it is not replayed after a reboot). Readings and events are numbered
from 0 at boot in put order (`_n[5]` counts the readings, `events_put` the events).
"""

from charger.outbox import Outbox

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_BATCH = const(10)  # readings a flush waits for (also the most in one record)


class Journal(Outbox):
    """The outbox, journaled to `path` once `on` is set (charger/recover.py sets it at boot)."""

    def __init__(self, path, readings=200, events=32):
        Outbox.__init__(self, readings, events)
        self.path = path
        self.on = False
        self.events_put = 0  # events put since boot: the next event's number
        self.flushed = 0  # readings numbered below this are written (or were acknowledged)
        self.last = None  # [session_id, wh, ts]: the open session's latest register
        self.size = 0  # bytes in the file
        self.writes = 0  # flash writes since boot
        self.failed = 0  # writes the file system refused (full, worn out)
        self.extra = []  # other modules' records that compaction keeps (oldest first)

    def put_reading(self, session_id, v, a, w, wh, ts):
        if not Outbox.put_reading(self, session_id, v, a, w, wh, ts):
            return False
        if self.last is None or self.last[0] != session_id:  # a new session: write now
            self.last = [session_id, wh, ts]
            if self.on:
                self.write(None)
            return True
        self.last[1] = wh
        self.last[2] = ts
        if self.on and self._n[5] - self.flushed >= _BATCH:
            self.write(None)
        return True

    def put_event(self, kind, session_id, wh, ts):
        if not Outbox.put_event(self, kind, session_id, wh, ts):
            return False
        if self.last is not None and session_id == self.last[0]:
            self.last = None  # the session is over
        self.events_put += 1
        if self.on:
            self.write((kind, session_id, wh, ts))
        return True

    def closed(self, session_id):
        """The server ended the session (its `stop`): nothing to report after a reboot."""
        if self.last is not None and self.last[0] == session_id:
            self.last = None
            if self.on:
                self.write(session_id)

    def confirm(self):
        sent = self._n[4]  # events among the confirmed entries
        Outbox.confirm(self)
        if sent and self.on:  # an acknowledged stop/emergency must not come back at boot
            self.write(None)

    def write(self, what):
        """Append the readings not written yet, the open session, the acknowledgement, then
        `what`: None, an event (kind, session_id, wh, ts), a session_id the server ended, or
        a record's bytes (another module's kind: charger/jfile.py record())."""
        from charger import forget, jfile
        try:
            jfile.append(self, what)
        finally:
            del jfile
            forget("charger.jfile")
