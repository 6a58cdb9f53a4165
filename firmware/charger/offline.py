"""Offline authorization on the charger: the signed card list and the offline start.

Loaded on demand by charger/app.py and unloaded right after (`charger.forget`): it runs when
the server pushes a list (`auth_list`, at each connect and on changes), when a card is tapped
while the link is down, and when the server answers an offline start. Nothing of the list
stays in RAM: it lives in `authlist.txt` beside config.json (first line `V O`: version and
offline 1/0, then one UID per line), and an offline tap reads it line by line.

- `store(app, msg)`: checks the `auth_list` (shape, at most 64 cards, signature:
  HMAC-SHA256 keyed by SHA-256 of the charger's `token` over `station|V|1 or 0|uid,uid,...`,
  charger/hmac256.py) and writes it (a new file, then renamed over the old one: a power cut
  leaves the old list or the new one, never half of one). A bad list is logged and ignored;
  the same version as the stored one is not written again (flash wear).
- `tap(app)`: the state machine asked (action 4096): a listed card with offline starts on
  and no other `offline_start` in the outbox starts under a new local session id L
  (2**31..2**31+2**30-1, charger/outbox.py): an `offline_start` event is queued, then the
  usual start (relay on, the meter's baseline reading). Otherwise the tap is refused (error
  LED).
- `answered(app, msg)`: the server's `start` with `local_id` L re-labels L's queued entries
  with the session id (they are then sent as usual; `end`: the card is disabled now, the
  charger ends the session as for STOP); an `error` with `local_id` L drops them, opens the
  relay if L is still charging, and logs it. Either way the charger then reports its status.
"""

import asyncio
import os
import random
import time
from binascii import hexlify
from hashlib import sha256
from time import ticks_ms

from micropython import const

from charger import app as _app
from charger import forget

_LOCAL = const(0x80000000)  # local session ids: _LOCAL.._LOCAL+2**30-1 (charger/outbox.py)
_MAX_CARDS = const(64)
_FILE = "authlist.txt"


def run(app, msg):
    """The app's one entry (charger/app.py `_offline`): a tap (msg None), an `auth_list`, or
    an answer carrying `local_id`."""
    if msg is None:
        tap(app)
    elif msg.get("type") == "auth_list":
        store(app, msg)
    elif app.local is not None and msg.get("local_id") == app.local:
        print("[charger]", "server", msg.get("type"), msg)
        answered(app, msg)
    else:
        print("[charger]", "ignored", "answer", msg.get("local_id"))


def _path(name):
    folder = _app.CONFIG_PATH.rpartition("/")[0]
    return folder + "/" + name if folder else name


def _stored():
    # (version, offline) of the stored list, or None
    try:
        with open(_path(_FILE)) as f:
            head = f.readline().split()
        return int(head[0]), head[1] == "1"
    except (OSError, ValueError, IndexError):
        return None


def store(app, msg):
    """Check and keep an `auth_list`; True when it is (now) the stored list."""
    version = msg.get("version")
    offline = msg.get("offline")
    cards = msg.get("cards")
    sig = msg.get("sig")
    ok = (isinstance(version, int) and not isinstance(version, bool) and version > 0
          and isinstance(offline, bool) and isinstance(cards, list) and len(cards) <= _MAX_CARDS
          and isinstance(sig, str))
    if ok:
        for uid in cards:
            if not isinstance(uid, str) or not 0 < len(uid) <= 32 or "," in uid or "\n" in uid:
                ok = False
    if ok:
        from charger.hmac256 import hmac_sha256
        text = "%d|%d|%d|%s" % (app.cfg["station"], version, 1 if offline else 0,
                               ",".join(cards))
        key = sha256(app.cfg.get("token", "").encode()).digest()
        ok = hexlify(hmac_sha256(key, text.encode())).decode() == sig
        del hmac_sha256
        forget("charger.hmac256")
    if not ok:
        print("[charger]", "auth_list", "refused", "bad signature or shape")
        return False
    if _stored() == (version, offline):
        return True
    tmp = _path(_FILE + ".new")
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (version, 1 if offline else 0))
        for uid in cards:
            f.write(uid + "\n")
    os.rename(tmp, _path(_FILE))
    print("[charger]", "auth_list", "stored", version, len(cards))
    return True


def allows(uid):
    """The version of the stored list when it lets `uid` start offline, else None."""
    try:
        with open(_path(_FILE)) as f:
            head = f.readline().split()
            if len(head) != 2 or head[1] != "1":
                return None
            for line in f:
                if line.rstrip("\n") == uid:
                    return int(head[0])
    except (OSError, ValueError):
        pass
    return None


def _reported(outbox):
    # an offline_start (event kind 5) still in the outbox: sent or not, not yet confirmed
    n = outbox._n
    for e in range(n[3]):
        if outbox._i[3 * n[6] + 5 * ((n[2] + e) % n[7]) + 1] == 5:
            return True
    return False


def tap(app):
    """Action 4096: start the tapped card offline when the stored list allows it (one offline
    start in the outbox at a time: its `local` text is the outbox's only one)."""
    sm = app.sm
    outbox = app.outbox
    version = None if app.local is not None or _reported(outbox) else allows(sm.uid)
    now = ticks_ms()
    ts = int(time.time()) + _app._EPOCH
    if ts < 1704067200:
        ts = 0
    # a new id per offline start: random, mixed with the clock (a reboot may reseed the
    # generator the same way); the server keys the session by (station, id)
    local = _LOCAL + ((random.getrandbits(30) ^ ts) & 0x3FFFFFFF)
    if version is None or not outbox.put_event("offline_start", local, sm.wh, ts):
        sm.note = "offline: card not allowed"
        app._do(512 | sm.server("error", None, now))
        return
    outbox.local = '"uid":"%s","version":%d' % (sm.uid, version)
    app.local = local
    print("[charger]", "offline", "start", local, sm.uid)
    app._do(sm.server("start", local, now))


def relabel(outbox, old, new):
    """Give `old`'s unsent entries (a local session's: never sent, held) the session id `new`,
    or drop them when `new` is None. Knows charger/outbox.py's layout: reading r's session id
    at _i[3*r], event e at _i[3*cap + 5*e] = put number, kind, session id, wh, ts; the ring
    state `_n` = read head, readings sent, event head, events waiting, events sent, put count,
    reading capacity, event capacity. The `offline_start` itself (kind 5) is left alone."""
    n = outbox._n
    ints = outbox._i
    floats = outbox._f
    cap = n[6]
    keep = n[1]  # readings before the first held one stay where they are
    for r in range(n[1], outbox.readings):
        k = 3 * ((n[0] + r) % cap)
        if ints[k] == old:
            if new is None:
                continue
            ints[k] = new
        if keep != r:
            j = 3 * ((n[0] + keep) % cap)
            for i in range(3):
                ints[j + i] = ints[k + i]
                floats[j + i] = floats[k + i]
        keep += 1
    gone = outbox.readings - keep
    outbox.readings = keep
    n[5] = (n[5] - gone) & 0x3FFFFFFF  # the dropped readings were the newest
    base = 3 * cap
    ecap = n[7]
    keep = n[4]
    for e in range(n[4], n[3]):
        k = base + 5 * ((n[2] + e) % ecap)
        if ints[k + 2] == old and ints[k + 1] != 5:
            if new is None:
                continue
            ints[k + 2] = new
        if gone and (ints[k] - n[5]) & 0x3FFFFFFF < 0x20000000:
            ints[k] = n[5]  # after every reading left: it stays after them
        if keep != e:
            j = base + 5 * ((n[2] + keep) % ecap)
            for i in range(5):
                ints[j + i] = ints[k + i]
        keep += 1
    n[3] = keep


def answered(app, msg):
    """The server's answer to the offline start awaiting it (`local_id` = app.local)."""
    local = app.local
    sm = app.sm
    sid = msg.get("session_id") if msg.get("type") == "start" else None
    if not (isinstance(sid, int) and not isinstance(sid, bool) and 0 < sid < _LOCAL):
        sid = None
    app.local = None
    relabel(app.outbox, local, sid)
    now = ticks_ms()
    if sid is None:
        print("[charger]", "offline", "refused", local, msg.get("message"))
        if sm.event_sid == local:
            sm.event_sid = None
        if app.ended == local:
            app.ended = None
        if sm.session_id == local:
            app._do(1024 | sm.server("stop", local, now))  # relay off, no stop to send
    else:
        print("[charger]", "offline", "accepted", local, sid)
        if sm.event_sid == local:
            sm.event_sid = sid
        if app.ended == local:
            app.ended = sid
        if sm.session_id == local:
            sm.session_id = sid
            if msg.get("end") is True:
                app._do(sm.server("end", sid, now))
    app.link.notify()
    for text in app.status_messages():
        asyncio.create_task(app.link.send_now(text))
