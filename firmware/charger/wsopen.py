"""The first half of opening a WebSocket (RFC 6455 section 4.1), for charger/wsclient.py.

Owns the TCP (ws://) or TLS (wss://, optional pinned CA file) connection and the opening
request with a random `Sec-WebSocket-Key`; returns the `Sec-WebSocket-Accept` the server
owes, which charger/wsaccept.py (the second half) checks. `WebSocket.connect()` loads this
module for each connection and drops it before the answer is read (issue 13: the
reconnect's heap peak holds one half of the opening code, not both); it runs the connect +
handshake timeout (a task that cancels the connecting one). Errors are OSError(code, why)
as wsclient's module docstring lists. Runs on MicroPython only.
"""

import asyncio
import binascii
import hashlib
import os


async def open_ws(ws, dest, ca_cert, timeout_ms):
    """Connect `ws.stream` to `dest` = (host, port, resource, secure), parsed from the URL
    by linkcfg.parse_url(), and send the opening request (connect()'s timeout cancels it
    after `timeout_ms`); returns the expected accept value."""
    host, port, path, ssl = dest
    # wss://: ssl becomes the TLS context (a bad CA file is its own error, not a TLS failure)
    ssl = _context(ca_cert) if ssl else None
    try:
        s, _ = await asyncio.open_connection(host, port, ssl=ssl)
        ws.stream = s
        key = binascii.b2a_base64(os.urandom(16), newline=False)  # section 4.1, item 7
        if port != (443 if ssl else 80):
            host = "%s:%d" % (host, port)  # the Host field names a port unless the default
        # The request in pieces, never formatted whole: with the token the path alone is
        # ~250 B, and one ~400 B block for the request failed with MemoryError in a heap
        # fragmented by the faults (tests/firmware/test_delivery_under_faults.py). Each
        # write() goes to the socket at once (asyncio buffers only what it could not send).
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
    except asyncio.CancelledError:
        if not ws.tasks[2].done():  # cancelled by the caller's owner, not the timeout
            raise
        raise OSError(1006, "connect/handshake timeout after %d ms" % timeout_ms)
    except ValueError as e:  # mbedTLS reports certificate problems as ValueError
        raise OSError(1015, "TLS failed: %s" % str(e).strip())
    # the answer the server owes: base64(SHA-1(key + the GUID)), section 4.2.2, item 5.4
    return binascii.b2a_base64(
        hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest(), newline=False
    )


def _context(ca_cert):
    # the TLS context of a wss:// connection; ca_cert: a CA file to pin (PEM or DER)
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
    return ctx
