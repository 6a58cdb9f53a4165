"""The charger firmware package: pure state machine, messages, drivers and the app that wires them.

`forget(name)` unloads a module that is no longer needed (boot-only code, the WebSocket
opening code between connects) so the RAM of its code goes back to the heap.
"""

import gc
import sys


def forget(name):
    """Unload module `name` ("charger.x"): drop it from sys.modules and from this package's
    attributes, then collect."""
    sys.modules.pop(name, None)
    globals().pop(name.rpartition(".")[2], None)
    gc.collect()
