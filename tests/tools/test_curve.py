"""The charging model and the meter register, on a clock stepped by hand (no sleeping)."""

import random

import pytest

from tools.simulator.clock import ManualClock, ScaledClock
from tools.simulator.curve import ChargingModel


def model(clock, **kw):
    kw.setdefault("rng", random.Random(7))
    return ChargingModel(clock, **kw)


def charge(clock, car, seconds, step=1.0):
    """Read the meter every `step` simulated seconds; return the readings."""
    readings = [car.read()]
    for _ in range(int(seconds / step)):
        clock.advance(step)
        readings.append(car.read())
    return readings


def test_constant_current_at_the_limit_with_mains_voltage_noise():
    clock = ManualClock()
    car = model(clock, amps=32, volts=230, battery_kwh=60, soc=0.2)
    car.set_relay(True)
    readings = charge(clock, car, 600)[1:]
    assert all(r.a == 32.0 for r in readings)
    assert all(227.0 <= r.v <= 233.0 for r in readings)
    assert len({r.v for r in readings}) > 5  # the voltage is not a constant
    assert all(r.w == pytest.approx(r.v * r.a, abs=0.05 * 32 + 0.1) for r in readings)


def test_current_tapers_as_the_battery_approaches_full_then_stops():
    clock = ManualClock()
    car = model(clock, amps=32, battery_kwh=10, soc=0.7)
    car.set_relay(True)
    readings = charge(clock, car, 4 * 3600, step=10)
    amps = [r.a for r in readings[1:]]
    assert amps[0] == 32.0
    tapering = [a for a in amps if 0 < a < 32]
    assert len(tapering) > 100
    assert all(later <= earlier for earlier, later in zip(amps[1:], amps[2:]))
    assert amps[-1] == 0.0  # full: the car stops drawing
    assert car.soc > 0.98


def test_register_only_rises_and_equals_the_integral_of_power():
    clock = ManualClock()
    car = model(clock, amps=32, battery_kwh=10, soc=0.5, register_wh=123_456)
    car.set_relay(True)
    readings = charge(clock, car, 3 * 3600, step=3)
    registers = [r.wh for r in readings]
    assert all(b >= a for a, b in zip(registers, registers[1:]))
    integral_wh = (
        sum((a.w + b.w) / 2 * (b.ts - a.ts) for a, b in zip(readings, readings[1:])) / 3600
    )
    delta_wh = registers[-1] - registers[0]
    assert delta_wh > 3000  # CC and taper both happened
    assert delta_wh == pytest.approx(integral_wh, rel=0.005)


def test_register_holds_with_the_relay_open_and_counts_across_sessions():
    clock = ManualClock()
    car = model(clock, soc=0.2)
    car.set_relay(True)
    clock.advance(600)
    first = car.read().wh
    car.set_relay(False)
    clock.advance(600)
    idle = car.read()
    assert (idle.a, idle.w, idle.wh) == (0.0, 0.0, first)
    car.set_relay(True)
    clock.advance(600)
    assert car.read().wh > first


def test_meter_reset_restarts_the_register_at_zero():
    clock = ManualClock()
    car = model(clock, soc=0.2, register_wh=5000)
    car.set_relay(True)
    clock.advance(60)
    assert car.read().wh > 5000
    car.reset_register()
    assert car.read().wh == 0
    clock.advance(60)
    assert 0 < car.read().wh < 200


def test_a_lower_current_limit_slows_the_charge():
    clock = ManualClock()
    car = model(clock, amps=32, soc=0.2)
    car.set_relay(True)
    car.set_current_limit(16)
    clock.advance(3600)
    reading = car.read()
    assert reading.a == 16.0
    assert reading.wh == pytest.approx(16 * 230, rel=0.01)


def test_scaled_clock_runs_speed_times_faster_and_starts_in_the_past():
    wall, mono = [1_800_000_000.0], [100.0]
    clock = ScaledClock(10, catch_up_s=3600, wall=lambda: wall[0], monotonic=lambda: mono[0])
    start = clock.now()
    assert start == 1_800_000_000.0 - 9 * 3600  # reaches the wall time after one wall hour
    mono[0] += 3
    assert clock.now() - start == pytest.approx(30)
    assert ScaledClock(1, wall=lambda: 5.0, monotonic=lambda: 0.0).now() == 5.0
