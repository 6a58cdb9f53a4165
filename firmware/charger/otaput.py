"""The steps of an over-the-air update around its download (charger/ota.py loads this module
for each step and unloads it after; never together with charger/otaget.py):

- `read(msg)`: the `update` order's fields, and the slot to install into (the one beside the
  running version, from ota/state: firmware/otaboot.py's format, read here because importing
  otaboot.py would compile its source);
- `build(outbox, readings, events)`: the outbox's rings built that long, entries kept in order;
- `put(app, args)` (args: `read()`'s tuple): the bundle ota/new.bin (tools/firmware_bundle.py:
  "EVFW", the version, then each file's name, size and bytes) into ota/<slot>/charger/*.mpy,
  the slot emptied first, through one 512-byte buffer; then, unless a session began
  meanwhile, the switch: ota/state points at the slot (tries 0). Raises ValueError for a
  bundle that is not this version's or names a file outside charger/, OSError when the
  filesystem refuses.

Its strings are longer than 10 characters, bytes or already interned (charger/ota.py: a new
interned name stays for good).
"""

import os

_BUF = const(512)
_MAX_SIZE = const(1048576)


def read(msg):
    """(version, url, sha256, size, slot, the state's six words), or for a bad order its
    version made JSON-safe (a str, maybe empty)."""
    version, url, digest, size = (
        msg.get("version"),
        msg.get("url"),
        msg.get("sha256"),
        msg.get("size"),
    )
    if not (
        isinstance(version, str)
        and 0 < len(version) <= 32
        and isinstance(url, str)
        and url[:1] == "/"
        and " " not in url
        and isinstance(digest, str)
        and len(digest) == 64
        and isinstance(size, int)
        and not isinstance(size, bool)
        and 0 < size <= _MAX_SIZE
    ) or not all(check(c) for c in (version + digest).encode()):
        # (bytes: a str's characters one by one would each be interned)
        return bytes(c for c in str(version).encode()[:32] if check(c)).decode()
    try:
        with open("ota/state") as f:
            words = f.read().split()
    except OSError:
        words = []
    if len(words) != 6:
        words = "usb usb ok usb usb -".split()  # (one string: "ok" alone would be a name)
    return version, url, digest.lower(), size, "b" if words[0] == "a" else "a", words


def check(at):
    # a byte of a version or a digest: a letter, a digit, ".", "_" or "-"
    return 48 <= at <= 57 or 65 <= at <= 90 or 97 <= at <= 122 or at in b"._-"


def put(app, args):
    """Unpack into the slot; then, unless a session began meanwhile (False), point ota/state
    at it and return True."""
    version = args[0]
    top = "ota/%s/charger" % args[4]
    for at in ("ota", top[:5], top):
        try:
            os.mkdir(at)
        except OSError:
            pass  # exists
    for at in os.listdir(top):
        os.remove(top + "/" + at)
    buf = bytearray(_BUF)
    mv = memoryview(buf)
    with open("ota/new.bin", "rb") as f:
        head = f.read(5)
        if head[:4] != b"EVFW" or f.read(head[4]).decode() != version:
            raise ValueError("bundle header")
        count = int.from_bytes(f.read(2), "big")
        for _ in range(count):
            at = f.read(f.read(1)[0])
            if at[:8] != b"charger/" or b"/" in at[8:] or b".." in at:
                raise ValueError(at)
            size = int.from_bytes(f.read(4), "big")
            with open(top + "/" + at[8:].decode(), "wb") as out:
                while size:
                    n = f.readinto(mv if size >= _BUF else mv[:size])
                    if not n:
                        raise ValueError("bundle short")
                    out.write(mv if n == _BUF else mv[:n])
                    size -= n
    if app.sm.state_name != "idle" or len(app.outbox):  # a session began meanwhile
        return False
    # as firmware/otaboot.py writes it: a new file renamed over the old
    head = args[5]
    with open("ota/state.new", "w") as f:
        f.write("%s %s 0 %s %s -" % (args[4], version, head[0], head[1]))
    try:
        os.rename("ota/state.new", "ota/state")
    except OSError:  # a filesystem whose rename does not replace
        os.remove("ota/state")
        os.rename("ota/state.new", "ota/state")
    return True


def build(outbox, readings, events):
    # The outbox's two rings (charger/outbox.py: reading r at 3*r in both arrays, event e at
    # 3*cap + 5*e of the uint32 one) made `readings` and `events` long, the entries waiting
    # kept in order from slot 0 (sent-but-unconfirmed counts stay valid: they count from the
    # heads). Only to sizes that hold what waits.
    import array

    n = outbox._n
    if not len(outbox):  # nothing to keep: the old rings go first
        outbox._f = outbox._i = None
    f = array.array("f", bytes(12 * readings))
    i = array.array("I", bytes(12 * readings + 20 * events))
    for r in range(outbox.readings * 3):
        k = (n[0] * 3 + r) % (n[6] * 3)
        f[r] = outbox._f[k]
        i[r] = outbox._i[k]
    for r in range(n[3] * 5):
        i[3 * readings + r] = outbox._i[3 * n[6] + (n[2] * 5 + r) % (n[7] * 5)]
    outbox._f = outbox._i = None
    outbox._f = f
    outbox._i = i
    n[0] = n[2] = 0
    n[6] = readings
    n[7] = events
