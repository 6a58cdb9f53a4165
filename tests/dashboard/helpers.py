"""Helpers for the dashboard tests: plain HTTP GET against the live server, and a charger
(a real `websockets` publisher client) that charges with the meter's energy register."""

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tests.live_server import (
    ServerClock,
    http_url,
    publisher,
    receive_type,
    send_json,
    server_clock,
)

CARD = "VIRTUAL-1-A4F2E8"  # the demo card of "Juan Pérez" on station 1 (tariff 7.0)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def _get(url: str) -> HttpAnswer:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return HttpAnswer(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return HttpAnswer(
            error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
        )


async def http_get(app, path: str) -> HttpAnswer:
    """GET `path` from the running server (in a thread: the server runs on this event loop)."""
    return await asyncio.to_thread(_get, http_url(app, path))


class Charger:
    """A connected charger that starts a session with a card and reports its meter."""

    def __init__(self, websocket, clock=None):
        self.websocket = websocket
        self.session_id = None
        self.wh = 10_000.0
        # a server's ServerClock is advanced with every reading: the server sees the time the
        # charger claims pass (it bills no more time than its own clock saw)
        self.clock = clock if isinstance(clock, ServerClock) else None
        self.ts = self.clock() if self.clock is not None else time.time() - 600

    @classmethod
    async def connect(cls, server_url: str, station_id: int = 1) -> "Charger":
        return cls(await publisher(server_url, station_id), server_clock(server_url))

    async def tap(self, card: str = CARD) -> dict:
        """Tap a card; returns the server's answer (`start` or `error`)."""
        await send_json(self.websocket, {"type": "nfc_scan", "nfc_uid": card})
        async with asyncio.timeout(10):
            while True:
                answer = json.loads(await self.websocket.recv())
                if answer["type"] in ("start", "error"):
                    if answer["type"] == "start":
                        self.session_id = answer["session_id"]
                    return answer

    async def start(self, card: str = CARD) -> int:
        answer = await self.tap(card)
        assert answer["type"] == "start", answer
        return self.session_id

    async def meter(self, watts: float = 3600.0, seconds: float = 60.0) -> None:
        """One `metrics` message: `seconds` more of charging at `watts` on the register."""
        self.ts += seconds
        self.wh += watts * seconds / 3600
        if self.clock is not None:
            self.clock.advance(seconds)
        await send_json(
            self.websocket,
            {
                "type": "metrics",
                "session_id": self.session_id,
                "v": 230.0,
                "a": watts / 230.0,
                "w": watts,
                "ts": self.ts,
                "wh": self.wh,
            },
        )

    async def stop(self) -> None:
        await send_json(self.websocket, {"type": "stop", "session_id": self.session_id})

    async def emergency(self) -> None:
        await send_json(self.websocket, {"type": "emergency", "session_id": self.session_id})

    async def expect(self, kind: str) -> dict:
        return await receive_type(self.websocket, kind)

    async def close(self) -> None:
        await self.websocket.close()


async def wait_until(condition, timeout: float = 10.0, interval: float = 0.05):
    """Poll an async condition until it returns something truthy (or fail after `timeout`)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await condition()
            if result:
                return result
            await asyncio.sleep(interval)
