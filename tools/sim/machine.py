"""Simulated `machine` for the MicroPython unix port (never shipped).

On `MICROPYPATH=tools/sim:firmware` this file shadows the unix port's built-in `machine`.
What the firmware uses, no more: Pin (levels, pull-up, soft IRQs scheduled with
`micropython.schedule` like the ESP32's), SPI and UART that hand their bytes to emulated chips
(`attach_spi`, `attach_uart`), a WDT, `reset()` and
`reset_cause()` (from `SIM_RESET_CAUSE`). The simulator drives inputs with
`Pin.board(id).drive(level)` and watches outputs with `Pin.board(id).value()`.

Written compactly (it shares the process, and the 96 KB heap check, with the firmware): one
list per GPIO line instead of a line object, no wrapper methods, private constants. Bytes the
emulated chips allocate inside an SPI or UART call are booked to `sim_alloc[0]`, so the memory
bench and the allocation tests can leave them out of the firmware's figure.
"""

import micropython
import sys
from micropython import const

# a GPIO line, shared by every Pin object made for it: [level, irq handler, irq trigger,
# driven by the outside world (pull-ups no longer count)]
_LEVEL = const(0)
_HANDLER = const(1)
_TRIGGER = const(2)
_DRIVEN = const(3)

_lines = {}
_spi = {}
_uart = {}
# bytes the emulated chips allocate (not the firmware): the memory bench subtracts them
sim_alloc = [0]
_mem_total = micropython.mem_total if hasattr(micropython, "mem_total") else (lambda: 0)


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        line = _lines.get(id)
        if line is None:
            line = _lines[id] = [0, None, 0, False]
        self.line = line
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if pull == 1 and not self.line[_DRIVEN]:
            self.line[_LEVEL] = 1  # PULL_UP: reads high until something drives the pin
        if value is not None:
            self.line[_LEVEL] = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self.line[_LEVEL]
        self.line[_LEVEL] = 1 if v else 0

    __call__ = value

    def irq(self, handler=None, trigger=3, hard=False):
        if hard:
            raise ValueError("hard IRQ not supported on ESP32")
        self.line[_HANDLER] = handler
        self.line[_TRIGGER] = trigger

    def drive(self, level):
        """The outside world sets an input level; an edge schedules the soft IRQ."""
        line = self.line
        level = 1 if level else 0
        line[_DRIVEN] = True
        old = line[_LEVEL]
        line[_LEVEL] = level
        # IRQ_RISING is 1, IRQ_FALLING 2: the edge's bit in the trigger mask
        if line[_HANDLER] is not None and old != level and line[_TRIGGER] & (2 - level):
            micropython.schedule(line[_HANDLER], self)


Pin.board = Pin  # the simulator's handle on a pin: `Pin.board(id)` (a class is not bound)


def attach_spi(bus_id, device):
    """Connect an emulated SPI chip (`transfer(tx, rx)`: rx None or filled in place)."""
    _spi[bus_id] = device


def attach_uart(uart_id, device):
    """Connect an emulated UART device: `write(buf)`, `any() -> n`, `readinto(buf, n) -> n`."""
    _uart[uart_id] = device


class SPI:
    def __init__(self, id, *args, **kwargs):
        self.id = id

    def write(self, buf):
        self.write_readinto(buf, None)

    def write_readinto(self, tx, rx):
        dev = _spi.get(self.id)
        t0 = _mem_total()
        if dev is not None:
            dev.transfer(tx, rx)
        elif rx is not None:
            for i in range(len(rx)):
                rx[i] = 0  # nothing on the bus: MISO reads 0
        sim_alloc[0] += _mem_total() - t0


class UART:
    """The attached device is the receive buffer: no device reads as silence."""

    def __init__(self, id, *args, **kwargs):
        self.id = id

    def write(self, buf):
        dev = _uart.get(self.id)
        if dev is not None:
            t0 = _mem_total()
            dev.write(buf)
            sim_alloc[0] += _mem_total() - t0
        return len(buf)

    def any(self):
        dev = _uart.get(self.id)
        return dev.any() if dev is not None else 0

    def readinto(self, buf, n=-1):
        dev = _uart.get(self.id)
        if dev is None or not dev.any():
            return None
        t0 = _mem_total()
        n = dev.readinto(buf, len(buf) if n < 0 or n > len(buf) else n)
        sim_alloc[0] += _mem_total() - t0
        return n


class WDT:
    """A watchdog that never fires (the simulator does not reset on it)."""

    def __init__(self, id=0, timeout=5000):
        pass

    def feed(self):
        pass


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset_cause():
    """Why the board started, as the ESP32 reports it: SOFT_RESET after this process's
    reset() (the simulator restarts the firmware), else `SIM_RESET_CAUSE` (1 power-on, the
    default: a new process is a board powered up; 3 watchdog, 5 soft reset)."""
    import os
    try:
        with open(reset_file[0]) as f:
            cause = int(f.read())
        os.remove(reset_file[0])
        return cause
    except (OSError, ValueError, TypeError):
        return int(os.getenv("SIM_RESET_CAUSE") or PWRON_RESET)


reset_file = [None]  # where reset() leaves its cause for the next start (simboot sets it)


reset_hooks = []  # callables run first by reset() (`mem watch`: the live peak so far)


def reset():
    """A reboot: the simulator exits with status 3; run_charger's caller restarts it."""
    for hook in reset_hooks:
        hook()
    print("machine.reset()")
    if reset_file[0]:
        with open(reset_file[0], "w") as f:
            f.write("%d" % SOFT_RESET)
    sys.exit(3)
