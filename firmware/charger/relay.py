"""The charging relay (contactor driver) with a configurable active level.

`off` is a preallocated bound method so the EMERGENCY interrupt handler can call it without
allocating. The relay is driven OFF at construction.
"""


class Relay:
    def __init__(self, pin, active_high=True):
        self._pin = pin
        self._on_level = 1 if active_high else 0
        self._off_level = 1 - self._on_level
        pin.init(pin.OUT, value=self._off_level)
        self._write = pin.value
        self.off = self._off  # bound once: callable from an IRQ without allocation

    def _off(self):
        self._write(self._off_level)

    def on(self):
        self._write(self._on_level)

    @property
    def is_on(self):
        return self._pin.value() == self._on_level
