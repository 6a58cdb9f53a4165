"""The charging model: what the PZEM-004T of a simulated charger measures.

A car battery charges at constant current (the `amps` limit, e.g. 32 A at ~230 V) until its
state of charge reaches `taper_from`, then the current falls linearly with the remaining
capacity (the CV phase of a CC/CV charger) and the car stops drawing below `cutoff_fraction` of
the limit. The mains voltage carries small Gaussian noise. Energy is integrated in steps of at
most one simulated second into the meter's cumulative register, which, like the PZEM's, counts
whole Wh, never decreases except on a meter reset, and keeps counting across sessions.

Time comes from an injected clock (`clock.now()`), so tests step it by hand.
"""

import random
from dataclasses import dataclass

MAX_STEPS_PER_READ = 5000  # long gaps are integrated in coarser steps, never more than this


@dataclass(frozen=True)
class Reading:
    """One meter reading: volts, amps, watts, the Wh register and the simulated unix time."""

    v: float
    a: float
    w: float
    wh: int
    ts: float


class ChargingModel:
    """A car on a charger behind a meter. `read()` advances the model to the clock's time."""

    def __init__(
        self,
        clock,
        *,
        amps=32.0,
        volts=230.0,
        battery_kwh=60.0,
        soc=0.2,
        taper_from=0.8,
        cutoff_fraction=0.05,
        noise_v=0.6,
        register_wh=0,
        rng=None,
    ):
        if not 0.0 <= soc < 1.0:
            raise ValueError("soc must be in [0, 1)")
        self._clock = clock
        self.amps_limit = float(amps)
        self.nominal_v = float(volts)
        self.capacity_wh = battery_kwh * 1000.0
        self.plug_in_soc = soc
        self.stored_wh = soc * self.capacity_wh
        self.taper_from = taper_from
        self.cutoff_fraction = cutoff_fraction
        self.noise_v = noise_v
        self._rng = rng or random.Random()
        self._energy_wh = float(register_wh)  # exact energy the meter has counted since reset
        self._relay = False
        self._t = clock.now()
        self._v = self.nominal_v
        self._a = 0.0

    # --- inputs ------------------------------------------------------------------------------
    @property
    def relay_on(self) -> bool:
        return self._relay

    def set_relay(self, on: bool) -> None:
        """Close or open the contactor; energy up to now is counted with the old state."""
        self._advance()
        self._relay = bool(on)
        self._a = self._current() if on else 0.0

    def set_current_limit(self, amps: float) -> None:
        """The pilot signal's current limit (the `load` command)."""
        self._advance()
        self.amps_limit = float(amps)

    def reset_register(self) -> None:
        """The PZEM 'reset energy' command: the register restarts at 0."""
        self._advance()
        self._energy_wh = 0.0

    def plug_new_car(self) -> None:
        """Another car, at the plug-in state of charge (each session charges a new car)."""
        self._advance()
        self.stored_wh = self.plug_in_soc * self.capacity_wh

    # --- outputs -----------------------------------------------------------------------------
    def now(self) -> float:
        """The simulated unix time (the charger's wall clock, for `ts`)."""
        return self._clock.now()

    @property
    def soc(self) -> float:
        return min(1.0, self.stored_wh / self.capacity_wh)

    @property
    def register_wh(self) -> int:
        self._advance()
        return int(self._energy_wh)

    @property
    def energy_wh(self) -> float:
        """The meter's exact (unrounded) energy; the register is its integer part."""
        self._advance()
        return self._energy_wh

    def read(self) -> Reading:
        """Advance to the clock's time and return what the meter shows now."""
        self._advance()
        v, a = round(self._v, 1), round(self._a, 3)
        return Reading(v=v, a=a, w=round(self._v * self._a, 1), wh=int(self._energy_wh), ts=self._t)

    # --- the model ---------------------------------------------------------------------------
    def _current(self) -> float:
        """What the car draws at its present state of charge."""
        if not self._relay:
            return 0.0
        soc = self.soc
        if soc < self.taper_from:
            return self.amps_limit
        amps = self.amps_limit * (1.0 - soc) / (1.0 - self.taper_from)
        return amps if amps >= self.cutoff_fraction * self.amps_limit else 0.0

    def _voltage(self) -> float:
        noise = self._rng.gauss(0.0, self.noise_v) if self.noise_v else 0.0
        return self.nominal_v + max(-3 * self.noise_v, min(3 * self.noise_v, noise))

    def _advance(self) -> None:
        now = self._clock.now()
        elapsed = now - self._t
        if elapsed <= 0:
            return
        step = max(1.0, elapsed / MAX_STEPS_PER_READ)
        remaining = elapsed
        while remaining > 1e-9:
            dt = min(step, remaining)
            self._v = self._voltage()
            self._a = self._current()
            wh = self._v * self._a * dt / 3600.0
            self._energy_wh += wh
            self.stored_wh += wh
            remaining -= dt
        self._t = now
