"""Pure energy accounting for one charging session.

`EnergyAccount` turns a stream of meter readings (power `w`, optional cumulative register `wh`,
time `ts`) into the session's energy. Per interval between two accepted readings:

* both readings carry the meter register and it rose by a physically possible amount:
  the register delta is the energy (exact, and independent of lost messages);
* otherwise (no register, the register dropped because the meter was reset or wrapped, or it
  jumped more than `MAX_WATTS` could deliver): the trapezoid of `w` over `ts`, and the
  register baseline simply continues from the new value.

A reading whose `ts` is older than the last accepted one is ignored, and so is one with the same
`ts` unless the register moved on within that second (chargers stamp whole seconds, so a final
reading right after a periodic one shares its `ts`): replaying readings after a reconnect never
counts energy twice, and the last Wh before a stop is never lost. A final reading (stop,
emergency, idle report) whose `ts` cannot be trusted still counts its register rise. The state round-trips through `to_dict` /
`from_dict` (stored as the session's `energy_state`), so a restarted server continues exactly
where it stopped. No I/O, no clock: times are given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_WATTS = 50_000.0  # a register rise above this average power is a glitch, not energy
REGISTER_SLACK_WH = 2.0  # the PZEM register counts whole Wh: allow its rounding


@dataclass
class EnergyAccount:
    wh: float = 0.0  # energy of the session so far, Wh
    last_ts: float | None = None
    last_w: float | None = None
    last_register_wh: float | None = None

    @property
    def kwh(self) -> float:
        return self.wh / 1000.0

    def add(self, ts: float, w: float, register_wh: float | None = None) -> bool:
        """Account one reading; return False (and change nothing) if it is stale or a replay."""
        if self.last_ts is None or ts > self.last_ts:
            if self.last_ts is not None:
                self.wh += self._interval_wh(ts - self.last_ts, w, register_wh)
            self.last_ts, self.last_w, self.last_register_wh = ts, w, register_wh
            return True
        if ts == self.last_ts:
            return self._take_register_rise(w, register_wh)
        return False

    def add_final(self, ts: float, register_wh: float | None) -> bool:
        """Account the reading a stop, emergency or idle report carries (the relay is open: 0 W).

        Its register counts even when its `ts` is not later than the last reading's (a charger
        clock running ahead of the server's, or no `ts` at all)."""
        return self.add(ts, 0.0, register_wh) or self._take_register_rise(0.0, register_wh)

    def _take_register_rise(self, w: float, register_wh: float | None) -> bool:
        rise = self._register_rise(1.0, register_wh)
        if not rise:  # None (no register, reset, glitch) or 0 (a replay)
            return False
        self.wh += rise
        self.last_w, self.last_register_wh = w, register_wh
        return True

    def _interval_wh(self, dt: float, w: float, register_wh: float | None) -> float:
        rise = self._register_rise(dt, register_wh)
        if rise is not None:
            return rise
        return (self.last_w + w) / 2.0 * dt / 3600.0

    def _register_rise(self, dt: float, register_wh: float | None) -> float | None:
        """The register's rise since the last reading if the meter could deliver it in dt s."""
        if register_wh is None or self.last_register_wh is None:
            return None
        rise = register_wh - self.last_register_wh
        if 0 <= rise <= MAX_WATTS * dt / 3600.0 + REGISTER_SLACK_WH:
            return rise
        return None

    def to_dict(self) -> dict:
        # by hand: dataclasses.asdict deep-copies field by field: 4.4 µs a call against 0.13
        return {"wh": self.wh, "last_ts": self.last_ts, "last_w": self.last_w,
                "last_register_wh": self.last_register_wh}

    @classmethod
    def from_dict(cls, data: dict | None) -> "EnergyAccount":
        data = data or {}
        return cls(
            wh=float(data.get("wh", 0.0)),
            last_ts=_optional_float(data.get("last_ts")),
            last_w=_optional_float(data.get("last_w")),
            last_register_wh=_optional_float(data.get("last_register_wh")),
        )


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def cost_of(kwh: float, tariff_per_kwh: float) -> float:
    """What a session costs: energy times the tariff frozen when it started."""
    return kwh * tariff_per_kwh
