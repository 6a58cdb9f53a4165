"""One simulated charger's protocol rules: events in, messages out, no I/O.

`Charger` follows the firmware's state machine (`firmware/charger/state.py`) and message
formats (`firmware/charger/messages.py`): IDLE -> WAITING (a card was reported, `start` expected
within 10 s) -> CHARGING -> IDLE, and FAULT after EMERGENCY until the local reset. Inputs are
method calls (link up/down, a decoded server message, buttons, the metrics timer, `tick`);
outputs are messages put into `outbox` for the link to send, plus notes (`notify(event,
fields)`) that the front end prints.

While the link is down a session keeps charging: readings, `stop` and `emergency` wait in the
bounded outbox and are replayed in order after the next `status`. If a `stop`/`emergency` of
session X is among them, the first `status` reports X as still charging (as the server last
knew it), so the server resumes X, bills the replayed readings and then ends X for the real
reason; a second `status` with the present state follows the replay.
"""

import time

from tools.simulator.outbox import DURABLE, READING, Outbox

IDLE = "idle"
WAITING = "waiting"  # reported as "idle": no session yet
CHARGING = "charging"
FAULT = "fault"

START_TIMEOUT_S = 10.0
OFFLINE_LIMIT_S = 600.0  # the firmware ends a session after 10 min without the server


def _ignore(event, fields):
    pass


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class Charger:
    def __init__(self, station_id, model, *, metrics_interval_s=3.0, max_readings=200,
                 start_timeout_s=START_TIMEOUT_S, offline_limit_s=OFFLINE_LIMIT_S,
                 monotonic=time.monotonic, notify=None):
        self.station_id = station_id
        self.model = model
        self.state = IDLE
        self.session_id = None
        self.user_name = None
        self.online = False
        self.outbox = Outbox(max_readings)
        self.metrics_interval_s = metrics_interval_s
        self.start_timeout_s = start_timeout_s
        self.offline_limit_s = offline_limit_s
        self._monotonic = monotonic
        self._notify = notify or _ignore
        self._wait_since = None
        self._next_metrics_at = None
        self._last_reading_ts = 0
        self.boots = 0  # reboots so far
        self._offline_since = monotonic()

    # --- the link ----------------------------------------------------------------------------
    def connected(self) -> None:
        """The WebSocket is open: status first, then the replay, then the present."""
        self.online = True
        self._offline_since = None
        pending = self.outbox.drain()
        self.outbox.put(self._status_before(pending))
        for message in pending:
            self.outbox.put(message)
        if pending:
            self._note("replayed", n=len(pending))
            if any(m["type"] in DURABLE for m in pending):
                self.outbox.put(self._status())
        self._put_latest_reading()

    def disconnected(self) -> None:
        """The link is gone (or a send failed): keep what must survive, forget the rest."""
        if not self.online:
            return
        self.online = False
        self._offline_since = self._monotonic()
        lost = self.outbox.drop_transient()
        if any(m["type"] == "nfc_scan" for m in lost) and self.state == WAITING:
            self._to(IDLE, "idle", reason="card tap not sent: offline")
        if self.outbox:
            self._note("queued", pending=len(self.outbox))

    def receive(self, message: dict) -> None:
        """A decoded JSON object from the server."""
        self._notify("<-", message)
        handler = self._HANDLERS.get(message.get("type"))
        if handler is None:
            self._note("invalid", reason="unknown message type")
            return
        handler(self, message)

    # --- the server's messages (one handler per type) ----------------------------------------
    def _on_connected(self, message):
        pass

    def _on_sync_request(self, message):
        self.outbox.put(self._status())
        self._put_latest_reading()

    def _on_start(self, message):
        session_id = message.get("session_id")
        if not _is_id(session_id):
            self._note("invalid", reason="start without a valid session_id")
            return
        if self.state == WAITING:
            self.model.plug_new_car()
            self.model.set_relay(True)
            self.session_id = session_id
            self.user_name = message.get("user_name")
            self._to(CHARGING, "started", session_id=session_id, user_name=self.user_name,
                     relay="on")
            self._put(self._reading())  # the register at the start: the server's baseline
            self._next_metrics_at = self._monotonic() + self.metrics_interval_s
        elif self.state == CHARGING and session_id == self.session_id:
            return
        else:
            # a late or unexpected start: refuse it so the server does not bill a dead session
            self._note("refused", session_id=session_id, state=self.state)
            self._put(self._session_event("stop", session_id))

    def _on_stop(self, message):
        session_id = message.get("session_id")
        if self.state == CHARGING and (session_id is None or session_id == self.session_id):
            self.model.set_relay(False)
            self._end(reason="remote_stop")
        else:
            self._note("ignored", reason="stop for a session not charging here",
                       session_id=session_id)

    def _on_error(self, message):
        if self.state == WAITING:
            self._to(IDLE, "idle", reason=message.get("code"))

    _HANDLERS = {
        "connected": _on_connected,
        "sync_request": _on_sync_request,
        "start": _on_start,
        "stop": _on_stop,
        "error": _on_error,
    }

    # --- the buttons and the card reader -----------------------------------------------------
    def tap(self, uid: str) -> None:
        if self.state in (WAITING, FAULT):
            self._note("ignored", reason="card tap while " + self.state, nfc_uid=uid)
            return
        if not self.online:
            self._note("ignored", reason="card tap not sent: offline", nfc_uid=uid)
            return
        if self.state == IDLE:
            self._wait_since = self._monotonic()
            self._to(WAITING, "waiting", nfc_uid=uid)
        self.outbox.put({"type": "nfc_scan", "nfc_uid": uid})

    def press_stop(self) -> None:
        if self.state == CHARGING:
            self._end_locally("stop_button")
        elif self.state == WAITING:
            self._to(IDLE, "idle", reason="stop_button")

    def press_emergency(self) -> None:
        if self.state == FAULT:
            return
        self.model.set_relay(False)
        session_id, self.session_id = self.session_id, None
        self._to(FAULT, "fault", session_id=session_id, relay="off")
        self._put(self._session_event("emergency", session_id))

    def press_reset(self) -> None:
        """The local reset gesture: the only way out of FAULT."""
        if self.state != FAULT:
            self._note("ignored", reason="reset while " + self.state)
            return
        self._to(IDLE, "idle", reason="reset")
        if self.online:
            self.outbox.put(self._status())

    def reboot(self) -> None:
        """An ESP32 reboot: RAM is lost (session, outbox), the meter register and a latched
        EMERGENCY button are not. The caller reconnects."""
        self.model.set_relay(False)
        self.outbox.clear()
        self.boots += 1
        self.online = False
        self._offline_since = self._monotonic()
        self.session_id = None
        self.user_name = None
        self._note("rebooted", wh=self.model.register_wh)
        if self.state != FAULT:
            self._to(IDLE, "idle", reason="reboot")

    # --- time --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Time passes: metrics when due, the start timeout, the offline limit."""
        now = self._monotonic()
        if self.state == WAITING and now - self._wait_since >= self.start_timeout_s:
            self._to(IDLE, "idle", reason="timeout: no start from the server")
        elif self.state == CHARGING:
            if not self.online and now - self._offline_since >= self.offline_limit_s:
                self._end_locally("offline_limit")
            elif now >= self._next_metrics_at:
                self._put(self._reading())
                self._next_metrics_at += self.metrics_interval_s
                if self._next_metrics_at <= now:  # the caller was late: do not burst
                    self._next_metrics_at = now + self.metrics_interval_s

    # --- helpers -----------------------------------------------------------------------------
    def _end_locally(self, reason):
        """Relay off first; then, as the firmware does, one more meter reading and the stop,
        both carrying the final register."""
        self.model.set_relay(False)
        session_id = self.session_id
        self._put(self._reading())
        self._end(reason=reason)
        self._put(self._session_event("stop", session_id))

    def _end(self, reason):
        session_id = self.session_id
        self.session_id = None
        self.user_name = None
        self._to(IDLE, "stopped", session_id=session_id, reason=reason, relay="off")

    def _to(self, state, event, **fields):
        self.state = state
        self._note(event, **fields)

    def _note(self, event, **fields):
        self._notify(event, fields)

    def _put(self, message):
        """Readings and session events survive a lost link (bounded); nothing else is made
        while offline."""
        self.outbox.put(message)
        if not self.online:
            self._note("queued", type=message["type"], pending=len(self.outbox))

    def _status(self) -> dict:
        state = IDLE if self.state == WAITING else self.state
        session_id = self.session_id if self.state == CHARGING else None
        return {"type": "status", "state": state, "session_id": session_id,
                "wh": self.model.register_wh}

    def _status_before(self, pending) -> dict:
        """The status to report ahead of a replay (see the module docstring)."""
        if self.state == CHARGING:
            return self._status()
        for message in pending:
            if message["type"] in DURABLE and message.get("session_id") is not None:
                first_wh = next(m["wh"] for m in pending if "wh" in m)
                return {"type": "status", "state": CHARGING,
                        "session_id": message["session_id"], "wh": first_wh}
        return self._status()

    def _reading(self) -> dict:
        r = self.model.read()
        self._last_reading_ts = int(r.ts)
        return {"type": READING, "session_id": self.session_id, "v": r.v, "a": r.a, "w": r.w,
                "wh": r.wh, "ts": int(r.ts)}

    def _put_latest_reading(self) -> None:
        """The present reading, unless one with the same whole-second `ts` already went (the
        server would ignore it as a repeat)."""
        if self.state == CHARGING and int(self.model.read().ts) > self._last_reading_ts:
            self.outbox.put(self._reading())

    def _session_event(self, kind, session_id) -> dict:
        r = self.model.read()
        return {"type": kind, "session_id": session_id, "wh": r.wh, "ts": int(r.ts)}

    def summary(self) -> dict:
        """What the `status` command prints."""
        r = self.model.read()
        return {"state": self.state, "session_id": self.session_id,
                "link": "online" if self.online else "offline", "pending": len(self.outbox),
                "a": r.a, "w": r.w, "wh": r.wh, "soc": round(self.model.soc * 100, 1)}
