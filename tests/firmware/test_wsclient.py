"""The firmware's WebSocket client (charger/wsclient.py) on the real MicroPython unix port.

Each test starts a server on 127.0.0.1 port 0 -- the real `websockets` server, or a raw
asyncio TCP server where a test needs a misbehaving peer -- and runs a MicroPython script
that uses the client against it; the script prints what the client saw.
"""

import asyncio
import base64
import hashlib
import ssl

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from tests.certs import needs_openssl, self_signed
from tests.firmware.mpy import MpyProcess, requires_micropython, run_mpy

pytestmark = [requires_micropython, pytest.mark.timeout(90)]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

SCRIPT = """
import asyncio
from charger import wsclient
URL = %(url)r

async def connect(url, ca_cert=None, timeout_ms=10000, **options):
    from charger.linkcfg import parse_url
    ws = wsclient.WebSocket(**options)
    await ws.connect(parse_url(url), ca_cert, timeout_ms)
    return ws

async def main():
%(body)s

try:
    asyncio.run(main())
except OSError as e:  # every failure: (close code or HTTP status or errno, why)
    print("ERR", *e.args)
print("DONE")
"""


def script(url, body):
    body = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return SCRIPT % {"url": url, "body": body}


async def run_client(url, body, timeout=45):
    """Run a client script to its end; return its output (fails on a traceback)."""
    async with MpyProcess(script(url, body)) as proc:
        code = await proc.wait_exit(timeout)
        out = proc.output()
    assert code == 0 and "Traceback" not in out and "DONE" in out, out
    return out


# ---- raw server for misbehaving peers ------------------------------------------------------


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def frame(opcode, payload=b"", fin=True, mask=None):
    """A server frame (unmasked unless `mask` is given)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


async def read_frame(reader):
    """A client frame: (opcode, unmasked payload, was_masked)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if b1 & 0x80 else None
    data = await reader.readexactly(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data, mask is not None


class RawServer:
    """A TCP server that speaks just enough HTTP to upgrade, then runs `script(r, w)`."""

    def __init__(self, script, accept=True):
        self.script = script
        self.accept = accept
        self.events = asyncio.Queue()
        self.server = None
        self.tasks = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for task in self.tasks:  # handlers that went silent on purpose
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        self.tasks.add(asyncio.current_task())
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            key = b""
            for line in request.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            if self.accept is True:
                accept = accept_for(key)
            else:
                accept = self.accept
            if accept is not None:
                writer.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                await writer.drain()
            await self.script(reader, writer, self.events)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def go_silent(reader, writer, events):
    """A half-open peer: after the handshake it reads nothing and answers nothing."""
    await events.put("connection")
    await asyncio.sleep(3600)


# ---- the tests ----------------------------------------------------------------------------


async def echo(ws):
    async for msg in ws:
        if isinstance(msg, str) and len(msg) > 4000:
            await ws.send("len=%d" % len(msg))
        else:
            await ws.send(msg)


async def test_text_round_trips_through_a_real_websockets_server_which_demands_masking():
    paths = []

    async def handler(ws):
        paths.append(ws.request.path)
        await echo(ws)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws?role=publisher&estacionId=1" % port,
            """
ws = await connect(URL)
for text in ("hola é", "x" * 300, "y" * 3000, "z" * 70000):
    await ws.send(text)
    got = await ws.recv()
    print("ECHO", len(text), len(got), got[:10])
await ws.close()
print("CLOSE_CODE", ws.close_code)
""",
        )
    # websockets closes the connection (1002) on an unmasked client frame: echoes prove masks
    assert "ECHO 6 6 hola é" in out
    assert "ECHO 300 300 xxxxxxxxxx" in out and "ECHO 3000 3000 yyyyyyyyyy" in out
    assert "ECHO 70000 9 len=70000" in out  # 64-bit length: the server got all of it
    assert "CLOSE_CODE 1000" in out
    assert paths == ["/ws?role=publisher&estacionId=1"]


async def test_the_opening_code_is_not_kept_in_ram_while_connected():
    # issue 3 (memory): the TCP/TLS/handshake code is loaded per connect, then dropped
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
import sys
ws = wsclient.WebSocket()  # one object, connected twice
for _ in range(2):
    await ws.connect(("127.0.0.1", %d, "/ws", False))  # (host, port, resource, secure)
    print("LOADED", "charger.wsopen" in sys.modules)
    await ws.send("again")
    print("ECHO", await ws.recv())
    await ws.close()
"""
            % port,
        )
    assert out.count("LOADED False") == 2 and out.count("ECHO again") == 2, out


async def test_a_wrong_sec_websocket_accept_is_rejected():
    async def silent(reader, writer, events):
        await reader.read()

    async with RawServer(silent, accept=b"dGhlIHNhbXBsZSBub25jZQ==") as server:
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
await connect(URL)
print("CONNECTED")
""",
        )
    assert "ERR 101 Sec-WebSocket-Accept mismatch" in out
    assert "CONNECTED" not in out


async def test_an_http_error_instead_of_an_upgrade_is_reported_with_its_status():
    async def refuse(connection, request):
        return connection.respond(404, "no such path\n")

    async with serve(echo, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client("ws://127.0.0.1:%d/nope" % port, "await connect(URL)")
    assert "ERR 404" in out


async def test_a_fragmented_message_from_websockets_is_reassembled():
    async def handler(ws):
        await ws.recv()
        await ws.send(["frag", "men", "ted ", "é"])  # an iterable: one fragment each
        await ws.send([b"\x00\x01", b"\x02"])
        await ws.recv()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
ws = await connect(URL)
await ws.send("go")
print("TEXT", await ws.recv())
print("BINARY", await ws.recv())
await ws.close()
""",
        )
    assert "TEXT fragmented é" in out
    assert "BINARY b'\\x00\\x01\\x02'" in out


async def test_a_ping_between_fragments_is_answered_and_the_message_still_reassembled():
    async def script_(reader, writer, events):
        writer.write(
            frame(1, b"ab", fin=False)
            + frame(9, b"p1")
            + frame(0, b"cd", fin=False)
            + frame(0, b"ef")
        )
        await writer.drain()
        await events.put(await read_frame(reader))  # the pong
        await events.put(await read_frame(reader))  # the close

    async with RawServer(script_) as server:
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
ws = await connect(URL)
print("MSG", await ws.recv())
await ws.close(1000, "bye")
""",
        )
        pong = await asyncio.wait_for(server.events.get(), 10)
        close = await asyncio.wait_for(server.events.get(), 10)
    assert "MSG abcdef" in out
    assert pong == (10, b"p1", True)
    assert close[0] == 8 and close[1][:2] == (1000).to_bytes(2, "big") and close[2]


async def test_pings_from_a_websockets_server_are_answered():
    async def handler(ws):
        await ws.recv()
        for _ in range(3):
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 20)
        await ws.send("pongs: 3")
        await ws.recv()

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
ws = await connect(URL)
await ws.send("ready")
print("GOT", await ws.recv())
await ws.close()
""",
        )
    assert "GOT pongs: 3" in out


async def test_own_pings_keep_an_idle_link_alive_while_the_server_answers():
    async def script_(reader, writer, events):
        pings = 0
        while pings < 3:
            op, data, _ = await read_frame(reader)
            if op == 9:
                pings += 1
                writer.write(frame(10, data))
        writer.write(frame(1, b"still here after 3 pings"))
        await writer.drain()
        await read_frame(reader)

    async with RawServer(script_) as server:
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
ws = await connect(URL, ping_ms=100, pong_ms=5000)
print("GOT", await ws.recv())
await ws.close()
""",
        )
    assert "GOT still here after 3 pings" in out


async def test_own_pings_detect_a_half_open_link():
    async with RawServer(go_silent) as server:
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
ws = await connect(URL, ping_ms=200, pong_ms=400)
print("CONNECTED")
await ws.recv()
""",
        )
    assert "CONNECTED" in out
    assert "ERR 1006 no pong within 400 ms" in out


async def test_the_close_code_of_the_server_reaches_the_client_and_is_echoed():
    received = []

    async def handler(ws):
        await ws.recv()
        await ws.close(4008, "replaced by a newer connection")
        received.append(ws.protocol.close_rcvd.code)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
ws = await connect(URL)
await ws.send("hi")
try:
    await ws.recv()
except OSError as e:
    print("CLOSED_CODE", *e.args, ws.open)
    await ws.send("too late")
""",
        )
    assert "CLOSED_CODE 4008 replaced by a newer connection False" in out
    assert "ERR 4008" in out  # sending on a closed connection raises, no crash
    assert received == [4008]


async def test_the_client_close_handshake_reaches_the_server():
    seen = asyncio.Queue()

    async def handler(ws):
        try:
            await ws.recv()
        except ConnectionClosed as e:
            await seen.put((e.rcvd.code, e.rcvd.reason))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
ws = await connect(URL)
await ws.close(1001, "going away")
print("CODE", ws.close_code)
""",
        )
        assert await asyncio.wait_for(seen.get(), 10) == (1001, "going away")
    assert "CODE 1001" in out


async def test_the_server_gone_mid_frame_is_a_clean_close_not_a_crash():
    async def half_frame(reader, writer, events):
        writer.write(bytes([0x81, 100]) + b"only ten b")
        await writer.drain()

    async with RawServer(half_frame) as server:
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
ws = await connect(URL)
await ws.recv()
""",
        )
    assert "ERR 1006 connection lost" in out


@pytest.mark.parametrize("fragments", [1, 3], ids=["one-frame", "fragmented"])
async def test_a_message_above_the_size_bound_is_refused_with_1009(fragments):
    received = []

    async def handler(ws):
        await ws.recv()
        part = "x" * (5000 // fragments)
        try:
            await ws.send([part] * fragments if fragments > 1 else part)
            await ws.recv()
        except ConnectionClosed as e:
            received.append(e.rcvd.code if e.rcvd else None)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
ws = await connect(URL, max_size=4096)
await ws.send("send me something big")
await ws.recv()
""",
        )
    assert "ERR 1009 message above 4096 bytes" in out
    assert received == [1009]


@pytest.mark.parametrize(
    "bad,code",
    [
        (frame(1, b"hi", mask=b"\x01\x02\x03\x04"), 1002),  # servers must not mask
        (bytes([0xC1, 2]) + b"hi", 1002),  # RSV1 without an extension
        (frame(0, b"orphan"), 1002),  # continuation without a start
        (frame(9, b"x", fin=False), 1002),  # fragmented control frame
        (frame(1, b"\xff\xfe"), 1007),  # text that is not UTF-8
    ],
    ids=["masked", "rsv", "orphan-continuation", "fragmented-ping", "bad-utf8"],
)
async def test_protocol_violations_fail_the_connection_with_the_right_code(bad, code):
    async def send_bad(reader, writer, events):
        writer.write(bad)
        await writer.drain()
        await events.put(await read_frame(reader))

    async with RawServer(send_bad) as server:
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
ws = await connect(URL)
await ws.recv()
""",
        )
        op, payload, _ = await asyncio.wait_for(server.events.get(), 10)
    assert "ERR %d" % code in out
    assert op == 8 and int.from_bytes(payload[:2], "big") == code


async def test_a_server_that_never_answers_the_handshake_times_out():
    async with RawServer(None, accept=None) as server:
        server.script = lambda r, w, e: r.read()
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
await connect(URL, timeout_ms=300)
""",
        )
    assert "ERR 1006 connect/handshake timeout after 300 ms" in out


async def test_a_refused_connection_and_a_bad_url_are_clear_errors():
    async with RawServer(None) as server:
        port = server.port
    out = await run_client(
        "ws://127.0.0.1:%d/ws" % port,
        """
try:
    await connect("http://example/ws")
except ValueError as e:
    print("VALUE", e)
await connect(URL)
""",
    )
    assert "VALUE URL must start with ws:// or wss://" in out
    assert "ERR 111" in out


# ---- wss:// with a pinned CA ---------------------------------------------------------------


@needs_openssl
async def test_wss_works_with_the_pinned_ca_and_refuses_another_one(tmp_path):
    key, crt = self_signed(tmp_path, "server")
    _, other = self_signed(tmp_path, "other")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    async with serve(echo, "127.0.0.1", 0, ssl=ctx) as server:
        port = server.sockets[0].getsockname()[1]
        url = "wss://localhost:%d/ws" % port
        out = await run_client(
            url,
            """
ws = await connect(URL.replace("localhost", "127.0.0.1"), ca_cert=%r)
await ws.send("over tls")
print("ECHO", await ws.recv())
await ws.close()
try:
    await connect(URL.replace("localhost", "127.0.0.1"), ca_cert=%r)
    print("WRONG CA ACCEPTED")
except OSError as e:
    print("REFUSED", *e.args)
"""
            % (str(crt), str(other)),
        )
    assert "ECHO over tls" in out
    assert "REFUSED 1015 TLS failed" in out and "not correctly signed" in out
    assert "WRONG CA ACCEPTED" not in out


def test_every_frame_gets_a_fresh_random_mask():
    # RFC 6455 section 5.3: the client masks every frame with a new unpredictable key
    out = run_mpy("""
import asyncio
from charger import wsclient
class Sink:  # an asyncio stream whose socket takes every write at once
    def __init__(self): self.data = bytearray(); self.out_buf = b""
    def write(self, b): self.data.extend(b)
    async def drain(self): pass
async def main():
    ws = wsclient.WebSocket(ping_ms=0)
    ws.stream = Sink()  # as if connected
    ws.open = True
    ws.close_code = None
    for _ in range(20):
        await ws.send("same text")
    d = ws.stream.data
    starts = range(0, len(d), 15)
    masks = set(bytes(d[i + 2:i + 6]) for i in starts)
    print("FRAMES", len(d) // 15, "MASKS", len(masks), "MASKED", all(d[i + 1] & 0x80 for i in starts))
asyncio.run(main())
""")
    assert "FRAMES 20 MASKS 20 MASKED True" in out, out


async def test_the_handshake_accepts_the_rfc_6455_example_answer():
    # RFC 6455 section 1.3: key dGhlIHNhbXBsZSBub25jZQ== (the 16 bytes "the sample nonce")
    # -> Sec-WebSocket-Accept s3pPLMBiTxaQ9kYGzzhZRbK+xOo=; the key's randomness is shimmed
    async def closes(reader, writer, events):
        await events.put((await read_frame(reader))[0])

    async with RawServer(closes, accept=b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") as server:
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % server.port,
            """
import os, sys
class NonceOs:  # wsopen imports os at each connect: it gets this one
    def urandom(n):
        return b"the sample nonce" if n == 16 else os.urandom(n)
sys.modules["os"] = NonceOs
ws = await connect(URL)
print("CONNECTED")
await ws.close()
""",
        )
        assert await asyncio.wait_for(server.events.get(), 10) == 8  # the close frame
    assert "CONNECTED" in out


# MicroPython source: a WebSocket "connected" to a stream whose socket takes every write at once
CONNECTED_WS = """
class Sink:  # an asyncio stream whose socket takes every write at once
    def __init__(self): self.out_buf = b""
    def write(self, b): pass
ws = wsclient.WebSocket()
ws.stream = Sink()  # as if connected
ws.open = True
ws.close_code = None
"""


def test_writing_a_frame_allocates_only_its_mask_and_one_buffer_view():
    # issue 3: a frame per reading for years. Writing one allocates its fresh 4-byte mask
    # (os.urandom: 37 B counted) and one view of the transmit buffer (32 B); a bytecode frame
    # of more than 11 slots would add >= 128 B per call (MicroPython puts it on the heap)
    out = run_mpy(
        """
import micropython
from charger import wsclient
"""
        + CONNECTED_WS
        + """for data in (b"x" * 100, b"y" * 200):  # a 7-bit and a 16-bit length
    ws._write_frame(1, data)
    t = micropython.mem_total()
    for _ in range(10):
        ws._write_frame(1, data)
    print("BYTES", len(data), (micropython.mem_total() - t) // 10)
"""
    )
    per_frame = dict(line.split()[1:] for line in out.splitlines() if line.startswith("BYTES"))
    assert per_frame and all(int(b) < 100 for b in per_frame.values()), out


def test_sending_a_reading_allocates_no_coroutine():
    # issue 3 (allocation per metrics cycle): a reading goes out every metrics interval for
    # years. When the socket takes the whole frame, `await ws.send(text)` allocates only the
    # text's bytes object (its data is shared), the mask and one buffer view (~130 B): no
    # coroutine per frame (~250 B) and no heap frame (>= 128 B).
    out = run_mpy(
        """
import asyncio, micropython
from charger import messages, wsclient
"""
        + CONNECTED_WS
        + """async def main():
    for i in range(11):
        text = messages.metrics(7, 230.1, 16.2, 3680.0, 1000 + i, 1764150000 + i)
        t = micropython.mem_total()
        await ws.send(text)
        sent = micropython.mem_total() - t
        if i:  # the first call may intern or cache
            print("BYTES", sent)
asyncio.run(main())
"""
    )
    rows = [line.split()[1] for line in out.splitlines() if line.startswith("BYTES")]
    assert len(rows) == 10, out
    assert all(int(sent) < 160 for sent in rows), rows  # 325 with a coroutine per frame


async def test_count_is_the_data_frames_written_on_this_connection_in_wire_order():
    # issue 10: the server's `ack` n counts the data frames (text or binary) it read on the
    # connection; control frames (ping, pong, close) are not data frames. A reconnect
    # counts from 1 again.
    async def handler(ws):
        await ws.ping(b"p")  # answered with a pong: not counted
        async for msg in ws:
            await ws.send("got %s" % (msg if isinstance(msg, str) else "binary"))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
ws = await connect(URL, ping_ms=50, pong_ms=5000)
print("COUNT", ws.count)
await ws.send("a")
print(await ws.recv(), ws.count)
await ws.send(b"b")
print(await ws.recv(), ws.count)
await asyncio.sleep_ms(200)  # own pings while idle: not counted
print("IDLE", ws.count)
await ws.close()
print("CLOSED", ws.count)
from charger.linkcfg import parse_url
await ws.connect(parse_url(URL))  # the same object, reconnected
print("AGAIN", ws.count)
await ws.send("c")
print(await ws.recv(), ws.count)
await ws.close()
""",
        )
    assert "COUNT 0" in out and "got a 1" in out and "got binary 2" in out, out
    assert "IDLE 2" in out and "CLOSED 2" in out, out
    assert "AGAIN 0" in out and "got c 1" in out, out


async def test_the_servers_compact_ack_is_read_in_place_and_any_other_form_is_returned():
    # issue 10: `{"type":"ack","n":N}` (server/protocol.py's compact JSON) with N <= the frames
    # sent updates the owner's ack state inside recv() (no message returned: no string and no
    # recv() coroutine per ack); anything else comes out of recv() as a message
    async def handler(ws):
        async for msg in ws:
            if msg == "go":
                for text in (
                    '{"type":"ack","n":1}',
                    '{"type":"ack","n":3}',  # 3 > sent: out
                    '{"type": "ack", "n": 2}',
                    '{"type":"ack","n":2}',
                    '{"type":"ack","n":1}',
                    '{"type":"ack","n":}',
                    '{"type":"ack","n":2x}',
                    "end",
                ):
                    await ws.send(text)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = await run_client(
            "ws://127.0.0.1:%d/ws" % port,
            """
ws = await connect(URL)
event = asyncio.Event()
ws.ack = [0, 2, 0, event]
await ws.send("x")
await ws.send("go")
while True:
    got = await ws.recv()
    print("GOT", got, ws.ack[0], event.is_set())
    if got == "end":
        break
await ws.close()
""",
        )
    got = [line for line in out.splitlines() if line.startswith("GOT")]
    assert got == [
        'GOT {"type":"ack","n":3} 1 False',  # ack 1 taken in place before it
        'GOT {"type": "ack", "n": 2} 1 False',  # another form: the owner's
        'GOT {"type":"ack","n":} 2 True',  # ack 2 covered want 2; 1 ignored
        'GOT {"type":"ack","n":2x} 2 True',
        "GOT end 2 True",
    ], out
