"""The reconnecting WebSocket link of one simulated charger (websockets' asyncio client).

Connects to `ws://HOST:PORT/ws?role=publisher&estacionId=N[&token=T]`, sends the charger's
status frames first, then what it sends at once (`nfc_scan`, `status`) and its outbox in
order, and feeds it the server's frames. Delivery is acknowledged as the firmware's link does
it (docs/protocol.md, "Acknowledged delivery"): every data frame sent on a connection is
counted from 1; the outbox is sent in batches of at most 16 entries, and a batch leaves the
outbox (`Outbox.confirm()`) only when an `{"type":"ack","n":K}` with K at least the frame
number of its last entry arrives; the next batch waits for that ack (a partial ack releases
nothing yet). Entries not acknowledged when a connection ends are sent again, in order,
right after the next connect's status (`Outbox.rewind()`). A server that does not ack (its
disk failing) loses nothing: the entries wait in the outbox under its bound, and when the
batch in flight is not acked within 30 s (`ack_timeout_s`, the firmware's default) the link
closes the connection (1001) and reconnects: the server never acks a connection again once
one of its frames could not be committed, and a new connection counts from 1 and replays.
Pings are for liveness only (no pong within 10 s: the link is dead, reconnect); a pong
confirms nothing. An ack whose `n` is not a whole number 0..frames sent is logged
(`invalid`) and ignored.

Reconnects forever (the server may be down, the WiFi gone): exponential backoff 1 s -> 30 s
with jitter, reset once the server has answered `connected`. Except when the server refuses
the station itself (close 4001, 4003, 4004, 4005: a wrong key, an unknown station; see
REFUSALS): retrying cannot help, so the link stops and calls `on_refused(code, why)`, and the
command line ends with one line and a non-zero status. `drop()` cuts the TCP connection
without a closing handshake, as a lost WiFi does, and holds the link down for a while;
`reboot()` does the same with an ESP32 reboot.
"""

import asyncio
import json
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
OPEN_TIMEOUT_S = 10.0
BATCH = 16  # outbox entries sent per acknowledgement (the firmware's charger/link.py _BATCH)
ACK_TIMEOUT_S = 30.0  # the batch in flight unacked this long: close (1001) and reconnect
REBOOT_S = 1.0  # how long the simulated ESP32 takes to boot and join the WiFi
# close codes (docs/protocol.md) that say this station's configuration is wrong: what a
# person should check
REFUSALS = {
    4001: "the URL's role is not publisher",
    4003: "the token (station key) is missing, wrong, expired or not for this station: use the "
    "key `.venv/bin/python -m server.admin stations issue-key N` printed (make run "
    "prints the demo's)",
    4004: "the URL has no estacionId",
    4005: "the station is not in the server's database (.venv/bin/python -m server.admin "
    "stations add NAME --id N)",
}


def backoff_delay(attempt: int, rng, low=BACKOFF_MIN_S, high=BACKOFF_MAX_S) -> float:
    """The wait before reconnect attempt `attempt` (0-based): doubling, capped, +-25 % jitter."""
    base = min(high, low * 2 ** min(attempt, 16))
    return min(high, max(low, base * rng.uniform(0.75, 1.25)))


class StationLink:
    def __init__(
        self,
        charger,
        url: str,
        log,
        rng,
        *,
        drop_seconds=10.0,
        tick_s=0.25,
        on_online=None,
        ack_timeout_s=ACK_TIMEOUT_S,
        on_refused=None,
    ):
        self.charger = charger
        self.url = url
        self.log = log
        self.rng = rng
        self.drop_seconds = drop_seconds
        self.tick_s = tick_s
        self._on_online = on_online  # called after each connect (the auto tap)
        self._on_refused = on_refused  # called once if the server refuses the station
        self._ws = None
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._held_until = 0.0
        self._attempt = 0
        self._closing = False
        self._tasks = []
        self.ack_timeout_s = ack_timeout_s
        self.frames = 0  # data frames sent on this connection
        self.acked = 0  # the highest `ack` n of this connection
        self._why = None  # why the link itself ended the connection

    # --- control from the command front end --------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._ticker())]

    def wake(self) -> None:
        """The charger has something new in its outbox."""
        self._wake.set()

    def drop(self) -> None:
        """WiFi loss: cut the connection now; stay down `drop_seconds` or until `reconnect()`."""
        self._held_until = time.monotonic() + self.drop_seconds
        self.log.emit("dropped", {"seconds": self.drop_seconds})
        self._abort()

    def reconnect(self) -> None:
        """End a drop (or a backoff wait) now."""
        self._held_until = 0.0
        self._retry_now.set()

    def reboot(self) -> None:
        self.charger.reboot()
        self._held_until = time.monotonic() + REBOOT_S
        self._abort()

    async def flush(self, timeout: float) -> None:
        """Wait until everything is sent and acknowledged (or the link is down, or
        `timeout`)."""
        deadline = time.monotonic() + timeout
        while (
            self.charger.online
            and (len(self.charger.outbox) or self.charger.now_frames)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._closing = True
        self._retry_now.set()
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def online(self) -> bool:
        return self._ws is not None

    # --- the connection loop -----------------------------------------------------------------
    async def _run(self) -> None:
        while not self._closing:
            await self._hold()
            if self._closing:
                return
            await self._connect_once()
            if self._closing:
                return
            if self._held_until <= time.monotonic():
                await self._backoff()

    async def _connect_once(self) -> None:
        why = {}
        self._why = None
        try:
            async with connect(
                self.url,
                open_timeout=OPEN_TIMEOUT_S,
                close_timeout=2,
                ping_interval=10,
                ping_timeout=10,
                max_size=2**16,
                compression=None,
            ) as ws:
                self._ws = ws
                self.frames = self.acked = 0
                self.log.emit("online", {})
                for text in self.charger.connected():  # the physical truth first
                    await self._send(ws, text)
                if self._on_online is not None:
                    self._on_online()
                pump = asyncio.create_task(self._pump(ws, self.charger.outbox))
                pump.add_done_callback(lambda task: self._pump_ended(task, ws))
                try:
                    async for frame in ws:
                        self._receive(frame)
                        self._wake.set()
                finally:
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
            why = {"code": ws.close_code, "reason": ws.close_reason or None}
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            why = {"code": rcvd.code if rcvd else 1006, "reason": rcvd.reason if rcvd else None}
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            why = {"error": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - whatever happens, the charger reconnects
            why = {"error": f"unexpected {type(exc).__name__}: {exc}"}
        finally:
            self._ws = None
            self.charger.disconnected()
        if not self._closing:
            self.log.emit("offline", self._why or why)
        code = why.get("code")
        if code in REFUSALS and self._on_refused is not None and not self._closing:
            self._closing = True  # no retry: the same credentials get the same answer
            self._on_refused(code, why.get("reason"))

    def _pump_ended(self, task, ws) -> None:
        """The sender is gone: so is this connection (a send failed, a reboot, a bug)."""
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, ConnectionClosed):
                self._why = {"error": f"unexpected {type(exc).__name__}: {exc}"}
            ws.transport.abort()

    async def _hold(self) -> None:
        """Stay down while a drop or a reboot holds the link (until `reconnect()`)."""
        while not self._closing and self._held_until > time.monotonic():
            await self._sleep(self._held_until - time.monotonic())

    async def _backoff(self) -> None:
        delay = backoff_delay(self._attempt, self.rng)
        self._attempt += 1
        self.log.emit("retry", {"in_s": round(delay, 2)})
        await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by `reconnect()` or `close()`."""
        self._retry_now.clear()
        try:
            await asyncio.wait_for(self._retry_now.wait(), max(0.0, seconds))
        except TimeoutError:
            pass

    def _receive(self, frame) -> None:
        try:
            if not isinstance(frame, str):
                raise ValueError("binary frame")
            message = json.loads(frame)
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise ValueError("not a JSON object with a string type")
        except (ValueError, RecursionError) as exc:
            self.log.emit("invalid", {"reason": str(exc)[:120], "frame": str(frame)[:120]})
            return
        if message["type"] == "ack":
            self._on_ack(message)
            return
        if message["type"] == "connected":
            self._attempt = 0
        self.charger.receive(message)

    def _on_ack(self, message) -> None:
        """`{"type":"ack","n":K}`: the server has committed the first K frames."""
        self.log.emit("<-", message)
        n = message.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= self.frames:
            self.log.emit(
                "invalid",
                {
                    "reason": f"ack n must be a whole number 0..{self.frames} "
                    "(the frames sent on this connection)"
                },
            )
            return
        self.acked = max(self.acked, n)

    async def _send(self, ws, text) -> None:
        """Send one data frame and count it (first: the server may ack it before send()
        returns)."""
        self.frames += 1
        await ws.send(text)
        self.log.emit("->", json.loads(text))

    async def _pump(self, ws, outbox) -> None:
        """Send what the charger sends at once, then the outbox, a batch at a time: a batch
        leaves the outbox when an ack covers its last frame (see the module docstring)."""
        waiting_for = 0  # the frame number the ack must reach; 0: no batch out
        deadline = 0.0  # ... by then
        while self.charger.outbox is outbox:  # (a reboot made a new outbox: this one is gone)
            while (text := self.charger.take_now()) is not None:
                await self._send(ws, text)
            if waiting_for and self.acked >= waiting_for:
                entries = outbox.unconfirmed
                outbox.confirm()
                waiting_for = 0
                self.log.emit("delivered", {"entries": entries, "pending": len(outbox)})
            if not waiting_for and len(outbox) > outbox.unconfirmed:
                for _ in range(BATCH):
                    text = outbox.next_unsent()
                    if text is None:
                        break
                    await self._send(ws, text)
                waiting_for = self.frames
                deadline = time.monotonic() + self.ack_timeout_s
                continue
            self._wake.clear()
            if not waiting_for:
                await self._wake.wait()  # a new entry, a frame to send now
                continue
            try:  # ... or the ack of the batch in flight
                await asyncio.wait_for(self._wake.wait(), deadline - time.monotonic())
            except TimeoutError:
                if self.acked < waiting_for:
                    self._why = {
                        "code": 1001,
                        "reason": f"no ack of frame {waiting_for} within {self.ack_timeout_s:g} s",
                    }
                    await ws.close(1001, "no ack")
                    return

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.charger.tick()
            if self.charger.unsent():
                self._wake.set()

    def _abort(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.transport.abort()
