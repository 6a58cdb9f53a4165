"""The simulator's control channel and emulated meter; MicroPython only."""

import machine

from control import Control
from pzem_emu import PZEMEmulator
from rc522_emu import RC522Emulator

from charger import config

CFG = config.validate({"server_url": "ws://127.0.0.1:9/ws", "station": 1})


def _control():
    p = CFG["pins"]
    return Control(
        [p["stop"], p["emergency"], p["relay"], p["relay_active_high"]],
        RC522Emulator(),
        PZEMEmulator(power=1000.0),
    )


def _refused(ctl, line):
    try:
        ctl.handle(line)
    except ValueError as e:
        return str(e)
    raise AssertionError("accepted %r" % line)


def case_bad_commands_get_an_error_not_a_crash():
    ctl = _control()
    assert "uid" in _refused(ctl, "tap 12345")
    assert "unknown" in _refused(ctl, "fly away")
    assert "stop|emergency" in _refused(ctl, "press nose")
    assert "meter" in _refused(ctl, "meter broken")
    _refused(ctl, "load lots")
    assert ctl.handle("") is None


def case_buttons_drive_their_pins_with_the_documented_levels():
    ctl = _control()
    stop = machine.Pin.board(CFG["pins"]["stop"])
    emergency = machine.Pin.board(CFG["pins"]["emergency"])
    assert stop.value() == 1 and emergency.value() == 0  # released: NO open, NC closed
    ctl.handle("press stop")
    ctl.handle("press emergency")
    assert stop.value() == 0 and emergency.value() == 1


def case_meter_sees_the_load_only_through_the_relay():
    ctl = _control()
    meter = ctl.meter
    meter.switch = ctl.relay_on
    assert meter.active_power() == 0.0
    machine.Pin.board(CFG["pins"]["relay"]).value(1)
    assert meter.active_power() == 1000.0
