"""The simulator's `status` and `mem` answers (one JSON line each); see control.py.

Imported by `Control.started()`, once the firmware's modules are loaded, on purpose: these
answers name the firmware's attributes and the status fields (`state`, `session_id`,
`outbox`, `link`, ...). Imported before the firmware, the simulator would intern those names
first and the firmware's heap figure would miss their qstrs; imported in the start-up hook,
what it adds to the heap is measured there and booked to the simulator. (Not at the first
command: the heap is fuller by then, and under `-X heapsize=96K` loading it can fail.)
Never shipped.
"""

import gc
import json
import machine
import micropython


def status(ctl):
    out = {"relay": ctl.relay_on(), "wh": int(ctl.meter.energy_wh_float)}
    fw = ctl.fw
    if fw is not None:
        out["state"] = fw.sm.state_name
        out["session_id"] = fw.sm.session_id
        out["led"] = fw.board.led.pattern
        out["outbox"] = len(fw.outbox)
        out["dropped"] = fw.outbox.dropped
        out["readings_queued"] = fw.readings_queued
        out["link"] = bool(fw.link.connected)
        state = getattr(fw.outbox, "state", None)  # the session journal's state (charger/outbox.py)
        out["journal_writes"] = state[4] if state else None  # its flash writes since boot
    return json.dumps(out)


def memory(ctl, arg):
    if arg == "gc":
        gc.collect()
    elif arg == "qstr":
        micropython.qstr_info()  # prints "qstr pool: n_pool=.. n_qstr=.. ..." first
    used = gc.mem_alloc()
    return json.dumps({
        "mem_total": micropython.mem_total(), "sim_alloc": machine.sim_alloc[0],
        "gc_alloc": used, "gc_free": gc.mem_free(), "sim_heap": ctl.sim, "sim_baseline": ctl.base,
        "firmware_heap": used - ctl.sim, "live_peak": ctl.peak, "start_heap": ctl.start,
        "readings_queued": ctl.fw.readings_queued if ctl.fw else 0})
