"""Opening a WebSocket client connection (RFC 6455 section 4.1), for charger/wsclient.py.

Owns the URL, the TCP (ws://) or TLS (wss://, optional pinned CA file) connection and the
opening handshake: a random `Sec-WebSocket-Key`, the checked `Sec-WebSocket-Accept`, header
lines read byte by byte and bounded, the connect + handshake timeout. `wsclient.connect()`
loads this module for each connection and drops it once the connection is open (its code is
not needed while connected; only its interned names stay). Runs on MicroPython only.
"""

import asyncio
import binascii
import hashlib
import os
from time import ticks_ms

from micropython import const

from charger.wsclient import CLOSE_ABNORMAL, HandshakeError, WebSocketError

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_MAX_HEADER_LINE = const(1024)
_MAX_HEADERS = const(64)


def parse_url(url):
    """Split a ws:// or wss:// URL into (secure, host, port, resource); ValueError if bad."""
    if url.startswith("ws://"):
        secure, rest, port = False, url[5:], 80
    elif url.startswith("wss://"):
        secure, rest, port = True, url[6:], 443
    else:
        raise ValueError("URL must start with ws:// or wss://: %r" % url)
    cut = len(rest)
    for sep in "/?":
        i = rest.find(sep)
        if 0 <= i < cut:
            cut = i
    hostport, resource = rest[:cut], rest[cut:]
    if not resource.startswith("/"):
        resource = "/" + resource
    host = hostport
    if ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError("bad port in URL: %r" % url)
        if not 0 < port < 65536:
            raise ValueError("bad port in URL: %r" % url)
    if not host or " " in url:
        raise ValueError("bad host in URL: %r" % url)
    return secure, host, port, resource


def accept_for(key):
    """`Sec-WebSocket-Accept` for a key (RFC 6455 section 4.2.2, item 5.4)."""
    return binascii.b2a_base64(hashlib.sha1(key + _GUID).digest(), newline=False)


def _der(data):
    # a PEM certificate becomes DER (MicroPython's mbedTLS binding loads DER reliably)
    if not data.startswith(b"-----BEGIN"):
        return data
    body = data.split(b"-----")[2]
    return binascii.a2b_base64(body.replace(b"\r", b"").replace(b"\n", b""))


def _ssl_context(ca_cert):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_cert:
        with open(ca_cert, "rb") as f:
            cadata = _der(f.read())
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=cadata)
    else:
        ctx.verify_mode = ssl.CERT_NONE  # encrypted but not authenticated: pin a CA
    return ctx


async def open_ws(ws, url, ca_cert, timeout_ms):
    """Connect `ws` (a new wsclient.WebSocket) to `url` and do the opening handshake."""
    secure, host, port, resource = parse_url(url)
    ssl_ctx = _ssl_context(ca_cert) if secure else None
    try:
        await asyncio.wait_for_ms(_handshake(ws, host, port, secure, resource, ssl_ctx),
                                  timeout_ms)
    except asyncio.TimeoutError:
        await ws._drop(CLOSE_ABNORMAL, "timeout")
        raise WebSocketError("connect/handshake timeout after %d ms" % timeout_ms)
    except ValueError as e:  # mbedTLS reports certificate problems as ValueError
        await ws._drop(CLOSE_ABNORMAL, "TLS failed")
        raise WebSocketError("TLS failed: %s" % str(e).strip())
    except BaseException:
        await ws._drop(CLOSE_ABNORMAL, "handshake failed")
        raise


async def _handshake(ws, host, port, secure, resource, ssl_ctx):
    ws._stream, _ = await asyncio.open_connection(host, port, ssl=ssl_ctx)
    key = binascii.b2a_base64(os.urandom(16), newline=False)  # section 4.1, item 7
    default_port = 443 if secure else 80
    host_field = host if port == default_port else "%s:%d" % (host, port)
    ws._stream.write((
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (resource, host_field, key.decode())).encode())
    await ws._stream.drain()
    status_line = await _read_line(ws)
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise HandshakeError(0, "not an HTTP response")
    try:
        status = int(parts[1])
    except ValueError:
        raise HandshakeError(0, "bad HTTP status line")
    if status != 101:  # section 4.1, client requirement 1
        raise HandshakeError(status, status_line.decode().strip())
    upgrade = connection = accept = None
    extra = None
    for _ in range(_MAX_HEADERS):
        line = await _read_line(ws)
        if line == b"\r\n" or line == b"\n":
            break
        name, colon, value = line.partition(b":")
        if not colon:
            raise HandshakeError(101, "malformed header line")
        name = name.strip().lower()
        value = value.strip()
        if name == b"upgrade":
            upgrade = value.lower()
        elif name == b"connection":
            connection = value.lower()
        elif name == b"sec-websocket-accept":
            accept = value
        elif name in (b"sec-websocket-extensions", b"sec-websocket-protocol"):
            extra = name
    else:
        raise HandshakeError(101, "too many header lines")
    # section 4.1, client requirements 2-6
    if upgrade != b"websocket":
        raise HandshakeError(101, "missing Upgrade: websocket")
    if connection is None or b"upgrade" not in connection:
        raise HandshakeError(101, "missing Connection: Upgrade")
    if accept != accept_for(key):
        raise HandshakeError(101, "Sec-WebSocket-Accept mismatch")
    if extra is not None:
        raise HandshakeError(101, "unrequested %s" % extra.decode())
    ws._last_rx = ticks_ms()


async def _read_line(ws):
    # Byte by byte through the header buffer: never reads past the handshake into the
    # first frame, and a line is bounded (no unbounded readline()).
    line = bytearray()
    one = ws._b.one
    while len(line) < _MAX_HEADER_LINE:
        n = await ws._stream.readinto(one)
        if n is None:
            continue
        if n == 0:
            raise HandshakeError(0, "connection closed during the handshake")
        line.append(one[0])
        if one[0] == 10:
            return bytes(line)
    raise HandshakeError(0, "header line too long")
