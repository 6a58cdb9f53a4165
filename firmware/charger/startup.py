"""Start-up: builds the charger at boot and is unloaded before it runs.

`build()` loads config.json (charger/config.py), builds the board's drivers, the outbox with
its session journal (replayed by charger/jboot.py: what the server has not acknowledged, and
the stop of the session the board died in) and the App, and returns it; without a usable config
(or if building the charger fails) it returns the LED showing the fault pattern (GPIO 2)
instead: main.py runs what it returns (`run()`). main.py calls it on its start-up thread and
forgets this module after: none of this code stays in RAM while the charger runs (main.py's own
code does, for as long as its top level runs the charger, so it is kept short). Whatever the
journal file holds, the charger starts: a journal that cannot be read is deleted and a new one
begins; one that cannot be written either leaves the charger running without it (the outbox in
RAM), logged. An offline start the server has not answered (journal record kind 32) is handed
to charger/offline.py (loaded only then; its failure is logged and the charger starts).
"""

import machine
import micropython
import os
import sys
from time import ticks_ms

from charger import app, forget, messages
from charger.state import ChargerState


def build():
    if hasattr(micropython, "alloc_emergency_exception_buf"):  # absent on the unix port
        micropython.alloc_emergency_exception_buf(100)
    try:
        charger = charger_app()
        if charger:
            return charger
    except Exception as e:  # noqa: BLE001 - shown by the fault pattern, never a crash loop
        sys.print_exception(e)
    from charger.gpio import Led

    charger = Led(machine.Pin(2))
    charger.show(4)  # the fault pattern
    return charger


def charger_app():
    from charger import config

    try:
        cfg = config.load(app.CONFIG_PATH)
    except (ValueError, OSError) as e:
        print("[charger] config error:", e)
        cfg = None
    del config
    forget("charger.config")  # validation runs once: give its code's RAM back
    if not cfg:
        return None
    from charger.board import Board
    from charger.link import Link

    board = Board(cfg)  # the relay is off (boot.py) whatever the journal holds
    del Board
    forget("charger.board")  # only the drivers it built stay
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
    charger = app.App(cfg, board, outbox, Link)
    charger.ended = ended  # reported as charging until its stop is delivered
    for data in outbox.state[7]:
        if data[1] == 32:  # an unanswered offline start's uid and version
            try:  # (its failure is logged: the charger starts all the same)
                from charger import offline

                offline.run(charger, data)
                del offline
            except Exception as e:  # noqa: BLE001
                print("[charger]", "offline", repr(e))
            forget("charger.offline")
            break  # (offline.run may drop the record from the list)
    return charger


def init(a, cfg, board, outbox, link):
    """App.__init__'s work (charger/app.py), run once per App."""
    a.cfg = cfg
    a.board = board
    a.outbox = outbox
    limits = []  # in ms, in the order ChargerState takes them (one string: less RAM)
    for key in (
        "metrics_interval start_timeout same_card meter_silence offline_limit reset_hold"
    ).split():
        limits.append(int(cfg[key + "_s"] * 1000))
    a.sm = ChargerState(limits)
    a.link = link(cfg, a, outbox)
    now = ticks_ms()
    a.due = [now, now, int(cfg["meter_interval_s"] * 1000), 0]
    a.irq = False  # EMERGENCY seen by the interrupt, not yet by the state machine
    a.wdt = None
    a.readings_queued = 0  # readings put into the outbox since boot (tests, bench)
    a.last_ts = 0  # `ts` of the latest queued entry
    a.ended = None  # session ended by a queued stop/emergency, maybe still unsent
    a.waiting = None  # the local id of the offline start awaiting the server's answer
    # over-the-air updates (charger/ota.py, loaded only while it runs): None, an `update`
    # order waiting for idle with nothing unsent, or True while charger/ota.py runs
    a.ota = None
    messages.FW = "usb"  # `fw` in status: "usb" until an update runs (charger/ota.py)
    board.emergency.on_press_irq(a.emergency_irq)
