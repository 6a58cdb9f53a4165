"""Offline authorization on the charger: the signed card list and the offline start.

Loaded on demand by charger/app.py (`App.on_message`) and unloaded right after
(`charger.forget`): it runs when the server pushes a list (`auth_list`, at each connect and on
changes), when a card is tapped while the link is down, and when the server answers an offline
start. Nothing of the list stays in RAM: it lives in `authlist.txt` beside config.json (first
line `V O`: the version, then one UID per line; a list with offline starts off is stored
without cards), and an offline tap reads it line by line.

`run(app, msg)`, by what `msg` is:

- an `auth_list`: checked (shape, at most 64 cards, signature: HMAC-SHA256 keyed by SHA-256
  of the charger's `token` over `station|V|1 or 0|uid,uid,...`) and written as a new file,
  then renamed over the old one (a power cut leaves the old list or the new one, never half
  of one). A bad list is logged and ignored; the stored version is not written again (flash
  wear: the server pushes the same version at every connect).
- None, a tap offline (the state machine's action 4096): a listed card, with offline starts
  on and no other `offline_start` in the outbox, starts under a new local session id L
  (2**31..2**31+2**30-1; charger/outbox.py holds L's entries): an `offline_start` event is
  queued, then the usual start (relay on, the meter's baseline reading). Otherwise the tap
  is refused (error LED).
- the server's answer with `local_id` L: a `start` re-labels L's queued entries with its
  session id (then sent as usual; `end`: the card is disabled now, the charger ends the
  session as for STOP); an `error` drops them and opens the relay if L still charges. Either
  way the charger then reports its status. An answer about another id is ignored.

With the session journal (charger/outbox.py `Journal`, charger/jfile.py) the offline start
survives a power cut: its event and readings are journaled like any other (L as their
session id), the uid and version as a record of kind 32 (`"uid":..,"version":V`, restored
by charger/startup.py at boot), and after the answer the journal is compacted from the
re-labelled (or dropped) outbox. A session cut by a reboot before the answer is reported by
its replayed `offline_start`, then its `stop` with reason `power_loss`/`charger_reset`,
re-labelled by the answer like the rest.

One function on purpose (plus `digest`, the HMAC): every function name, global and short
string constant (10 characters at most) of a module is an interned name that stays in RAM
for good once the module was loaded, and the qstr pool grows in doubling chunks; names the
interpreter has built in (`digest`, `waiting`, `data`) cost nothing.
"""

import asyncio
import os
import random
import time
from binascii import hexlify
from hashlib import sha256
from micropython import const
from time import ticks_ms

from charger.app import _EPOCH

_LOCAL = const(0x80000000)  # local session ids: _LOCAL.._LOCAL+2**30-1
_MAX_CARDS = const(64)
_MASK = const(0x3FFFFFFF)
_START = const(7)  # an offline_start event's kind in the outbox (charger/outbox.py _KINDS)


def digest(key, msg):
    """HMAC-SHA256 (RFC 2104) of bytes `msg` under bytes `key`, 32 bytes. By hand: MicroPython
    has `hashlib.sha256` but no `hmac` module (micropython-lib's would be one more package
    to install on every board, for these lines)."""
    if len(key) > 64:
        key = sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def run(app, msg):
    """See the module docstring. Returns False for a message that is not for it (a `start`
    or `error` about a tap while an offline start awaits its answer)."""
    # the wire words, split at run time from one long literal: a short string constant
    # would be interned for good, and the firmware's names must stay under the qstr pool's
    # next 3.5 KB chunk (docs/architecture.md); dict lookups work the same
    box = app.outbox
    if msg is not None and not isinstance(msg, dict):
        # at boot (charger/startup.py): the journal's record of an unanswered offline start
        # (kind 32: its `"uid":..,"version":V` text), and its local id from the outbox: its
        # event (kind 7), or once the server acked that (its answer lost), the session's
        # held entries (an event or a reading with a local id); `data`: the event's message
        # head (charger/outbox.py), sent again by the status (charger/app.py)
        n = box._n
        for e in range(n[3] + box.readings):
            k = (
                3 * n[6] + 5 * ((n[2] + e) % n[7]) + 2
                if e < n[3]
                else 3 * ((n[0] + e - n[3]) % n[6])
            )
            if box._i[k] >> 30 == 2:
                app.waiting = box._i[k]
        if app.waiting is None:  # nothing of it left to answer: the record goes
            box.state[7].remove(msg)
            box.state[3] = 1 << 30  # past any limit: the next write compacts
            box.write(None)
        else:
            box.data = 'offline_start","local_id":%d,' % app.waiting + bytes(msg[3:-4]).decode()
        return True
    local_id, cards_key, sig_key, comma, kind = "local_id cards sig , auth_list".split(" ")
    sm = app.sm
    from charger.app import CONFIG_PATH  # (at each call: a simulator or a test sets it)

    path = CONFIG_PATH.rpartition("/")[0]
    path = path + "/" if path else path
    now = ticks_ms()
    if msg is None:  # --- a tap while offline ---------------------------------------------
        n = box._n  # (charger/outbox.py's layout: event e's kind at _i[3*cap + 5*e + 1])
        version = None if app.waiting is None else 0  # 0: may not start
        for e in range(n[3]):
            if box._i[3 * n[6] + 5 * ((n[2] + e) % n[7]) + 1] == _START:
                version = 0  # an offline_start still in the outbox: one at a time
        if version is None:
            try:
                with open(path + "authlist.txt") as f:
                    head = f.readline()
                    for line in f:
                        if line.rstrip("\n") == sm.uid:
                            version = int(head)
                            break
            except (OSError, ValueError):
                pass
        ts = int(time.time()) + _EPOCH
        if ts < 1704067200:
            ts = 0
        # a new id per offline start: random, mixed with the clock (a reboot may seed the
        # generator the same way); the server keys the session by (station, id)
        local = _LOCAL + ((random.getrandbits(30) ^ ts) & _MASK)
        if version:
            head = '"uid":"%s","version":%d' % (sm.uid, version)
            box.data = 'offline_start","local_id":%d,' % local + head  # its message's head
            if getattr(box, "state", None) and box.state[0]:
                # the session journal (charger/outbox.py Journal): the uid and version go to
                # flash before the event (record kind 32, kept by compaction, one at a time),
                # so an offline start cut by a reboot is still reported after it
                from charger import forget
                from charger.jfile import record

                data = record(32, head.encode())
                del record
                forget("charger.jfile")
                box.state[7] = [r for r in box.state[7] if r[1] != 32] + [data]
                box.write(data)
        if not version or not box.put_event("offline_start", local, sm.wh, ts):
            sm.note = "offline: card not allowed"
            app._do(512 | sm.server("error", None, now))
            return True
        app.waiting = local
        print("[charger]", "offline", "start", local, sm.uid)
        app._do(sm.server("start", local, now))
        return True
    if msg.get("type") == kind:  # --- the signed list (`auth_list`) --------------------------
        version = msg.get("version")
        offline = msg.get("offline")
        cards = msg.get(cards_key)
        ok = (
            isinstance(version, int)
            and not isinstance(version, bool)
            and version > 0
            and isinstance(offline, bool)
            and isinstance(cards, list)
            and len(cards) <= _MAX_CARDS
            and isinstance(msg.get(sig_key), str)
            and app.cfg.get("token")  # without one the key would be sha256(b""): public
        )
        if ok:
            for uid in cards:
                if (
                    not isinstance(uid, str)
                    or not 0 < len(uid) <= 32
                    or comma in uid
                    or "\n" in uid
                ):
                    ok = False
        if ok:
            text = "%d|%d|%d|%s" % (
                app.cfg["station"],
                version,
                1 if offline else 0,
                comma.join(cards),
            )
            ok = hexlify(
                digest(sha256(app.cfg.get("token", "").encode()).digest(), text.encode())
            ).decode() == msg.get(sig_key)
        if not ok:
            print("[charger]", "offline", "list", "ignored")
            return True
        head = str(version) + "\n"
        try:
            with open(path + "authlist.txt") as f:
                ok = f.readline() == head
        except OSError:
            ok = False
        if not ok:  # (the same version again: nothing written)
            with open(path + "authlist.new", "w") as f:
                f.write(head)
                for uid in cards if offline else ():
                    f.write(uid + "\n")
            os.rename(path + "authlist.new", path + "authlist.txt")
        print("[charger]", "offline", "list", version, len(cards))
        return True
    # --- the server's answer to the offline start awaiting it -----------------------------------
    local = (
        app.waiting
    )  # (charger/startup.py sets it after a reboot from the replayed offline_start)
    if local_id not in msg:
        return False  # about a tap: the app handles it
    if local is None or msg.get(local_id) != local:
        print("[charger]", "ignored", msg.get("type"), msg.get(local_id))
        return True
    sid = msg.get("session_id") if msg.get("type") == "start" else None
    if not (isinstance(sid, int) and not isinstance(sid, bool) and 0 < sid < _LOCAL):
        sid = None
    print("[charger]", "offline", msg.get("type"), local, sid, msg.get("message"))
    app.waiting = None
    # Re-label (sid) or drop (None) the local session's entries, all unsent (held). Knows
    # charger/outbox.py's layout: reading r's session id at _i[3*r], event e at
    # _i[3*cap + 5*e] = put number, kind, session id, wh, ts; `_n` = reading head, readings
    # sent, event head, events waiting, events sent, put count, reading cap, event cap.
    # Dropped readings are the newest (nothing can follow an unanswered offline start's).
    n = box._n
    ints = box._i
    floats = box._f
    keep = n[1]
    for r in range(n[1], box.readings):
        k = 3 * ((n[0] + r) % n[6])
        if ints[k] == local:
            if sid is None:
                continue
            ints[k] = sid
        if keep != r:
            e = 3 * ((n[0] + keep) % n[6])
            for i in range(3):
                ints[e + i] = ints[k + i]
                floats[e + i] = floats[k + i]
        keep += 1
    r = box.readings - keep  # dropped
    box.readings = keep
    n[5] = (n[5] - r) & _MASK
    keep = n[4]
    for e in range(n[4], n[3]):
        k = 3 * n[6] + 5 * ((n[2] + e) % n[7])
        if ints[k + 2] == local and ints[k + 1] != _START:  # (the offline_start stays as is)
            if sid is None:
                continue
            ints[k + 2] = sid
        if r and (ints[k] - n[5]) & _MASK < 0x20000000:
            ints[k] = n[5]  # it came after the dropped readings: after every reading left
        if keep != e:
            i = 3 * n[6] + 5 * ((n[2] + keep) % n[7])
            for j in range(5):
                ints[i + j] = ints[k + j]
        keep += 1
    n[3] = keep
    if getattr(box, "state", None):  # the journal: rewritten from the outbox as it is now,
        # without the offline start's record (answered: nothing to load at the next boot)
        if box.state[6] is not None and box.state[6][0] == local:
            box.state[6] = None if sid is None else [sid, box.state[6][1], box.state[6][2]]
        for e in box.state[7]:  # (kind 32: one at a time)
            if e[1] == 32:
                box.state[7].remove(e)
        if box.state[0]:
            box.state[3] = 1 << 30  # past any limit: the next write compacts
            box.write(None)
    if sm.event_sid == local:
        sm.event_sid = sid
    if app.ended == local:
        app.ended = sid
    if sm.session_id == local:
        if sid is None:
            app._do(1024 | sm.server("stop", local, now))  # relay off; no stop to send
        else:
            sm.session_id = sid
            if msg.get("end") is True:
                app._do(sm.server("end", sid, now))
    app.link.notify()
    for text in app.status_messages():
        asyncio.create_task(app.link.send_now(text))
    return True
