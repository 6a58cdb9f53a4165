"""The simulator's set-up, run once by run_charger.py before the firmware is imported.

`setup(argv)` parses run_charger.py's arguments, reads the board's config.json with `json`
(the simulator's own code, not the firmware's config module; pins and `pzem_address` the file
leaves out come from firmware/config.example.json, the documented defaults), builds the
emulated RC522 and PZEM-004T, attaches them to the configured buses and makes the control
channel (which drives the buttons' released levels). run_charger.py unloads this module
before taking the simulator's heap baseline: its code is needed once. Never shipped.
"""

import json
import machine
import sys

from control import Control
from pzem_emu import PZEMEmulator
from rc522_emu import RC522Emulator

_KEYS = "pins pzem_address stop emergency relay relay_active_high spi_id uart_id"


def setup(argv):
    """Parse run_charger.py's arguments, build the emulated hardware; returns
    (config path, Control)."""
    path = None
    opts = {"--time-scale": 1.0, "--power": 0.0, "--meter-state": None}
    absent = False
    i = 0
    try:
        while i < len(argv):
            a = argv[i]
            if a in opts and i + 1 < len(argv):
                i += 1
                opts[a] = argv[i] if a == "--meter-state" else float(argv[i])
            elif a == "--absent-reader":
                absent = True
            elif path is None and not a.startswith("--"):
                path = a
            else:
                raise ValueError(a)
            i += 1
    except ValueError:  # an unknown argument or a number that is not one
        path = None
    if path is None:
        raise SystemExit("usage: run_charger.py CONFIG.json [--time-scale X] [--power W] "
                         "[--meter-state FILE] [--absent-reader]")
    # The config's key names are built at run time from one long literal (a string object, not
    # interned): names like "stop" or "pzem_address" are the firmware's config qstrs, and
    # interning them here, before the baseline, would take their cost off the firmware's figure.
    pins_key, address_key, stop, emergency, relay, high, spi, uart = _KEYS.split()
    with open(sys.argv[0].rpartition("tools/")[0] + "firmware/config.example.json") as f:
        cfg = json.load(f)
    try:
        with open(path) as f:
            given = json.load(f)
        cfg[pins_key].update(given.get(pins_key) or {})
        cfg[address_key] = given.get(address_key, cfg[address_key])
    except (OSError, ValueError, AttributeError, TypeError) as e:
        # the firmware reports its own config error; the chips sit on the default buses
        print("SIM config:", e)
    # beside the config (the board's file system): machine.reset() leaves its cause there
    machine.reset_file[0] = path.rpartition("/")[0] + "/sim-reset-cause" if "/" in path \
        else "sim-reset-cause"
    pins = cfg[pins_key]
    reader = RC522Emulator(absent=absent)
    machine.attach_spi(pins[spi], reader)
    # the broadcast address (the default) reaches a meter with its factory address 0x01
    address = cfg[address_key] if cfg[address_key] != 0xF8 else 0x01
    meter = PZEMEmulator(address=address, power=opts["--power"],
                         time_scale=opts["--time-scale"], state_file=opts["--meter-state"])
    machine.attach_uart(pins[uart], meter)
    control = Control([pins[stop], pins[emergency], pins[relay], pins[high]], reader, meter)
    meter.switch = control.relay_on  # the meter sees the load only through the relay
    return path, control
