"""Over-the-air updates: install the bundle the server offers (docs/protocol.md, "Firmware
updates"; the layout on flash: docs/architecture.md).

Loaded by the app for an `update` order once the charger is idle with nothing unsent, and
unloaded when done (what runs after the next boot is charger/otatrial.py). `run(app, msg)`,
msg the server's `{"type":"update","version":V,"url":"/firmware/V.bin","sha256":H,"size":N}`:
check the order, download the bundle from the server into ota/new.bin while hashing it,
refuse it when the hash differs (`update_result` refused HASH_MISMATCH; the running version
stays), unpack it into the slot beside the running one (ota/a or ota/b), point ota/state at
it (tries 0), report `installing` and reset. A session started meanwhile cancels the switch:
the order is taken again once idle. Other failures: `failed` with DOWNLOAD_FAILED,
INVALID_MESSAGE, BAD_BUNDLE.

Within the firmware's heap (docs/architecture.md, "Firmware memory rules"), this module only
sequences the install and reports; its steps live in two modules loaded in turn, never
together, each unloaded after its step: charger/otaget.py the download and its hash,
charger/otaput.py everything else (the order's check, the unpack, the switch, the outbox's
rings). The outbox, empty when the install starts, lends the RAM of its rings: they shrink
to `_READINGS` readings and `_EVENTS` events for the install (a session started meanwhile
queues into them) and come back to their size, entries kept in order, when it ends. Few
names: each is interned for good (its functions and arguments take names the firmware has
interned already: `notify`, otaput's `build` and `check`).
"""

import asyncio

from charger import forget, messages

_DOWNLOAD_MS = const(120000)
_READINGS = const(20)  # the outbox's rings during the install (1 min of readings at 3 s)
_EVENTS = const(4)


async def notify(app, version, text):
    # `update_result`, best effort while the link is up (the `fw` of the next status tells the
    # truth anyway); text: the result and its code in one string ("failed BAD_BUNDLE"; the
    # code may be empty: "installing ")
    text, _, code = text.partition(" ")
    text = '{"type":"update_result","version":"%s","result":"%s",%s"fw":"%s"}' % (
        version,
        text,
        '"code":"%s",' % code if code else "",
        messages.FW,
    )
    for _ in range(60):
        if await app.link.send_now(text):
            return
        await asyncio.sleep_ms(1000)


async def run(app, msg):
    """The task the app starts (with `app.ota` True while it runs); never raises. Sets
    `app.ota` to the order to take again once idle, or None, and unloads itself."""
    again = None
    outbox = app.outbox
    got = (outbox._n[6], outbox._n[7])  # the rings' capacities (charger/outbox.py _RCAP, _ECAP)
    try:
        again = await install(app, msg)
    except Exception as e:  # noqa: BLE001 - a failed update must not stop the charger
        print("[ota] install failed", repr(e))
    forget("charger.otaget")  # a step that failed
    from charger import otaput

    ring = otaput.build  # kept while its module and this one are unloaded: less RAM at once
    otaput = None
    forget("charger.otaput")
    app.ota = again
    forget("charger.ota")  # this module: only this function's last lines run after this
    try:
        ring(outbox, got[0], got[1])
    except Exception as e:  # noqa: BLE001 - MemoryError: the small rings stay, the charger runs
        print("[ota] install failed", repr(e))


async def install(app, msg):
    """The install (see the module docstring); returns the order when a session began
    meanwhile, else None (or resets the board). Log lines and results are whole strings:
    longer than 10 characters, they are not interned (the module's RAM goes back when it is
    unloaded; an interned name stays for good)."""
    from charger import otaput

    got = otaput.read(msg)  # (version, url, sha256, size, slot, state words) or the version
    if not isinstance(got, str):
        otaput.build(app.outbox, _READINGS, _EVENTS)
    otaput = None
    forget("charger.otaput")
    if isinstance(got, str):
        await notify(app, got or "unknown", "failed INVALID_MESSAGE")
        return
    job = got  # (a local's name is not interned: only arguments', globals' and attributes')
    got = None
    print("[ota] download", job[0], job[3])
    try:
        from charger import otaget

        got = await asyncio.wait_for_ms(otaget.get(app, job), _DOWNLOAD_MS)
    except Exception as e:  # noqa: BLE001 - timeout, refused, network: the version stays
        print("[ota] download failed", repr(e))
    otaget = None
    forget("charger.otaget")
    if got == job[2]:
        got = "failed BAD_BUNDLE"
        try:  # unpacked, and the switch unless a session began meanwhile
            from charger import otaput

            got = otaput.put(app, job)
        except (OSError, ValueError) as e:
            print("[ota] unpack failed", repr(e))
        otaput = None
        forget("charger.otaput")
    elif got is not None:
        print("[ota] hash mismatch", got)
        got = "refused HASH_MISMATCH"
    try:
        import os

        os.remove("ota/new.bin")
    except OSError:
        pass
    if got is False:
        print("[ota] busy later")
        return msg
    if got is not True:
        await notify(app, job[0], got or "failed DOWNLOAD_FAILED")
        return
    print("[ota] switch", job[4], job[0])
    await notify(app, job[0], "installing ")
    await asyncio.sleep_ms(200)  # let the frame leave
    import machine

    machine.reset()
