"""Over-the-air updates: install the bundle the server offers (docs/protocol.md, "Firmware
updates"; the layout on flash: docs/architecture.md).

Loaded by the app for an `update` order once the charger is idle with nothing unsent, and
unloaded when done (what runs after the next boot is charger/otatrial.py). `run(app, msg)`,
msg the server's `{"type":"update","version":V,"url":"/firmware/V.bin","sha256":H,"size":N}`:
download the bundle from the server into ota/new.bin while hashing it (charger/otaget.py),
refuse it when the hash differs (`update_result` refused HASH_MISMATCH; the running version
stays), unpack it into the slot beside the running one, ota/a or ota/b (charger/otaput.py),
point ota/state at it (tries 0), report `installing` and reset. A session started meanwhile
cancels the switch: the order is taken again once idle. Other failures: `failed` with
DOWNLOAD_FAILED, INVALID_MESSAGE, BAD_BUNDLE.

Within the firmware's heap (docs/architecture.md, "Firmware memory rules"): each phase is a
module of its own, loaded for it and unloaded after, so only one is in RAM at a time; the
outbox, empty when the install starts, lends the RAM of its rings: they shrink to `_READINGS`
readings and `_EVENTS` events for the install (charger/otaput.py `ring()`) (a session started meanwhile queues into them)
and come back to their size, entries kept in order, when it ends. Few names: each is interned
for good.
"""

import asyncio
import os

from charger import forget, messages

_MAX_SIZE = const(1048576)
_DOWNLOAD_MS = const(120000)
_READINGS = const(20)  # the outbox's rings during the install (1 min of readings at 3 s)
_EVENTS = const(4)


def _result(version, result, code=None):
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
    box = app.outbox
    size = (box._n[6], box._n[7])
    try:
        if not len(box):
            from charger import otaput
            otaput.ring(box, _READINGS, _EVENTS)
            otaput = None
            forget("charger.otaput")
        again = await _install(app, msg)
    except Exception as e:  # noqa: BLE001 - a failed update must not stop the charger
        print("[ota]", "failed", repr(e))
    forget("charger.otaget")  # a phase that failed
    try:
        from charger import otaput
        otaput.ring(box, size[0], size[1])
    except Exception as e:  # noqa: BLE001 - MemoryError: the small rings stay, the charger runs
        print("[ota]", "failed", repr(e))
    otaput = None
    forget("charger.otaput")
    app.ota = again
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
        await _tell(app, _result(got or "unknown", "failed", "INVALID_MESSAGE"))
        return
    version, url, digest, size = got
    try:  # ota/state (firmware/otaboot.py: not imported, it is source compiled on import)
        with open("ota/state") as f:
            words = f.read().split()
    except OSError:
        words = []
    if len(words) != 6:
        words = ["usb", "usb", "ok", "usb", "usb", "-"]
    slot = "b" if words[0] == "a" else "a"
    print("[ota]", "download", version, size)
    try:
        from charger import otaget
        got = await asyncio.wait_for_ms(otaget.get(app, url, size), _DOWNLOAD_MS)
    except Exception as e:  # noqa: BLE001 - timeout, refused, network: the version stays
        print("[ota]", "download", "failed", repr(e))
        got = None
    otaget = None
    forget("charger.otaget")
    if got != digest:
        _remove("ota/new.bin")
        if got is None:
            await _tell(app, _result(version, "failed", "DOWNLOAD_FAILED"))
            return
        print("[ota]", "hash", "mismatch", got)
        await _tell(app, _result(version, "refused", "HASH_MISMATCH"))
        return
    try:  # unpacked, and the switch unless a session began meanwhile
        from charger import otaput
        got = otaput.put(app, slot, version, words)
    except (OSError, ValueError) as e:
        print("[ota]", "unpack", "failed", repr(e))
        await _tell(app, _result(version, "failed", "BAD_BUNDLE"))
        return
    finally:
        otaput = None
        forget("charger.otaput")
        _remove("ota/new.bin")
    if not got:
        print("[ota]", "busy", "later")
        return msg
    print("[ota]", "switch", slot, version)
    await _tell(app, _result(version, "installing"))
    await asyncio.sleep_ms(200)  # let the frame leave
    import machine
    machine.reset()


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
