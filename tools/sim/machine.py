"""Simulated `machine` for the MicroPython unix port (never shipped).

On `MICROPYPATH=tools/sim:firmware` this file shadows the unix port's built-in `machine`.
Pin (values, pulls, soft IRQs scheduled with `micropython.schedule` like the ESP32's),
SPI and UART that hand their bytes to emulated chips (`attach_spi`, `attach_uart`), a WDT that
counts feeds, Timer, unique_id, reset and the usual helpers. The simulator drives inputs with
`Pin.board(id).drive(level)` and watches outputs with `Pin.board(id).value()`.
"""

import micropython
import sys
import time

_pins = {}
_spi_devices = {}
_uart_devices = {}
wdt_feeds = 0
# bytes the emulated chips allocate (not the firmware): the memory bench subtracts them
sim_alloc = [0]
_mem_total = micropython.mem_total if hasattr(micropython, "mem_total") else (lambda: 0)


class _Line:
    """The electrical state of one GPIO, shared by every Pin object made for it."""

    def __init__(self):
        self.level = 0
        self.handler = None
        self.trigger = 0
        self.mode = Pin.IN
        self.pull = None
        self.driven = False   # the outside world has set the level (pull-ups no longer count)
        self.changes = 0      # how many times the level changed


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        if id not in _pins:
            _pins[id] = _Line()
        self._line = _pins[id]
        self.init(mode, pull, value=value)

    @staticmethod
    def board(id):
        """The simulator's handle on a pin."""
        return Pin(id)

    @property
    def changes(self):
        return self._line.changes

    def init(self, mode=-1, pull=-1, *, value=None):
        line = self._line
        if mode != -1:
            line.mode = mode
        if pull != -1:
            line.pull = pull
            if pull == self.PULL_UP and line.mode == self.IN and not line.driven:
                line.level = 1
        if value is not None:
            self._set(1 if value else 0)

    def _set(self, level):
        line = self._line
        if level != line.level:
            line.changes += 1
        line.level = level

    def value(self, v=None):
        if v is None:
            return self._line.level
        self._set(1 if v else 0)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._set(1)

    def off(self):
        self._set(0)

    def irq(self, handler=None, trigger=3, hard=False):
        if hard:
            raise ValueError("hard IRQ not supported on ESP32")
        self._line.handler = handler
        self._line.trigger = trigger

    def drive(self, level):
        """The outside world sets an input level; edges fire the soft IRQ (scheduled)."""
        line = self._line
        level = 1 if level else 0
        line.driven = True
        old = line.level
        self._set(level)
        if line.handler is None or old == level:
            return
        edge = self.IRQ_RISING if level else self.IRQ_FALLING
        if line.trigger & edge:
            micropython.schedule(line.handler, self)


class Signal:
    def __init__(self, pin, invert=False):
        self.pin = pin
        self.invert = invert

    def value(self, v=None):
        if v is None:
            return self.pin.value() ^ self.invert
        self.pin.value((1 if v else 0) ^ self.invert)


def attach_spi(bus_id, device):
    """Connect an emulated SPI chip (`transfer(tx, rx)`: rx None or filled in place)."""
    _spi_devices[bus_id] = device


def attach_uart(uart_id, device):
    """Connect an emulated UART device (with `receive(bytes)` and `pending() -> bytes`)."""
    _uart_devices[uart_id] = device


class SPI:
    MSB = 0

    def __init__(self, id, baudrate=1000000, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        self.id = id

    def init(self, *args, **kwargs):
        pass

    def _xfer(self, tx, rx):
        dev = _spi_devices.get(self.id)
        t0 = _mem_total()
        if dev is None:
            if rx is not None:
                for i in range(len(rx)):
                    rx[i] = 0
        else:
            dev.transfer(tx, rx)
        sim_alloc[0] += _mem_total() - t0

    def write(self, buf):
        self._xfer(buf, None)

    def write_readinto(self, wbuf, rbuf):
        self._xfer(wbuf, rbuf)

    def readinto(self, buf, write=0):
        self._xfer(bytes([write]) * len(buf), buf)

    def read(self, n, write=0):
        buf = bytearray(n)
        self._xfer(bytes([write]) * n, buf)
        return bytes(buf)

    def deinit(self):
        pass


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                 timeout=0, timeout_char=0, rxbuf=256):
        self.id = id
        self.baudrate = baudrate
        self._rx = bytearray()

    def init(self, *args, **kwargs):
        pass

    def _pull(self):
        dev = _uart_devices.get(self.id)
        if dev is not None:
            t0 = _mem_total()
            data = dev.pending()
            if data:
                self._rx.extend(data)
            sim_alloc[0] += _mem_total() - t0

    def write(self, buf):
        dev = _uart_devices.get(self.id)
        if dev is not None:
            t0 = _mem_total()
            dev.receive(bytes(buf))
            sim_alloc[0] += _mem_total() - t0
        return len(buf)

    def any(self):
        self._pull()
        return len(self._rx)


    def read(self, n=-1):
        self._pull()
        if not self._rx:
            return None
        if n < 0 or n > len(self._rx):
            n = len(self._rx)
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out

    def readinto(self, buf, n=-1):
        self._pull()
        if not self._rx:
            return None
        t0 = _mem_total()
        if n < 0 or n > len(buf):
            n = len(buf)
        n = min(n, len(self._rx))
        for i in range(n):
            buf[i] = self._rx[i]
        self._rx = self._rx[n:]
        sim_alloc[0] += _mem_total() - t0
        return n

    def deinit(self):
        pass


class WDT:
    """No-op watchdog that counts feeds (the simulator never resets on it)."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        global wdt_feeds
        wdt_feeds += 1


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, *args, **kwargs):
        pass

    def init(self, *args, **kwargs):
        pass

    def deinit(self):
        pass


def unique_id():
    return b"\x24\x0a\xc4\x00\x51\x7e"


def reset():
    """A reboot: the simulator exits with status 3; run_charger's caller restarts it."""
    print("machine.reset()")
    sys.exit(3)


def soft_reset():
    reset()


def freq(hz=None):
    return 240000000


def reset_cause():
    return 1


def idle():
    time.sleep_ms(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5
