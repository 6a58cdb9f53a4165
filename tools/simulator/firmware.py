"""The firmware's own pure modules, imported under CPython: the one place that knows how.

The simulated charger does not copy the firmware's rules, it runs them: `ChargerState` (the
state machine, charger/state.py), `messages` (the exact JSON text of every frame) and
`Outbox` (the bounded, acknowledged outbox). They run unchanged under CPython (see
tests/firmware/test_pure_modules.py). The firmware is not an installed package: it is the
MicroPython package `charger` in `firmware/`, imported on the board as a top-level `charger`
(charger/outbox.py itself does `from charger import messages`). So the package is loaded
here from its files under that name, without putting `firmware/` on sys.path (its `boot.py`
and `main.py` would then shadow any module of those names). If `charger` is already loaded
(the firmware tests put `firmware/` on sys.path), it must be this same package.

The action bits and LED numbers are the state machine's private constants, read from it
(`const()` is `int` under CPython) rather than repeated here.
"""

import importlib.util
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "firmware" / "charger"


def _load_package():
    loaded = sys.modules.get("charger")
    if loaded is not None:
        where = Path(getattr(loaded, "__file__", "") or "").resolve().parent
        if where != PACKAGE_DIR:
            raise ImportError(
                f"another package named 'charger' is loaded ({where}); the "
                f"simulator needs the firmware's ({PACKAGE_DIR})"
            )
        return
    spec = importlib.util.spec_from_file_location(
        "charger", PACKAGE_DIR / "__init__.py", submodule_search_locations=[str(PACKAGE_DIR)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["charger"] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules["charger"]
        raise


_load_package()

from charger import messages, outbox, state  # noqa: E402

ChargerState = state.ChargerState
Outbox = outbox.Outbox
parse = messages.parse

# the state machine's states, action bits and LED patterns (charger/state.py)
IDLE, WAIT_START, CHARGING, FAULT = state._IDLE, state._WAIT_START, state._CHARGING, state._FAULT
A_RELAY_OFF = state._A_RELAY_OFF
A_RELAY_ON = state._A_RELAY_ON
A_FINAL_READING = state._A_FINAL_READING
A_LED = state._A_LED
A_SEND_SCAN = state._A_SEND_SCAN
A_QUEUE_READING = state._A_QUEUE_READING
A_QUEUE_STOP = state._A_QUEUE_STOP
A_QUEUE_EMERGENCY = state._A_QUEUE_EMERGENCY
A_SEND_STATUS = state._A_SEND_STATUS
A_LOG = state._A_LOG
A_FLASH_ERROR = state._A_FLASH_ERROR
A_STOP_REASON = state._A_STOP_REASON
A_OFFLINE_TAP = state._A_OFFLINE_TAP
LED_NAMES = {
    state._LED_IDLE: "idle",
    state._LED_WAIT: "wait",
    state._LED_CHARGING: "charging",
    state._LED_ERROR: "error",
    state._LED_FAULT: "fault",
    state._LED_OFFLINE: "offline",
    state._LED_READER_FAULT: "reader_fault",
    state._LED_METER_FAULT: "meter_fault",
}
