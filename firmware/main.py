# main.py: runs after boot.py. Loads config.json, builds the board, the outbox and the link and
# runs the charger (charger/app.py) forever. Without a usable config (or if building the
# charger fails) the relay stays off (boot.py) and the LED blinks the fault pattern: no crash
# loop.
#
# The start-up work runs on a thread of its own that ends before the charger runs.
# MicroPython's GC is conservative: it scans the C stack, and the modules start-up loads and
# forgets (config, board, linkcfg) leave pointers in C stack words that the charger's frames,
# later built at the same depth, do not always overwrite. One such word kept config.py's
# code and constants alive (+3.4 KB at start, or not, depending on the config file's path
# length). A finished thread's stack is not scanned: what start-up dropped is gone for good.
import _thread
import asyncio
import micropython
import sys

try:
    from charger import app, forget
except Exception as e:  # noqa: BLE001 - an update that cannot even start: restart, and
    sys.print_exception(e)  # otaboot.py rolls it back after its MAX_TRIES boots
    if sys.path[0][:4] == "ota/":
        import machine

        machine.reset()
    raise

if hasattr(micropython, "alloc_emergency_exception_buf"):  # absent on the unix port
    micropython.alloc_emergency_exception_buf(100)
charger_app = None


def start(done):
    global charger_app
    try:
        from charger import config

        try:
            cfg = config.load(app.CONFIG_PATH)
        except (ValueError, OSError) as e:
            print("[charger] config error:", e)
            cfg = None
        forget("charger.config")  # validation runs once: give its code's RAM back
        if cfg:
            from charger.board import Board
            from charger.link import Link

            board = Board(cfg)  # the relay is off (boot.py) whatever the journal holds
            forget("charger.board")  # only the drivers it built stay
            # The session journal (charger/outbox.py Journal) beside config.json: replay what
            # the server has not acknowledged, queue the stop of the session the board died
            # in (charger/jboot.py and jfile.py, unloaded after). Whatever the file holds, the
            # charger starts: a journal that cannot be read is deleted and a new one begins;
            # one that cannot be written either leaves the charger running without it (the
            # outbox in RAM, as before the journal), logged.
            import machine
            import os

            from charger import jboot
            from charger.outbox import Journal

            path = app.CONFIG_PATH.rpartition("/")[0]
            path = (path + "/" if path else "") + "journal.bin"
            ended = None
            for i in range(2):  # noqa: B007 - `i` is interned already, a new name costs RAM
                outbox = Journal(path)
                try:  # a power-on or brown-out reset: power_loss, else charger_reset
                    ended = jboot.boot(outbox, machine.reset_cause() == machine.PWRON_RESET)
                    break
                except Exception as e:  # noqa: BLE001 - a bad file must not stop the charger
                    print("[charger]", "journal", repr(e))
                    try:
                        os.remove(path)
                    except OSError:
                        pass
            outbox = outbox if outbox.state[0] else Journal(path)  # state[0]: journaling on
            del jboot
            forget("charger.jboot")
            forget("charger.jfile")  # (jboot's import)
            charger_app = app.App(cfg, board, outbox, Link)
            charger_app.ended = ended  # reported as charging until its stop is delivered
            # an offline start the server has not answered: its uid and version (journal
            # record kind 32) restored by charger/offline.py (loaded only then)
            for data in outbox.state[7]:
                if data[1] == 32:
                    charger_app.offline(data)
    finally:  # an exception is printed by the thread; the fault pattern below shows it
        done.release()


done = _thread.allocate_lock()
done.acquire()
if sys.platform == "esp32":  # its default (5 KB) is short for the imports; IDF heap, freed
    _thread.stack_size(16 * 1024)
_thread.start_new_thread(start, (done,))
done.acquire()  # released by start() when it ends
del done, start
if charger_app:
    asyncio.run(charger_app.run())
from machine import Pin

from charger.gpio import Led

led = Led(Pin(2))
led.show(4)  # the fault pattern
asyncio.run(led.run())
