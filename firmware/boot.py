# boot.py: runs first on every reset. Drive the charging relay OFF before anything else.
# The pin and its active level come from config.json; if that cannot be read, the defaults
# (GPIO 26, active high) apply. The relay driver also has a pull-down (see README wiring).
import machine

try:
    import json

    with open("config.json") as f:
        _pins = json.load(f).get("pins") or {}
except Exception:  # noqa: BLE001 - a broken config must not keep the relay on
    _pins = {}
machine.Pin(
    _pins.get("relay", 26), machine.Pin.OUT, value=0 if _pins.get("relay_active_high", True) else 1
)
del _pins
# then the firmware version to run: an update's, or a rollback to the previous one (otaboot.py)
import sys

import otaboot

otaboot.choose()
del otaboot
sys.modules.pop("otaboot", None)
