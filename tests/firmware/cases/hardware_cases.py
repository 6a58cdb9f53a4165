"""Relay, buttons and LED (charger.gpio) on simulated pins; MicroPython only (tools/sim on MICROPYPATH)."""

import machine

from charger.gpio import PATTERNS, Button, Led, Relay

ERROR = 3  # the LED's error pattern (state.LED_ERROR)


def case_relay_is_off_at_construction_for_either_active_level():
    pin = machine.Pin(40)
    pin.value(1)
    r = Relay(machine.Pin(40), active_high=True)
    assert pin.value() == 0 and not r.is_on
    r.on()
    assert pin.value() == 1 and r.is_on
    r.off()
    assert pin.value() == 0 and not r.is_on
    low = Relay(machine.Pin(41), active_high=False)
    assert machine.Pin(41).value() == 1 and not low.is_on
    low.on()
    assert machine.Pin(41).value() == 0 and low.is_on
    low.off()
    assert machine.Pin(41).value() == 1 and not low.is_on


def case_relay_off_allocates_nothing_for_the_emergency_interrupt():
    import micropython

    r = Relay(machine.Pin(46))
    r.on()
    before = micropython.mem_total()
    r.off()  # as the app's interrupt handler calls it
    assert micropython.mem_total() == before and machine.Pin(46).value() == 0


def case_button_press_is_reported_once_after_debounce():
    pin = machine.Pin.board(42)
    b = Button(machine.Pin(42), 0)
    assert not b.pressed and b.poll(0) == 0
    pin.drive(0)
    assert b.poll(1000) == 0  # just changed: not yet stable
    pin.drive(1)  # bounce
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


def case_button_pressed_by_the_interrupt_path_gives_no_second_edge():
    pin = machine.Pin.board(47)
    pin.drive(0)  # NC emergency, closed
    b = Button(machine.Pin(47), 1)
    pin.drive(1)
    b.poll(0)
    b.pressed = True  # the app's emergency task, after the IRQ
    assert b.poll(100) == 0 and not b.settling


def case_normally_closed_emergency_reads_pressed_when_open():
    pin = machine.Pin.board(43)
    pin.drive(0)  # closed circuit: held low
    b = Button(machine.Pin(43), 1)
    assert not b.pressed
    fired = []
    b.on_press_irq(lambda p: fired.append(p.value()))
    pin.drive(1)  # pressed or wire cut: the pull-up wins
    for _ in range(3):
        pass  # scheduled soft IRQ runs between bytecodes
    assert fired == [1]


def _ms(pattern, slot):
    return PATTERNS[pattern * 6 + slot] * 50


def case_led_plays_the_pattern_and_the_error_falls_back():
    led = Led(machine.Pin(44))
    pin = machine.Pin(44)
    led.show(2)  # charging: steady on
    led.step(led.at + 5000)
    assert pin.value() == 1
    led.show(0)  # idle: a short blink
    assert pin.value() == 1 and _ms(0, 0) == 100
    led.step(led.at + 100)  # after the ON time of the idle blink: off
    assert pin.value() == 0
    led.show(ERROR)
    assert led.pattern == ERROR
    led.show(2)  # a new pattern waits until the error was shown
    assert led.pattern == ERROR
    seen = [pin.value()]  # every 50 ms while the error shows
    start = now = led.at
    while now - start < 10000:
        now += 50
        led.step(now)
        if led.pattern != ERROR:
            break
        seen.append(pin.value())
    assert led.pattern == 2 and pin.value() == 1  # back, to the pattern asked for meanwhile
    assert now - start == 3000  # shown once: 3 s
    flashes = sum(1 for i in range(len(seen)) if seen[i] and (i == 0 or not seen[i - 1]))
    assert flashes == 3


def case_error_pattern_returns_to_the_pattern_it_interrupted():
    led = Led(machine.Pin(48))
    led.show(5)  # offline
    led.show(ERROR)
    now = led.at
    for _ in range(100):
        now += 50
        led.step(now)
    assert led.pattern == 5


def case_led_tells_the_poll_loop_when_its_next_step_is_due():
    led = Led(machine.Pin(45))
    pin = machine.Pin(45)
    t0 = led.at  # idle blink: 100 ms on, 2900 ms off
    assert led.due_in(t0) == 100 and led.due_in(t0 + 60) == 40
    led.step(t0 + led.due_in(t0))
    assert pin.value() == 0 and led.due_in(t0 + 100) == 2900
    led.show(2)  # charging: steady, the loop may sleep its full second
    assert led.due_in(led.at) == 1000


def case_button_polls_and_led_steps_allocate_nothing():
    import micropython

    pin = machine.Pin.board(49)
    b = Button(machine.Pin(49), 0)
    led = Led(machine.Pin(50))
    led.show(5)  # offline: a double blink, several slots
    b.poll(0)
    allocated = 0
    edges = []
    for now in range(0, 6000, 50):  # two pattern cycles; a press and a release on the way
        if now in (1000, 2000):
            pin.drive(now == 2000)  # (the simulated pin's own bookkeeping is not counted)
        before = micropython.mem_total()
        edge = b.poll(now)
        led.step(now)
        led.due_in(now)
        allocated += micropython.mem_total() - before
        if edge:
            edges.append(edge)
    assert allocated == 0 and edges == [1, -1] and led.pattern == 5
