"""After a boot with an update installed (ota/state, firmware/otaboot.py): confirm or report it.

Loaded by the app at boot only when ota/state exists, unloaded when done. `run(app)` sets
`messages.FW` (`fw` in status) to the running version. A version on trial (booted from the
update, not yet confirmed) waits to come online (the server's `connected`); then it is
confirmed (`ok` in the state) and reported `updated`. One that is not online within
`ota_confirm_s` (config.json, default 120 s) resets the board while idle; otaboot.py rolls it
back after its MAX_TRIES boots, and the previous version reports `rolled_back` here once
online. Results: `{"type":"update_result","version":V,"result":R[,"code":C],"fw":running}`
(docs/protocol.md). The install itself is charger/ota.py.
"""

import asyncio
import sys
from time import ticks_diff, ticks_ms

from charger import messages


def _result(app, version, result, code=None):
    return '{"type":"update_result","version":"%s","result":"%s",%s"fw":"%s"}' % (
        version,
        result,
        '"code":"%s",' % code if code else "",
        messages.FW,
    )


async def _tell(app, text):
    # best effort while the link is up (the `fw` of the next status tells the truth anyway)
    for _ in range(60):
        if await app.link.send_now(text):
            return
        await asyncio.sleep_ms(1000)


async def run(app):
    """The task the app starts (with `app.ota` True while it runs); never raises. Sets
    `app.ota` to None when done and unloads itself."""
    try:
        await _after_boot(app)
    except Exception as e:  # noqa: BLE001 - a failed report must not stop the charger
        print("[ota]", "failed", repr(e))
    app.ota = None
    sys.modules.pop("otaboot", None)  # the loader's functions
    from charger import forget

    forget("charger.otatrial")  # this module: nothing of it runs after this line


def _welcome(app):
    # the app's on_message, seen first here while a trial waits: the server's `connected`
    welcomed = [False]
    handle = app.on_message

    def on_message(msg):
        if msg.get("type") == "connected":
            welcomed[0] = True
        handle(msg)

    app.on_message = on_message  # the instance's, over the class's method, until deleted
    return welcomed


async def _after_boot(app):
    import otaboot  # the loader's state file functions (firmware/otaboot.py)

    words = otaboot.read()
    if words is None:
        return
    messages.FW = words[1]
    trial = words[2] != "ok"
    if not trial and words[5] == "-":
        return
    limit = app.cfg.get("ota_confirm_s", 120)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit <= 3600:
        limit = 120
    start = ticks_ms()
    welcomed = _welcome(app)
    while not welcomed[0]:
        if trial and ticks_diff(ticks_ms(), start) > limit * 1000 and app.sm.state_name == "idle":
            print("[ota]", "not online", "reset")
            import machine

            machine.reset()  # otaboot.py counts the boot; MAX_TRIES of them roll back
        await asyncio.sleep_ms(200)
    del app.on_message
    if trial:
        words[2] = "ok"
        words[5] = "updated"
        otaboot.write(words)
        print("[ota]", "confirmed", words[1])
    if words[5] == "updated":
        await _tell(app, _result(app, words[1], "updated"))
    else:  # rolled_back: words[4] is the version that failed
        await _tell(app, _result(app, words[4], "rolled_back", "NOT_ONLINE"))
    words[5] = "-"
    otaboot.write(words)
