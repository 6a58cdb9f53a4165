"""A PZEM-004T v3.0 emulated at the Modbus-RTU frame level behind the simulated UART.

Answers read-input-registers (0x04) for 0x0000-0x0009 with the scaled registers and a
CRC-16/Modbus, the reset-energy command (0x42), and Modbus exceptions for anything else.
Energy accumulates from the set power over simulated time (`time_scale` simulated seconds per
real second). Faults can be injected: `silent` (no reply: a timeout), `corrupt` (bad CRC).
`state_file` keeps the energy register across a simulated reboot, as the real meter does.
Never shipped.
"""

import time


def _now_ms():
    return time.ticks_ms()


class PZEMEmulator:
    """Attach with `machine.attach_uart(uart_id, emulator)`."""

    def __init__(self, address=0x01, voltage=230.0, power=0.0, time_scale=1.0, state_file=None):
        self.address = address
        self.voltage = voltage
        self.power = power
        self.frequency = 50.0
        self.pf = 1.0
        self.time_scale = time_scale
        self.silent = False
        self.corrupt = False
        self.state_file = state_file
        self.energy_wh_float = 0.0
        self.requests = 0
        self.switch = None  # callable: is the load connected (the relay on)? None: always
        self._last_ms = _now_ms()
        self._rx = bytearray()
        if state_file:
            try:
                with open(state_file) as f:
                    self.energy_wh_float = float(f.read().strip() or "0")
            except OSError:
                pass

    # --- physics -----------------------------------------------------------------------
    def advance(self):
        """Accumulate energy for the time passed since the last call."""
        now = _now_ms()
        dt_s = time.ticks_diff(now, self._last_ms) / 1000 * self.time_scale
        self._last_ms = now
        w = self.active_power()
        if dt_s > 0 and w > 0:
            self.energy_wh_float += w * dt_s / 3600
        self._save()

    def _save(self):
        if self.state_file:
            with open(self.state_file, "w") as f:
                f.write(repr(self.energy_wh_float))

    @property
    def energy_wh(self):
        return int(self.energy_wh_float)

    def active_power(self):
        """The power drawn now: the set load while the relay connects it."""
        if self.switch is not None and not self.switch():
            return 0.0
        return self.power

    def current(self):
        if self.voltage <= 0:
            return 0.0
        return self.active_power() / (self.voltage * self.pf)

    # --- UART --------------------------------------------------------------------------
    def receive(self, data):
        """Bytes the firmware wrote; the reply (if any) goes to `pending()`."""
        self.requests += 1
        self.advance()
        req = bytes(data)
        reply = self._answer(req)
        if reply is None or self.silent:
            return
        reply = bytearray(reply)
        if self.corrupt:
            reply[-1] ^= 0x5A
        self._rx.extend(reply)

    def pending(self):
        """Bytes waiting to be read by the firmware (taken)."""
        out = bytes(self._rx)
        self._rx = bytearray()
        return out

    def _frame(self, body):
        from charger.modbus import crc16  # the firmware's: loaded after the simulator's heap
        crc = crc16(body, len(body))
        return bytes(body) + bytes([crc & 0xFF, crc >> 8])

    def _answer(self, req):
        if len(req) < 4:
            return None
        from charger.modbus import crc16
        crc = crc16(req, len(req) - 2)
        if req[-2] != crc & 0xFF or req[-1] != crc >> 8:
            return None  # the real meter stays silent on a bad CRC
        addr = req[0]
        if addr != self.address and addr != 0xF8:
            return None
        fn = req[1]
        if fn == 0x04 and len(req) == 8:
            start = (req[2] << 8) | req[3]
            count = (req[4] << 8) | req[5]
            if start != 0 or count != 10:
                return self._frame(bytearray([self.address, 0x84, 0x02]))
            return self._frame(self._registers())
        if fn == 0x42 and len(req) == 4:
            self.energy_wh_float = 0.0
            self._save()
            return bytes(req)
        return self._frame(bytearray([self.address, fn | 0x80, 0x01]))

    def _registers(self):
        v = int(round(self.voltage * 10))
        a = int(round(self.current() * 1000))
        w = int(round(self.active_power() * 10))
        e = self.energy_wh
        regs = [v, a & 0xFFFF, a >> 16, w & 0xFFFF, w >> 16, e & 0xFFFF, e >> 16,
                int(round(self.frequency * 10)), int(round(self.pf * 100)), 0]
        body = bytearray([self.address, 0x04, 20])
        for r in regs:
            body.append((r >> 8) & 0xFF)
            body.append(r & 0xFF)
        return body
