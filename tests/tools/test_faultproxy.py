"""The TCP fault proxy (tools/faultproxy.py) against a real echo server and a real WebSocket
server: it passes bytes, a drop resets and refuses, a blackhole holds and then resumes (or
cuts), and it decodes the frames it forwards."""

import asyncio

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve

from tools.faultproxy import PONG, FaultProxy

WAIT = 10.0


@pytest.fixture
async def echo():
    """A TCP echo server on an ephemeral port; yields its port."""

    async def serve_one(reader, writer):
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve_one, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture
async def proxy(echo):
    async with FaultProxy(echo) as proxy:
        yield proxy


async def _open(proxy):
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", proxy.port), WAIT)


async def _echo(reader, writer, data):
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), WAIT)


async def test_passes_bytes_both_ways(proxy):
    reader, writer = await _open(proxy)
    assert await _echo(reader, writer, b"hello" * 1000) == b"hello" * 1000
    writer.close()
    assert proxy.connections == 1


async def test_drop_resets_open_connections_and_refuses_new_ones_until_it_ends(proxy):
    reader, writer = await _open(proxy)
    assert await _echo(reader, writer, b"before") == b"before"
    fault = asyncio.create_task(proxy.drop(WAIT))
    with pytest.raises(ConnectionResetError):  # an RST, not a clean EOF
        await asyncio.wait_for(reader.read(10), WAIT)
    reader2, writer2 = await _open(proxy)  # the kernel accepts; the proxy resets at once
    with pytest.raises(ConnectionResetError):
        await _echo(reader2, writer2, b"during")
    fault.cancel()  # the drop's end
    await asyncio.gather(fault, return_exceptions=True)
    reader3, writer3 = await _open(proxy)
    assert await _echo(reader3, writer3, b"after") == b"after"
    writer3.close()


async def test_blackhole_holds_both_ways_without_closing_then_resumes_in_order(proxy):
    reader, writer = await _open(proxy)
    assert await _echo(reader, writer, b"x") == b"x"
    fault = asyncio.create_task(proxy.blackhole(WAIT))
    await asyncio.sleep(0)  # the blackhole begins
    writer.write(b"held-1 ")
    writer.write(b"held-2")
    await writer.drain()
    reader2, writer2 = await _open(proxy)  # a new connection is held too
    writer2.write(b"new")
    read = asyncio.create_task(reader.readexactly(13))
    done, _ = await asyncio.wait([read], timeout=0.5)  # nothing comes back while it holds
    assert not done and not reader.at_eof()
    fault.cancel()  # the path is back
    await asyncio.gather(fault, return_exceptions=True)
    assert await asyncio.wait_for(read, WAIT) == b"held-1 held-2"
    assert await asyncio.wait_for(reader2.readexactly(3), WAIT) == b"new"
    writer.close()
    writer2.close()


async def test_blackhole_delivers_a_close_made_during_it_only_when_it_ends(proxy, echo):
    reader, writer = await _open(proxy)
    assert await _echo(reader, writer, b"x") == b"x"
    fault = asyncio.create_task(proxy.blackhole(WAIT))
    await asyncio.sleep(0)
    writer.write(b"last words")
    writer.write_eof()  # the client gives up during the stall: data then FIN
    await asyncio.sleep(0.2)
    assert proxy._pairs  # still open on the server's side
    fault.cancel()
    await asyncio.gather(fault, return_exceptions=True)
    assert await asyncio.wait_for(reader.read(), WAIT) == b"last words"  # echoed, then EOF


async def test_blackhole_then_cut_resets_what_lived_through_it(proxy):
    reader, writer = await _open(proxy)
    assert await _echo(reader, writer, b"x") == b"x"
    fault = asyncio.create_task(proxy.blackhole(0.2, then="cut"))
    writer.write(b"lost")
    await writer.drain()
    await fault
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), WAIT)


async def test_a_closed_upstream_resets_the_client():
    async with FaultProxy(1) as proxy:  # nothing listens on port 1
        reader, _ = await _open(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), WAIT)
        with pytest.raises(ValueError):
            await proxy.blackhole(0, then="later")


async def test_decodes_websocket_frames_both_ways_and_retargets():
    async def handler(websocket):
        async for message in websocket:
            await websocket.send(message.upper())

    async with serve(handler, "127.0.0.1", 0) as first, serve(handler, "127.0.0.1", 0) as second:
        ports = [s.sockets[0].getsockname()[1] for s in (first, second)]
        async with FaultProxy(ports[0]) as proxy:
            async with ws_connect(proxy.url, compression=None) as ws:
                await ws.send('{"type": "metrics", "w": 1}')
                assert await ws.recv() == '{"TYPE": "METRICS", "W": 1}'
                await ws.ping()
                index, pong = await proxy.wait_frame(lambda f: f.opcode == PONG, timeout=WAIT)
            up = [f for f in proxy.frames[:index] if f.up and f.message()]
            assert up[0].message() == {"type": "metrics", "w": 1}  # unmasked
            assert not pong.up and pong.conn == 1
            proxy.retarget(ports[1])
            async with ws_connect(proxy.url, compression=None) as ws:
                await ws.send("again")
                assert await ws.recv() == "AGAIN"
            assert proxy.connections == 2
