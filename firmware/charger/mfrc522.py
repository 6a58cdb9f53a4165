"""MFRC522 (RC522) NFC reader driver over SPI: full UIDs with cascade levels.

Written by hand because the known MicroPython drivers read 4-byte UIDs only. Reads 4-, 7- and
10-byte UIDs (ISO 14443-3 cascade levels 1-3), checks every BCC, resolves bit collisions
when several cards answer (the anticollision loop picks one; the others answer later polls),
and halts the card after a read (a card left on the reader is reported once).

`init()` is False when the reader is absent or miswired (VersionReg 0x00/0xFF). `read_uid()`
returns OK (0), 1 (no card), 2 (error: timeout or BCC) or COLLISION (3: cards answered
but no UID could be resolved); after OK, `uid[:uid_len]` holds the UID and `uid_text()` gives
it as upper-case hex without separators.

Compact on purpose (docs/architecture.md, "Firmware memory rules"): few methods, register numbers as
private consts, one buffer `f` for the PICC frame going out and the reply coming in, CRC_A
computed in software (less code and SPI traffic than the chip's CalcCRC; the HLTA frame's CRC
is a constant). All SPI traffic goes through preallocated buffers; polling while no card is
there allocates nothing, so the methods on that path (`reg`, `send`, `read_uid`) keep their
frames within 11 slots.
"""

import time
from binascii import hexlify
from micropython import const

_CommandReg = const(0x01)
_ComIrqReg = const(0x04)
_ErrorReg = const(0x06)
_FIFODataReg = const(0x09)
_FIFOLevelReg = const(0x0A)
_BitFramingReg = const(0x0D)
_CollReg = const(0x0E)
_ModeReg = const(0x11)
_TxControlReg = const(0x14)
_TxASKReg = const(0x15)
_TModeReg = const(0x2A)
_TPrescalerReg = const(0x2B)
_TReloadRegH = const(0x2C)
_TReloadRegL = const(0x2D)
_VersionReg = const(0x37)

_CMD_IDLE = const(0x00)
_CMD_TRANSCEIVE = const(0x0C)
_CMD_SOFTRESET = const(0x0F)

_PICC_REQA = const(0x26)
_PICC_SEL_CL1 = const(0x93)  # cascade levels 1-3: 0x93, 0x95, 0x97
_CASCADE_TAG = const(0x88)

OK = const(0)
_NO_CARD = const(1)
_ERROR = const(2)
COLLISION = const(3)


class MFRC522:
    def __init__(self, spi, cs, reset=None):
        self.spi = spi
        self.cs = cs
        cs.init(cs.OUT, value=1)
        if reset is not None:
            reset.init(reset.OUT, value=1)  # out of hard power-down
        self.tx = bytearray(2)  # one register access: address byte, value
        self.rx = bytearray(2)
        self.f = bytearray(16)  # the PICC frame going out, then the reply coming in
        self.cl = bytearray(5)  # the UID bytes of one cascade level and their BCC
        self.uid = bytearray(10)
        self.uid_len = 0
        self.coll = -1  # CollReg after a bit collision in the last exchange, else -1

    def reg(self, r, val=-1):
        """Write `val` to register `r`, or read it (val -1); returns the byte read."""
        tx = self.tx
        tx[0] = r << 1 | 0x80 if val < 0 else r << 1
        tx[1] = 0 if val < 0 else val
        self.cs(0)
        self.spi.write_readinto(tx, self.rx)
        self.cs(1)
        return self.rx[1]

    def init(self):
        """Reset and configure the chip; returns False when the reader is absent."""
        v = self.reg(_VersionReg)
        if v == 0x00 or v == 0xFF:
            return False
        self.reg(_CommandReg, _CMD_SOFTRESET)
        time.sleep_ms(50)
        self.reg(_TModeReg, 0x8D)  # timer: auto start, 25 ms timeout for a PICC answer
        self.reg(_TPrescalerReg, 0x3E)
        self.reg(_TReloadRegL, 30)
        self.reg(_TReloadRegH, 0)
        self.reg(_TxASKReg, 0x40)  # 100 % ASK
        self.reg(_ModeReg, 0x3D)  # CRC coprocessor preset 0x6363 (the usual init)
        self.reg(_TxControlReg, self.reg(_TxControlReg) | 0x03)  # antenna on
        return True

    def send(self, n, framing):
        """Send f[0:n]; returns the number of bytes received into f, or -1.

        `framing` is BitFramingReg without StartSend: RxAlign << 4 | TxLastBits. On a bit
        collision `coll` is CollReg (bit 5: position unknown; bits 0-4: the 1-based position of
        the first collided bit, 0 = 32) and the bits received are still returned.
        """
        self.reg(_CommandReg, _CMD_IDLE)
        self.reg(_ComIrqReg, 0x7F)  # clear the IRQ bits
        self.reg(_FIFOLevelReg, 0x80)  # flush the FIFO
        i = 0
        while i < n:  # (a for loop would keep two more stack slots: a heap frame)
            self.reg(_FIFODataReg, self.f[i])
            i += 1
        self.reg(_CommandReg, _CMD_TRANSCEIVE)
        self.reg(_BitFramingReg, 0x80 | framing)  # StartSend
        for _ in range(200):
            irq = self.reg(_ComIrqReg)
            if irq & 0x31:  # RxIRq | IdleIRq | TimerIRq
                break
        self.reg(_BitFramingReg, framing)
        self.coll = -1
        if not irq & 0x30 or irq & 0x01 and not irq & 0x20:
            return -1  # timeout: nobody answered
        irq = self.reg(_ErrorReg)
        if irq & 0x08:  # CollErr
            self.coll = self.reg(_CollReg)
        elif irq & 0x13:  # BufferOvfl, ParityErr, ProtocolErr
            return -1
        n = self.reg(_FIFOLevelReg)
        if n > 16:
            return -1
        for i in range(n):
            self.f[i] = self.reg(_FIFODataReg)
        return n

    def read_uid(self):
        """Look for a card and read its full UID into uid[:uid_len]; returns a status (above).

        With several cards on the reader the ISO 14443-3 bit-collision loop picks one (the
        one with a 1 at the first differing bit); the others answer a later poll.
        """
        self.f[0] = _PICC_REQA
        n = self.send(1, 7)
        if n < 1 or n != 2 and self.coll < 0:
            return _NO_CARD  # (differing ATQAs collide too: cards are there)
        return self.select()

    def select(self):
        # Cascade levels 1-3 of the card(s) that answered REQA. Runs only when a card is
        # there, so its large frame (allocated per call) costs nothing while polling.
        f = self.f
        cl = self.cl
        got = 0
        for sel in range(_PICC_SEL_CL1, _PICC_SEL_CL1 + 6, 2):
            # anticollision: fix the 40 bits of cl (UID CLn + BCC), one collided bit at a time;
            # the bits above `known` are always overwritten by the card's answer
            known = 0  # bits already fixed
            while True:  # each round fixes at least one more bit (CollPos grows): <= 33
                nbytes = known >> 3
                nbits = known & 7
                f[0] = sel
                f[1] = (2 + nbytes) << 4 | nbits  # NVB
                sent = nbytes + (1 if nbits else 0)
                f[2 : 2 + sent] = cl[:sent]
                n = self.send(2 + sent, nbits << 4 | nbits)
                if n < 1:
                    return COLLISION if self.coll >= 0 else _ERROR
                keep = (1 << nbits) - 1  # low bits of the first byte were sent, not received
                f[0] = cl[nbytes] & keep | f[0] & ~keep & 0xFF
                n = min(n, 5 - nbytes)
                cl[nbytes : nbytes + n] = f[:n]
                if self.coll < 0:
                    if nbytes + n < 5:
                        return _ERROR
                    break
                pos = self.coll & 0x1F or 32
                if self.coll & 0x20 or pos <= known:
                    return COLLISION  # the chip could not say where: give up this poll
                # bits before the collision are valid; choose 1 at the collided bit
                cl[(pos - 1) >> 3] |= 1 << ((pos - 1) & 7)
                known = pos
            if cl[0] ^ cl[1] ^ cl[2] ^ cl[3] != cl[4]:
                return _ERROR  # BCC mismatch
            # SELECT: SEL, NVB 0x70, the 5 bytes, CRC_A; the answer is SAK + CRC_A
            f[0] = sel
            f[1] = 0x70
            f[2:7] = cl
            crc = 0x6363  # CRC_A (ISO 14443-3: reflected 0x8408) of f[0:7], sent low byte first
            for i in range(7):
                b = (f[i] ^ crc) & 0xFF
                b = (b ^ b << 4) & 0xFF
                crc = crc >> 8 ^ b << 8 ^ b << 3 ^ b >> 4
            f[7] = crc & 0xFF
            f[8] = crc >> 8
            if self.send(9, 0) != 3:
                return _ERROR
            if cl[0] == _CASCADE_TAG and f[0] & 0x04:  # UID not complete: 3 bytes here
                self.uid[got : got + 3] = cl[1:4]
                got += 3
                continue
            self.uid[got : got + 4] = cl[:4]
            self.uid_len = got + 4
            f[0:4] = b"\x50\x00\x57\xcd"  # HLTA with its CRC_A
            self.send(4, 0)  # a halted card does not answer: -1 is success
            return OK
        return _ERROR

    def uid_text(self):
        """The last UID read, as upper-case hex (8, 14 or 20 characters)."""
        return hexlify(self.uid[: self.uid_len]).decode().upper()
