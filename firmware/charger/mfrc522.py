"""MFRC522 (RC522) NFC reader driver over SPI: full UIDs with cascade levels.

Written by hand because the known MicroPython drivers read 4-byte UIDs only. Reads 4-, 7- and
10-byte UIDs (ISO 14443-3 cascade levels 1-3), checks every BCC, resolves bit collisions
when several cards answer (the anticollision loop picks one; the others answer later polls),
and halts the card after a read (a card left on the reader is reported once). All SPI traffic goes
through preallocated buffers. `uid_hex()` formats a UID as upper-case hex without separators.
"""

from micropython import const
from time import sleep_ms

_CommandReg = const(0x01)
_ComIrqReg = const(0x04)
_DivIrqReg = const(0x05)
_ErrorReg = const(0x06)
_FIFODataReg = const(0x09)
_FIFOLevelReg = const(0x0A)
_ControlReg = const(0x0C)
_BitFramingReg = const(0x0D)
_CollReg = const(0x0E)
_ModeReg = const(0x11)
_TxControlReg = const(0x14)
_TxASKReg = const(0x15)
_CRCResultRegH = const(0x21)
_CRCResultRegL = const(0x22)
_TModeReg = const(0x2A)
_TPrescalerReg = const(0x2B)
_TReloadRegH = const(0x2C)
_TReloadRegL = const(0x2D)
_VersionReg = const(0x37)

_CMD_IDLE = const(0x00)
_CMD_CALCCRC = const(0x03)
_CMD_TRANSCEIVE = const(0x0C)
_CMD_SOFTRESET = const(0x0F)

_PICC_REQA = const(0x26)
_PICC_HLTA = const(0x50)
_CASCADE_TAG = const(0x88)

OK = const(0)
NO_CARD = const(1)
ERROR = const(2)
COLLISION = const(3)

_SEL = (0x93, 0x95, 0x97)
_HEX = "0123456789ABCDEF"


def uid_hex(uid, n):
    """The first n bytes of uid as upper-case hex without separators."""
    out = ""
    for i in range(n):
        b = uid[i]
        out += _HEX[b >> 4] + _HEX[b & 15]
    return out


class MFRC522:
    """The reader. `version()` 0x00/0xFF means it is absent or miswired."""

    def __init__(self, spi, cs, rst=None):
        self.spi = spi
        self.cs = cs
        self.rst = rst
        cs.init(cs.OUT, value=1)
        if rst is not None:
            rst.init(rst.OUT, value=1)
        self._tx2 = bytearray(2)
        self._rx2 = bytearray(2)
        self._frame = bytearray(9)      # outgoing PICC frame
        self._resp = bytearray(16)      # incoming PICC frame
        self.uid = bytearray(10)
        self.uid_len = 0
        self._cl = bytearray(5)  # the UID bytes of one cascade level and their BCC
        self.last_collision = False
        self.coll_pos = 0

    # --- registers ---------------------------------------------------------------------
    def _wreg(self, reg, val):
        tx = self._tx2
        tx[0] = (reg << 1) & 0x7E
        tx[1] = val
        self.cs(0)
        self.spi.write(tx)
        self.cs(1)

    def _rreg(self, reg):
        tx = self._tx2
        tx[0] = ((reg << 1) & 0x7E) | 0x80
        tx[1] = 0
        self.cs(0)
        self.spi.write_readinto(tx, self._rx2)
        self.cs(1)
        return self._rx2[1]

    def _set_bits(self, reg, mask):
        self._wreg(reg, self._rreg(reg) | mask)

    def _clear_bits(self, reg, mask):
        self._wreg(reg, self._rreg(reg) & (~mask & 0xFF))

    # --- setup -------------------------------------------------------------------------
    def version(self):
        return self._rreg(_VersionReg)

    def present(self):
        v = self.version()
        return v != 0x00 and v != 0xFF

    def init(self):
        """Reset and configure the chip; returns False when the reader is absent."""
        if not self.present():
            return False
        self._wreg(_CommandReg, _CMD_SOFTRESET)
        sleep_ms(50)
        self._wreg(_TModeReg, 0x8D)
        self._wreg(_TPrescalerReg, 0x3E)
        self._wreg(_TReloadRegL, 30)
        self._wreg(_TReloadRegH, 0)
        self._wreg(_TxASKReg, 0x40)
        self._wreg(_ModeReg, 0x3D)
        self._set_bits(_TxControlReg, 0x03)  # antenna on
        return True

    # --- transport ---------------------------------------------------------------------
    def _load_fifo(self, irq_reg, irq_clear, n):
        """Chip idle, the command's IRQ bits cleared, the FIFO holding _frame[0:n]."""
        self._wreg(_CommandReg, _CMD_IDLE)
        self._wreg(irq_reg, irq_clear)
        self._wreg(_FIFOLevelReg, 0x80)
        self._fifo_put(n)

    def _fifo_put(self, n):
        for i in range(n):
            self._wreg(_FIFODataReg, self._frame[i])

    def _transceive(self, n, framing):
        """Send n bytes of _frame; returns the number of bytes received into _resp, or -1.

        `framing` is BitFramingReg without StartSend: RxAlign << 4 | TxLastBits. On a bit
        collision `last_collision` is set and the bits received are still returned (with
        `coll_pos`, CollReg: the 1-based position of the first collided bit, 0x20 = unknown).
        Runs on every card poll: this and the helpers it calls keep few locals, so their
        frames stay on the C stack (a larger frame is allocated on the heap at every call).
        """
        self._load_fifo(_ComIrqReg, 0x7F, n)
        self._wreg(_CommandReg, _CMD_TRANSCEIVE)
        self._wreg(_BitFramingReg, 0x80 | framing)
        irq = self._wait_irq()
        self._clear_bits(_BitFramingReg, 0x80)
        self.last_collision = False
        if not irq & 0x30 or irq & 0x01 and not irq & 0x20:
            return -1  # timeout: nobody answered
        return self._read_fifo()

    def _wait_irq(self):
        irq = 0
        for _ in range(200):
            irq = self._rreg(_ComIrqReg)
            if irq & 0x31:  # RxIRq | IdleIRq | TimerIRq
                break
        return irq

    def _read_fifo(self):
        err = self._rreg(_ErrorReg)
        if err & 0x08:  # CollErr
            self.last_collision = True
            self.coll_pos = self._rreg(_CollReg)
        elif err & 0x13:  # BufferOvfl, ParityErr, ProtocolErr
            return -1
        count = self._rreg(_FIFOLevelReg)
        if count > len(self._resp):
            return -1
        for i in range(count):
            self._resp[i] = self._rreg(_FIFODataReg)
        return count

    def _crc(self, n):
        """CRC_A of _frame[0:n], appended at _frame[n], _frame[n+1]; False on timeout."""
        self._load_fifo(_DivIrqReg, 0x04, n)
        self._wreg(_CommandReg, _CMD_CALCCRC)
        frame = self._frame
        for _ in range(200):
            if self._rreg(_DivIrqReg) & 0x04:
                self._wreg(_CommandReg, _CMD_IDLE)
                frame[n] = self._rreg(_CRCResultRegL)
                frame[n + 1] = self._rreg(_CRCResultRegH)
                return True
        return False

    # --- ISO 14443-3 -------------------------------------------------------------------
    def read_uid(self):
        """Look for a card and read its full UID into self.uid / self.uid_len.

        With several cards on the reader the ISO 14443-3 bit-collision loop picks one (the
        one with a 1 at the first differing bit); the others answer a later poll. Returns OK,
        NO_CARD, COLLISION (cards answered but no UID could be resolved) or ERROR.
        """
        self._frame[0] = _PICC_REQA
        n = self._transceive(1, 7)
        if n < 1 or n != 2 and not self.last_collision:
            return NO_CARD  # (differing ATQAs collide too: cards are there)
        return self._select()

    def _select(self):
        # cascade levels 1-3 of the card(s) that answered REQA (only when a card is there)
        uid = self.uid
        got = 0
        f = self._frame
        cl = self._cl
        for level in range(3):
            status = self._anticollision(_SEL[level])
            if status != OK:
                return status
            if cl[0] ^ cl[1] ^ cl[2] ^ cl[3] != cl[4]:
                return ERROR  # BCC mismatch
            f[0] = _SEL[level]
            f[1] = 0x70
            for i in range(5):
                f[2 + i] = cl[i]
            if not self._crc(7):
                return ERROR
            n = self._transceive(9, 0)
            if n != 3:
                return ERROR
            sak = self._resp[0]
            if cl[0] == _CASCADE_TAG and sak & 0x04:
                for i in range(3):
                    uid[got + i] = cl[1 + i]
                got += 3
                continue
            for i in range(4):
                uid[got + i] = cl[i]
            got += 4
            self.uid_len = got
            self._halt()
            return OK
        return ERROR

    def _anticollision(self, sel):
        """Resolve the 5 bytes (UID CLn + BCC) of one cascade level into self._cl."""
        cl = self._cl
        f = self._frame
        for i in range(5):
            cl[i] = 0
        known = 0  # bits of cl already fixed
        for _ in range(33):  # every round fixes at least one more bit
            nbytes = known >> 3
            nbits = known & 7
            f[0] = sel
            f[1] = ((2 + nbytes) << 4) | nbits  # NVB
            sent = nbytes + (1 if nbits else 0)
            for i in range(sent):
                f[2 + i] = cl[i]
            n = self._transceive(2 + sent, (nbits << 4) | nbits)
            if n < 1:
                return COLLISION if self.last_collision else ERROR
            resp = self._resp
            keep = (1 << nbits) - 1  # low bits of the first byte were sent, not received
            for i in range(n):
                if nbytes + i >= 5:
                    break
                b = resp[i]
                if i == 0:
                    b = (cl[nbytes] & keep) | (b & ~keep & 0xFF)
                cl[nbytes + i] = b
            if not self.last_collision:
                return OK if nbytes + n >= 5 else ERROR
            pos = self.coll_pos & 0x1F or 32
            if self.coll_pos & 0x20 or pos <= known:
                return COLLISION  # the chip could not say where: give up this poll
            # bits before the collision are valid; choose 1 at the collided bit
            idx = (pos - 1) >> 3
            bit = (pos - 1) & 7
            cl[idx] = (cl[idx] & ((1 << bit) - 1)) | (1 << bit)
            for i in range(idx + 1, 5):
                cl[i] = 0
            known = pos
        return ERROR

    def _halt(self):
        f = self._frame
        f[0] = _PICC_HLTA
        f[1] = 0
        if self._crc(2):
            self._transceive(4, 0)  # a halted card does not answer: -1 is success

    def uid_text(self):
        """The last UID read, as upper-case hex (8, 14 or 20 characters)."""
        return uid_hex(self.uid, self.uid_len)
