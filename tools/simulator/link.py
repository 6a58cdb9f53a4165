"""The reconnecting WebSocket link of one simulated charger (websockets' asyncio client).

Connects to `ws://HOST:PORT/ws?role=publisher&estacionId=N[&token=T]`, tells the `Charger`
when the link goes up or down, feeds it the server's frames and sends what it puts in its
outbox, in order; a message leaves the outbox for good only when the pong of a later ping
confirms the server read it.
Reconnects forever: exponential backoff 1 s -> 30 s with jitter, reset once the server has
answered `connected`. `drop()` cuts the TCP connection without a closing handshake, as a lost
WiFi does, and holds the link down for a while; `reboot()` does the same with an ESP32 reboot.
"""

import asyncio
import json
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
OPEN_TIMEOUT_S = 10.0
CONFIRM_TIMEOUT_S = 10.0  # a sent batch whose pong has not come by then: the link is dead
REBOOT_S = 1.0  # how long the simulated ESP32 takes to boot and join the WiFi


def backoff_delay(attempt: int, rng, low=BACKOFF_MIN_S, high=BACKOFF_MAX_S) -> float:
    """The wait before reconnect attempt `attempt` (0-based): doubling, capped, +-25 % jitter."""
    base = min(high, low * 2 ** min(attempt, 16))
    return min(high, max(low, base * rng.uniform(0.75, 1.25)))


class StationLink:
    def __init__(self, charger, url: str, log, rng, *, drop_seconds=10.0, tick_s=0.25,
                 on_online=None):
        self.charger = charger
        self.url = url
        self.log = log
        self.rng = rng
        self.drop_seconds = drop_seconds
        self.tick_s = tick_s
        self._on_online = on_online  # called after each connect (the auto tap)
        self._ws = None
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._held_until = 0.0
        self._attempt = 0
        self._closing = False
        self._tasks = []

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
        """Wait until the outbox is empty (or the link is down, or `timeout`)."""
        deadline = time.monotonic() + timeout
        while self.charger.online and self.charger.outbox and time.monotonic() < deadline:
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
        try:
            async with connect(self.url, open_timeout=OPEN_TIMEOUT_S, close_timeout=2,
                               ping_interval=10, ping_timeout=10, max_size=2**16,
                               compression=None) as ws:
                self._ws = ws
                self.log.emit("online", {})
                self.charger.connected()
                if self._on_online is not None:
                    self._on_online()
                self._wake.set()
                pump = asyncio.create_task(self._pump(ws))
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
            self.log.emit("offline", why)

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
        if message["type"] == "connected":
            self._attempt = 0
        self.charger.receive(message)

    async def _pump(self, ws) -> None:
        """Send the outbox in order. As the firmware does, a sent message counts as delivered
        only when the pong of a ping sent after it arrives (the server has read it); if the
        link fails first, every unconfirmed message goes back to the front of the outbox (a
        repeat is harmless: the server ignores a known `ts` and a second `stop`)."""
        unconfirmed = []
        boots = self.charger.boots
        try:
            while True:
                message = self.charger.outbox.pop()
                if message is None:
                    if unconfirmed:
                        pong = await ws.ping()
                        await asyncio.wait_for(pong, CONFIRM_TIMEOUT_S)
                        unconfirmed.clear()
                        continue
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                unconfirmed.append(message)
                await ws.send(json.dumps(message, ensure_ascii=False, separators=(",", ":")))
                self.log.emit("->", message)
        except TimeoutError:
            ws.transport.abort()  # no pong in time: the link is dead, reconnect
            self._restore(unconfirmed, boots)
            raise
        except (ConnectionClosed, asyncio.CancelledError):
            self._restore(unconfirmed, boots)
            raise

    def _restore(self, unconfirmed, boots) -> None:
        if self.charger.boots == boots:  # a reboot lost the RAM these lived in
            for message in reversed(unconfirmed):
                self.charger.outbox.restore(message)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.charger.tick()
            if self.charger.outbox:
                self._wake.set()

    def _abort(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.transport.abort()
