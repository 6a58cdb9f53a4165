"""The second half of opening a WebSocket (RFC 6455 section 4.1), for charger/wsclient.py.

Owns the check of the server's answer: status 101, `Upgrade: websocket`, `Connection:
Upgrade`, the expected `Sec-WebSocket-Accept`, no extension or subprotocol (none was
asked for); header lines read byte by byte (never past the handshake into the first frame)
and bounded (1 KB a line, 64 lines). `WebSocket.connect()` loads it once charger/wsopen.py
(the connection and the request) is dropped, and drops it after the check. Errors are
OSError(code, why) as charger/wsclient.py's module docstring lists. Runs on MicroPython only.
"""

import asyncio


async def check(ws, key, timeout_ms):
    """Read the answer to the opening request from `ws.stream`; `key`: the expected
    Sec-WebSocket-Accept value. Returns when the connection is upgraded, else OSError
    (connect()'s timeout cancels it after `timeout_ms`)."""
    s = ws.stream
    try:
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
    except asyncio.CancelledError:
        if not ws.tasks[2].done():  # cancelled by the caller's owner, not the timeout
            raise
        raise OSError(1006, "connect/handshake timeout after %d ms" % timeout_ms)
    except ValueError as e:  # mbedTLS reports certificate problems as ValueError
        raise OSError(1015, "TLS failed: %s" % str(e).strip())
