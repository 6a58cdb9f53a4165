"""The simulator's control channel: commands on stdin, one per line, answers on stdout.

`Control(pins, reader, meter)` drives the buttons' released levels; run_charger.py makes it
(through simboot.py) before the firmware is imported. `Control.started(app)` runs as the
firmware's start-up hook and reads commands on stdin; answers start with `SIM ` so they stand
out from the firmware's log:

    tap <uid-hex>            put a card on the reader (4, 7 or 10 bytes, e.g. 04A1B2C3)
    remove                   take every card off the reader
    press stop | release stop
    press emergency | release emergency
    load <watts>             the power the meter sees     volts <V>
    meter ok | silent | corrupt
    link down | link up      drop / restore the network (tools/sim/network.py)
    reboot                   machine.reset(): the process exits with status 3
    status                   one JSON line: relay, led, state, session_id, wh, outbox, dropped,
                             readings_queued, link, journal_writes
    mem [gc|watch|qstr]      heap figures (below); `gc` collects first; `watch` starts sampling
                             the firmware's live heap every 1 ms into `live_peak` (printed
                             as `SIM peak N` at machine.reset()); `qstr`
                             prints the interned-string pool's size first
    help

Heap accounting (the memory bench): `sim_heap` is the simulator's live share of the heap:
what was live when run_charger.py took its baseline (shims, emulators, this object, the
interpreter's own few objects), plus the live-heap change across creating the control task
and across every command (a card on the reader, the sampler task; measured with
gc.collect() around it). Everything else live is the firmware's (`firmware_heap`). Bytes the
emulated chips allocate inside SPI/UART calls are booked to `machine.sim_alloc`; so is every
allocation of the control and sampler tasks (`booked()`: reading stdin included). Never
shipped.

Written compactly (it shares the heap with the firmware): one class, one method per command
line, the pins in one list.
"""

import gc
import machine
import micropython
import sys


class Control:
    def __init__(self, pins, reader, meter):
        """`pins`: [stop pin, emergency pin, relay pin, relay active high] (numbers and a
        bool: no config key names here, see simboot.py)."""
        self.reader = reader
        self.meter = meter
        self.fw = None  # the firmware's App, once it started
        b = machine.Pin.board
        # [stop, emergency, relay pin, the relay's on level]
        self.pins = [b(pins[0]), b(pins[1]), b(pins[2]), 1 if pins[3] else 0]
        self.pins[0].drive(1)  # NO button released: pulled up
        self.pins[1].drive(0)  # NC button closed: pin held low
        self.sim = 0    # the simulator's live heap (see the module docstring)
        self.base = 0   # its part measured by run_charger.py before the firmware's import
        self.peak = 0   # the firmware's largest live heap seen by `mem watch`
        self.start = 0  # the firmware's live heap once its tasks started
        self.watching = False

    def relay_on(self):
        return self.pins[2].value() == self.pins[3]

    def handle(self, line):
        """One command line; returns the answer text (None for an empty line)."""
        words = line.split()
        if not words:
            return None
        cmd = words[0]
        arg = words[1] if len(words) > 1 else ""
        if cmd == "tap":
            if len(arg) % 2 or len(arg) // 2 not in (4, 7, 10):
                raise ValueError("uid must be 8, 14 or 20 hex digits")
            self.reader.place(bytes(int(arg[i:i + 2], 16) for i in range(0, len(arg), 2)))
        elif cmd == "remove":
            self.reader.remove()
        elif cmd in ("press", "release"):
            if arg not in ("stop", "emergency"):
                raise ValueError("press/release stop|emergency")
            # stop: NO to GND (pressed low); emergency: NC to GND (pressed opens: high)
            self.pins[1 if arg == "emergency" else 0].drive((cmd == "press") == (arg == "emergency"))
            for _ in range(3):
                pass  # a backward jump: the scheduled soft IRQ runs here, as on the ESP32
            # the relay as it is before any asyncio task (the link) could run
            return "ok %s relay=%d" % (line, self.relay_on())
        elif cmd == "load":
            self.meter.power = float(arg)
        elif cmd == "volts":
            self.meter.voltage = float(arg)
        elif cmd == "meter":
            if arg not in ("ok", "silent", "corrupt"):
                raise ValueError("meter ok|silent|corrupt")
            self.meter.silent = arg == "silent"
            self.meter.corrupt = arg == "corrupt"
        elif cmd == "link":
            import network
            if arg not in ("up", "down") or not hasattr(network, "sim_link"):
                raise ValueError("link up|down (needs network.sim_link)")
            network.sim_link(arg == "up")
        elif cmd == "reboot":
            machine.reset()
        elif cmd in ("status", "mem"):
            if cmd == "mem" and arg == "watch" and not self.watching:
                import asyncio
                self.watching = True
                asyncio.create_task(booked(self.watch()))
                machine.reset_hooks.append(self.last_peak)
            import report  # loaded by started(): see report.py
            return report.status(self) if cmd == "status" else report.memory(self, arg)
        elif cmd == "help":
            return "commands: tap remove press release load volts meter link reboot status mem"
        else:
            raise ValueError("unknown command %s" % cmd)
        return "ok " + line

    def started(self, fw):
        """The firmware's start-up hook: start reading commands (the task is the simulator's)."""
        import asyncio  # the firmware's (imported after the simulator's baseline)
        self.fw = fw
        # asyncio's stream module is the firmware's too (open_connection): loaded before the
        # measurement, so only the reader and the task are booked to the simulator
        stream_reader = asyncio.StreamReader
        gc.collect()
        used = gc.mem_alloc()
        micropython.qstr_info()  # before and after: the bench counts report's qstrs as ours
        import report  # noqa: F401 - after the firmware's modules: see report.py
        micropython.qstr_info()
        asyncio.create_task(booked(self.run(stream_reader(sys.stdin))))
        gc.collect()
        self.sim += gc.mem_alloc() - used
        self.start = gc.mem_alloc() - self.sim

    def answer(self, line):
        """Handle one command line and print its answer. A function of its own: its
        temporaries (the answer text) die with its frame, before `run` measures the live heap
        (a coroutine's frame is a heap block whose dead slots would keep them alive)."""
        try:
            text = self.handle(line.decode().strip())
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001 - a bad command must not stop the charger
            text = "error %s" % e
        if text is not None:
            print("SIM " + text)

    async def run(self, stream):
        """Read commands from stdin as an asyncio stream (no polling wake-ups); a command's
        live-heap change is booked to `sim` (its allocations: see `booked`)."""
        while True:
            line = await stream.readline()
            if not line:
                return  # EOF: no more commands, the firmware keeps running
            gc.collect()
            used = gc.mem_alloc()
            self.answer(line)
            gc.collect()
            self.sim += gc.mem_alloc() - used

    def last_peak(self):
        # at machine.reset(): the peak including this last moment, as one line (a reset
        # ends the process before any other command could ask)
        gc.collect()
        self.peak = max(self.peak, gc.mem_alloc() - self.sim)
        print("SIM peak %d" % self.peak)

    async def watch(self):
        import asyncio
        while True:
            gc.collect()
            used = gc.mem_alloc() - self.sim
            if used > self.peak:
                self.peak = used
            await asyncio.sleep_ms(1)  # short: a reconnect's peak lasts a few ms


def booked(coro):
    """`coro` run as a task of the simulator's: the allocations of each of its steps (reading
    stdin included, which happens when asyncio resumes the task) go to `machine.sim_alloc`,
    not to the firmware's per-cycle figure. The scheduler ignores what a task yields and
    sends None; an exception thrown into the task is passed on."""
    mem_total = machine._mem_total
    thrown = None
    while True:
        t0 = mem_total()
        try:
            out = coro.send(None) if thrown is None else coro.throw(thrown)
        except StopIteration:
            return
        finally:
            machine.sim_alloc[0] += mem_total() - t0
        try:
            yield out
            thrown = None
        except BaseException as e:  # noqa: BLE001 - e.g. CancelledError: the task's to handle
            thrown = e
