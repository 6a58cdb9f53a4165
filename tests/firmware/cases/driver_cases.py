"""Driver cases against the emulated chips; MicroPython only (tools/sim on MICROPYPATH)."""

import machine
import micropython
import time
from binascii import hexlify

from pzem_emu import PZEMEmulator
from rc522_emu import RC522Emulator

from charger import mfrc522, pzem
from charger.pzem import crc16

# the drivers' other status codes (private consts in the firmware, listed in their docstrings)
NO_CARD = 1
TIMEOUT, BAD_FRAME, DEVICE_ERROR = 1, 2, 3


def _reader(**kw):
    emu = RC522Emulator(**kw)
    machine.attach_spi(1, emu)
    r = mfrc522.MFRC522(machine.SPI(1), machine.Pin(5), machine.Pin(22))
    return emu, r


def _meter(**kw):
    emu = PZEMEmulator(**kw)
    machine.attach_uart(2, emu)
    return emu, pzem.PZEM004T(machine.UART(2))


def _firmware_bytes(poll, times=20):
    """Bytes `poll()` allocates `times` times over, the emulated chips' share left out."""
    poll()
    sim0 = machine.sim_alloc[0]
    total0 = micropython.mem_total()
    for _ in range(times):
        poll()
    return micropython.mem_total() - total0 - (machine.sim_alloc[0] - sim0)


def case_present_reader_is_initialised_with_its_antenna_on():
    emu, r = _reader()
    assert r.init() is True
    assert emu.regs[0x14] & 0x03 == 0x03  # TxControlReg: both antenna drivers on


def case_absent_reader_is_detected_not_crashed():
    _emu, r = _reader(absent=True)  # VersionReg reads 0x00
    assert r.init() is False and r.read_uid() == NO_CARD


def case_miswired_reader_reading_all_ones_is_absent():
    _emu, r = _reader(version=0xFF)
    assert r.init() is False


def case_no_card_reads_nothing():
    _emu, r = _reader()
    r.init()
    assert r.read_uid() == NO_CARD


def case_polling_for_a_card_allocates_nothing_while_none_is_there():
    _emu, r = _reader()
    r.init()
    assert _firmware_bytes(r.read_uid) == 0


def case_4_byte_uid_is_upper_case_hex():
    emu, r = _reader()
    r.init()
    emu.place(bytes([0xDE, 0xAD, 0xBE, 0x0F]))
    assert r.read_uid() == mfrc522.OK and r.uid_text() == "DEADBE0F"


def case_7_byte_uid_uses_cascade_level_2():
    emu, r = _reader()
    r.init()
    emu.place(bytes([0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]))
    assert r.read_uid() == mfrc522.OK
    assert r.uid_text() == "04A1B2C3D4E5F6" and r.uid_len == 7


def case_10_byte_uid_uses_cascade_level_3():
    emu, r = _reader()
    r.init()
    emu.place(bytes(range(0x10, 0x1A)))
    assert r.read_uid() == mfrc522.OK and r.uid_text() == "10111213141516171819"


def case_card_left_on_the_reader_is_read_once():
    emu, r = _reader()
    r.init()
    emu.place(bytes([1, 2, 3, 4]))
    assert r.read_uid() == mfrc522.OK
    assert r.read_uid() == NO_CARD  # halted until taken away and tapped again
    emu.place(bytes([1, 2, 3, 4]))
    assert r.read_uid() == mfrc522.OK


def _read_all(r, polls=6):
    uids = []
    for _ in range(polls):
        status = r.read_uid()
        if status == mfrc522.OK:
            uids.append(r.uid_text())
        else:
            assert status == NO_CARD, status
    return uids


def case_two_cards_at_once_are_both_read_one_per_poll():
    emu, r = _reader()
    r.init()
    emu.place(bytes([1, 2, 3, 4]))
    emu.place(bytes([1, 2, 3, 5]))  # differ in one bit of the last byte
    assert sorted(_read_all(r)) == ["01020304", "01020305"]


def case_mixed_4_7_and_10_byte_cards_resolve_through_every_cascade_level():
    emu, r = _reader()
    r.init()
    cards = [
        bytes([1, 2, 3, 4]),
        bytes([4, 1, 2, 3, 4, 5, 6]),
        bytes([4, 1, 2, 9, 9, 9, 9]),  # the same cascade level 1 as the card before
        bytes(range(0x10, 0x1A)),
    ]
    for uid in cards:
        emu.place(uid)
    assert sorted(_read_all(r)) == sorted(hexlify(u).decode().upper() for u in cards)


def case_unresolvable_collision_reports_collision_not_a_guess():
    emu, r = _reader()
    r.init()
    emu.coll_pos_valid = False
    emu.place(bytes([1, 2, 3, 4]))
    emu.place(bytes([1, 2, 3, 5]))
    assert r.read_uid() == mfrc522.COLLISION


def case_modbus_crc_matches_the_spec_example():
    req = bytearray([0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D])
    assert crc16(req, 6) == 0x0D70  # sent low byte first
    assert crc16(req, 8) == 0  # a frame that ends with its own CRC checks to 0
    req[3] = 1
    assert crc16(req, 8) != 0


def case_meter_request_carries_its_address_and_crc():
    _meter()  # the emulated meter answers at address 1
    m = pzem.PZEM004T(machine.UART(2), 0x01)
    assert m.read() == pzem.OK
    assert bytes(m.req) == b"\x01\x04\x00\x00\x00\x0a\x70\x0d"


def case_meter_reading_is_scaled():
    emu, m = _meter(voltage=229.8, power=3572.1)
    emu.energy_wh_float = 70000.4  # above 16 bits: the high word counts
    assert m.read() == pzem.OK
    assert m.voltage == 229.8 and m.power == 3572.1 and m.energy_wh == 70000
    assert abs(m.current - 3572.1 / 229.8) < 0.001
    assert m.frequency_dhz == 500 and m.pf_centi == 100 and not m.alarm


_SINK = [0, 0, 0]


def _three_floats():
    n = 2298
    _SINK[0] = n / 10
    _SINK[1] = n / 1000
    _SINK[2] = n / 10


def case_polling_the_meter_allocates_only_the_three_floats_it_reports():
    _emu, m = _meter(power=3600.0)
    floats = _firmware_bytes(_three_floats)  # volts, amps, watts: floats are heap objects
    assert floats > 0
    assert _firmware_bytes(m.read) == floats
    assert m.read() == pzem.OK


def case_meter_energy_accumulates_with_simulated_time():
    _emu, m = _meter(power=3600.0, time_scale=3600.0)  # 1 real s = 1 simulated hour
    m.read()
    first = m.energy_wh
    time.sleep_ms(200)
    m.read()
    assert m.energy_wh - first >= 600  # 3.6 kW for >= 0.2 simulated hours


def case_meter_crc_error_is_rejected():
    emu, m = _meter(power=100.0)
    emu.corrupt = True
    assert m.read() == BAD_FRAME
    emu.corrupt = False
    assert m.read() == pzem.OK


def case_silent_meter_times_out():
    emu, m = _meter()
    emu.silent = True
    assert m.read() == TIMEOUT


def case_reset_energy_zeroes_the_register():
    emu, m = _meter()
    emu.energy_wh_float = 1234.0
    assert m.reset_energy() == pzem.OK
    assert m.read() == pzem.OK and m.energy_wh == 0


def _seal(frame):
    crc = crc16(frame, len(frame) - 2)
    frame[-2] = crc & 0xFF
    frame[-1] = crc >> 8


def case_wrong_register_range_gets_a_modbus_exception():
    _emu, m = _meter()
    m.req[5] = 11  # 11 registers from 0: beyond the meter's 10
    assert m.read() == DEVICE_ERROR


class _OtherMeterAnswers(PZEMEmulator):
    """A reply with a valid CRC from another address than the one asked."""

    def write(self, req):
        super().write(req)
        self.reply[0] = 0x07
        _seal(memoryview(self.reply)[: self.tail])


def case_reply_from_another_meter_address_is_a_bad_frame():
    emu = _OtherMeterAnswers()
    machine.attach_uart(2, emu)
    m = pzem.PZEM004T(machine.UART(2), 0x01)
    assert m.read() == BAD_FRAME
    assert pzem.PZEM004T(machine.UART(2)).read() == pzem.OK  # the general address takes any
