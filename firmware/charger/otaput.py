"""The steps of an over-the-air update around its download (charger/ota.py loads this module
for each step and unloads it after; never together with charger/otaget.py):

- `check(msg)`: the `update` order's fields, and the slot to install into (the one beside the
  running version, from ota/state: firmware/otaboot.py's format, read here because importing
  otaboot.py would compile its source);
- `ring(box, readings, events)`: the outbox's rings made that long, entries kept in order;
- `put(app, slot, version, words)`: the bundle ota/new.bin (tools/firmware_bundle.py: "EVFW",
  the version, then each file's name, size and bytes) into ota/<slot>/charger/*.mpy, the slot
  emptied first, through one 512-byte buffer; then, unless a session began meanwhile, the
  switch: ota/state points at the slot (tries 0). Raises ValueError for a bundle that is not
  this version's or names a file outside charger/, OSError when the filesystem refuses.
"""

import os

_BUF = const(512)
_MAX_SIZE = const(1048576)


def check(msg):
    """(version, url, sha256, size, slot, the state's six words), or for a bad order its
    version made JSON-safe (a str, maybe empty)."""
    version, url, digest, size = (msg.get("version"), msg.get("url"), msg.get("sha256"),
                                  msg.get("size"))
    if not (isinstance(version, str) and 0 < len(version) <= 32 and isinstance(url, str)
            and url[:1] == "/" and " " not in url and isinstance(digest, str)
            and len(digest) == 64 and isinstance(size, int) and not isinstance(size, bool)
            and 0 < size <= _MAX_SIZE) or not all(
                c.isalpha() or c.isdigit() or c in "._-" for c in version + digest.lower()):
        return "".join(c for c in str(version)[:32] if c.isalpha() or c.isdigit() or c in "._-")
    try:
        with open("ota/state") as f:
            words = f.read().split()
    except OSError:
        words = []
    if len(words) != 6:
        words = ["usb", "usb", "ok", "usb", "usb", "-"]
    return version, url, digest.lower(), size, "b" if words[0] == "a" else "a", words


def put(app, slot, version, words):
    """Unpack into the slot; then, unless a session began meanwhile (False), point ota/state
    at it (`words`: the state's six words now) and return True."""
    top = "ota/" + slot + "/charger"
    at = ""
    for part in top.split("/"):
        at = at + part
        try:
            os.mkdir(at)
        except OSError:
            pass  # exists
        at += "/"
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
    if app.sm.state_name != "idle" or len(app.outbox):  # a session began meanwhile
        return False
    # as firmware/otaboot.py writes it: a new file renamed over the old
    with open("ota/state.new", "w") as f:
        f.write(" ".join([slot, version, "0", words[0], words[1], "-"]))
    try:
        os.rename("ota/state.new", "ota/state")
    except OSError:  # a filesystem whose rename does not replace
        os.remove("ota/state")
        os.rename("ota/state.new", "ota/state")
    return True


def ring(box, readings, events):
    # The outbox's two rings (charger/outbox.py: reading r at 3*r in both arrays, event e at
    # 3*cap + 5*e of the uint32 one) made `readings` and `events` long, the entries waiting
    # kept in order from slot 0 (sent-but-unconfirmed counts stay valid: they count from the
    # heads). Only to sizes that hold what waits.
    import array
    n = box._n
    if not len(box):  # nothing to keep: the old rings go first
        box._f = box._i = None
    f = array.array("f", bytes(12 * readings))
    i = array.array("I", bytes(12 * readings + 20 * events))
    for r in range(box.readings * 3):
        k = (n[0] * 3 + r) % (n[6] * 3)
        f[r] = box._f[k]
        i[r] = box._i[k]
    for r in range(n[3] * 5):
        i[3 * readings + r] = box._i[3 * n[6] + (n[2] * 5 + r) % (n[7] * 5)]
    box._f = box._i = None
    box._f = f
    box._i = i
    n[0] = n[2] = 0
    n[6] = readings
    n[7] = events
