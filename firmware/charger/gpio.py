"""The charger's plain GPIO devices: the contactor relay, the push buttons, the status LED.

One module for the three (docs/architecture.md, "Firmware memory rules"); the bus drivers are
mfrc522.py (SPI) and pzem.py (UART). State is in plain attributes.

`Relay(pin, active_high)`: the pin is set OFF in the same call that makes it an output (no
glitch at boot); `on()`, `off()`, `is_on`. `off()` allocates nothing (callable from the
EMERGENCY interrupt).

`Button(pin, level)`: `level` is the pin level of a pressed button: 0 for a normally-open
button to ground with a pull-up (STOP), 1 for a normally-closed button to ground with a pull-up
(EMERGENCY: pressing it, or a cut wire, opens the circuit and the pull-up raises the pin).
`poll(now_ms)` returns +1 on a press held for _DEBOUNCE_MS, -1 on a release, 0 otherwise.
`pressed` is the debounced state; `settling` is True while a level change is seen but not yet
confirmed (the poll loop comes back within the debounce time). `on_press_irq(handler)`
installs a soft IRQ on the press edge (no debounce: cutting the relay must not wait).

`Led(pin)`: one blink pattern per charger condition, numbered as `state.LED_*` (the README's
"LED patterns" table): 0 idle (online), 1 wait (for the server after a tap), 2 charging,
3 error, 4 fault (EMERGENCY), 5 offline, 6 reader_fault, 7 meter_fault. `show(pattern)`; the
error pattern plays once (three flashes and a pause, 3 s), then the LED returns to the pattern
it showed before (or to the one asked for meanwhile). `PATTERNS` is one bytes table (one
object instead of nine tuples): six slots per pattern, durations in units of 50 ms,
alternating ON and OFF; a 0 slot is skipped. `step(now)` is called by the app's poll loop,
which sleeps `due_in(now)` at most; it allocates nothing (it compares tick counts). `run()`
steps on its own when no poll loop runs (the config-error fault).
"""

import asyncio
import time
from micropython import const

_DEBOUNCE_MS = const(30)
_ERROR = const(3)  # the LED's error pattern

PATTERNS = (
    b"\x02\x3a\x00\x00\x00\x00"  # 0 idle, online: 100 ms on, 2900 off (a short blink every 3 s)
    b"\x03\x03\x00\x00\x00\x00"  # 1 waiting for the server: 150 on, 150 off
    b"\x14\x00\x00\x00\x00\x00"  # 2 charging: steady on
    b"\x02\x02\x02\x02\x02\x32"  # 3 error: three 100 ms flashes, 2500 off, then back (once)
    b"\x02\x02\x00\x00\x00\x00"  # 4 EMERGENCY fault: 100 on, 100 off until reset
    b"\x02\x04\x02\x34\x00\x00"  # 5 idle, offline: 100 on, 200 off, 100 on, 2600 off
    b"\x1e\x0a\x00\x00\x00\x00"  # 6 NFC reader missing: 1500 on, 500 off
    b"\x10\x04\x02\x04\x00\x00"  # 7 meter failure: 800 on, 200 off, 100 on, 200 off
)


class Relay:
    def __init__(self, pin, active_high=True):
        self.pin = pin
        self.level = 1 if active_high else 0  # the pin level that closes the contactor
        pin.init(pin.OUT, value=1 - self.level)
        self.is_on = False

    def on(self):
        self.pin.value(self.level)
        self.is_on = True

    def off(self):
        self.pin.value(1 - self.level)
        self.is_on = False


class Button:
    def __init__(self, pin, level=0):
        pin.init(pin.IN, pin.PULL_UP)
        self.pin = pin
        self.level = level
        self.pressed = self.raw = pin.value() == level  # raw: the level seen at the last poll
        self.since = time.ticks_ms()  # when `raw` last changed
        self.settling = False

    def poll(self, now):
        raw = self.pin.value() == self.level
        edge = 0
        if raw != self.raw:
            self.raw = raw
            self.since = now
        elif raw != self.pressed and time.ticks_diff(now, self.since) >= _DEBOUNCE_MS:
            self.pressed = raw
            edge = 1 if raw else -1
        self.settling = raw != self.pressed
        return edge

    def on_press_irq(self, handler):
        pin = self.pin
        pin.irq(handler=handler, trigger=pin.IRQ_RISING if self.level else pin.IRQ_FALLING)


class Led:
    def __init__(self, pin):
        pin.init(pin.OUT, value=0)
        self.pin = pin
        self.pattern = -1
        self.after = 0  # the pattern to show once the error pattern is done
        self.show(0)

    def show(self, pattern):
        """Switch pattern now (the error pattern falls back to the previous one)."""
        if pattern == self.pattern:
            return
        if pattern == _ERROR:
            self.after = self.pattern
        elif self.pattern == _ERROR:
            self.after = pattern
            return  # let the error finish showing, then go to `pattern`
        self.pattern = pattern
        self.n = 0  # the slot playing: even ON, odd OFF
        self.at = time.ticks_ms()  # when the slot started
        self.pin.value(1)

    def step(self, now):
        """Advance the pattern to time `now` (ms ticks)."""
        first = self.pattern * 6
        n = self.n
        if time.ticks_diff(now, self.at) < PATTERNS[first + n] * 50:
            return
        for _ in range(6):
            n = (n + 1) % 6
            if PATTERNS[first + n]:
                break
        if n == 0 and self.pattern == _ERROR:
            self.pattern = self.after  # played once: back, from its first (ON) slot
        self.n = n
        self.at = now
        self.pin.value(1 - (n & 1))

    def due_in(self, now):
        """Milliseconds until `step()` has something to do (how long a poll loop may sleep)."""
        return PATTERNS[self.pattern * 6 + self.n] * 50 - time.ticks_diff(now, self.at)

    async def run(self):
        """Step on its own (when no other loop calls `step()`)."""
        while True:
            self.step(time.ticks_ms())
            await asyncio.sleep_ms(50)
