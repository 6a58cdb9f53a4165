"""HMAC-SHA256 (RFC 2104) for the signed offline card list (charger/offline.py).

Written by hand because MicroPython has `hashlib.sha256` built in but no `hmac` module (the
micropython-lib one would be a dependency to install on every board for nine lines). Loaded
only while a list is checked, then unloaded with the module that uses it.
Runs under MicroPython and CPython (tests compare it with CPython's `hmac`).
"""

from hashlib import sha256


def hmac_sha256(key, msg):
    """The 32-byte HMAC-SHA256 of bytes `msg` under bytes `key`."""
    if len(key) > 64:
        key = sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()
