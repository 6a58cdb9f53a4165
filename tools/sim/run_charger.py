"""Run the real firmware (`firmware/main.py`) on the MicroPython unix port with emulated hardware.

    MICROPYPATH=tools/sim:firmware micropython tools/sim/run_charger.py CONFIG.json
        [--time-scale X] [--power W] [--meter-state FILE] [--absent-reader]

The config is the board's config.json (server URL, station, token, pins; WiFi joins the
simulated access point of tools/sim/network.py).
The emulated RC522 sits on the configured SPI bus, the emulated PZEM-004T on the UART; the
control channel reads commands on stdin (see control.py). `--time-scale` makes the meter's
energy accumulate X simulated seconds per real second; `--meter-state` keeps the meter's
energy register across a simulated reboot. The watchdog is off unless the config sets it.

Heap accounting: everything the simulator needs (shims, `network`, emulators, the control
object, the pins' levels) is built here BEFORE the firmware is imported, then the live heap
is the simulator's baseline; `asyncio` and everything the firmware creates come after it and
are the firmware's (control.py books the simulator's own later objects). Kept tiny: this
script is compiled from source at run time, its code counts as the simulator's. Never shipped.
"""

import sys

# The script's own directory (tools/sim) comes first on sys.path: the shims would load from
# source, compiled here at run time (parse trees, line tables: ~KBs of the simulator's share
# and of its start-up's holes in the heap), not from the .mpy that MICROPYPATH names first
# when the caller compiled them (tools/bench/firmware_memory.compile_modules). Last, it is
# only the fallback.
sys.path.append(sys.path.pop(0))

import gc  # noqa: E402
import micropython  # noqa: E402
import network  # noqa: E402,F401 - native on the board: the simulator's share

from simboot import setup  # noqa: E402

path, control = setup(sys.argv[1:])
del setup
sys.modules.pop("simboot")  # needed once: its code goes back to the heap
try:  # what boot.py does on the board: the version to run (firmware/otaboot.py), when the
    open("ota/state").close()  # working directory (the board's filesystem stand-in) has one
except OSError:  # (no update installed: nothing to load, the heap figures stay the seed's)
    pass
else:
    import otaboot

    otaboot.choose()
    del otaboot
    sys.modules.pop("otaboot")
gc.collect()
control.sim = control.base = gc.mem_alloc()
micropython.qstr_info()  # "qstr pool: ..." line: the simulator's qstrs (the bench reads it)
try:  # noqa: E402 - after the simulator's baseline: the firmware's
    from charger import app
except Exception as e:  # noqa: BLE001 - as main.py on the board: an update that cannot
    sys.print_exception(e)  # start reboots (and otaboot.py rolls it back)
    if sys.path[0][:4] == "ota/":
        import machine

        machine.reset()
    raise

app.CONFIG_PATH = path
app.STARTUP_HOOKS.append(control.started)
print("SIM ready")
import main  # noqa: E402,F401 - the real firmware entry point; runs until the process ends
