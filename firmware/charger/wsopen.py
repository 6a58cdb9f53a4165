"""Opening a WebSocket client connection (RFC 6455 section 4.1), for charger/wsclient.py.

Owns the TCP (ws://) or TLS (wss://, optional pinned CA file) connection and the
opening handshake: a random `Sec-WebSocket-Key`, the checked `Sec-WebSocket-Accept`, header
lines read byte by byte and bounded, the connect + handshake timeout. `WebSocket.connect()`
loads this module for each connection and drops it once the connection is open (its code is
not needed while connected; only its interned names stay, so it uses few of them). Errors
are OSError(code, why) as wsclient's module docstring lists. Runs on MicroPython only.
"""

import asyncio
import binascii
import hashlib
import os


async def open_ws(ws, dest, ca_cert, timeout_ms):
    """Connect `ws.stream` to `dest` = (host, port, resource, secure), parsed from the URL
    by linkcfg.parse_url(), and do the opening handshake within `timeout_ms`."""
    host, port, resource, ctx = dest
    if ctx:  # wss://: ctx becomes the TLS context
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_NONE  # encrypted but not authenticated: pin a CA
        if ca_cert:
            with open(ca_cert, "rb") as f:
                ca = f.read()
            if ca.startswith(b"-----"):  # PEM -> DER (mbedTLS loads DER reliably)
                ca = binascii.a2b_base64(ca.split(b"-----")[2])  # newlines are skipped
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=ca)
    else:
        ctx = None
    # The timeout: a task that cancels this one when it ends first (not wait_for_ms(): its
    # runner task and frames, ~0.5 KB, were part of the firmware's heap peak, issue 13)
    late = asyncio.create_task(_late(asyncio.current_task(), timeout_ms))
    try:
        await _handshake(ws, host, port, resource, ctx)
    except asyncio.CancelledError:
        if not late.done():  # cancelled by the caller's owner: not a timeout
            raise
        raise OSError(1006, "connect/handshake timeout after %d ms" % timeout_ms)
    except ValueError as e:  # mbedTLS reports certificate problems as ValueError
        raise OSError(1015, "TLS failed: %s" % str(e).strip())
    finally:
        late.cancel()  # (nothing once it ended)


async def _late(task, timeout_ms):
    await asyncio.sleep_ms(timeout_ms)
    task.cancel()


async def _handshake(ws, host, port, path, ssl):
    s, _ = await asyncio.open_connection(host, port, ssl=ssl)
    ws.stream = s
    key = binascii.b2a_base64(os.urandom(16), newline=False)  # section 4.1, item 7
    if port != (443 if ssl else 80):
        host = "%s:%d" % (host, port)  # the Host field names a port unless the default one
    # The request in pieces, never formatted whole: with the token the path alone is
    # ~250 B, and one ~400 B block for the request failed with MemoryError in a heap
    # fragmented by the faults (-X heapsize=96K, tests/firmware/test_delivery_under_faults.py).
    # Each write() goes to the socket at once (asyncio buffers only what it could not send).
    for i in (
        b"GET ",
        path,
        b" HTTP/1.1\r\nHost: ",
        host,
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
        key,
        b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ):
        s.write(i)
    await s.drain()
    # the answer the server owes: base64(SHA-1(key + the GUID)), section 4.2.2, item 5.4
    key = binascii.b2a_base64(
        hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest(), newline=False
    )
    one = bytearray(1)
    seen = 0  # 1: Upgrade: websocket, 2: Connection: Upgrade, 4: the right accept, 8: bad
    for i in range(65):  # the status line, then at most 64 header lines
        # a line, byte by byte: never reads past the handshake into the first frame, and
        # bounded (no unbounded readline())
        line = bytearray()
        while not line or line[-1] != 10:
            n = await s.readinto(one)
            if n == 0 or len(line) > 1023:
                raise OSError(0, "bad HTTP response")
            if n:
                line.append(one[0])
        if i == 0:  # section 4.1, client requirement 1: status 101
            line = line.split()
            try:
                n = int(line[1]) if line[0].startswith(b"HTTP/") else 0
            except (IndexError, ValueError):
                n = 0
            if n != 101:
                raise OSError(n, "no upgrade")  # n: the HTTP status, 0 for none
            continue
        name, _, line = line.partition(b":")
        name = name.strip().lower()
        line = line.strip()
        if not name:  # the empty line ends the headers (a line without a name is bad)
            seen |= 8 if line else 0
            break
        # section 4.1, client requirements 2-6
        if name == b"upgrade" and line.lower() == b"websocket":
            seen |= 1
        elif name == b"connection" and b"upgrade" in line.lower():
            seen |= 2
        elif name == b"sec-websocket-accept" and line == key:
            seen |= 4
        elif name == b"sec-websocket-extensions" or name == b"sec-websocket-protocol":
            seen |= 8  # not requested
    else:
        seen |= 8  # too many header lines
    if seen != 7:
        raise OSError(101, "Sec-WebSocket-Accept mismatch" if seen == 3 else "bad upgrade")
