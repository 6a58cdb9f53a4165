"""PZEM-004T v3.0 AC meter driver over UART (Modbus-RTU), with its CRC-16/Modbus.

Reads input registers 0x0000-0x0009 (`addr 04 00 00 00 0A CRC` -> 25-byte reply), checks the
address, function, length and CRC, and scales the registers into plain attributes: `voltage`
(V), `current` (A), `power` (W) as floats, `energy_wh` (Wh, int), `frequency_dhz` (0.1 Hz) and
`pf_centi` (power factor x 100) as ints (no float allocated for what the app does not use),
`alarm`. 32-bit values are low word first, each word big-endian. `read()` and
`reset_energy()` (function 0x42) return OK (0), 1 (timeout), 2 (bad frame: CRC, address,
function or length) or 3 (Modbus exception reply).

The read request is built once (its CRC is set at each send: one place for it) and the reply
lands in a preallocated buffer: a poll allocates only the three floats it reports.
Hand-written because the MicroPython PZEM drivers around allocate per read and skip the CRC
check. `crc16` is here too (allocation-free; no library on the board has it): the Modbus
framing has no other user (docs/architecture.md, "Firmware memory rules": few modules).
"""

import time
from micropython import const

OK = const(0)
_TIMEOUT = const(1)
_BAD_FRAME = const(2)
_DEVICE_ERROR = const(3)

_REPLY_LEN = const(25)
_TIMEOUT_MS = const(100)  # a 25-byte reply takes 26 ms at 9600 baud
_ANY_ADDRESS = const(0xF8)  # the general address: whatever meter is on the bus answers


def crc16(buf, n):
    """CRC-16/Modbus of buf[0:n] (reflected 0xA001, initial 0xFFFF, sent low byte first).

    Over a whole frame that ends with its own CRC the result is 0.
    """
    crc = 0xFFFF
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class PZEM004T:
    def __init__(self, uart, address=_ANY_ADDRESS):
        self.uart = uart
        self.req = bytearray((address, 0x04, 0, 0, 0, 10, 0, 0))  # read 10 input registers
        self.buf = bytearray(_REPLY_LEN)
        self.voltage = self.current = self.power = 0.0
        self.energy_wh = self.frequency_dhz = self.pf_centi = 0
        self.alarm = False

    def send(self, req, want):
        """Send req (its last two bytes get its CRC), collect the reply into buf (`want` bytes,
        or what came within _TIMEOUT_MS) and check its CRC, address and function; a status.

        A 5-byte exception reply to the 4-byte reset can be caught at 4 bytes: then it reads as
        a bad frame instead of a Modbus exception (both are failures; the read is unaffected).
        """
        uart = self.uart
        b = self.buf
        while uart.any():  # drop what a late reply left
            uart.readinto(b)
        got = crc16(req, len(req) - 2)  # (`got` holds the CRC here: one local less)
        req[-2] = got & 0xFF
        req[-1] = got >> 8
        uart.write(req)
        start = time.ticks_ms()
        while uart.any() < want and time.ticks_diff(time.ticks_ms(), start) < _TIMEOUT_MS:
            time.sleep_ms(2)
        got = uart.readinto(b) or 0
        if got == 0:
            return _TIMEOUT
        if got < 4 or crc16(b, got) or b[0] != req[0] and req[0] != _ANY_ADDRESS:
            return _BAD_FRAME
        if b[1] == req[1] | 0x80:
            return _DEVICE_ERROR  # (addr, function | 0x80, exception code, CRC)
        return OK if got == want and b[1] == req[1] else _BAD_FRAME

    def read(self):
        """Poll all registers; returns a status (above). Runs every second: this and `send`
        keep their frames within 11 slots (a larger one is heap-allocated at every call)."""
        status = self.send(self.req, _REPLY_LEN)
        if status != OK:
            return status
        b = self.buf
        if b[2] != 20:  # the byte count
            return _BAD_FRAME
        self.voltage = (b[3] << 8 | b[4]) / 10
        self.current = (b[5] << 8 | b[6] | b[7] << 24 | b[8] << 16) / 1000
        self.power = (b[9] << 8 | b[10] | b[11] << 24 | b[12] << 16) / 10
        self.energy_wh = b[13] << 8 | b[14] | b[15] << 24 | b[16] << 16
        self.frequency_dhz = b[17] << 8 | b[18]
        self.pf_centi = b[19] << 8 | b[20]
        self.alarm = b[21] == 0xFF and b[22] == 0xFF
        return OK

    def reset_energy(self):
        """Zero the energy register (function 0x42; the reply echoes the request); a status."""
        return self.send(bytearray((self.req[0], 0x42, 0, 0)), 4)
