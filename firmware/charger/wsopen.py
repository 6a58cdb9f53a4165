"""Opening a WebSocket client connection (RFC 6455 section 4.1), for charger/wsclient.py.

Owns the opening's order and its connect + handshake timeout. The work is done by two
modules loaded in turn, each dropped before the next one loads (issue 13: the reconnect's
heap peak holds one of them, not both): charger/wsdial.py (the TCP (ws://) or TLS (wss://,
optional pinned CA file) connection and the request with a random `Sec-WebSocket-Key`) and
charger/wsaccept.py (the server's answer: status 101 and the checked
`Sec-WebSocket-Accept`, header lines read byte by byte and bounded). `WebSocket.connect()`
loads this module for each connection and drops it once the connection is open (its code is
not needed while connected; only its interned names stay, so it uses few of them). Errors
are OSError(code, why) as wsclient's module docstring lists. Runs on MicroPython only.
"""

import asyncio

from charger import forget


async def open_ws(ws, dest, ca_cert, timeout_ms):
    """Connect `ws.stream` to `dest` = (host, port, resource, secure), parsed from the URL
    by linkcfg.parse_url(), and do the opening handshake within `timeout_ms`."""
    from charger import wsdial

    late = None
    try:
        # wss://: the TLS context first, outside the timeout (a bad CA file is its own error)
        ctx = wsdial.context(ca_cert) if dest[3] else None
        # The timeout: a task that cancels this one when it ends first (not wait_for_ms():
        # its runner task and frames, ~0.5 KB, were part of the firmware's heap peak)
        late = asyncio.create_task(_late(asyncio.current_task(), timeout_ms))
        key = await wsdial.dial(ws, dest, ctx)  # the Sec-WebSocket-Accept the server owes
        wsdial = forget("charger.wsdial")  # (None: this frame holds it no more)
        from charger import wsaccept

        await wsaccept.check(ws.stream, key)
    except asyncio.CancelledError:
        if late is None or not late.done():  # cancelled by the caller's owner
            raise
        raise OSError(1006, "connect/handshake timeout after %d ms" % timeout_ms)
    except ValueError as e:
        if late is None:
            raise
        raise OSError(1015, "TLS failed: %s" % str(e).strip())  # how mbedTLS reports them
    finally:
        if late is not None:
            late.cancel()  # (nothing once it ended)
        forget("charger.wsdial")
        forget("charger.wsaccept")


async def _late(task, timeout_ms):
    await asyncio.sleep_ms(timeout_ms)
    task.cancel()
