"""The charger application: wires the board, the state machine and the link together.

Owns the asyncio tasks (one poll loop, waking when something is due and at least every 200 ms,
for the buttons, the card reader, the meter every `meter_interval_s`, the state machine tick,
the LED and the watchdog; EMERGENCY; NTP) and is the link's handler (`status_messages()`,
`on_message()`, `on_link()`). It executes the state machine's action bits in a fixed order:
relay OFF first. EMERGENCY opens the relay inside the pin's interrupt
handler (soft IRQ on the ESP32) before anything else happens; the handler only calls a
preallocated bound method and sets a ThreadSafeFlag.
"""

import asyncio
import gc
import time

import micropython
from micropython import const

from charger import clock, forget, messages
from charger import state as S
from charger.mfrc522 import COLLISION, OK as CARD_OK
from charger.pzem import OK as METER_OK

CONFIG_PATH = "config.json"
STARTUP_HOOKS = []  # callables(app) run once the tasks exist (the simulator's control channel)
_CARD_POLL_MS = const(200)
_READER_RETRY_MS = const(5000)  # looking for a missing reader
_POLL_MS = const(200)  # the poll loop's longest sleep: buttons, state machine tick, watchdog
_DEBOUNCE_MS = const(30)  # a button settling is polled again this soon
_MIN_SLEEP_MS = const(10)
_NTP_RETRY_S = const(60)
_NTP_RESYNC_S = const(21600)  # 6 h
_RELAY_ACTS = S.A_RELAY_OFF | S.A_RELAY_ON
_QUEUE_ACTS = S.A_QUEUE_READING | S.A_QUEUE_STOP | S.A_QUEUE_EMERGENCY


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
        self._reader_due = now
        self._meter_due = now
        self._meter_ms = _ms(cfg["meter_interval_s"])
        self._meter_failures = 0
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
        # Called on every poll, mostly with 0. Few locals on purpose: a bytecode frame above
        # 11 slots is allocated on the heap at every call; the rare work is in helpers.
        if acts & _RELAY_ACTS:
            self._switch_relay(acts)
        if acts & S.A_FINAL_READING:
            self._final_reading()
        if acts & S.A_LED:
            self.board.led.show(self.sm.led)
        if acts & S.A_LOG:
            log(self.sm.note)
        if acts & _QUEUE_ACTS:
            self._queue(acts)
            self.link.notify()
        if acts & S.A_SEND_SCAN:
            asyncio.create_task(self._send_scan(self.sm.uid))
        if acts & S.A_SEND_STATUS:
            asyncio.create_task(self._send_status())

    def _switch_relay(self, acts):
        board = self.board
        if acts & S.A_RELAY_OFF:
            board.relay.off()
        if acts & S.A_RELAY_ON:
            if board.emergency.pressed:
                board.relay.off()  # never close the contactor with EMERGENCY open
            else:
                board.relay.on()

    def _queue(self, acts):
        # Every entry carries its true `ts`: the server counts a register rise within the
        # same whole second, so a stop need not pretend to be a second later.
        sm = self.sm
        if acts & S.A_QUEUE_READING:
            self._last_reading_ts = clock.unix_time()
            self.outbox.put_reading(sm.session_id, sm.v, sm.a, sm.w, sm.wh,
                                    self._last_reading_ts)
            self.readings_queued += 1
        if acts & S.A_QUEUE_STOP:
            self.outbox.put_event("stop", sm.event_sid, sm.wh, clock.unix_time())
            self._ended_in_outbox = sm.event_sid
        if acts & S.A_QUEUE_EMERGENCY:
            self.outbox.put_event("emergency", sm.event_sid, sm.wh, clock.unix_time())
            if sm.event_sid is not None:
                self._ended_in_outbox = sm.event_sid

    def _final_reading(self):
        """After a local stop: one more meter read; the stop carries its energy (`wh`, `ts`)."""
        if self.board.meter.read() == METER_OK:
            self._meter_reading(time.ticks_ms())

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
    async def _poll_task(self):
        """One loop for every polled input: each asyncio wake-up allocates in the scheduler,
        and the drivers' reads are synchronous anyway. A pass that raises is logged and does
        not feed the watchdog, so a driver that keeps failing resets the board."""
        while True:
            try:
                self._poll(time.ticks_ms())
                pause = self._pause(time.ticks_ms())
            except Exception as e:  # noqa: BLE001 - the buttons and the LED must go on
                log("poll failed:", repr(e))
                pause = _POLL_MS
            await asyncio.sleep_ms(pause)

    def _pause(self, now):
        # Sleep until the next thing to do (every wake-up allocates in the scheduler): the
        # LED's next step, a button settling, the card reader; _POLL_MS at most. The meter
        # wakes nobody: it is read in the pass nearest its due time (within 100 ms).
        ms = _POLL_MS
        if self.board.stop.settling or self.board.emergency.settling:
            ms = _DEBOUNCE_MS
        ms = min(ms, self.board.led.due_in(now), time.ticks_diff(self._reader_due, now))
        return ms if ms > _MIN_SLEEP_MS else _MIN_SLEEP_MS

    def _poll(self, now):
        # Every pass (at least every 200 ms): buttons (30 ms debounce), the state machine's
        # clock, the LED; the card reader every 200 ms (every 5 s while it is missing), the
        # meter every `meter_interval_s` on average (in the pass nearest its due time); then
        # the watchdog. Allocates nothing when nothing happens.
        if time.ticks_diff(now, self._reader_due) >= 0:
            self._poll_reader(now)
        if time.ticks_diff(self._meter_due, now) < _POLL_MS // 2:  # due by about this pass
            self._meter_due = time.ticks_add(self._meter_due, self._meter_ms)
            if time.ticks_diff(now, self._meter_due) >= 0:  # fell behind: no catching up
                self._meter_due = time.ticks_add(now, self._meter_ms)
            self._poll_meter(now)
        self._poll_buttons(now)
        self._do(self.sm.tick(now))
        self.board.led.step(now)
        if self._wdt is not None:
            self._wdt.feed()

    def _poll_reader(self, now):
        # hot paths keep few locals: a frame above 11 slots is heap-allocated per call
        if not self.sm.reader_ok:
            self._find_reader(now)
            return
        self._reader_due = time.ticks_add(now, _CARD_POLL_MS)
        status = self.board.reader.read_uid()
        if status == CARD_OK:
            uid = self.board.reader.uid_text()
            log("card", uid)
            self._do(self.sm.card(uid, now))
        elif status == COLLISION:
            log("two cards on the reader: tap one")

    def _find_reader(self, now):
        self._reader_due = time.ticks_add(now, _READER_RETRY_MS)
        if self.board.reader.init():
            log("NFC reader found")
            self.sm.reader_ok = True
            self._do(self.sm.link(self.sm.link_up, now))

    def _poll_meter(self, now):
        status = self.board.meter.read()
        if status == METER_OK:
            self._meter_failures = 0
            self._do(self._meter_reading(now))
        else:
            self._meter_failures += 1
            if self._meter_failures == 1:
                log("meter read failed", status)

    def _meter_reading(self, now):
        # the state machine's event for the meter's latest good read
        m = self.board.meter
        return self.sm.meter_reading(m.voltage, m.current, m.power, m.energy_wh, now)

    def _poll_buttons(self, now):
        edge = self.board.emergency.poll(now)
        if edge:
            if edge > 0:
                self._relay_off()
            self._do(self.sm.emergency(edge > 0, now))
        edge = self.board.stop.poll(now)
        if edge:
            self._do(self.sm.stop_button(edge > 0, now))

    async def _emergency_task(self):
        while True:
            await self._emergency_flag.wait()
            self._relay_off()
            self.board.emergency.pressed = True
            self._do(self.sm.emergency(True, time.ticks_ms()))

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
        for coro in (self._poll_task(), self._emergency_task(), self._ntp_task()):
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
    board = Board(cfg)
    forget("charger.board")  # only the drivers it built stay
    return App(cfg, board, Outbox(), Link)


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
    forget("charger.config")  # validation runs once: give its code's RAM back
    asyncio.run(build(cfg).run())


def _config_fault():
    """No usable config: keep the relay off and blink the error pattern; no crash loop."""
    from machine import Pin
    from charger.led import Led
    FAULT = 4
    led = Led(Pin(2))
    led.show(FAULT)
    asyncio.run(led.run())
