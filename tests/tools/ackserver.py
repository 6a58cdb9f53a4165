"""A small publisher-side server for the link tests: real websockets, no database.

Accepts every publisher, greets it with `connected`, records every frame of every connection
(`connections[i]`: the parsed frames of the i-th connection, in order), answers `nfc_scan` with
`start` of session `session_id`, and acknowledges as the spec says (docs/protocol.md,
"Acknowledged delivery"): `{"type":"ack","n":K}`, K the frames read on this connection. With
`auto_ack=False` it acknowledges only when the test calls `ack(n)`, so a test can hold
delivery back. `round_trip()` is a ping and its pong; `cut()` drops the TCP connection
without a closing handshake, as a lost network does.
"""

import asyncio
import json

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


class AckServer:
    def __init__(self, *, auto_ack=True, session_id=7, user_name="Juan Pérez"):
        self.auto_ack = auto_ack
        self.session_id = session_id
        self.user_name = user_name
        self.connections = []
        self.close_codes = []  # the close code each ended connection got from the charger
        self.open = False
        self._ws = None
        self._server = None
        self._changed = asyncio.Event()

    async def __aenter__(self):
        self._server = await serve(self._handler, "127.0.0.1", 0, compression=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws"
        return self

    async def __aexit__(self, *exc):
        self._server.close()
        await self._server.wait_closed()

    async def _handler(self, ws):
        frames = []
        self.connections.append(frames)
        self._ws = ws
        self.open = True
        try:
            await ws.send('{"type":"connected","role":"publisher","estacionId":"1"}')
            async for text in ws:  # (after the close: what was read before it, then the end)
                frames.append(json.loads(text))
                self._changed.set()
                if frames[-1]["type"] == "nfc_scan":
                    await self._answer(
                        ws,
                        {
                            "type": "start",
                            "session_id": self.session_id,
                            "user_name": self.user_name,
                        },
                    )
                if self.auto_ack:
                    await self._answer(ws, {"type": "ack", "n": len(frames)})
        except ConnectionClosed:
            pass
        finally:
            self.close_codes.append(ws.close_code)
            if self._ws is ws:
                self.open = False
            self._changed.set()

    @staticmethod
    async def _answer(ws, message):
        try:
            await ws.send(json.dumps(message))
        except ConnectionClosed:
            pass  # the charger left; the frames it sent before still get read

    async def wait_for(self, condition, timeout=20.0):
        """Wait until `condition(self)` holds (checked at every frame and connection end)."""
        async with asyncio.timeout(timeout):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    def frames(self, connection=-1, kind=None):
        """The frames of a connection (the latest by default), of one type if given."""
        if not self.connections:
            return []
        frames = self.connections[connection]
        return [f for f in frames if kind is None or f["type"] == kind]

    async def send(self, message):
        await self._ws.send(json.dumps(message))

    async def ack(self, n):
        await self.send({"type": "ack", "n": n})

    async def round_trip(self):
        """A ping and its pong: the charger has read everything sent before it."""
        await asyncio.wait_for(await self._ws.ping(), 10)

    def cut(self):
        self._ws.transport.abort()
