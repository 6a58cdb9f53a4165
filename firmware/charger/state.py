"""The pure charger state machine: events in, actions out, no I/O.

States: idle (0), waiting for `start` after a reported card (1), charging (2), fault (3, after
EMERGENCY, until the local reset gesture). `state_name` is what `status` reports ("idle" also
while waiting). Events: `boot`, `card`, `server` (start, stop, error), `button` (stop,
emergency), `link` (up/down), `tick` (time passes, with the meter's energy register when it
was read). Every event returns a bit mask of actions; the data an action needs lives on the
machine (`session_id`, `event_sid`, `uid`, `led`, `note`, `wh`). A bit mask
allocates nothing, so the 1 s meter loop and the 3 s metrics loop run without garbage. The
app executes the bits in this order: relay OFF first, then relay ON, meter read, LED, log,
queue, messages:

    1 relay off      2 relay on       4 final meter read (relay already off) before the stop
    8 show `led`     16 send nfc_scan(`uid`)
    32 queue the latest reading of `session_id`    64 queue stop(`event_sid`, `wh`)
    128 queue emergency(`event_sid`, `wh`)          256 send the status messages (after reset)
    512 log `note`    1024 flash the error pattern once, then back to `led`
    2048 the queued stop carries `note` as its `reason`: the charger ended the session for a
         fault (`meter_failure`, `offline_limit`), not for the STOP button
    4096 offline tap: the link is down and a card was read (now waiting): the app checks
         its signed offline list (charger/offline.py) and answers with `server("start", L)`
         under a local session id L, or `server("error")`

`led` is an index into gpio.PATTERNS: 0 idle, 1 wait, 2 charging, 4 fault, 5 offline,
6 reader fault, 7 meter fault: the pattern of the charger's condition. The error pattern (3)
is never a condition: it is flashed once over `led` (action 1024), so after a refused card the
LED goes back to the idle pattern, not to the waiting blink it showed before the refusal.

Compact on purpose (docs/architecture.md, "Firmware memory rules"): the numbers above are
private `const()`s, every timestamp and time limit lives in one list `t` (one attribute instead of
thirteen), and a released button is a timestamp of -1 (tick counts are never negative).
Times are milliseconds from a monotonic tick counter (`time.ticks_ms()` on the board, plain
integers in tests); differences go through `ticks_diff` so the counter may wrap.
Runs unchanged under CPython and MicroPython.
"""

try:
    from micropython import const
    from time import ticks_add, ticks_diff
except ImportError:  # CPython: plain integers (no fallback functions: each costs RAM here)
    const = int
    ticks_add = int.__add__
    ticks_diff = int.__sub__

_IDLE = const(0)
_WAIT_START = const(1)
_CHARGING = const(2)
_FAULT = const(3)

_A_RELAY_OFF = const(1)
_A_RELAY_ON = const(2)
_A_FINAL_READING = const(4)
_A_LED = const(8)
_A_SEND_SCAN = const(16)
_A_QUEUE_READING = const(32)
_A_QUEUE_STOP = const(64)
_A_QUEUE_EMERGENCY = const(128)
_A_SEND_STATUS = const(256)
_A_LOG = const(512)
_A_FLASH_ERROR = const(1024)
_A_STOP_REASON = const(2048)
_A_OFFLINE_TAP = const(4096)

_LED_IDLE = const(0)
_LED_WAIT = const(1)
_LED_CHARGING = const(2)
_LED_ERROR = const(3)
_LED_FAULT = const(4)
_LED_OFFLINE = const(5)
_LED_READER_FAULT = const(6)
_LED_METER_FAULT = const(7)

# indices into `t`: the limits (from the constructor), then the timestamps
_METRICS_MS = const(0)
_START_TIMEOUT_MS = const(1)
_SAME_CARD_MS = const(2)
_METER_SILENCE_MS = const(3)
_OFFLINE_LIMIT_MS = const(4)
_RESET_HOLD_MS = const(5)
_UID_AT = const(6)  # the last card read
_WAIT_SINCE = const(7)  # the card was reported
_METER_OK_AT = const(8)  # the last good meter reading
_METRICS_AT = const(9)  # the next reading to queue
_OFFLINE_SINCE = const(10)
_STOP_AT = const(11)  # STOP pressed; -1 while released
_EMERGENCY_UP_AT = const(12)  # EMERGENCY closed again; -1 while open


class ChargerState:
    """The charger's rules. `t` (the limits): metrics interval, start timeout, same card, meter
    silence, offline limit, reset hold, in milliseconds."""

    def __init__(self, t=(3000, 10000, 3000, 5000, 600000, 5000)):
        self.t = list(t) + [0, 0, 0, 0, 0, -1, 0]
        self.state = _IDLE
        self.state_name = "idle"
        self.session_id = None
        self.event_sid = None  # the session a queued stop/emergency is about
        self.uid = None  # the last card read (the one to report)
        self.led = _LED_IDLE
        self.note = ""
        self.wh = None  # the meter's energy register at the latest good reading
        self.reader_ok = True
        self.link_up = False

    def _go(self, state, led, end=None):
        # Every state change: the state, its `status` name, the LED (idle refined by the
        # reader and the link). `end`: why the running session ends here (relay off, a stop
        # queued, after a final reading unless the meter is the reason). Returns the actions.
        if end:
            self.event_sid = self.session_id
            self.note = end
        self.state = state
        self.state_name = ("idle", "idle", "charging", "fault")[state]
        if state != _CHARGING:
            self.session_id = None
        flash = 0
        if led == _LED_ERROR:  # flashed once over the new state's own pattern
            flash = _A_FLASH_ERROR
            led = _LED_IDLE
        if state == _IDLE and led == _LED_IDLE:
            led = (
                _LED_READER_FAULT
                if not self.reader_ok
                else (_LED_IDLE if self.link_up else _LED_OFFLINE)
            )
        self.led = led
        if not end:
            return _A_LED | flash
        if end == "meter_failure":
            return _A_RELAY_OFF | _A_QUEUE_STOP | _A_LOG | _A_LED
        return _A_RELAY_OFF | _A_FINAL_READING | _A_QUEUE_STOP | _A_LOG | _A_LED

    # --- events ----------------------------------------------------------------------------
    def boot(self, reader_ok, down, now):
        """Power-up: relay off; a missing reader or EMERGENCY pressed (`down`, open) is a
        visible fault."""
        self.reader_ok = reader_ok
        self.t[_EMERGENCY_UP_AT] = -1 if down else now
        self.note = (
            "EMERGENCY" if down else None if reader_ok else "NFC reader not found: check wiring"
        )
        self._go(_FAULT if down else _IDLE, _LED_FAULT if down else _LED_IDLE)
        return _A_RELAY_OFF | _A_LED | (_A_LOG if self.note else 0)

    def card(self, uid, now):
        """A card was read. The same card again within the same-card time is ignored (and
        extends that quiet time). Offline, the app decides at once from its signed list
        (action 4096; an unlisted card is refused and the LED shows it). (A tap sent just as
        the link drops ends with the start timeout.)"""
        t = self.t
        same = uid == self.uid and ticks_diff(now, t[_UID_AT]) < t[_SAME_CARD_MS]
        t[_UID_AT] = now
        self.uid = uid
        if same:
            return 0
        if self.state == _IDLE:
            t[_WAIT_SINCE] = now
            return (_A_SEND_SCAN if self.link_up else _A_OFFLINE_TAP) | self._go(
                _WAIT_START, _LED_WAIT
            )
        if self.state == _CHARGING and self.link_up:
            # the server decides (the same card on its own station stops the session)
            return _A_SEND_SCAN
        return 0

    def server(self, kind, session_id, now):
        """A message from the server: `start`, `stop` (session_id may be None), `error`, or
        `end`: the server accepted this offline-started session but its card is disabled now,
        so the charger ends it as for STOP (its stop follows the session's readings)."""
        st = self.state
        if kind == "end":
            if st == _CHARGING and session_id == self.session_id:
                return self._go(_IDLE, _LED_IDLE, "card_disabled")
            return 0
        if kind == "start":
            if st == _WAIT_START:
                t = self.t
                self.session_id = session_id
                t[_METER_OK_AT] = now
                t[_OFFLINE_SINCE] = now
                t[_METRICS_AT] = now
                if self.wh is None:
                    return _A_RELAY_ON | self._go(_CHARGING, _LED_CHARGING)
                # the meter as it was before the relay closed: the server's energy baseline
                t[_METRICS_AT] = ticks_add(now, t[_METRICS_MS])
                return _A_RELAY_ON | _A_QUEUE_READING | self._go(_CHARGING, _LED_CHARGING)
            if st == _CHARGING and session_id == self.session_id:
                return 0
            # a late or unexpected start: refuse it so the server does not bill a dead session
            self.event_sid = session_id
            self.note = "unexpected start refused"
            return _A_QUEUE_STOP | _A_LOG
        if kind == "stop":
            # the server already ended the session: relay off, idle
            if st == _CHARGING and (session_id is None or session_id == self.session_id):
                return _A_RELAY_OFF | self._go(_IDLE, _LED_IDLE)
            return 0
        # `error`: a pending tap is over; the LED shows the error (not over the fault's)
        if st == _WAIT_START:
            return self._go(_IDLE, _LED_ERROR)
        if st == _FAULT:
            return 0
        return _A_FLASH_ERROR

    def button(self, kind, down, now):
        """ "stop" or "emergency" pressed (`down` True) or released. EMERGENCY pressed means
        opened: the relay is already off (the interrupt or the poll loop did it)."""
        t = self.t
        st = self.state
        if kind == "stop":
            t[_STOP_AT] = now if down else -1
            if down and st == _CHARGING:
                return self._go(_IDLE, _LED_IDLE, "stop_button")
            if down and st == _WAIT_START:
                return self._go(_IDLE, _LED_IDLE)
            return 0
        t[_EMERGENCY_UP_AT] = -1 if down else now
        if not down:
            return 0
        if st == _FAULT:
            return _A_RELAY_OFF
        self.event_sid = self.session_id
        self.note = "EMERGENCY"
        return _A_RELAY_OFF | _A_QUEUE_EMERGENCY | _A_LOG | self._go(_FAULT, _LED_FAULT)

    def link(self, up, now):
        """The link to the server went up or down (also called to refresh the idle LED)."""
        self.link_up = up
        if not up:
            self.t[_OFFLINE_SINCE] = now
        if self.state == _IDLE:
            return self._go(_IDLE, _LED_IDLE)
        return 0

    def tick(self, now, wh=None):
        """Time passes: timeouts, meter silence, offline limit, the reset gesture. `wh`: the
        energy register of a good meter reading made now (the app reads the volts, amps and
        watts from the meter when it queues the reading), None when the meter was not read."""
        st = self.state
        t = self.t
        if wh is not None:
            self.wh = wh
            t[_METER_OK_AT] = now
            if st == _CHARGING and ticks_diff(now, t[_METRICS_AT]) >= 0:
                t[_METRICS_AT] = ticks_add(now, t[_METRICS_MS])
                return _A_QUEUE_READING  # the limits wait for the next tick
        if st == _WAIT_START:
            if ticks_diff(now, t[_WAIT_SINCE]) >= t[_START_TIMEOUT_MS]:
                self.note = "no start from the server"
                return _A_LOG | self._go(_IDLE, _LED_ERROR)
        elif st == _CHARGING:
            # a fault's stop says why (2048): `note`, the stop's `reason`. The bit goes after
            # the call: before it, it would take a 12th frame slot (a heap frame per tick)
            if ticks_diff(now, t[_METER_OK_AT]) >= t[_METER_SILENCE_MS]:
                return self._go(_IDLE, _LED_METER_FAULT, "meter_failure") | _A_STOP_REASON
            if not self.link_up and ticks_diff(now, t[_OFFLINE_SINCE]) >= t[_OFFLINE_LIMIT_MS]:
                return self._go(_IDLE, _LED_IDLE, "offline_limit") | _A_STOP_REASON
        elif st == _FAULT and t[_STOP_AT] >= 0 and t[_EMERGENCY_UP_AT] >= 0:
            # STOP held for the reset time, counted from when both it and EMERGENCY are right
            held_from = t[_STOP_AT]
            if ticks_diff(t[_EMERGENCY_UP_AT], held_from) > 0:
                held_from = t[_EMERGENCY_UP_AT]
            if ticks_diff(now, held_from) >= t[_RESET_HOLD_MS]:
                self.note = "reset"
                return _A_SEND_STATUS | _A_LOG | self._go(_IDLE, _LED_IDLE)
        return 0
