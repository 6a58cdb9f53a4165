"""Debounced push buttons, polled; the EMERGENCY input also has an edge interrupt.

`Button(pin, level)`: `level` is the pin level of a pressed button: 0 for a normally-open
button to ground with a pull-up (STOP), 1 for a normally-closed button to ground with a pull-up
(EMERGENCY: pressing it, or a cut wire, opens the circuit and the pull-up raises the pin).
`poll(now_ms)` returns +1 on a press held for _DEBOUNCE_MS, -1 on a release, 0 otherwise.
`pressed` is the debounced state; `settling` is True while a level change is seen but not yet
confirmed (the poll loop comes back within the debounce time). Both are plain attributes
updated by `poll()` (no property: RAM). `on_press_irq(handler)` installs a soft IRQ on the
press edge (no debounce: cutting the relay must not wait).
"""

from micropython import const
import time

_DEBOUNCE_MS = const(30)


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
