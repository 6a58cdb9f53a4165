"""Relay, buttons and LED on simulated pins; MicroPython only (tools/sim on MICROPYPATH)."""

import machine

from charger.buttons import Button
from charger.led import ERROR, ERROR_SHOW_MS, PATTERNS, Led
from charger.relay import Relay


def case_relay_is_off_at_construction_for_either_active_level():
    pin = machine.Pin(40)
    pin.value(1)
    r = Relay(machine.Pin(40), active_high=True)
    assert pin.value() == 0 and not r.is_on
    r.on()
    assert pin.value() == 1 and r.is_on
    r.off()
    assert pin.value() == 0
    low = Relay(machine.Pin(41), active_high=False)
    assert machine.Pin(41).value() == 1 and not low.is_on
    low.on()
    assert machine.Pin(41).value() == 0 and low.is_on


def case_button_press_is_reported_once_after_debounce():
    pin = machine.Pin.board(42)
    b = Button(machine.Pin(42), pressed_level=0, debounce_ms=30)
    assert not b.pressed and b.poll(0) == 0
    pin.drive(0)
    assert b.poll(1000) == 0          # just changed: not yet stable
    pin.drive(1)                      # bounce
    assert b.poll(1005) == 0
    pin.drive(0)
    assert b.poll(1010) == 0
    assert b.poll(1039) == 0
    assert b.settling  # a change seen: the poll loop comes back within the debounce time
    assert b.poll(1041) == 1 and b.pressed and not b.settling
    assert b.poll(1100) == 0
    pin.drive(1)
    b.poll(2000)
    assert b.poll(2040) == -1 and not b.pressed


def case_normally_closed_emergency_reads_pressed_when_open():
    pin = machine.Pin.board(43)
    pin.drive(0)  # closed circuit: held low
    b = Button(machine.Pin(43), pressed_level=1)
    assert not b.pressed
    fired = []
    b.on_press_irq(lambda p: fired.append(p.value()))
    pin.drive(1)  # pressed or wire cut: the pull-up wins
    for _ in range(3):
        pass  # scheduled soft IRQ runs between bytecodes
    assert fired == [1]


def case_led_plays_the_pattern_and_the_error_falls_back():
    led = Led(machine.Pin(44))
    pin = machine.Pin(44)
    led.show(2)  # charging: steady on
    led.step(0)
    assert pin.value() == 1
    led._start(0, 0)
    led.step(PATTERNS[0][0])  # after the ON time of the idle blink: off
    assert pin.value() == 0
    led.show(ERROR)
    assert led.pattern == ERROR
    led.show(2)  # a new pattern waits until the error was shown
    assert led.pattern == ERROR
    led.step(led._pattern_at + ERROR_SHOW_MS)
    assert led.pattern == 2


def case_led_tells_the_poll_loop_when_its_next_step_is_due():
    led = Led(machine.Pin(45))
    pin = machine.Pin(45)
    led._start(0, 0)  # idle blink: 100 ms on, 2900 ms off
    assert led.due_in(0) == PATTERNS[0][0] and led.due_in(60) == PATTERNS[0][0] - 60
    led.step(led.due_in(0))
    assert pin.value() == 0 and led.due_in(PATTERNS[0][0]) == PATTERNS[0][1]
    led._start(ERROR, 0)  # the error pattern's long pause is cut short when its time is up
    led._step = len(PATTERNS[ERROR]) - 1
    led._step_at = ERROR_SHOW_MS - 500
    assert led.due_in(ERROR_SHOW_MS - 500) == 500
