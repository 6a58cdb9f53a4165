"""Debounced push buttons, polled; the EMERGENCY input also has an edge interrupt.

`Button.poll(now_ms)` returns +1 on a debounced press, -1 on a release, 0 otherwise.
`pressed_level` is the pin level of a pressed button: 0 for a normally-open button to ground
with a pull-up (STOP), 1 for a normally-closed button to ground with a pull-up (EMERGENCY:
pressing it, or a cut wire, opens the circuit and the pull-up raises the pin).
`Button.on_press_irq(handler)` installs a soft IRQ on the press edge (no debounce: cutting
the relay must not wait).
"""

import time


class Button:
    def __init__(self, pin, pressed_level=0, debounce_ms=30):
        pin.init(pin.IN, pin.PULL_UP)
        self.pin = pin
        self.pressed_level = pressed_level
        self.debounce_ms = debounce_ms
        self.pressed = pin.value() == pressed_level
        self._raw = self.pressed
        self._since = time.ticks_ms()

    def poll(self, now):
        raw = self.pin.value() == self.pressed_level
        if raw != self._raw:
            self._raw = raw
            self._since = now
            return 0
        if raw != self.pressed and time.ticks_diff(now, self._since) >= self.debounce_ms:
            self.pressed = raw
            return 1 if raw else -1
        return 0

    @property
    def settling(self):
        """A level change is seen but not yet confirmed: poll again after `debounce_ms`."""
        return self._raw != self.pressed

    def on_press_irq(self, handler):
        pin = self.pin
        trigger = pin.IRQ_RISING if self.pressed_level else pin.IRQ_FALLING
        pin.irq(handler=handler, trigger=trigger)
