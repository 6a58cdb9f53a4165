"""The simulator's control channel: one command per line on stdin, answers on stdout.

Answers start with `SIM ` so they stand out from the firmware's log. Commands:

    tap <uid-hex>            put a card on the reader (4, 7 or 10 bytes, e.g. 04A1B2C3)
    remove                   take every card off the reader
    press stop | release stop
    press emergency | release emergency
    load <watts>             the power the meter sees     volts <V>
    meter ok | silent | corrupt
    link down | link up      drop / restore the network (tools/sim/network.py)
    reboot                   machine.reset(): the process exits with status 3
    status                   one JSON line: relay, led, state, session, wh, outbox, link
    mem [gc|watch]           heap figures (mem_total, the emulators' share, gc, live peak)
    help

Never shipped.
"""

import gc
import json
import sys

import machine
import micropython


def _hex_uid(text):
    if len(text) % 2 or len(text) // 2 not in (4, 7, 10):
        raise ValueError("uid must be 8, 14 or 20 hex digits")
    return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))


class Control:
    def __init__(self, cfg, reader_emu, meter_emu):
        self.cfg = cfg
        self.reader_emu = reader_emu
        self.meter_emu = meter_emu
        self.app = None  # set once the firmware's App exists
        self.watching = False
        self.live_peak = 0
        self.sim_baseline = 0
        self.start_heap = 0
        p = cfg["pins"]
        self.stop_pin = machine.Pin.board(p["stop"])
        self.emergency_pin = machine.Pin.board(p["emergency"])
        self.relay_pin = machine.Pin.board(p["relay"])
        self.relay_on_level = 1 if p["relay_active_high"] else 0
        self.stop_pin.drive(1)       # NO button released: pulled up
        self.emergency_pin.drive(0)  # NC button closed: pin held low

    def relay_on(self):
        return self.relay_pin.value() == self.relay_on_level

    def status(self):
        out = {"relay": self.relay_on(), "wh": self.meter_emu.energy_wh,
               "meter_requests": self.meter_emu.requests}
        app = self.app
        if app is not None:
            sm = app.sm
            out["state"] = sm.state_name
            out["session_id"] = sm.session_id
            out["led"] = app.board.led.pattern
            out["outbox"] = len(app.outbox)
            out["dropped"] = app.outbox.dropped
            out["readings_queued"] = app.readings_queued
            out["link"] = bool(app.link.connected)
        return out

    def memory(self, arg):
        """Heap figures of this process. `mem gc` collects first; `mem watch` starts sampling
        the live heap (collect, then gc.mem_alloc()) every 100 ms into `live_peak`."""
        if arg == "gc":
            gc.collect()
        elif arg == "watch" and not self.watching:
            import asyncio
            self.watching = True
            asyncio.create_task(self._watch_heap())
        return {"mem_total": micropython.mem_total(), "sim_alloc": machine.sim_alloc[0],
                "gc_alloc": gc.mem_alloc(), "gc_free": gc.mem_free(),
                "live_peak": self.live_peak, "sim_baseline": self.sim_baseline,
                "start_heap": self.start_heap,
                "readings_queued": self.app.readings_queued if self.app else 0}

    async def _watch_heap(self):
        import asyncio
        while True:
            gc.collect()
            used = gc.mem_alloc()
            if used > self.live_peak:
                self.live_peak = used
            await asyncio.sleep_ms(100)

    def handle(self, line):
        words = line.split()
        if not words:
            return None
        cmd = words[0]
        arg = words[1] if len(words) > 1 else ""
        if cmd == "tap":
            self.reader_emu.place(_hex_uid(arg))
        elif cmd == "remove":
            self.reader_emu.remove()
        elif cmd in ("press", "release"):
            down = cmd == "press"
            if arg == "stop":
                self.stop_pin.drive(0 if down else 1)
            elif arg == "emergency":
                self.emergency_pin.drive(1 if down else 0)
            else:
                raise ValueError("press/release stop|emergency")
            for _ in range(3):
                pass  # a backward jump: the scheduled soft IRQ runs here, as on the ESP32
            # the relay as it is before any asyncio task (the link) could run
            return "ok %s relay=%d" % (line, self.relay_on())
        elif cmd == "load":
            self.meter_emu.power = float(arg)
        elif cmd == "volts":
            self.meter_emu.voltage = float(arg)
        elif cmd == "meter":
            if arg not in ("ok", "silent", "corrupt"):
                raise ValueError("meter ok|silent|corrupt")
            self.meter_emu.silent = arg == "silent"
            self.meter_emu.corrupt = arg == "corrupt"
        elif cmd == "link":
            import network
            if arg not in ("up", "down") or not hasattr(network, "sim_link"):
                raise ValueError("link up|down (needs network.sim_link)")
            network.sim_link(arg == "up")
        elif cmd == "reboot":
            machine.reset()
        elif cmd == "status":
            return json.dumps(self.status())
        elif cmd == "mem":
            return json.dumps(self.memory(arg))
        elif cmd == "help":
            return __doc__.replace("\n", " ")
        else:
            raise ValueError("unknown command %s" % cmd)
        return "ok " + line

    def answer(self, line):
        try:
            text = self.handle(line.strip())
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001 - a bad command must not stop the charger
            text = "error %s" % e
        if text is not None:
            print("SIM " + text)

    async def run_stdin(self):
        """Read commands from stdin as an asyncio stream (no polling wake-ups). What a command
        costs in allocations is booked to `machine.sim_alloc`, not to the firmware."""
        import asyncio  # the firmware's (imported after the simulator's heap was measured)
        stream = asyncio.StreamReader(sys.stdin)
        mem_total = machine._mem_total
        while True:
            line = await stream.readline()
            if not line:
                return  # EOF: no more commands, the firmware keeps running
            t0 = mem_total()
            self.answer(line.decode())
            machine.sim_alloc[0] += mem_total() - t0
