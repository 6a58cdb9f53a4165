"""Clocks: the simulated time the charging model and the `ts` fields run on.

`ScaledClock` runs `speed` times faster than the wall clock so a one-hour charge can be shown in
a minute. The server trusts a charger's `ts` only up to 600 s ahead of its own clock, so a fast
clock starts in the past: it reaches the wall time after `catch_up_s` wall seconds (default one
hour) and stays trusted for a while after. At speed 1 it is the wall clock.
`ManualClock` is stepped by hand, so tests run the model without sleeping.
"""

import time


class ScaledClock:
    """Unix seconds that advance `speed` simulated seconds per wall second."""

    def __init__(self, speed=1.0, *, catch_up_s=3600.0, wall=time.time, monotonic=time.monotonic):
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._monotonic = monotonic
        self._origin_mono = monotonic()
        self._origin = wall() - (self.speed - 1.0) * catch_up_s

    def now(self) -> float:
        return self._origin + (self._monotonic() - self._origin_mono) * self.speed


class ManualClock:
    """A clock that only moves when told to. It starts in 2026: a charger whose clock is
    before 2024 takes it for not set and sends no `ts` (as the firmware does)."""

    def __init__(self, start=1_780_000_000.0):
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += seconds
