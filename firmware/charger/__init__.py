"""The charger firmware package: pure state machine, messages, drivers and the app that wires them.

`forget(name)` unloads a module that is no longer needed (boot-only code, the WebSocket
opening code between connects) so the RAM of its code goes back to the heap.
"""

import gc
import sys


def forget(name):
    """Unload module `name` ("charger.x"): drop it from sys.modules and from this package's
    attributes, empty its globals, then collect. Only for a module none of whose functions
    will run again (a class of it may live on: its methods then find no module globals).

    MicroPython's GC is conservative: a stale pointer left in a C stack word keeps what it
    points to. Emptied, the module's globals dict frees its table at once, so a stale pointer
    to the dict or the module object keeps little (the module's constants, not every
    function). main.py goes further for the start-up modules: it loads them on a thread
    whose stack is gone before the charger runs.
    """
    module = sys.modules.pop(name, None)
    globals().pop(name.rpartition(".")[2], None)
    if module is not None:
        module.__dict__.clear()
    gc.collect()
