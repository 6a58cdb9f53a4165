"""An MFRC522 emulated at the register level behind the simulated SPI bus (never shipped).

Implements what a driver touches: register reads/writes framed as `(reg << 1) & 0x7E | 0x80`
address bytes, the 64-byte FIFO, CommandReg (Idle, CalcCRC, Transceive, SoftReset), ComIrqReg,
DivIrqReg, ErrorReg (CollErr), ControlReg, CRCResultReg and VersionReg; and ISO 14443-3 cards
(REQA/WUPA, bit-oriented anticollision with NVB and RxAlign, select at cascade levels 1-3
with BCC and CRC_A, HLTA). Cards that differ inside an anticollision frame produce CollErr with
the first collided bit in CollReg. `absent=True` emulates a
missing or miswired reader (VersionReg reads 0x00).
"""

REQA = 0x26
WUPA = 0x52
SEL = (0x93, 0x95, 0x97)


def crc_a(data):
    """ISO 14443-3 CRC_A (init 0x6363, reflected poly 0x8408); returns (lsb, msb)."""
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return crc & 0xFF, crc >> 8


class Card:
    """A PICC with a 4-, 7- or 10-byte UID."""

    def __init__(self, uid):
        self.uid = bytes(uid)
        if len(self.uid) not in (4, 7, 10):
            raise ValueError("UID must be 4, 7 or 10 bytes")
        self.state = "idle"   # idle, ready, active, halt
        self.level = 0

    def levels(self):
        u = self.uid
        if len(u) == 4:
            return [u]
        if len(u) == 7:
            return [bytes([0x88]) + u[0:3], u[3:7]]
        return [bytes([0x88]) + u[0:3], bytes([0x88]) + u[3:6], u[6:10]]

    def atqa(self):
        return bytes([{4: 0x04, 7: 0x44, 10: 0x84}[len(self.uid)], 0x00])


class RC522Emulator:
    """Attach with `machine.attach_spi(bus, emulator)`; the SPI calls `transfer(tx, rx)`."""

    def __init__(self, version=0x92, absent=False):
        self.version = version
        self.absent = absent
        self.regs = bytearray(64)
        self.fifo = []
        self.cards = []
        self.transceives = 0
        self.coll_pos_valid = True  # False: the chip cannot tell where the collision was
        self._reset_regs()

    def _reset_regs(self):
        self.regs = bytearray(64)
        self.regs[0x37] = self.version
        self.fifo = []

    # --- the field ---------------------------------------------------------------------
    def place(self, uid):
        """Put a card on the reader (a fresh tap: the card answers REQA again)."""
        self.remove(uid)
        self.cards.append(Card(uid))

    def remove(self, uid=None):
        """Take one card (or all) off the reader."""
        if uid is None:
            self.cards = []
        else:
            self.cards = [c for c in self.cards if c.uid != bytes(uid)]

    # --- SPI ---------------------------------------------------------------------------
    def transfer(self, tx, rx=None):
        """One chip-select frame; the bytes clocked out on MISO go into rx (if given)."""
        if rx is not None:
            for i in range(len(rx)):
                rx[i] = 0
        if self.absent or not tx:
            return
        addr = tx[0]
        reg = (addr >> 1) & 0x3F
        if addr & 0x80:  # read: every following byte is the next address
            for i in range(1, len(tx)):
                val = self._read(reg)
                if rx is not None:
                    rx[i] = val
                reg = (tx[i] >> 1) & 0x3F
        else:
            for i in range(1, len(tx)):
                self._write(reg, tx[i])

    def _read(self, reg):
        if reg == 0x09:
            return self.fifo.pop(0) if self.fifo else 0
        if reg == 0x0A:
            return len(self.fifo)
        return self.regs[reg]

    def _write(self, reg, val):
        if reg == 0x09:
            if len(self.fifo) < 64:
                self.fifo.append(val)
            return
        if reg == 0x0A:
            if val & 0x80:
                self.fifo = []
            return
        if reg in (0x04, 0x05):  # Set1 bit 7: set the marked bits, else clear them
            if val & 0x80:
                self.regs[reg] |= val & 0x7F
            else:
                self.regs[reg] &= ~val & 0x7F
            return
        if reg == 0x37:
            return
        self.regs[reg] = val
        if reg == 0x01:
            self._command(val & 0x0F)
        elif reg == 0x0D and val & 0x80 and self.regs[0x01] & 0x0F == 0x0C:
            self._transceive(val & 0x07)

    def _command(self, cmd):
        if cmd == 0x0F:
            self._reset_regs()
        elif cmd == 0x03:
            lsb, msb = crc_a(self.fifo)
            self.fifo = []
            self.regs[0x22] = lsb
            self.regs[0x21] = msb
            self.regs[0x05] |= 0x04

    def _cl(self, card, level):
        cl = card.levels()[level]
        return bytes(cl) + bytes([cl[0] ^ cl[1] ^ cl[2] ^ cl[3]])

    def _anticollision(self, frame, level, ready):
        """ANTICOLLISION with NVB: cards whose UID starts with the sent bits answer the rest."""
        nvb = frame[1]
        full, extra = nvb >> 4, nvb & 0x0F
        if full < 2 or extra > 7 or len(frame) != full + (1 if extra else 0):
            return self._finish(None)
        known = (full - 2) * 8 + extra
        sent = frame[2:]

        def bit(data, i):
            return (data[i >> 3] >> (i & 7)) & 1

        answering = [c for c in ready
                     if all(bit(self._cl(c, level), i) == bit(sent, i) for i in range(known))]
        if not answering:
            return self._finish(None)
        first = self._cl(answering[0], level)
        coll_pos = 0
        for i in range(known, 40):
            if any(bit(self._cl(c, level), i) != bit(first, i) for c in answering):
                coll_pos = i + 1  # 1-based, counted from the first UID bit of the level
                break
        resp = bytearray(first[known >> 3:])
        resp[0] &= ~((1 << (known & 7)) - 1) & 0xFF  # RxAlign: the first byte's high bits
        if coll_pos:
            # CollReg: CollPos (32 reads as 0); CollPosNotValid (0x20) when told to hide it
            self.regs[0x0E] = (coll_pos & 0x1F) | (0 if self.coll_pos_valid else 0x20)
        return self._finish(bytes(resp), coll=bool(coll_pos))

    def _select(self, frame, level, ready):
        if crc_a(frame[:7]) != (frame[7], frame[8]):
            return self._finish(None)
        chosen = [c for c in ready if self._cl(c, level) == bytes(frame[2:7])]
        for c in ready:
            if c not in chosen:
                c.state = "idle"  # not selected: back to IDLE, answers the next REQA
        if not chosen:
            return self._finish(None)
        sak = 0x08
        for card in chosen:  # 7/10-byte cards may share a cascade level: all go on
            if level + 1 < len(card.levels()):
                sak = 0x04
                card.level = level + 1
            else:
                card.state = "active"
        lsb, msb = crc_a([sak])
        return self._finish(bytes([sak, lsb, msb]))

    def _finish(self, data, coll=False):
        self.regs[0x06] = 0x08 if coll else 0
        if data is None:
            self.regs[0x04] |= 0x01  # TimerIRq: no answer
            return
        self.fifo = list(data)
        self.regs[0x04] |= 0x30  # RxIRq | IdleIRq
        self.regs[0x0C] = 0

    def _transceive(self, tx_last_bits):
        self.transceives += 1
        frame = bytes(self.fifo)
        self.fifo = []
        if not frame:
            return self._finish(None)
        cmd = frame[0]
        if len(frame) == 1 and tx_last_bits == 7 and cmd in (REQA, WUPA):
            answering = [c for c in self.cards
                         if c.state == "idle" or (cmd == WUPA and c.state == "halt")]
            for c in answering:
                c.state = "ready"
                c.level = 0
            if not answering:
                return self._finish(None)
            atqa = answering[0].atqa()
            coll = any(c.atqa() != atqa for c in answering)
            return self._finish(atqa, coll)
        if cmd == 0x50 and len(frame) == 4:
            for c in self.cards:
                if c.state == "active":
                    c.state = "halt"
            return self._finish(None)
        if cmd in SEL and len(frame) >= 2:
            level = SEL.index(cmd)
            ready = [c for c in self.cards if c.state == "ready" and c.level == level
                     and level < len(c.levels())]
            if frame[1] == 0x70 and len(frame) == 9:
                return self._select(frame, level, ready)
            return self._anticollision(frame, level, ready)
        return self._finish(None)
