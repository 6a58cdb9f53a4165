"""The download phase of an over-the-air update (charger/ota.py loads it for the download and
unloads it after): `get(app, args)` (args: charger/otaput.py `read()`'s tuple) fetches the
bundle into ota/new.bin and returns its SHA-256 (hex). An HTTP/1.1 GET on the server's host
and port (TLS like the WebSocket: the pinned CA when config.json names one,
charger/wsopen.py), the station's query (role, estacionId, token) appended; the body goes to
ota/new.bin as it comes, hashed on the way, in one 512-byte buffer. Raises OSError when the
server refuses, the size differs or the connection ends early. Its strings are longer than
10 characters or already interned (charger/ota.py: a new interned name stays for good).
"""

import asyncio
import binascii
import hashlib
import os

_BUF = const(512)


async def get(app, args):
    url = args[1]
    size = args[3]
    try:
        os.mkdir("ota")
    except OSError:
        pass  # exists
    host, port, resource, secure = app.link.dial[0][0]  # the server connected now (link.py)
    ctx = None
    if secure:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_NONE
        ca = app.link.dial[1]
        if ca:
            with open(ca, "rb") as f:
                ca = f.read()
            if ca.startswith(b"-----"):  # PEM -> DER
                ca = binascii.a2b_base64(ca.split(b"-----")[2])
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=ca)
    s, _ = await asyncio.open_connection(host, port, ssl=ctx)
    ctx = None
    try:
        s.write(
            b"GET %s?%s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
            % (url, resource.partition("?")[2], host, port)
        )
        await s.drain()
        buf = bytearray(_BUF)
        mv = memoryview(buf)
        one = bytearray(1)
        length = -1
        first = True
        while True:  # the status line and the headers, byte by byte (no read past them), bounded
            n = 0
            while n < _BUF:
                if not await s.readinto(one):
                    raise OSError(0, "closed in headers")
                buf[n] = one[0]
                n += 1
                if one[0] == 10:
                    break
            line = bytes(mv[:n]).strip()
            if first:
                first = False
                if line.split()[1:2] != [b"200"]:
                    raise OSError(0, line[:40])
            elif not line:
                break
            elif line.lower().startswith(b"content-length:"):
                length = int(line[15:])
        if length != size:
            raise OSError(0, "bundle size %d" % length)
        h = hashlib.sha256()
        with open("ota/new.bin", "wb") as f:
            while size:  # (a view sliced only for a short chunk: less garbage)
                n = await s.readinto(mv if size >= _BUF else mv[:size])
                if not n:
                    raise OSError(0, "closed in body")
                one = mv if n == _BUF else mv[:n]
                h.update(one)
                f.write(one)
                size -= n
        return binascii.hexlify(h.digest()).decode()
    finally:
        s.close()
        await s.wait_closed()
