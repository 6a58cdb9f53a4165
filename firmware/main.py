# main.py: runs after boot.py. Builds the charger (charger/startup.py: config.json, the board,
# the journal, the app) and runs it (charger/app.py) forever. Without a usable config (or if
# building the charger fails, or start-up itself cannot be imported) the relay stays off
# (boot.py) and the LED blinks the fault pattern (charger/startup.py or this file runs that
# instead): no crash loop; but running an update (from ota/) it resets, so that otaboot.py
# rolls the update back. Kept short: its code stays in RAM while its top level runs the
# charger (a function it defines too), so the start-up code lives in the package, unloaded
# after.
#
# The start-up work runs on a thread of its own that ends before the charger runs.
# MicroPython's GC is conservative: it scans the C stack, and the modules start-up loads and
# forgets (config, board, linkcfg) leave pointers in C stack words that the charger's frames,
# later built at the same depth, do not always overwrite. One such word kept config.py's
# code and constants alive (+3.4 KB at start, or not, depending on the config file's path
# length). A finished thread's stack is not scanned: what start-up dropped is gone for good.
import _thread
import asyncio
import sys

try:  # (`app` here: an update whose charger cannot be imported is rolled back)
    from charger import app, forget  # noqa: F401
except Exception as e:  # noqa: BLE001 - an update that cannot even start: restart, and
    sys.print_exception(e)  # otaboot.py rolls it back after its MAX_TRIES boots
    if sys.path[0][:4] == "ota/":
        import machine

        machine.reset()
    raise

charger_app = None  # what runs: the App, or the LED showing the fault pattern


def start(done):
    global charger_app
    try:
        from charger import startup  # config, board, journal, app: charger/startup.py

        charger_app = startup.build()  # (its errors: the fault pattern)
        del startup
    except Exception as e:  # noqa: BLE001 - start-up itself broken: the fault pattern below
        sys.print_exception(e)
    finally:
        forget("charger.startup")
        done.release()


done = _thread.allocate_lock()
done.acquire()
if sys.platform == "esp32":  # its default (5 KB) is short for the imports; IDF heap, freed
    _thread.stack_size(16 * 1024)
_thread.start_new_thread(start, (done,))
done.acquire()  # released by start() when it ends
del done, start
if not isinstance(charger_app, app.App):  # no charger: an update is rolled back (otaboot.py
    import machine  # counts the boots), else the LED shows the fault pattern (GPIO 2)

    if sys.path[0][:4] == "ota/":
        machine.reset()
    if charger_app is None:
        from charger.gpio import Led

        charger_app = Led(machine.Pin(2))
        charger_app.show(4)
asyncio.run(charger_app.run())
