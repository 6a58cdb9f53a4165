"""The charger application: wires the board, the state machine and the link together.

Owns the poll loop (`run()`: waking when something is due and at least every 200 ms, for
EMERGENCY, the buttons, the card reader, the meter every `meter_interval_s`, the state
machine's tick, the LED and the watchdog), the link's task, NTP on the board, the wall clock
for `ts`, and is the link's handler (`status_messages()`, `on_message()`, `on_link()`). It
executes the state machine's action bits (listed in charger/state.py) in a fixed order: relay
OFF first. EMERGENCY opens the relay inside the pin's interrupt handler (soft IRQ on the
ESP32) before anything else happens; the handler allocates nothing: it opens the relay and
sets `irq`, which the next poll pass (200 ms at most) hands to the state machine (even if the
press was too short for the debounce). charger/startup.py builds the App at boot (its `init`
does App.__init__'s work: run once, unloaded after); main.py runs it.

Compact on purpose (docs/architecture.md, "Firmware memory rules"): few, larger methods; the action bits and the error LED
pattern are private `const()`s named as in charger/state.py (tests/firmware/test_pure_modules.py
checks their values against it); the poll loop's timestamps share one list; log lines are
short words. `const()` is not imported (the MicroPython compiler knows it; this module never
runs on CPython).
"""

import asyncio
import gc
import time
from time import ticks_add, ticks_diff, ticks_ms

from charger import forget, messages, mfrc522, pzem

CONFIG_PATH = "config.json"  # read by charger/startup.py
STARTUP_HOOKS = []  # callables(app) run once the tasks exist (the simulator's control channel)
_CARD_POLL_MS = const(200)
_READER_RETRY_MS = const(5000)  # looking for a missing reader
_POLL_MS = const(200)  # the poll loop's longest sleep: buttons, state machine tick, watchdog
_DEBOUNCE_MS = const(30)  # a button settling is polled again this soon
_MIN_SLEEP_MS = const(10)
_NTP_RETRY_S = const(60)
_NTP_RESYNC_S = const(21600)  # 6 h
# indices into App.due
_READER_DUE = const(0)
_METER_DUE = const(1)
_METER_MS = const(2)
_METER_FAILURES = const(3)  # failed meter reads in a row (only the first is logged)
# the state machine's action bits and LED pattern (charger/state.py): the same names and values
_A_RELAY_OFF = const(1)
_A_RELAY_ON = const(2)
_A_FINAL_READING = const(4)
_A_LED = const(8)
_A_SEND_SCAN = const(16)
_A_QUEUE_READING = const(32)
_A_QUEUE_STOP = const(64)
_A_QUEUE_EMERGENCY = const(128)
_A_SEND_STATUS = const(256)
_A_LOG = const(512)
_A_FLASH_ERROR = const(1024)
_A_STOP_REASON = const(2048)
_A_OFFLINE_TAP = const(4096)  # a tap while offline: charger/offline.py checks the list
_A_QUEUE_EVENT = const(_A_QUEUE_STOP | _A_QUEUE_EMERGENCY)
_A_QUEUE_ANY = const(_A_QUEUE_READING | _A_QUEUE_EVENT)
_LED_ERROR = const(3)

# `ts` is unix seconds; MicroPython on the ESP32 may count from 2000 instead of 1970
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


class App:
    def __init__(self, cfg, board, outbox, link):
        # run once: its work (the attributes, the link, the EMERGENCY interrupt) is
        # charger/startup.py's `init`, loaded for it (main.py unloads it after start-up)
        from charger import startup

        startup.init(self, cfg, board, outbox, link)

    def emergency_irq(self, pin):
        # runs as a (soft) interrupt: no allocation, relay first
        self.board.relay.off()
        self.irq = True

    def _do(self, value):
        # Execute the state machine's action bits, relay OFF first. One local beside the
        # arguments: a frame above 11 slots (locals + stack) is allocated on the heap at
        # every call, and this runs at every queued reading.
        if value & _A_RELAY_OFF:
            self.board.relay.off()
        if value & _A_RELAY_ON:  # never with EMERGENCY open
            if self.board.emergency.pressed or self.irq:
                self.board.relay.off()
            else:
                self.board.relay.on()
        m = self.board.meter
        if (
            value & _A_FINAL_READING and m.read() == pzem.OK
        ):  # the final reading: the stop carries its wh
            self.sm.wh = m.energy_wh
        if value & _A_LED:  # the charger's condition
            self.board.led.show(self.sm.led)
        if value & _A_FLASH_ERROR:  # the error pattern once, then back to the condition's
            self.board.led.show(_LED_ERROR)
        if value & _A_LOG:
            print("[charger]", self.sm.note)
        if value & _A_QUEUE_ANY:
            # Every queued entry carries its true `ts` (the server counts a register rise
            # within the same whole second, so a stop need not pretend to be a second later);
            # 0 while the clock is unset (before 2024: a fresh ESP32 starts in 2000).
            self.last_ts = int(time.time()) + _EPOCH
            if self.last_ts < 1704067200:
                self.last_ts = 0
        if value & _A_QUEUE_READING:  # volts, amps and watts as the meter has them
            self.outbox.put_reading(
                self.sm.session_id, m.voltage, m.current, m.power, self.sm.wh, self.last_ts
            )
            self.readings_queued += 1
        if value & _A_QUEUE_EVENT:  # stop or emergency about `event_sid`; a stop for a fault
            # is queued as its reason (the state's note), sent as a stop with it
            self.outbox.put_event(
                "emergency"
                if value & _A_QUEUE_EMERGENCY
                else self.sm.note
                if value & _A_STOP_REASON
                else "stop",
                self.sm.event_sid,
                self.sm.wh,
                self.last_ts,
            )
            if self.sm.event_sid is not None:
                self.ended = self.sm.event_sid
        if value & _A_QUEUE_ANY:  # the link sends it
            self.link.notify()
        # Sent now, not queued (an offline tap is refused by the state machine; a tap lost
        # as the link drops ends with the start timeout).
        if value & _A_SEND_SCAN:
            asyncio.create_task(self.link.send_now(messages.nfc_scan(self.sm.uid)))
        if value & _A_SEND_STATUS:  # after the local reset (idle: one message; none while
            # an offline start awaits its answer with its report still queued)
            m = self.status_messages()
            if m:
                asyncio.create_task(self.link.send_now(m[0]))
        if value & _A_OFFLINE_TAP:  # the signed list decides (on_message: charger/offline.py)
            self.on_message(None)

    # --- the link's handler ------------------------------------------------------------
    def status_messages(self):
        sm = self.sm
        if self.waiting is not None:
            # an offline start awaits the server's answer: its `offline_start` goes in the
            # replay, and the status follows the answer (charger/offline.py); an `idle` now
            # would end the session the server may have made of it already. Once the server
            # has acked it (it left the outbox), an answer lost or not handled would hold
            # the session's entries forever: its report goes again instead (kind 7: an
            # offline_start event, charger/outbox.py), answered with the same session.
            n = self.outbox._n
            for e in range(n[3]):
                if self.outbox._i[3 * n[6] + 5 * ((n[2] + e) % n[7]) + 1] == 7:
                    return []
            return [messages.stop(0, None, 0, self.outbox.data)]
        if not len(self.outbox):
            self.ended = None
        if (
            sm.state_name != "charging"
            and self.ended is not None
            and len(self.outbox) > self.outbox.unconfirmed
        ):
            # A session ended here while offline (STOP, offline limit, meter failure,
            # EMERGENCY): its readings and its stop/emergency follow in the replay. Report it
            # as it stood at the head of that history (charging), so the server resumes it,
            # stores the readings and closes it for the real reason (`local_stop`,
            # `emergency`) instead of ending it at once as `charger_reset` / `fault`. Only
            # while something is unsent on this connection (the link rewinds before the
            # status): once the stop/emergency went out, the server reads it before this
            # status, which then tells the physical truth (a `sync_request` answered while an
            # emergency awaits its ack must say `fault`, or the server would unlatch it).
            return [messages.status("charging", self.ended, sm.wh)]
        out = [messages.status(sm.state_name, sm.session_id, sm.wh)]
        # The latest reading goes along only when the outbox holds none: queued readings are
        # replayed right after this, and a newer `ts` sent first would make the server ignore
        # them. It repeats the last queued reading's `ts` (a duplicate for the energy account,
        # fresh numbers for the dashboards).
        if sm.state_name == "charging" and sm.wh is not None and self.outbox.readings == 0:
            m = self.board.meter
            out.append(
                messages.metrics(sm.session_id, m.voltage, m.current, m.power, sm.wh, self.last_ts)
            )
        return out

    def on_message(self, data):
        # `start` needs an integer session_id, `stop` an integer or null; other types and
        # bad ids are logged and ignored
        kind = data and data.get("type")
        if (
            data is None
            or kind != "update"
            and "version" in data
            or self.waiting is not None
            and (kind == "start" or kind == "error")
        ):
            # offline authorization (rare; charger/offline.py, loaded for this call only): a
            # tap while offline (None), the signed card list (`auth_list`, which has a
            # version; an OTA `update` has one too), or perhaps the answer to the offline
            # start awaiting one (False: neither)
            try:  # (the import too: a MemoryError at the reconnect peak is logged by the link)
                from charger import offline

                kind = offline.run(self, data)
                del offline
            finally:
                forget("charger.offline")
            if kind:
                return
            kind = data.get("type")
        sid = data.get("session_id")
        print("[charger]", "server", kind, data)
        # a session id the outbox can store (uint32): with a bigger one the relay would close
        # for a session whose readings and stop could never be queued, so never billed
        # (below 2**31: above are the charger's own local ids of offline starts)
        good = isinstance(sid, int) and not isinstance(sid, bool) and 0 < sid < 0x80000000
        if kind == "update" and self.ota is not True:  # see poll()
            self.ota = data
        if kind == "error" or kind == "start" and good or kind == "stop" and (good or sid is None):
            was = self.sm.session_id
            self._do(self.sm.server(kind, sid, ticks_ms()))
            if was is not None and self.sm.session_id is None:  # the server ended it
                self.outbox.stop(was)  # the journal: no session to report after a reboot

    def on_link(self, up):
        print("[charger]", "link", "up" if up else "down")
        self._do(self.sm.link(up, ticks_ms()))

    # --- the poll loop -----------------------------------------------------------------
    def poll(self, now):
        """One pass (at least every 200 ms): EMERGENCY and STOP (30 ms debounce), the card
        reader every 200 ms (every 5 s while it is missing), the meter every
        `meter_interval_s` on average (in the pass nearest its due time), the state machine's
        clock, the LED, the watchdog. Allocates nothing when nothing happens. Returns how
        long to sleep: until the LED's next step, a button settling or the card reader is
        due (each wake-up allocates in the scheduler). Few locals (see `_do`)."""
        board = self.board
        due = self.due
        if self.irq:  # the interrupt already opened the relay
            self.irq = False
            board.emergency.pressed = True
            got = self.sm.button("emergency", True, now)
            self._do(got)
        got = board.emergency.poll(now)
        if got:
            if got > 0:
                board.relay.off()
            got = self.sm.button("emergency", got > 0, now)  # (not nested: fewer slots)
            self._do(got)
        got = board.stop.poll(now)
        if got:
            got = self.sm.button("stop", got > 0, now)
            self._do(got)
        if ticks_diff(now, due[_READER_DUE]) >= 0:
            if not self.sm.reader_ok:
                due[_READER_DUE] = ticks_add(now, _READER_RETRY_MS)
                if board.reader.init():
                    print("[charger]", "reader", "found")
                    self.sm.reader_ok = True
                    self._do(self.sm.link(self.sm.link_up, now))  # the LED
            else:
                due[_READER_DUE] = ticks_add(now, _CARD_POLL_MS)
                got = board.reader.read_uid()
                if got == mfrc522.OK:
                    got = board.reader.uid_text()
                    print("[charger]", "card", got)
                    self._do(self.sm.card(got, now))
                elif got == mfrc522.COLLISION:
                    print("[charger] two cards on the reader: tap one")
        if ticks_diff(due[_METER_DUE], now) < _POLL_MS // 2:  # due by about this pass
            due[_METER_DUE] = ticks_add(due[_METER_DUE], due[_METER_MS])
            if ticks_diff(now, due[_METER_DUE]) >= 0:  # fell behind: no catching up
                due[_METER_DUE] = ticks_add(now, due[_METER_MS])
            got = board.meter.read()
            if got == pzem.OK:
                due[_METER_FAILURES] = 0
                got = board.meter.energy_wh  # for the state machine's tick
            else:
                due[_METER_FAILURES] += 1
                if due[_METER_FAILURES] == 1:
                    print("[charger]", "meter", "failed", got)
                got = None
        else:
            got = None
        got = self.sm.tick(now, got)
        if got:
            self._do(got)
        board.led.step(now)
        if self.wdt is not None:
            self.wdt.feed()
        if (
            self.ota
            and self.ota is not True
            and self.sm.state_name == "idle"
            and self.link.connected
            and not len(self.outbox)
        ):
            # the update's code is loaded for it, unloads itself and sets `ota` when done
            from charger import ota as got

            asyncio.create_task(got.run(self, self.ota))
            self.ota = True
        now = ticks_ms()
        got = _DEBOUNCE_MS if board.stop.settling or board.emergency.settling else _POLL_MS
        got = min(got, board.led.due_in(now), ticks_diff(due[_READER_DUE], now))
        return got if got > _MIN_SLEEP_MS else _MIN_SLEEP_MS

    async def _ntp_task(self, ntptime):
        # Sets the clock once the link is up, again every 6 h; retries every minute.
        ntptime.host = self.cfg["ntp_host"]
        while True:
            pause = 5
            if self.link.connected:
                pause = _NTP_RETRY_S
                try:
                    ntptime.settime()
                    pause = _NTP_RESYNC_S
                except Exception:  # noqa: BLE001 - any network failure: try again later
                    pass
            await asyncio.sleep(pause)

    async def run(self):
        # The boot event and the tasks are made here, on the main thread: moved to
        # charger/startup.py (on the start-up thread) they saved ~0.3 KB of code, but the
        # benches' heap came out 0.4 to 1.9 KB higher (what the conservative GC keeps
        # depends on what ran where)
        board = self.board
        board.relay.off()
        self._do(self.sm.boot(board.reader.init(), board.emergency.pressed, ticks_ms()))
        if self.cfg["watchdog_s"]:
            from machine import WDT

            self.wdt = WDT(timeout=int(self.cfg["watchdog_s"] * 1000))
        try:  # an update was installed (firmware/otaboot.py): confirm it or report it
            open("ota/state").close()
            from charger import otatrial

            asyncio.create_task(otatrial.run(self))
            self.ota = True
        except OSError:
            pass
        asyncio.create_task(self.link.run())
        try:
            import ntptime  # the board's NTP client; the unix port has none (its clock is set)

            asyncio.create_task(self._ntp_task(ntptime))
        except ImportError:
            pass
        for hook in STARTUP_HOOKS:
            hook(self)
        gc.collect()
        print("[charger]", "ready", "station", self.cfg["station"])
        # The poll loop: one loop for every polled input (each asyncio wake-up allocates in
        # the scheduler, and the drivers' reads are synchronous anyway). A pass that raises
        # is logged and does not feed the watchdog: a driver that keeps failing resets the
        # board.
        while True:
            try:
                pause = self.poll(ticks_ms())
            except Exception as e:  # noqa: BLE001 - the buttons and the LED must go on
                print("[charger]", "poll", "failed", repr(e))
                pause = _POLL_MS
            await asyncio.sleep_ms(pause)
