"""Over-the-air updates: install the bundle the server offers (docs/protocol.md, "Firmware
updates"; the layout on flash: docs/architecture.md).

Loaded by the app for an `update` order once the charger is idle with nothing unsent, and
unloaded when done (what runs after the next boot is charger/otatrial.py). `run(app, msg)`,
msg the server's `{"type":"update","version":V,"url":"/firmware/V.bin","sha256":H,"size":N}`:
download the bundle from the server (same host, port, TLS and station key as the WebSocket)
into ota/new.bin while hashing it (SHA-256, a 512-byte buffer), refuse it when the hash
differs (`update_result` refused HASH_MISMATCH; the running version stays), unpack it into
the slot beside the running one (ota/a or ota/b), point ota/state at it (tries 0), report
`installing` and reset. A session started meanwhile cancels the switch: the order is taken
again once idle. Other failures: `failed` with DOWNLOAD_FAILED, INVALID_MESSAGE, BAD_BUNDLE.
"""

import asyncio
import binascii
import hashlib
import os
import sys

from charger import messages

_BUF = const(512)
_MAX_SIZE = const(1048576)
_DOWNLOAD_MS = const(120000)


def _result(app, version, result, code=None):
    return '{"type":"update_result","version":"%s","result":"%s",%s"fw":"%s"}' % (
        version, result, '"code":"%s",' % code if code else "", messages.FW)


async def _tell(app, text):
    # best effort while the link is up (the `fw` of the next status tells the truth anyway)
    for _ in range(60):
        if await app.link.send_now(text):
            return
        await asyncio.sleep_ms(1000)


async def run(app, msg):
    """The task the app starts (with `app.ota` True while it runs); never raises. Sets
    `app.ota` to the order to take again once idle, or None, and unloads itself."""
    again = None
    try:
        again = await _install(app, msg)
    except Exception as e:  # noqa: BLE001 - a failed update must not stop the charger
        print("[ota]", "failed", repr(e))
    app.ota = again
    sys.modules.pop("otaboot", None)  # the loader's functions
    from charger import forget
    forget("charger.ota")  # this module: nothing of it runs after this line


def _check(msg):
    version, url, digest, size = (msg.get("version"), msg.get("url"), msg.get("sha256"),
                                  msg.get("size"))
    if not (isinstance(version, str) and 0 < len(version) <= 32 and isinstance(url, str)
            and url[:1] == "/" and " " not in url and isinstance(digest, str)
            and len(digest) == 64 and isinstance(size, int) and not isinstance(size, bool)
            and 0 < size <= _MAX_SIZE):
        return None
    for c in version + digest.lower():
        if not (c.isalpha() or c.isdigit() or c in "._-"):
            return None
    return version, url, digest.lower(), size


async def _install(app, msg):
    got = _check(msg)
    if got is None:
        got = "".join(c for c in str(msg.get("version"))[:32]
                      if c.isalpha() or c.isdigit() or c in "._-")  # JSON-safe
        await _tell(app, _result(app, got or "unknown", "failed", "INVALID_MESSAGE"))
        return
    version, url, digest, size = got
    import otaboot
    words = otaboot.read() or ["usb", "usb", "ok", "usb", "usb", "-"]
    slot = "b" if words[0] == "a" else "a"
    _mkdirs("ota/" + slot + "/charger")
    print("[ota]", "download", version, size)
    try:
        got = await asyncio.wait_for_ms(_download(app, url, size), _DOWNLOAD_MS)
    except Exception as e:  # noqa: BLE001 - timeout, refused, network: the version stays
        print("[ota]", "download", "failed", repr(e))
        _remove("ota/new.bin")
        await _tell(app, _result(app, version, "failed", "DOWNLOAD_FAILED"))
        return
    if got != digest:
        print("[ota]", "hash", "mismatch", got)
        _remove("ota/new.bin")
        await _tell(app, _result(app, version, "refused", "HASH_MISMATCH"))
        return
    try:
        _unpack(slot, version)
    except (OSError, ValueError) as e:
        print("[ota]", "unpack", "failed", repr(e))
        await _tell(app, _result(app, version, "failed", "BAD_BUNDLE"))
        return
    finally:
        _remove("ota/new.bin")
    if app.sm.state_name != "idle" or len(app.outbox):  # a session began meanwhile
        print("[ota]", "busy", "later")
        return msg
    otaboot.write([slot, version, "0", words[0], words[1], "-"])
    print("[ota]", "switch", slot, version)
    await _tell(app, _result(app, version, "installing"))
    await asyncio.sleep_ms(200)  # let the frame leave
    import machine
    machine.reset()


async def _download(app, url, size):
    # An HTTP/1.1 GET on the server's host and port (TLS like the WebSocket: the pinned CA
    # when config.json names one, charger/wsopen.py), the station's query (role, estacionId,
    # token) appended; the body goes to ota/new.bin as it comes.
    host, port, resource, secure = app.link.dial[0]
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
    try:
        s.write(b"GET %s?%s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (
            url, resource.partition("?")[2], host, port))
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
                    raise OSError(0, "closed")
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
            raise OSError(0, "size %d" % length)
        h = hashlib.sha256()
        with open("ota/new.bin", "wb") as f:
            while size:  # (a view sliced only for a short chunk: less garbage)
                n = await s.readinto(mv if size >= _BUF else mv[:size])
                if not n:
                    raise OSError(0, "short")
                one = mv if n == _BUF else mv[:n]
                h.update(one)
                f.write(one)
                size -= n
        return binascii.hexlify(h.digest()).decode()
    finally:
        s.close()
        await s.wait_closed()


def _unpack(slot, version):
    # ota/new.bin (already verified) -> ota/<slot>/charger/*.mpy; the slot is emptied first
    top = "ota/" + slot + "/charger"
    for name in os.listdir(top):
        os.remove(top + "/" + name)
    buf = bytearray(_BUF)
    mv = memoryview(buf)
    with open("ota/new.bin", "rb") as f:
        head = f.read(5)
        if head[:4] != b"EVFW" or f.read(head[4]).decode() != version:
            raise ValueError("header")
        count = int.from_bytes(f.read(2), "big")
        for _ in range(count):
            name = f.read(f.read(1)[0]).decode()
            if not name.startswith("charger/") or "/" in name[8:] or ".." in name:
                raise ValueError(name)
            size = int.from_bytes(f.read(4), "big")
            with open("ota/" + slot + "/" + name, "wb") as out:
                while size:
                    n = f.readinto(mv if size >= _BUF else mv[:size])
                    if not n:
                        raise ValueError("short")
                    out.write(mv if n == _BUF else mv[:n])
                    size -= n


def _mkdirs(path):
    at = ""
    for part in path.split("/"):
        at = at + part
        try:
            os.mkdir(at)
        except OSError:
            pass  # exists
        at += "/"


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
