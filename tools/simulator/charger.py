"""One simulated charger: the firmware's own rules driven by simulated hardware, no I/O.

`Charger` runs the firmware's `ChargerState` (charger/state.py) with times in milliseconds
of the monotonic clock (`monotonic`: the wall's, so the start timeout, the same-card window
and the offline limit run at the server's pace whatever `--speed` is; the car, the meter and
every `ts` run on the simulated clock), and executes its action bits as the firmware's `App._do`
(charger/app.py) does, in the same order: relay OFF first, then relay ON, the final meter
read, the LED (a printed `led` event), the queue (readings, `stop`, `emergency` into the
firmware's `Outbox`, each with the clock's `ts`, 0 while the clock is before 2024 as on an
ESP32 not synced yet), then the frames sent now (`nfc_scan`, `status` after the reset).
Every frame's text comes from the firmware's `messages`. `status_messages()` is the
firmware's `App.status_messages()`: a session that ended here while offline is reported as
`charging` (so the server resumes it, stores the replay and ends it for the real reason),
and the latest reading goes along only when the outbox holds no reading.

The hardware is simulated: the relay and the meter are the `ChargingModel` (read at every
`tick`, as the firmware's poll loop reads the PZEM), the card reader is `tap()`, STOP is
pressed and released by `press_stop()`, EMERGENCY latches with `press_emergency()` and
`press_reset()` is the whole reset gesture (EMERGENCY released, STOP held: the hold time is
0 here, so a script need not wait 5 s). `reboot()` loses the RAM (state, outbox) and keeps
the meter register and a latched EMERGENCY.

The link (link.py) takes the frames: `connected()` returns the status frames to send first,
`take_now()` the frames sent at once (`nfc_scan`, `status`), and the outbox the rest, which
it removes only when the server acknowledges them. Notes for the front end go through
`notify(event, fields)`: the charger events a script can wait for (`waiting`, `started`,
`stopped`, `idle`, `fault`, `refused`, `ignored`, `queued`, `replayed`, `rebooted`,
`invalid`) and `led`.
"""

import time
from collections import deque

from tools.simulator import firmware as fw

FW_VERSION = "simulator"  # `fw` in status, as the firmware reports its version

NAMES = ("idle", "waiting", "charging", "fault")  # ChargerState.state 0..3, as summary() says
IDLE, WAITING, CHARGING, FAULT = NAMES
CLOCK_SET_FROM = 1704067200  # charger/app.py: a `ts` before 2024 means the clock is not set
START_TIMEOUT_S = 10.0
SAME_CARD_S = 3.0
METER_SILENCE_S = 5.0
OFFLINE_LIMIT_S = 600.0  # the firmware ends a session after 10 min without the server
RESET_HOLD_S = 0.0  # press_reset() is the completed gesture


def _ignore(event, fields):
    pass


def _is_id(value) -> bool:
    """A session id the firmware takes (charger/app.py on_message): an int the outbox stores."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 0xFFFFFFFF


def _ms(seconds) -> int:
    return int(round(seconds * 1000))


class Charger:
    def __init__(
        self,
        station_id,
        model,
        *,
        metrics_interval_s=3.0,
        max_readings=200,
        max_events=32,
        start_timeout_s=START_TIMEOUT_S,
        offline_limit_s=OFFLINE_LIMIT_S,
        monotonic=time.monotonic,
        notify=None,
    ):
        self.station_id = station_id
        self.model = model
        self.limits = (
            _ms(metrics_interval_s),
            _ms(start_timeout_s),
            _ms(SAME_CARD_S),
            _ms(METER_SILENCE_S),
            _ms(offline_limit_s),
            _ms(RESET_HOLD_S),
        )
        self.sizes = (max_readings, max_events)
        self._monotonic = monotonic
        self._notify = notify or _ignore
        self.emergency_down = False  # the latching button: survives a reboot
        self.boots = 0  # reboots so far
        self.user_name = None
        self._pending_user = None  # the user_name of the latest `start`
        self._boot()

    def _boot(self):
        """Power-up: fresh RAM, relay off, then the first meter read."""
        self.sm = fw.ChargerState(self.limits)
        self.outbox = fw.Outbox(*self.sizes)
        self.now_frames = deque()  # texts sent at once, not queued (nfc_scan, status)
        self.last_ts = 0  # `ts` of the latest queued entry
        self.ended = None  # session ended by a queued stop/emergency, maybe still unsent
        self.meter = self.model.read()
        self.led = None
        self._run(self.sm.boot, True, self.emergency_down, self._now(), reason="boot")
        self.tick()

    # --- what the firmware's App answers its link ------------------------------------------
    @property
    def online(self) -> bool:
        return self.sm.link_up

    @property
    def state(self) -> str:
        return NAMES[self.sm.state]

    @property
    def session_id(self):
        return self.sm.session_id

    def status_messages(self) -> list:
        """The status frames sent first on every connection and after `sync_request`
        (charger/app.py's status_messages(), the same rules)."""
        sm = self.sm
        if not len(self.outbox):
            self.ended = None
        if (
            sm.state_name != "charging"
            and self.ended is not None
            and len(self.outbox) > self.outbox.unconfirmed
        ):
            return [fw.messages.status("charging", self.ended, sm.wh, FW_VERSION)]
        out = [fw.messages.status(sm.state_name, sm.session_id, sm.wh, FW_VERSION)]
        if sm.state_name == "charging" and sm.wh is not None and self.outbox.readings == 0:
            m = self.meter
            out.append(fw.messages.metrics(sm.session_id, m.v, m.a, m.w, sm.wh, self.last_ts))
        return out

    def connected(self) -> list:
        """The WebSocket is open: returns the status frames to send first; then the link is
        up and the outbox is replayed from its oldest unacknowledged entry."""
        self.outbox.rewind()  # before the status, as the firmware's link does
        texts = self.status_messages()
        self.now_frames.clear()
        self._run(self.sm.link, True, self._now())
        if len(self.outbox):
            self._note("replayed", n=len(self.outbox))
        return texts

    def disconnected(self) -> None:
        """The link is gone: what was not acknowledged goes again after the next connect;
        frames meant for this connection only (nfc_scan, status) are forgotten."""
        if not self.sm.link_up:
            return
        self.now_frames.clear()
        self.outbox.rewind()
        self._run(self.sm.link, False, self._now())
        if len(self.outbox):
            self._note("queued", pending=len(self.outbox))

    def take_now(self):
        """The next frame to send at once (nfc_scan, status), or None."""
        return self.now_frames.popleft() if self.now_frames else None

    def unsent(self) -> bool:
        """Something waits for the link: a frame to send now or an outbox entry not sent."""
        return bool(self.now_frames) or len(self.outbox) > self.outbox.unconfirmed

    def receive(self, message: dict) -> None:
        """A decoded JSON object from the server (the firmware's on_message and the
        link's answer to sync_request)."""
        self._notify("<-", message)
        kind = message.get("type")
        sid = message.get("session_id")
        if kind == "sync_request":
            if self.sm.link_up:
                self.now_frames.extend(self.status_messages())
            return
        if kind in ("connected", "auth_list"):  # no offline list here: offline taps are refused
            return
        if kind == "error":
            self._run(self.sm.server, "error", None, self._now(), reason=message.get("code"))
        elif kind == "start" and _is_id(sid):
            self._pending_user = message.get("user_name")
            self._run(self.sm.server, "start", sid, self._now())
        elif kind == "stop" and (_is_id(sid) or sid is None):
            if not self._run(self.sm.server, "stop", sid, self._now(), reason="remote_stop"):
                self._note("ignored", reason="stop for a session not charging here", session_id=sid)
        elif kind in ("start", "stop"):
            self._note("invalid", reason=f"{kind} without a valid session_id")
        else:
            self._note("invalid", reason="unknown message type")

    # --- the buttons and the card reader -----------------------------------------------------
    def tap(self, uid: str) -> None:
        state = self.sm.state
        acts = self._run(self.sm.card, uid, self._now(), nfc_uid=uid)
        if acts & fw.A_OFFLINE_TAP:
            # the firmware checks its signed offline list here (charger/offline.py); the
            # simulator keeps none, so it refuses as the firmware does an unlisted card
            self._run(
                self.sm.server, "error", None, self._now(), reason="card tap not sent: offline"
            )
        elif not acts:
            why = (
                "card tap while " + NAMES[state]
                if state in (fw.WAIT_START, fw.FAULT)
                else "card tap not sent: offline"
                if not self.sm.link_up
                else "the same card again within %g s" % SAME_CARD_S
            )
            self._note("ignored", reason=why, nfc_uid=uid)

    def press_stop(self) -> None:
        """STOP pressed and released."""
        now = self._now()
        self._run(self.sm.button, "stop", True, now, reason="stop_button")
        self._run(self.sm.button, "stop", False, now)

    def press_emergency(self) -> None:
        """EMERGENCY pressed (it latches open until press_reset()); the relay opens first."""
        if self.emergency_down:
            return
        self.emergency_down = True
        self.model.set_relay(False)
        self._run(self.sm.button, "emergency", True, self._now())

    def press_reset(self) -> None:
        """The local reset gesture: EMERGENCY released, STOP held. The only way out of fault."""
        if self.sm.state != fw.FAULT:
            self._note("ignored", reason="reset while " + self.state)
            return
        now = self._now()
        self.emergency_down = False
        self._run(self.sm.button, "emergency", False, now)
        self._run(self.sm.button, "stop", True, now)
        self.tick()
        self._run(self.sm.button, "stop", False, self._now())

    def reboot(self) -> None:
        """An ESP32 reboot: RAM is lost (session, outbox), the meter register and a latched
        EMERGENCY button are not. The caller reconnects."""
        self.model.set_relay(False)
        self.boots += 1
        self._note("rebooted", wh=self.model.register_wh)
        self._boot()

    # --- time --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Time passes: the meter is read (the firmware's poll loop) and the state machine's
        clock runs (metrics when due, the start timeout, the offline limit, the reset)."""
        self.meter = self.model.read()
        self._run(self.sm.tick, self._now(), self.meter.wh)

    # --- executing the state machine's actions (charger/app.py's _do) ------------------------
    def _run(self, event, *args, reason=None, nfc_uid=None) -> int:
        """Hand the state machine one event (`event(*args)`, one of its methods), execute
        the actions it returns, note what changed; returns the actions."""
        before, before_sid = self.sm.state, self.sm.session_id
        acts = event(*args)
        self._do(acts)
        self._transition(before, before_sid, acts, reason, nfc_uid)
        return acts

    def _do(self, acts) -> None:
        sm = self.sm
        if acts & fw.A_RELAY_OFF:
            self.model.set_relay(False)
        if acts & fw.A_RELAY_ON and not self.emergency_down:  # never with EMERGENCY open
            self.model.plug_new_car()  # each session charges a new car
            self.model.set_relay(True)
        if acts & fw.A_FINAL_READING:  # the relay is off: the stop carries this register
            self.meter = self.model.read()
            sm.wh = self.meter.wh
        if acts & fw.A_LED and sm.led != self.led:
            self.led = sm.led
            self._note("led", pattern=fw.LED_NAMES[sm.led])
        if acts & fw.A_FLASH_ERROR:
            self._note("led", pattern="error", once=True)
        queue = acts & (fw.A_QUEUE_READING | fw.A_QUEUE_STOP | fw.A_QUEUE_EMERGENCY)
        if queue:
            ts = int(self.model.now())
            self.last_ts = ts if ts >= CLOCK_SET_FROM else 0
        if acts & fw.A_QUEUE_READING:
            m = self.meter
            if not self.outbox.put_reading(sm.session_id, m.v, m.a, m.w, sm.wh, self.last_ts):
                self._note("invalid", reason="reading refused by the outbox")
            else:
                self._queued("metrics")
        if acts & (fw.A_QUEUE_STOP | fw.A_QUEUE_EMERGENCY):
            kind = (
                "emergency"
                if acts & fw.A_QUEUE_EMERGENCY
                else sm.note
                if acts & fw.A_STOP_REASON
                else "stop"
            )
            try:
                queued = self.outbox.put_event(kind, sm.event_sid, sm.wh, self.last_ts)
            except ValueError as exc:  # e.g. a start's session_id beyond uint32
                self._note("invalid", reason=str(exc))
            else:
                if queued:
                    self._queued("emergency" if kind == "emergency" else "stop")
                else:
                    self._note(
                        "lost", type=kind, session_id=sm.event_sid, reason="outbox events full"
                    )
            if sm.event_sid is not None:
                self.ended = sm.event_sid
        if sm.link_up:  # sent now, not queued (offline, the state machine sends nothing)
            if acts & fw.A_SEND_SCAN:
                self.now_frames.append(fw.messages.nfc_scan(sm.uid))
            if acts & fw.A_SEND_STATUS:
                self.now_frames.append(self.status_messages()[0])

    def _transition(self, before, before_sid, acts, reason, nfc_uid) -> None:
        """The event line for what the actions changed."""
        sm = self.sm
        if reason is None and acts & fw.A_LOG:
            reason = sm.note
        after = sm.state
        if after == before:
            if acts & fw.A_QUEUE_STOP:  # a stop without a state change: a start refused
                self._note("refused", session_id=sm.event_sid, state=NAMES[after])
            elif acts & fw.A_LOG and nfc_uid is not None:
                self._note("ignored", reason=reason, nfc_uid=nfc_uid)
            return
        if after == fw.WAIT_START:
            self._note("waiting", nfc_uid=nfc_uid)
        elif after == fw.CHARGING:
            self.user_name = self._pending_user
            self._note(
                "started",
                session_id=sm.session_id,
                user_name=self.user_name,
                relay="on" if self.model.relay_on else "off",
            )
        elif after == fw.FAULT:
            self.user_name = None
            self._note("fault", session_id=before_sid, relay="off")
        elif before == fw.CHARGING:
            self.user_name = None
            self._note("stopped", session_id=before_sid, reason=reason, relay="off")
        else:
            self._note("idle", reason=reason)

    # --- helpers -----------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self._monotonic() * 1000)

    def _queued(self, kind) -> None:
        if not self.sm.link_up:
            self._note("queued", type=kind, pending=len(self.outbox))

    def _note(self, event, **fields):
        self._notify(event, fields)

    def summary(self) -> dict:
        """What the `status` command prints."""
        r = self.model.read()
        return {
            "state": self.state,
            "session_id": self.sm.session_id,
            "link": "online" if self.sm.link_up else "offline",
            "pending": len(self.outbox),
            "dropped": self.outbox.dropped,
            "a": r.a,
            "w": r.w,
            "wh": r.wh,
            "soc": round(self.model.soc * 100, 1),
        }
