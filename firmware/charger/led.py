"""The status LED: one blink pattern per charger condition, stepped by an asyncio task.

A pattern is a tuple of durations in ms, alternating ON and OFF, repeated. Indices match
`state.LED_*`; the README's "LED patterns" table describes them. The error pattern shows for
`ERROR_SHOW_MS`, then the LED returns to the pattern it showed before. `step(now)` is called
by the app's poll loop, which sleeps `due_in(now)` at most; it allocates nothing (it compares
tick counts).
"""

import asyncio
import time

PATTERNS = (
    (100, 2900),                      # 0 idle, online: a short blink every 3 s
    (150, 150),                       # 1 waiting for the server after a tap: fast blink
    (1000, 0),                        # 2 charging: steady on
    (100, 100, 100, 100, 100, 1500),  # 3 error (card refused, no answer): three flashes
    (100, 100),                       # 4 EMERGENCY fault: fast flicker until reset
    (100, 200, 100, 2600),            # 5 idle, offline: double blink every 3 s
    (1500, 500),                      # 6 NFC reader missing: long on, short off
    (800, 200, 100, 200),             # 7 meter failure: long-short
)
NAMES = ("idle", "wait", "charging", "error", "fault", "offline", "reader_fault", "meter_fault")
ERROR = 3
ERROR_SHOW_MS = 3000


class Led:
    def __init__(self, pin):
        pin.init(pin.OUT, value=0)
        self._pin = pin
        self.pattern = 0
        self._after_error = 0
        self._step = 0
        self._step_at = time.ticks_ms()
        self._pattern_at = self._step_at

    def show(self, pattern):
        """Switch pattern now (the error pattern falls back to the previous one)."""
        if pattern == self.pattern:
            return
        if pattern == ERROR:
            self._after_error = self.pattern
        elif self.pattern == ERROR:
            self._after_error = pattern
            return  # let the error finish showing, then go to `pattern`
        self._start(pattern, time.ticks_ms())

    def _start(self, pattern, now):
        self.pattern = pattern
        self._step = 0
        self._step_at = now
        self._pattern_at = now
        self._pin.value(1)

    def step(self, now):
        """Advance the pattern to time `now` (ms ticks)."""
        if self.pattern == ERROR and time.ticks_diff(now, self._pattern_at) >= ERROR_SHOW_MS:
            self._start(self._after_error, now)
            return
        steps = PATTERNS[self.pattern]
        if time.ticks_diff(now, self._step_at) < steps[self._step]:
            return
        self._step_at = now
        for _ in range(len(steps)):
            self._step = (self._step + 1) % len(steps)
            if steps[self._step]:
                break
        self._pin.value(1 - (self._step & 1))

    def due_in(self, now):
        """Milliseconds until `step()` has something to do (how long a poll loop may sleep)."""
        left = PATTERNS[self.pattern][self._step] - time.ticks_diff(now, self._step_at)
        if self.pattern == ERROR:
            shown = ERROR_SHOW_MS - time.ticks_diff(now, self._pattern_at)
            if shown < left:
                left = shown
        return left

    async def run(self):
        """Step on its own (when no other loop calls `step()`)."""
        while True:
            self.step(time.ticks_ms())
            await asyncio.sleep_ms(50)
