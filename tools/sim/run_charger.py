"""Run the real firmware (`firmware/main.py`) on the MicroPython unix port with emulated hardware.

    MICROPYPATH=tools/sim:firmware micropython tools/sim/run_charger.py CONFIG.json
        [--time-scale X] [--power W] [--meter-state FILE] [--absent-reader]

The config is the board's config.json (server URL, station, token, pins; WiFi joins the
simulated access point of tools/sim/network.py).
The emulated RC522 sits on the configured SPI bus, the emulated PZEM-004T on the UART; the
control channel reads commands on stdin (see control.py). `--time-scale` makes the meter's
energy accumulate X simulated seconds per real second; `--meter-state` keeps the meter's
energy register across a simulated reboot. The watchdog is off unless the config sets it.
Never shipped.
"""

import gc
import sys

import machine
import network  # noqa: F401 - native on the board: part of the simulator's share
from control import Control
from pzem_emu import PZEMEmulator
from rc522_emu import RC522Emulator

gc.collect()
# The simulator's own heap (shims, emulators), measured before anything the board also has:
# asyncio (frozen on the board, but its module objects, classes and queues live in RAM there
# too) and the firmware are imported after this and count as the firmware's.
SIM_BASELINE = gc.mem_alloc()


def _args(argv):
    opts = {"time_scale": 1.0, "power": 0.0, "meter_state": None, "absent_reader": False}
    path = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--time-scale":
            i += 1
            opts["time_scale"] = float(argv[i])
        elif a == "--power":
            i += 1
            opts["power"] = float(argv[i])
        elif a == "--meter-state":
            i += 1
            opts["meter_state"] = argv[i]
        elif a == "--absent-reader":
            opts["absent_reader"] = True
        elif path is None:
            path = a
        else:
            raise SystemExit("unexpected argument %s" % a)
        i += 1
    if path is None:
        raise SystemExit(__doc__)
    return path, opts


def main(argv):
    from charger import app, config, forget
    path, opts = _args(argv)
    try:
        cfg = config.load(path)
    except config.ConfigError as e:
        print("config error:", e)
        sys.exit(2)
    p = cfg["pins"]
    reader = RC522Emulator(absent=opts["absent_reader"])
    machine.attach_spi(p["spi_id"], reader)
    meter = PZEMEmulator(power=opts["power"], time_scale=opts["time_scale"],
                         state_file=opts["meter_state"])
    if cfg["pzem_address"] != 0xF8:
        meter.address = cfg["pzem_address"]
    machine.attach_uart(p["uart_id"], meter)
    control = Control(cfg, reader, meter)
    control.sim_baseline = SIM_BASELINE
    del config
    forget("charger.config")  # the firmware loads it again and drops it
    meter.switch = control.relay_on  # the meter sees the load only through the relay
    app.CONFIG_PATH = path
    app.STARTUP_HOOKS.append(lambda the_app: _started(control, the_app))
    print("SIM ready")
    import main  # noqa: F401 - the real firmware entry point; runs until the process ends


def _started(control, the_app):
    import asyncio
    control.app = the_app
    gc.collect()
    control.start_heap = gc.mem_alloc()  # firmware loaded and running, plus the simulator
    asyncio.create_task(control.run_stdin())


main(sys.argv[1:])
