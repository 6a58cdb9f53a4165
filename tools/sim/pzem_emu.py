"""A PZEM-004T v3.0 emulated at the Modbus-RTU frame level behind the simulated UART.

Answers read-input-registers (0x04) for 0x0000-0x0009 with the scaled registers (0.1 V,
0.001 A, 0.1 W, 1 Wh, 0.1 Hz, 0.01 PF; 32-bit values low word first) and a CRC-16/Modbus, the
reset-energy command (0x42), Modbus exceptions for anything else, and silence on a bad CRC or
another address. Energy accumulates from the set power over simulated time (`time_scale`
simulated seconds per real second) while `switch()` (the relay) connects the load. Faults can
be injected: `silent` (no reply: a timeout), `corrupt` (bad CRC). `state_file` keeps the energy
register across a simulated reboot, as the real meter does. Never shipped.

Written compactly (it shares the heap with the firmware): the emulator is the UART's receive
buffer (`write`, `any`, `readinto`: a preallocated reply buffer, nothing allocated to hold a
reply), the CRC is its own (an independent check of the firmware's), one method per request.
"""

import time


def crc16(data, n):
    """CRC-16/Modbus (init 0xFFFF, reflected poly 0xA001) of data[:n]."""
    crc = 0xFFFF
    for i in range(n):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class PZEMEmulator:
    """Attach with `machine.attach_uart(uart_id, emulator)`."""

    def __init__(self, address=0x01, voltage=230.0, power=0.0, time_scale=1.0, state_file=None):
        self.address = address
        self.voltage = voltage
        self.power = power
        self.time_scale = time_scale
        self.silent = False
        self.corrupt = False
        self.state_file = state_file
        self.energy_wh_float = 0.0
        self.switch = None  # callable: is the load connected (the relay on)? None: always
        self.last_ms = time.ticks_ms()
        self.reply = bytearray(25)
        self.head = 0  # next reply byte the UART reads
        self.tail = 0  # reply bytes waiting
        if state_file:
            try:
                with open(state_file) as f:
                    self.energy_wh_float = float(f.read().strip() or "0")
            except OSError:
                pass

    def active_power(self):
        """The power drawn now: the set load while the relay connects it."""
        return 0.0 if self.switch is not None and not self.switch() else self.power

    # --- the UART side ------------------------------------------------------------------
    def any(self):
        return self.tail - self.head

    def readinto(self, buf, n):
        n = min(n, self.tail - self.head)
        for i in range(n):  # byte by byte: a slice would allocate
            buf[i] = self.reply[self.head + i]
        self.head += n
        return n

    def write(self, req):
        """A request from the firmware: advance the energy, then queue the reply (if any)."""
        now = time.ticks_ms()
        w = self.active_power()
        if w > 0:
            self.energy_wh_float += w * time.ticks_diff(now, self.last_ms) * self.time_scale / 3.6e6
        self.last_ms = now
        self.head = self.tail = 0
        r = self.reply
        n = len(req)
        if n < 4 or crc16(req, n - 2) != req[n - 2] | req[n - 1] << 8 \
                or req[0] not in (self.address, 0xF8):
            return  # the real meter stays silent on a bad CRC or another address
        r[0] = self.address
        if req[1] == 0x04 and n == 8 and req[2:6] == b"\x00\x00\x00\x0a":
            v = int(round(self.voltage * 10))
            a = int(round(w / self.voltage * 1000)) if self.voltage > 0 else 0
            dw = int(round(w * 10))
            e = int(self.energy_wh_float)
            r[1:3] = b"\x04\x14"  # 20 register bytes follow
            for i, reg in enumerate((v, a & 0xFFFF, a >> 16, dw & 0xFFFF, dw >> 16,
                                     e & 0xFFFF, e >> 16, 500, 100, 0)):  # 50.0 Hz, PF 1.00
                r[3 + 2 * i] = reg >> 8
                r[4 + 2 * i] = reg & 0xFF
            n = 23
        elif req[1] == 0x42 and n == 4:
            self.energy_wh_float = 0.0
            r[1] = 0x42  # the reply echoes the request
            n = 2
        else:
            r[1] = req[1] | 0x80  # exception: 0x02 illegal address, 0x01 illegal function
            r[2] = 0x02 if req[1] == 0x04 and n == 8 else 0x01
            n = 3
        crc = crc16(r, n)
        r[n] = crc & 0xFF
        r[n + 1] = crc >> 8 ^ (0x5A if self.corrupt else 0)
        if not self.silent:
            self.tail = n + 2
        if self.state_file:
            with open(self.state_file, "w") as f:
                f.write(repr(self.energy_wh_float))
