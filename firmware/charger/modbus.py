"""CRC-16/Modbus (reflected polynomial 0xA001, initial 0xFFFF, low byte sent first).

Hand-written: six lines, allocation-free over a buffer slice; no library on the board has it.
"""


def crc16(buf, n):
    """CRC-16/Modbus of buf[0:n]."""
    crc = 0xFFFF
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def crc_ok(buf, n):
    """True when buf[0:n] ends with its own CRC (low byte first)."""
    if n < 3:
        return False
    crc = crc16(buf, n - 2)
    return buf[n - 2] == crc & 0xFF and buf[n - 1] == crc >> 8
