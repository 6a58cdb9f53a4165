"""The pure charger state machine: events in, actions out, no I/O.

States: IDLE, WAIT_START (a card was reported, waiting for `start`), CHARGING, FAULT
(after EMERGENCY, until the local reset gesture). Every event method returns a bit mask of
actions (`A_*`); the data an action needs lives on the machine (`session_id`, `event_sid`,
`uid`, `led`, the latest reading). A bit mask allocates nothing, so the 1 s meter loop and
the 3 s metrics loop run without garbage. The app executes the bits in a fixed order:
relay OFF first, then relay ON, meter read, LED, messages.

Times are milliseconds from a monotonic tick counter (`time.ticks_ms()` on the board, plain
integers in tests); differences go through `ticks_diff` so the counter may wrap.
Runs unchanged under CPython and MicroPython.
"""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from time import ticks_add, ticks_diff
except ImportError:  # CPython
    def ticks_add(a, b):
        return a + b

    def ticks_diff(a, b):
        return a - b

IDLE = const(0)
WAIT_START = const(1)
CHARGING = const(2)
FAULT = const(3)
STATE_NAMES = ("idle", "idle", "charging", "fault")  # what `status` reports per state

# actions (bits), executed by the app in this order
A_RELAY_OFF = const(1)
A_RELAY_ON = const(2)
A_FINAL_READING = const(4)    # read the meter once more (relay already off) before the stop
A_LED = const(8)              # show `led`
A_SEND_SCAN = const(16)       # send nfc_scan(`uid`) now; call `scan_not_sent()` if offline
A_QUEUE_READING = const(32)   # put the latest reading of `session_id` into the outbox
A_QUEUE_STOP = const(64)      # put stop(`event_sid`, `wh`) into the outbox
A_QUEUE_EMERGENCY = const(128)  # put emergency(`event_sid`, `wh`) into the outbox
A_SEND_STATUS = const(256)    # send the status messages now (after the local reset)
A_LOG = const(512)            # log `note`

# LED patterns (indices into led.PATTERNS)
LED_IDLE = const(0)
LED_WAIT = const(1)
LED_CHARGING = const(2)
LED_ERROR = const(3)
LED_FAULT = const(4)
LED_OFFLINE = const(5)
LED_READER_FAULT = const(6)
LED_METER_FAULT = const(7)

# stop reasons (`stop_reason`, for the log and the LED)
STOP_BUTTON = "stop_button"
STOP_REMOTE = "remote_stop"
STOP_METER = "meter_failure"
STOP_OFFLINE = "offline_limit"


class ChargerState:
    """The charger's rules. Configure with intervals in milliseconds."""

    def __init__(self, metrics_interval_ms=3000, start_timeout_ms=10000, same_card_ms=3000,
                 meter_silence_ms=5000, offline_limit_ms=600000, reset_hold_ms=5000):
        self.metrics_interval_ms = metrics_interval_ms
        self.start_timeout_ms = start_timeout_ms
        self.same_card_ms = same_card_ms
        self.meter_silence_ms = meter_silence_ms
        self.offline_limit_ms = offline_limit_ms
        self.reset_hold_ms = reset_hold_ms
        self.state = IDLE
        self.session_id = None
        self.event_sid = None      # the session a queued stop/emergency is about
        self.uid = None            # the card to report
        self.led = LED_IDLE
        self.note = ""
        self.stop_reason = None
        self.reader_ok = True
        self.link_up = False
        # latest reading
        self.v = 0.0
        self.a = 0.0
        self.w = 0.0
        self.wh = None
        self.have_reading = False
        self._last_uid = None
        self._last_uid_at = 0
        self._wait_since = 0
        self._meter_ok_at = 0
        self._next_metrics_at = 0
        self._offline_since = 0
        self._stop_down = False
        self._stop_down_at = 0
        self._emergency_down = False
        self._emergency_up_at = 0

    # --- helpers ---------------------------------------------------------------------------
    @property
    def state_name(self):
        return STATE_NAMES[self.state]

    def _idle_led(self):
        if not self.reader_ok:
            return LED_READER_FAULT
        return LED_IDLE if self.link_up else LED_OFFLINE

    def _to_idle(self):
        self.state = IDLE
        self.session_id = None
        self.led = self._idle_led()
        return A_LED

    def _end_session(self, reason, now):
        """Local end of the running session: relay off, final reading, stop queued."""
        self.event_sid = self.session_id
        self.stop_reason = reason
        self.note = reason
        acts = A_RELAY_OFF | A_QUEUE_STOP | A_LOG | self._to_idle()
        if reason != STOP_METER:
            acts |= A_FINAL_READING
        else:
            self.led = LED_METER_FAULT
        return acts

    # --- events ----------------------------------------------------------------------------
    def boot(self, reader_ok, emergency_down, now):
        """Power-up: relay off; a missing reader or a pressed EMERGENCY is a visible fault."""
        self.reader_ok = reader_ok
        self._emergency_down = emergency_down
        self._emergency_up_at = now
        acts = A_RELAY_OFF | A_LED
        if emergency_down:
            self.state = FAULT
            self.led = LED_FAULT
            self.note = "emergency button open at boot"
            return acts | A_LOG
        self.led = self._idle_led()
        if not reader_ok:
            self.note = "NFC reader not found (VersionReg 0x00/0xFF): check wiring"
            acts |= A_LOG
        return acts

    def card(self, uid, now):
        """A card was read. The same card within `same_card_ms` is ignored."""
        if uid == self._last_uid and ticks_diff(now, self._last_uid_at) < self.same_card_ms:
            self._last_uid_at = now
            return 0
        self._last_uid = uid
        self._last_uid_at = now
        if self.state == IDLE:
            self.uid = uid
            self.state = WAIT_START
            self._wait_since = now
            self.led = LED_WAIT
            return A_SEND_SCAN | A_LED
        if self.state == CHARGING:
            # the server decides (the same card on its own station stops the session)
            self.uid = uid
            return A_SEND_SCAN
        return 0

    def scan_not_sent(self, now):
        """The link was down: the tap could not be reported."""
        if self.state == WAIT_START:
            self._to_idle()
            self.led = LED_ERROR
            self.note = "offline: card tap not sent"
            return A_LED | A_LOG
        return 0

    def start(self, session_id, now):
        """`start` from the server."""
        if self.state == WAIT_START:
            self.state = CHARGING
            self.session_id = session_id
            self._meter_ok_at = now
            self._next_metrics_at = now
            self._offline_since = now
            self.stop_reason = None
            self.led = LED_CHARGING
            if self.have_reading:
                # the meter as it was before the relay closed: the server's energy baseline
                self._next_metrics_at = ticks_add(now, self.metrics_interval_ms)
                return A_RELAY_ON | A_LED | A_QUEUE_READING
            return A_RELAY_ON | A_LED
        if self.state == CHARGING and session_id == self.session_id:
            return 0
        # a late or unexpected start: refuse it so the server does not bill a dead session
        self.event_sid = session_id
        self.note = "unexpected start refused"
        return A_QUEUE_STOP | A_LOG

    def remote_stop(self, session_id, now):
        """`stop` from the server: relay off, idle (the server already ended the session)."""
        if self.state == CHARGING and (session_id is None or session_id == self.session_id):
            self.stop_reason = STOP_REMOTE
            return A_RELAY_OFF | self._to_idle()
        return 0

    def error(self, now):
        """`error` from the server: show it; a pending tap is over."""
        if self.state == WAIT_START:
            self._to_idle()
        if self.state == FAULT:
            return 0
        self.led = LED_ERROR
        return A_LED

    def stop_button(self, down, now):
        """STOP pressed (down=True) or released."""
        self._stop_down = down
        if not down:
            return 0
        self._stop_down_at = now
        if self.state == CHARGING:
            return self._end_session(STOP_BUTTON, now)
        if self.state == WAIT_START:
            return self._to_idle()
        return 0

    def emergency(self, down, now):
        """EMERGENCY opened (down=True; the relay is already off) or closed again."""
        self._emergency_down = down
        if not down:
            self._emergency_up_at = now
            return 0
        if self.state == FAULT:
            return A_RELAY_OFF
        self.event_sid = self.session_id
        self.session_id = None
        self.state = FAULT
        self.led = LED_FAULT
        self.note = "EMERGENCY"
        return A_RELAY_OFF | A_QUEUE_EMERGENCY | A_LED | A_LOG

    def meter_reading(self, v, a, w, wh, now):
        """A good meter reading."""
        self.v = v
        self.a = a
        self.w = w
        self.wh = wh
        self.have_reading = True
        self._meter_ok_at = now
        if self.state == CHARGING and ticks_diff(now, self._next_metrics_at) >= 0:
            self._next_metrics_at = ticks_add(now, self.metrics_interval_ms)
            return A_QUEUE_READING
        return 0

    def link(self, up, now):
        """The link to the server went up or down."""
        self.link_up = up
        if not up:
            self._offline_since = now
        if self.state == IDLE:
            self.led = self._idle_led()
            return A_LED
        return 0

    def tick(self, now):
        """Time passes: timeouts, meter silence, offline limit, the reset gesture."""
        st = self.state
        if st == WAIT_START:
            if ticks_diff(now, self._wait_since) >= self.start_timeout_ms:
                self._to_idle()
                self.led = LED_ERROR
                self.note = "no start from the server"
                return A_LED | A_LOG
        elif st == CHARGING:
            if ticks_diff(now, self._meter_ok_at) >= self.meter_silence_ms:
                return self._end_session(STOP_METER, now)
            if (not self.link_up
                    and ticks_diff(now, self._offline_since) >= self.offline_limit_ms):
                return self._end_session(STOP_OFFLINE, now)
        elif st == FAULT:
            if self._stop_down and not self._emergency_down:
                held_from = self._stop_down_at
                if ticks_diff(self._emergency_up_at, held_from) > 0:
                    held_from = self._emergency_up_at
                if ticks_diff(now, held_from) >= self.reset_hold_ms:
                    self._to_idle()
                    self.note = "reset"
                    return A_LED | A_SEND_STATUS | A_LOG
        return 0
