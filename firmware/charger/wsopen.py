"""Opening a WebSocket client connection (RFC 6455 section 4.1), for charger/wsclient.py.

Owns the URL, the TCP (ws://) or TLS (wss://, optional pinned CA file) connection and the
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


def parse_url(url):
    """Split a ws:// or wss:// URL into (secure, host, port, resource); ValueError if bad."""
    secure = url.startswith("wss://")
    if not secure and not url.startswith("ws://"):
        raise ValueError("URL must start with ws:// or wss://: %r" % url)
    rest = url[6 if secure else 5:]
    cut = len(rest)
    for sep in "/?":
        i = rest.find(sep)
        if 0 <= i < cut:
            cut = i
    host, resource = rest[:cut], rest[cut:]
    if not resource.startswith("/"):
        resource = "/" + resource
    port = 443 if secure else 80
    if ":" in host:
        host, _, port = host.rpartition(":")
        try:
            port = int(port)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise ValueError("bad port in URL: %r" % url)
    if not host or " " in url:
        raise ValueError("bad host in URL: %r" % url)
    return secure, host, port, resource


def accept_for(key):
    """`Sec-WebSocket-Accept` for a key (RFC 6455 section 4.2.2, item 5.4)."""
    return binascii.b2a_base64(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                               .digest(), newline=False)


async def open_ws(ws, url, ca_cert, timeout_ms):
    """Connect `ws.stream` to `url` and do the opening handshake within `timeout_ms`."""
    secure, host, port, resource = parse_url(url)
    ctx = None
    if secure:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_NONE  # encrypted but not authenticated: pin a CA
        if ca_cert:
            with open(ca_cert, "rb") as f:
                ca = f.read()
            if ca.startswith(b"-----BEGIN"):  # PEM -> DER (mbedTLS loads DER reliably)
                ca = binascii.a2b_base64(ca.split(b"-----")[2].replace(b"\r", b"")
                                         .replace(b"\n", b""))
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=ca)
    try:
        await asyncio.wait_for_ms(_handshake(ws, host, port, resource, ctx), timeout_ms)
    except asyncio.TimeoutError:
        raise OSError(1006, "connect/handshake timeout after %d ms" % timeout_ms)
    except ValueError as e:  # mbedTLS reports certificate problems as ValueError
        raise OSError(1015, "TLS failed: %s" % str(e).strip())


async def _handshake(ws, host, port, resource, ctx):
    s, _ = await asyncio.open_connection(host, port, ssl=ctx)
    ws.stream = s
    key = binascii.b2a_base64(os.urandom(16), newline=False)  # section 4.1, item 7
    if port != (443 if ctx else 80):
        host = "%s:%d" % (host, port)  # the Host field names a port unless the default one
    s.write((
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (resource, host, key.decode())).encode())
    await s.drain()
    one = bytearray(1)
    upgrade = connection = accept = extra = None
    for i in range(65):  # the status line, then at most 64 header lines
        # a line, byte by byte: never reads past the handshake into the first frame, and
        # bounded (no unbounded readline())
        line = bytearray()
        while not line or line[-1] != 10:
            if len(line) >= 1024:
                raise OSError(0, "header line too long")
            n = await s.readinto(one)
            if n == 0:
                raise OSError(0, "connection closed during the handshake")
            if n:
                line.append(one[0])
        line = bytes(line)
        if i == 0:  # section 4.1, client requirement 1: status 101
            parts = line.split(None, 2)
            n = 0
            if len(parts) > 1 and parts[0].startswith(b"HTTP/"):
                try:
                    n = int(parts[1])
                except ValueError:
                    pass
            if n != 101:
                raise OSError(n, line.decode().strip() if n else "not an HTTP response")
            continue
        if line == b"\r\n" or line == b"\n":
            break
        name, colon, value = line.partition(b":")
        if not colon:
            raise OSError(101, "malformed header line")
        name = name.strip().lower()
        value = value.strip()
        if name == b"upgrade":
            upgrade = value.lower()
        elif name == b"connection":
            connection = value.lower()
        elif name == b"sec-websocket-accept":
            accept = value
        elif name == b"sec-websocket-extensions" or name == b"sec-websocket-protocol":
            extra = name
    else:
        raise OSError(101, "too many header lines")
    # section 4.1, client requirements 2-6
    if upgrade != b"websocket":
        raise OSError(101, "missing Upgrade: websocket")
    if connection is None or b"upgrade" not in connection:
        raise OSError(101, "missing Connection: Upgrade")
    if accept != accept_for(key):
        raise OSError(101, "Sec-WebSocket-Accept mismatch")
    if extra is not None:
        raise OSError(101, "unrequested " + extra.decode())
