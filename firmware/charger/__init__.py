"""The charger firmware package: pure state machine, messages, drivers and the app that wires them.

`forget(name)` unloads a module that is no longer needed (boot-only code, the WebSocket
opening code between connects) so the RAM of its code goes back to the heap.
"""

import gc
import sys


def forget(name):
    """Unload module `name` (sys.modules and the package attribute), then collect."""
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and hasattr(parent, attr):
        delattr(parent, attr)
    gc.collect()
