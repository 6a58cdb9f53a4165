"""The charging relay (contactor driver) with a configurable active level.

The pin is set to OFF in the same call that makes it an output (no glitch at boot). `is_on` is
a plain attribute kept by `on()`/`off()` (a property would cost more RAM than it saves).
`off()` allocates nothing: the app binds it once and calls it from the EMERGENCY interrupt.
"""


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
