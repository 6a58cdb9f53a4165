"""An MFRC522 emulated at the register level behind the simulated SPI bus (never shipped).

Implements what a driver touches: register reads/writes framed as `(reg << 1) & 0x7E | 0x80`
address bytes, the 64-byte FIFO, CommandReg (Idle, Transceive, SoftReset), ComIrqReg,
ErrorReg (CollErr), CollReg and VersionReg (the driver computes CRC_A itself: no CalcCRC);
and ISO 14443-3 cards with 4-, 7- or 10-byte UIDs (REQA/WUPA, bit-oriented anticollision with
NVB and RxAlign, select at cascade levels 1-3 with BCC and CRC_A, HLTA). Cards that differ
inside an anticollision frame produce CollErr with the first collided bit in CollReg
(`coll_pos_valid = False`: CollPosNotValid instead). `absent=True` emulates a missing or
miswired reader (VersionReg reads 0x00).

Written compactly (it shares the heap with the firmware): a card is a list (state, cascade
level, its cascade-level frames with BCC computed once at `place()`), the FIFO a preallocated
bytearray with read/write indices, one method per SPI frame and one per transceive.
"""

from micropython import const

_FIFO = const(0x09)
_LEVEL_REG = const(0x0A)
_VERSION = const(0x37)
# a card: [uid, state, cascade level, frames per cascade level (4 UID bytes + BCC), ATQA]
_UID = const(0)
_STATE = const(1)
_CL = const(2)
_FRAMES = const(3)
_ATQA = const(4)
_IDLE = const(0)
_READY = const(1)
_ACTIVE = const(2)
_HALT = const(3)


def crc_a(data):
    """ISO 14443-3 CRC_A (init 0x6363, reflected poly 0x8408); returns (lsb, msb)."""
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return crc & 0xFF, crc >> 8


def _bit(data, i):
    return (data[i >> 3] >> (i & 7)) & 1


class RC522Emulator:
    """Attach with `machine.attach_spi(bus, emulator)`; the SPI calls `transfer(tx, rx)`."""

    def __init__(self, version=0x92, absent=False):
        self.version = version
        self.absent = absent
        self.regs = bytearray(64)
        self.fifo = bytearray(64)
        self.head = 0  # next FIFO byte to read
        self.tail = 0  # FIFO bytes written
        self.cards = []
        self.coll_pos_valid = True  # False: the chip cannot tell where the collision was
        self.regs[_VERSION] = version

    def place(self, uid):
        """Put a card on the reader (a fresh tap: the card answers REQA again)."""
        uid = bytes(uid)
        if len(uid) not in (4, 7, 10):
            raise ValueError("UID must be 4, 7 or 10 bytes")
        self.remove(uid)
        # cascade levels: 4 UID bytes each, 0x88 (cascade tag) + 3 bytes when more follow
        parts = [uid] if len(uid) == 4 else [b"\x88" + uid[:3]] + (
            [uid[3:]] if len(uid) == 7 else [b"\x88" + uid[3:6], uid[6:]])
        frames = [p + bytes([p[0] ^ p[1] ^ p[2] ^ p[3]]) for p in parts]
        # ATQA bits 7-6: UID size single (0x04), double (0x44), triple (0x84)
        self.cards.append([uid, _IDLE, 0, frames, bytes([0x04 + (len(uid) - 4) // 3 * 0x40, 0])])

    def remove(self, uid=None):
        """Take one card (or all) off the reader."""
        self.cards = [] if uid is None else [c for c in self.cards if c[_UID] != bytes(uid)]

    def transfer(self, tx, rx=None):
        """One chip-select frame; the bytes clocked out on MISO go into rx (if given)."""
        if rx is not None:
            for i in range(len(rx)):
                rx[i] = 0
        if self.absent or not tx:
            return
        regs = self.regs
        reg = (tx[0] >> 1) & 0x3F
        if tx[0] & 0x80:  # read: every following byte is the next address
            for i in range(1, len(tx)):
                if reg == _FIFO:
                    val = self.fifo[self.head] if self.head < self.tail else 0
                    self.head = min(self.head + 1, self.tail)
                else:
                    val = self.tail - self.head if reg == _LEVEL_REG else regs[reg]
                if rx is not None:
                    rx[i] = val
                reg = (tx[i] >> 1) & 0x3F
            return
        for i in range(1, len(tx)):
            val = tx[i]
            if reg == _FIFO:
                if self.tail < 64:
                    self.fifo[self.tail] = val
                    self.tail += 1
            elif reg == _LEVEL_REG:
                if val & 0x80:  # FlushBuffer
                    self.head = self.tail = 0
            elif reg == 0x04:  # ComIrqReg, Set1 bit 7: set the marked bits, else clear them
                regs[reg] = regs[reg] | (val & 0x7F) if val & 0x80 else regs[reg] & ~val & 0x7F
            elif reg != _VERSION:
                regs[reg] = val
                if reg == 0x01 and val & 0x0F == 0x0F:  # SoftReset
                    regs[:] = bytes(64)
                    regs[_VERSION] = self.version
                    self.head = self.tail = 0
                elif reg == 0x0D and val & 0x80 and regs[0x01] & 0x0F == 0x0C:  # StartSend
                    answer = self._transceive(val & 0x07)  # (bytes, collision) or None
                    regs[0x06] = 0x08 if answer and answer[1] else 0  # CollErr
                    if answer is None:
                        regs[0x04] |= 0x01  # TimerIRq: no answer
                    else:
                        n = len(answer[0])
                        self.fifo[:n] = answer[0]
                        self.head, self.tail = 0, n
                        regs[0x04] |= 0x30  # RxIRq | IdleIRq

    def _transceive(self, tx_last_bits):
        """The FIFO as one frame to the cards in the field; returns (answer, collision) or
        None (no card answers: the chip's timer runs out)."""
        frame = bytes(self.fifo[self.head:self.tail])
        self.head = self.tail = 0
        if not frame:
            return None
        cmd = frame[0]
        cards = self.cards
        if len(frame) == 1 and tx_last_bits == 7 and cmd in (0x26, 0x52):  # REQA, WUPA
            answering = [c for c in cards
                         if c[_STATE] == _IDLE or (cmd == 0x52 and c[_STATE] == _HALT)]
            for c in answering:
                c[_STATE] = _READY
                c[_CL] = 0
            if not answering:
                return None
            atqa = answering[0][_ATQA]
            return atqa, any(c[_ATQA] != atqa for c in answering)
        if cmd == 0x50 and len(frame) == 4:  # HLTA
            for c in cards:
                if c[_STATE] == _ACTIVE:
                    c[_STATE] = _HALT
            return None
        if cmd not in (0x93, 0x95, 0x97) or len(frame) < 2:
            return None
        level = (cmd - 0x93) >> 1
        ready = [c for c in cards if c[_STATE] == _READY and c[_CL] == level
                 and level < len(c[_FRAMES])]
        if frame[1] == 0x70 and len(frame) == 9:  # SELECT: the whole level and its CRC_A
            if crc_a(frame[:7]) != (frame[7], frame[8]):
                return None
            chosen = [c for c in ready if c[_FRAMES][level] == frame[2:7]]
            for c in ready:
                if c not in chosen:
                    c[_STATE] = _IDLE  # not selected: back to IDLE, answers the next REQA
            if not chosen:
                return None
            sak = 0x08
            for c in chosen:  # 7/10-byte cards may share a cascade level: all go on
                if level + 1 < len(c[_FRAMES]):
                    sak = 0x04  # cascade bit: the UID is not complete
                    c[_CL] = level + 1
                else:
                    c[_STATE] = _ACTIVE
            return bytes((sak,) + crc_a((sak,))), False
        # ANTICOLLISION with NVB: cards whose frame starts with the sent bits answer the rest
        full, extra = frame[1] >> 4, frame[1] & 0x0F
        if full < 2 or extra > 7 or len(frame) != full + (1 if extra else 0):
            return None
        known = (full - 2) * 8 + extra
        answering = [c for c in ready
                     if all(_bit(c[_FRAMES][level], i) == _bit(frame, i + 16)
                            for i in range(known))]
        if not answering:
            return None
        first = answering[0][_FRAMES][level]
        coll_pos = 0
        for i in range(known, 40):
            if any(_bit(c[_FRAMES][level], i) != _bit(first, i) for c in answering):
                coll_pos = i + 1  # 1-based, counted from the first UID bit of the level
                break
        resp = bytearray(first[known >> 3:])
        resp[0] &= ~((1 << (known & 7)) - 1) & 0xFF  # RxAlign: the first byte's high bits
        if coll_pos:
            # CollReg: CollPos (32 reads as 0); CollPosNotValid (0x20) when told to hide it
            self.regs[0x0E] = (coll_pos & 0x1F) | (0 if self.coll_pos_valid else 0x20)
        return resp, bool(coll_pos)
