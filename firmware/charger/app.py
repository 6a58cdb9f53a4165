"""The charger application: wires the board, the state machine and the link together.

Owns the asyncio tasks (card polling, meter polling every `meter_interval_s`, one 100 ms loop
for buttons, the state machine tick, the LED and the watchdog, NTP) and is the link's handler
(`status_messages()`, `on_message()`, `on_link()`). It executes the state machine's action
bits in a fixed order: relay OFF first. EMERGENCY opens the relay inside the pin's interrupt
handler (soft IRQ on the ESP32) before anything else happens; the handler only calls a
preallocated bound method and sets a ThreadSafeFlag.
"""

import asyncio
import gc
import time

import micropython

from charger import clock, messages
from charger import state as S
from charger.mfrc522 import COLLISION, OK as CARD_OK
from charger.pzem import OK as METER_OK

CONFIG_PATH = "config.json"
STARTUP_HOOKS = []  # callables(app) run once the tasks exist (the simulator's control channel)
_CARD_POLL_MS = 200
_FAST_MS = 100  # buttons (30 ms debounce), state machine tick, LED steps, watchdog
_HEALTHY_MS = 10000  # a task silent longer than this stops the watchdog feeding
_NTP_RETRY_S = 60
_NTP_RESYNC_S = 6 * 3600


def log(*args):
    print("[charger]", *args)


def _ms(seconds):
    return int(seconds * 1000)


class App:
    def __init__(self, cfg, board, outbox, link_class):
        self.cfg = cfg
        self.board = board
        self.outbox = outbox
        self.sm = S.ChargerState(
            metrics_interval_ms=_ms(cfg["metrics_interval_s"]),
            start_timeout_ms=_ms(cfg["start_timeout_s"]),
            same_card_ms=_ms(cfg["same_card_s"]),
            meter_silence_ms=_ms(cfg["meter_silence_s"]),
            offline_limit_ms=_ms(cfg["offline_limit_s"]),
            reset_hold_ms=_ms(cfg["reset_hold_s"]),
        )
        self.link = link_class(cfg, self, outbox)
        self._relay_off = board.relay.off
        self._emergency_flag = asyncio.ThreadSafeFlag()
        self._handlers = {"start": self._on_start, "stop": self._on_stop, "error": self._on_error}
        now = time.ticks_ms()
        self._alive = [now, now, now]  # last run of: reader, meter, fast loop
        self._wdt = None
        self.readings_queued = 0  # readings put into the outbox since boot (tests, bench)
        self._last_reading_ts = 0
        self._ended_in_outbox = None  # session ended by a queued stop/emergency, maybe unsent
        board.emergency.on_press_irq(self._emergency_irq)

    # --- interrupt ---------------------------------------------------------------------
    def _emergency_irq(self, pin):
        # runs as a (soft) interrupt: no allocation, relay first
        self._relay_off()
        self._emergency_flag.set()

    # --- executing the state machine's actions -----------------------------------------
    def _do(self, acts):
        if not acts:
            return
        sm = self.sm
        board = self.board
        if acts & S.A_RELAY_OFF:
            board.relay.off()
        if acts & S.A_RELAY_ON:
            if board.emergency.pressed:
                board.relay.off()  # never close the contactor with EMERGENCY open
            else:
                board.relay.on()
        if acts & S.A_FINAL_READING:
            self._final_reading()
        if acts & S.A_LED:
            board.led.show(sm.led)
        if acts & S.A_LOG:
            log(sm.note)
        queued = False
        if acts & S.A_QUEUE_READING:
            self._last_reading_ts = clock.unix_time()
            self.outbox.put_reading(sm.session_id, sm.v, sm.a, sm.w, sm.wh,
                                    self._last_reading_ts)
            self.readings_queued += 1
            queued = True
        if acts & S.A_QUEUE_STOP:
            # The stop carries the final register; the server counts it only with a `ts`
            # later than the last reading's, so within the same second it says "next second".
            ts = clock.unix_time()
            if ts and ts <= self._last_reading_ts:
                ts = self._last_reading_ts + 1
            self.outbox.put_event("stop", sm.event_sid, sm.wh, ts)
            self._ended_in_outbox = sm.event_sid
            queued = True
        if acts & S.A_QUEUE_EMERGENCY:
            self.outbox.put_event("emergency", sm.event_sid, sm.wh, clock.unix_time())
            if sm.event_sid is not None:
                self._ended_in_outbox = sm.event_sid
            queued = True
        if queued:
            self.link.notify()
        if acts & S.A_SEND_SCAN:
            asyncio.create_task(self._send_scan(sm.uid))
        if acts & S.A_SEND_STATUS:
            asyncio.create_task(self._send_status())

    def _final_reading(self):
        """After a local stop: one more meter read; the stop carries its energy (`wh`, `ts`)."""
        sm = self.sm
        meter = self.board.meter
        if meter.read() == METER_OK:
            sm.meter_reading(meter.voltage, meter.current, meter.power, meter.energy_wh,
                             time.ticks_ms())

    async def _send_scan(self, uid):
        if not await self.link.send_now(messages.nfc_scan(uid)):
            self._do(self.sm.scan_not_sent(time.ticks_ms()))

    async def _send_status(self):
        for text in self.status_messages():
            await self.link.send_now(text)

    # --- the link's handler ------------------------------------------------------------
    def status_messages(self):
        sm = self.sm
        if not len(self.outbox):
            self._ended_in_outbox = None
        if sm.state != S.CHARGING and self._ended_in_outbox is not None:
            # A session ended here while offline (STOP, offline limit, meter failure,
            # EMERGENCY): its readings and its stop/emergency follow in the replay. Report it
            # as it stood at the head of that history (charging), so the server resumes it,
            # stores the readings and closes it for the real reason (`local_stop`,
            # `emergency`) instead of ending it at once as `charger_reset` / `fault`.
            return [messages.status("charging", self._ended_in_outbox, sm.wh)]
        out = [messages.status(sm.state_name, sm.session_id, sm.wh)]
        # The latest reading goes along only when the outbox holds none: queued readings are
        # replayed right after this, and a newer `ts` sent first would make the server ignore
        # them. It repeats the last queued reading's `ts` (a duplicate for the energy account,
        # fresh numbers for the dashboards).
        if sm.state == S.CHARGING and sm.have_reading and self.outbox.readings == 0:
            out.append(messages.metrics(sm.session_id, sm.v, sm.a, sm.w, sm.wh,
                                        self._last_reading_ts))
        return out

    def on_message(self, msg):
        handler = self._handlers.get(msg.get("type"))
        if handler is not None:
            handler(msg)

    def on_link(self, up):
        log("link", "up" if up else "down")
        self._do(self.sm.link(up, time.ticks_ms()))

    def _on_start(self, msg):
        sid = msg.get("session_id")
        if isinstance(sid, bool) or not isinstance(sid, int):
            log("start without an integer session_id ignored")
            return
        log("start session", sid, msg.get("user_name", ""))
        self._do(self.sm.start(sid, time.ticks_ms()))

    def _on_stop(self, msg):
        sid = msg.get("session_id")
        if sid is not None and (isinstance(sid, bool) or not isinstance(sid, int)):
            log("stop with a bad session_id ignored")
            return
        log("remote stop", sid)
        self._do(self.sm.remote_stop(sid, time.ticks_ms()))

    def _on_error(self, msg):
        log("server error", msg.get("code"), msg.get("message"))
        self._do(self.sm.error(time.ticks_ms()))

    # --- tasks -------------------------------------------------------------------------
    async def _reader_task(self):
        reader = self.board.reader
        sm = self.sm
        while True:
            now = time.ticks_ms()
            self._alive[0] = now
            if sm.reader_ok:
                status = reader.read_uid()
                if status == CARD_OK:
                    uid = reader.uid_text()
                    log("card", uid)
                    self._do(sm.card(uid, now))
                elif status == COLLISION:
                    log("two cards on the reader: tap one")
                await asyncio.sleep_ms(_CARD_POLL_MS)
            else:
                if reader.init():
                    log("NFC reader found")
                    sm.reader_ok = True
                    self._do(sm.link(sm.link_up, now))
                await asyncio.sleep_ms(5000)

    async def _meter_task(self):
        meter = self.board.meter
        sm = self.sm
        interval = _ms(self.cfg["meter_interval_s"])
        failures = 0
        while True:
            now = time.ticks_ms()
            self._alive[1] = now
            status = meter.read()
            if status == METER_OK:
                failures = 0
                self._do(sm.meter_reading(meter.voltage, meter.current, meter.power,
                                          meter.energy_wh, now))
            else:
                failures += 1
                if failures == 1:
                    log("meter read failed", status)
            await asyncio.sleep_ms(interval)

    async def _emergency_task(self):
        while True:
            await self._emergency_flag.wait()
            self._relay_off()
            self.board.emergency.pressed = True
            self._do(self.sm.emergency(True, time.ticks_ms()))

    async def _fast_task(self):
        """Every 100 ms: buttons, the state machine's clock, the LED, the watchdog. One task
        for all four: every asyncio wake-up costs allocations in the scheduler's poll."""
        stop = self.board.stop
        em = self.board.emergency
        led = self.board.led
        sm = self.sm
        alive = self._alive
        while True:
            now = time.ticks_ms()
            alive[2] = now
            edge = em.poll(now)
            if edge:
                if edge > 0:
                    self._relay_off()
                self._do(sm.emergency(edge > 0, now))
            edge = stop.poll(now)
            if edge:
                self._do(sm.stop_button(edge > 0, now))
            self._do(sm.tick(now))
            led.step(now)
            if self._wdt is not None:
                healthy = True
                for t in alive:
                    if time.ticks_diff(now, t) > _HEALTHY_MS:
                        healthy = False
                if healthy:
                    self._wdt.feed()
            await asyncio.sleep_ms(_FAST_MS)

    async def _ntp_task(self):
        host = self.cfg["ntp_host"]
        while True:
            if self.link.connected and clock.sync(host):
                await asyncio.sleep(_NTP_RESYNC_S)
            else:
                await asyncio.sleep(_NTP_RETRY_S if self.link.connected else 5)

    async def run(self):
        board = self.board
        board.relay.off()
        now = time.ticks_ms()
        reader_ok = board.reader.init()
        self._do(self.sm.boot(reader_ok, board.emergency.pressed, now))
        if self.cfg["watchdog_s"]:
            from machine import WDT
            self._wdt = WDT(timeout=_ms(self.cfg["watchdog_s"]))
        for coro in (self._reader_task(), self._meter_task(), self._emergency_task(),
                     self._fast_task(), self._ntp_task()):
            asyncio.create_task(coro)
        for hook in STARTUP_HOOKS:
            hook(self)
        gc.collect()
        log("ready, station", self.cfg["station"])
        await self.link.run()


def build(cfg):
    """The App with the real board, outbox and link."""
    from charger.board import Board
    from charger.link import Link
    from charger.outbox import Outbox
    return App(cfg, Board(cfg), Outbox(), Link)


def main(path=None):
    if hasattr(micropython, "alloc_emergency_exception_buf"):  # absent on the unix port
        micropython.alloc_emergency_exception_buf(100)
    from charger import config
    try:
        cfg = config.load(path or CONFIG_PATH)
    except config.ConfigError as e:
        log("config error:", e)
        _config_fault()
        return
    del config
    _forget("charger.config")  # validation runs once: give its code's RAM back
    asyncio.run(build(cfg).run())


def _forget(name):
    """Unload a module that is no longer needed (sys.modules and the package attribute)."""
    import sys
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and hasattr(parent, attr):
        delattr(parent, attr)
    gc.collect()


def _config_fault():
    """No usable config: keep the relay off and blink the error pattern; no crash loop."""
    from machine import Pin
    from charger.led import Led
    FAULT = 4
    led = Led(Pin(2))
    led.show(FAULT)
    asyncio.run(led.run())
