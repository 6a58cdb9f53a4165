"""A TCP fault proxy on loopback: what a charger's network can do to its link to the server.

`FaultProxy(upstream_port)` listens on 127.0.0.1 (an ephemeral port unless `port` is given) and
forwards every connection to 127.0.0.1:upstream_port, byte for byte, both ways. Point the
charger at `ws://127.0.0.1:{proxy.port}/ws` and inject faults:

- `await proxy.drop(seconds)`: every proxied connection is reset NOW (an RST to both ends, as
  when the access point reboots or a NAT forgets its table) and for `seconds` every new
  connection is reset as soon as it is accepted (the charger's handshake fails at once).
- `await proxy.blackhole(seconds, then="resume")`: for `seconds` nothing passes either way, on
  the open connections and on new ones (accepted by the kernel, never connected upstream),
  but nothing is closed either: a stalled WiFi or a dead uplink. Then:
  - `then="resume"` (the default, what a real stall does): TCP retransmits for minutes (Linux
    ~15 min, lwIP over a minute) and a NAT keeps an established mapping for hours (RFC 5382:
    at least 2 h 4 min), so a 30 s stall kills no connection by itself. What the endpoints
    did meanwhile takes effect when the path comes back, in order: bytes they wrote are
    delivered, then their FIN or RST (e.g. a keepalive timeout that closed the socket); a
    write to an end that is gone resets the other end. A stall shorter than both keepalives
    is invisible, apart from the delay.
  - `then="cut"`: every connection that lived through the stall is reset when it ends (a NAT
    or AP that rebooted during the stall). Nothing held is delivered.
- `proxy.retarget(port)`: new connections go to another upstream port (a server restarted on
  a fresh ephemeral port); connections that are not accepted upstream are reset.

The proxy also decodes the WebSocket frames it forwards (after each direction's HTTP upgrade;
client frames unmasked; a permessage-deflate payload stays compressed: the firmware never
negotiates it) into `frames`, a list of `Frame(conn, up, opcode, payload)` (`up`:
charger -> server), appended right after the frame's last byte was handed to the receiving
socket. `await proxy.wait_frame(predicate, start=i)` returns the first (index, frame) from
index `i` that matches: a test can put a fault at the worst moment, e.g. SIGKILL the server
right after a pong reached the charger, or drop the link right after a reading reached the
server. `connections` counts accepted connections.

By hand (e.g. the firmware on the unix port against `make run`):

    python -m tools.faultproxy 3000 --port 3001
    > drop 20 | blackhole 30 [cut] | retarget PORT | status
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys
from typing import NamedTuple

HOST = "127.0.0.1"
CHUNK = 65536
PING, PONG, CLOSE, TEXT = 0x9, 0xA, 0x8, 0x1


class Frame(NamedTuple):
    conn: int  # the proxied connection's number (from 1, in order of accept)
    up: bool  # True: client (charger) -> server
    opcode: int  # RFC 6455 opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation)
    payload: bytes  # unmasked

    def message(self) -> dict | None:
        """A text frame's JSON object (None for anything else)."""
        if self.opcode != TEXT:
            return None
        try:
            value = json.loads(self.payload)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class _Decoder:
    """One direction's bytes -> WebSocket frames: skips the HTTP upgrade, then parses headers."""

    def __init__(self):
        self.buf = bytearray()
        self.upgraded = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf
        buf += data
        out = []
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            del buf[: end + 4]
            self.upgraded = True
        while len(buf) >= 2:
            size, pos = buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    break
                size, pos = struct.unpack_from("!H", buf, 2)[0], 4
            elif size == 127:
                if len(buf) < 10:
                    break
                size, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            mask = None
            if buf[1] & 0x80:
                if len(buf) < pos + 4:
                    break
                mask, pos = bytes(buf[pos : pos + 4]), pos + 4
            if len(buf) < pos + size:
                break
            payload = bytes(buf[pos : pos + size])
            if mask is not None:
                payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
            out.append((buf[0] & 0x0F, payload))
            del buf[: pos + size]
        return out


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN: the peer's next read or write fails."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class _Pair:
    """One proxied connection: the client's stream, the upstream one, the task serving both."""

    def __init__(self, number: int, client: asyncio.StreamWriter):
        self.number = number
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None
        self.rst = False  # end with RSTs (a fault), not FINs

    def reset(self) -> None:
        self.rst = True
        if self.task is not None:
            self.task.cancel()


class FaultProxy:
    def __init__(self, upstream_port: int, *, port: int = 0, keep_frames: bool = True):
        self.upstream_port = upstream_port
        self.port = port
        self.keep_frames = keep_frames
        self.frames: list[Frame] = []
        self.connections = 0
        self._pairs: set[_Pair] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._new_frame = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self._pairs):
            pair.reset()
        tasks = [p.task for p in self._pairs if p.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def retarget(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port

    # ---- faults --------------------------------------------------------------------------
    async def drop(self, seconds: float) -> None:
        """Reset every connection now; reset every new one for `seconds`; then pass again."""
        self._refusing = True
        try:
            for pair in list(self._pairs):
                pair.reset()
            await asyncio.sleep(seconds)
        finally:
            self._refusing = False

    async def blackhole(self, seconds: float, then: str = "resume") -> None:
        """Forward nothing either way for `seconds`, close nothing; then resume or cut (see the
        module docstring)."""
        if then not in ("resume", "cut"):
            raise ValueError("then must be 'resume' or 'cut'")
        self._flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            if then == "cut":
                for pair in list(self._pairs):
                    pair.reset()
            self._flowing.set()

    # ---- observation ---------------------------------------------------------------------
    async def wait_frame(
        self, predicate, start: int = 0, timeout: float = 30.0
    ) -> tuple[int, Frame]:
        """The first frame from index `start` for which predicate(frame) is true."""
        seen = start
        async with asyncio.timeout(timeout):
            while True:
                while seen < len(self.frames):
                    frame = self.frames[seen]
                    if predicate(frame):
                        return seen, frame
                    seen += 1
                self._new_frame.clear()
                await self._new_frame.wait()

    # ---- forwarding ----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._refusing:
            _reset(writer)
            return
        pair = _Pair(self.connections, writer)
        pair.task = asyncio.current_task()
        self._pairs.add(pair)
        try:
            await self._flowing.wait()  # a blackhole: not even connected upstream
            try:
                up_reader, pair.server = await asyncio.open_connection(HOST, self.upstream_port)
            except OSError:
                pair.rst = True  # nothing listens there: the charger sees its connection reset
                return
            try:
                async with asyncio.TaskGroup() as both:
                    both.create_task(self._pump(pair, reader, pair.server, True))
                    both.create_task(self._pump(pair, up_reader, writer, False))
            except* (ConnectionError, OSError):
                pair.rst = True  # one end reset: so is the other
        except asyncio.CancelledError:
            pass  # reset by a fault (pair.rst) or the proxy's close
        finally:
            self._pairs.discard(pair)
            for end in (pair.client, pair.server):
                if end is None:
                    continue
                if pair.rst:
                    _reset(end)
                else:
                    end.close()

    async def _pump(
        self, pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool
    ) -> None:
        """One direction until its EOF (passed on as a FIN); an RST from either end raises
        ConnectionError, which resets the pair. Every step waits while a blackhole holds."""
        decoder = _Decoder()
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                await self._flowing.wait()  # the RST travels when the path is back
                raise
            await self._flowing.wait()
            if not data:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            if writer.transport.is_closing():
                raise ConnectionResetError("the receiving end is gone")
            frames = decoder.feed(data)
            if frames and self.keep_frames:
                self.frames.extend(Frame(pair.number, up, op, payload) for op, payload in frames)
                self._new_frame.set()


async def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.faultproxy",
        description="TCP fault proxy on 127.0.0.1 (see the module docstring)",
    )
    parser.add_argument("upstream_port", type=int, help="the server's port on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free)")
    args = parser.parse_args(argv)
    proxy = await FaultProxy(args.upstream_port, port=args.port, keep_frames=False).start()
    print(
        f"proxy 127.0.0.1:{proxy.port} -> 127.0.0.1:{args.upstream_port}; "
        "commands: drop S | blackhole S [cut] | retarget PORT | status",
        flush=True,
    )
    fault = None
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        words = line.split()
        try:
            if not words:
                continue
            if words[0] in ("drop", "blackhole") and len(words) >= 2:
                if fault is not None and not fault.done():
                    raise ValueError("a fault is running")
                if words[2:] and words[2] not in ("resume", "cut"):
                    raise ValueError("blackhole S [resume|cut]")
                coro = (
                    proxy.drop(float(words[1]))
                    if words[0] == "drop"
                    else proxy.blackhole(float(words[1]), *(words[2:3] or ["resume"]))
                )
                fault = asyncio.create_task(coro)
                fault.add_done_callback(lambda _: print("fault over", flush=True))
            elif words[0] == "retarget" and len(words) == 2:
                proxy.retarget(int(words[1]))
            elif words[0] != "status":
                raise ValueError("unknown command")
            print(
                f"ok connections={proxy.connections} open={len(proxy._pairs)} "
                f"upstream={proxy.upstream_port} flowing={proxy._flowing.is_set()} "
                f"refusing={proxy._refusing}",
                flush=True,
            )
        except ValueError as problem:
            print(f"error {problem}", flush=True)
    await proxy.close()


if __name__ == "__main__":
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass
