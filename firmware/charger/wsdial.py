"""The first half of opening a WebSocket (RFC 6455 section 4.1), for charger/wsopen.py.

Owns the TLS context (wss://: encrypted, authenticated only with a pinned CA file), the TCP
or TLS connection and the opening request with a random `Sec-WebSocket-Key`; returns the
`Sec-WebSocket-Accept` the server owes. Loaded for each connect and dropped before the
answer is read (charger/wsaccept.py). Runs on MicroPython only.
"""

import asyncio
import binascii
import hashlib
import os


def context(ca_cert):
    """The TLS context of a wss:// connection; `ca_cert`: a CA file to pin (PEM or DER)."""
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


async def dial(ws, dest, ssl):
    """Connect `ws.stream` to `dest` = (host, port, resource, _) (TLS with the context
    `ssl`, else None) and send the opening request; returns the expected accept value."""
    host, port, path, _ = dest
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
    return binascii.b2a_base64(
        hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest(), newline=False
    )
