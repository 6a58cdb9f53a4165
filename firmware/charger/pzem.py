"""PZEM-004T v3.0 AC meter driver over UART (Modbus-RTU).

Reads input registers 0x0000-0x0009 (`addr 04 00 00 00 0A CRC` -> 25-byte reply), checks the
address, function, length and CRC-16/Modbus, and scales the registers: voltage 0.1 V,
current 0.001 A, power 0.1 W, energy 1 Wh, frequency 0.1 Hz, power factor 0.01, alarm.
32-bit values are low word first, each word big-endian. `reset_energy()` sends function 0x42.
The request is built once and the reply lands in a preallocated buffer: a poll allocates no
buffers. Hand-written because the MicroPython PZEM drivers around allocate per read and skip
the CRC check.
"""

from micropython import const
import time

from charger.modbus import crc16, crc_ok

_REPLY_LEN = const(25)
_RESET_LEN = const(4)
_FN_READ_INPUT = const(0x04)
_FN_RESET = const(0x42)

OK = const(0)
TIMEOUT = const(1)
BAD_FRAME = const(2)   # CRC, address, function or length wrong
DEVICE_ERROR = const(3)  # Modbus exception reply


class PZEM004T:
    """One meter on a UART. After `read()` returns OK, the fields hold the reading."""

    def __init__(self, uart, address=0xF8, timeout_ms=100):
        self.uart = uart
        self.address = address
        self.timeout_ms = timeout_ms
        self._read_req = bytearray(8)
        r = self._read_req
        r[0] = address
        r[1] = _FN_READ_INPUT
        r[2] = 0
        r[3] = 0
        r[4] = 0
        r[5] = 10
        crc = crc16(r, 6)
        r[6] = crc & 0xFF
        r[7] = crc >> 8
        self._reset_req = bytearray(4)
        r = self._reset_req
        r[0] = address
        r[1] = _FN_RESET
        crc = crc16(r, 2)
        r[2] = crc & 0xFF
        r[3] = crc >> 8
        self._buf = bytearray(_REPLY_LEN)
        self._mv = memoryview(self._buf)
        self.voltage_dv = 0     # raw registers, integers
        self.current_ma = 0
        self.power_dw = 0
        self.energy_wh = 0
        self.frequency_dhz = 0
        self.pf_centi = 0
        self.alarm = False
        self.errors = 0

    @property
    def voltage(self):
        return self.voltage_dv / 10

    @property
    def current(self):
        return self.current_ma / 1000

    @property
    def power(self):
        return self.power_dw / 10

    @property
    def frequency(self):
        return self.frequency_dhz / 10

    @property
    def power_factor(self):
        return self.pf_centi / 100

    def _drain(self):
        uart = self.uart
        while uart.any():
            uart.readinto(self._buf)

    def _receive(self, want):
        """Collect up to `want` bytes within the timeout; returns the count."""
        uart = self.uart
        got = 0
        start = time.ticks_ms()
        while got < want:
            if uart.any():
                # the whole reply usually comes at once: slice (allocate) only for the rest
                n = uart.readinto(self._mv[got:want] if got else self._buf, want - got)
                if n:
                    got += n
                    continue
            if time.ticks_diff(time.ticks_ms(), start) >= self.timeout_ms:
                break
            time.sleep_ms(2)
        return got

    def read(self):
        """Poll all registers. Returns OK, TIMEOUT, BAD_FRAME or DEVICE_ERROR."""
        self._drain()
        self.uart.write(self._read_req)
        got = self._receive(_REPLY_LEN)
        status = self._parse(got)
        if status != OK:
            self.errors += 1
        return status

    def _parse(self, got):
        b = self._buf
        if got == 0:
            return TIMEOUT
        if got == 5 and b[1] == _FN_READ_INPUT | 0x80 and crc_ok(b, 5):
            return DEVICE_ERROR
        if got != _REPLY_LEN or not crc_ok(b, _REPLY_LEN):
            return BAD_FRAME
        if b[0] != self.address and self.address != 0xF8:
            return BAD_FRAME
        if b[1] != _FN_READ_INPUT or b[2] != 20:
            return BAD_FRAME
        self.voltage_dv = (b[3] << 8) | b[4]
        self.current_ma = (b[5] << 8) | b[6] | (b[7] << 24) | (b[8] << 16)
        self.power_dw = (b[9] << 8) | b[10] | (b[11] << 24) | (b[12] << 16)
        self.energy_wh = (b[13] << 8) | b[14] | (b[15] << 24) | (b[16] << 16)
        self.frequency_dhz = (b[17] << 8) | b[18]
        self.pf_centi = (b[19] << 8) | b[20]
        self.alarm = ((b[21] << 8) | b[22]) == 0xFFFF
        return OK

    def reset_energy(self):
        """Zero the energy register (function 0x42). Returns OK, TIMEOUT, BAD_FRAME or DEVICE_ERROR."""
        self._drain()
        self.uart.write(self._reset_req)
        got = self._receive(_RESET_LEN)
        b = self._buf
        if got == 0:
            return TIMEOUT
        if got >= _RESET_LEN and b[1] == _FN_RESET and crc_ok(b, _RESET_LEN):
            return OK
        if got >= _RESET_LEN and b[1] == _FN_RESET | 0x80:
            return DEVICE_ERROR
        return BAD_FRAME
