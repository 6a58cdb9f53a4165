"""Station keys and private files: make a key, hash it, check one, write a 0600 file.

Pure functions over the standard library, shared by the credential checks (server/auth.py,
server/ocpp.py), the admin CLI and the demo data (server/storage/demo.py), so that storage
never imports an adapter-side module to seed a key.

SHA-256 rather than a slow password hash: station keys are 256-bit random values, so there is
nothing to brute-force, and a charger reconnect must stay cheap. Keys are compared with
`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

STATION_KEY_BYTES = 32
MAX_KEY_CHARS = 4096  # a longer presented key is refused before hashing


def new_station_key() -> str:
    """A fresh station key: 32 random bytes, url-safe (no '.', so never mistaken for a JWT)."""
    return secrets.token_urlsafe(STATION_KEY_BYTES)


def hash_station_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def station_key_matches(key: str, stored_hash: str | None) -> bool:
    if not stored_hash or not key or len(key) > MAX_KEY_CHARS:
        return False
    return hmac.compare_digest(hash_station_key(key), stored_hash)


def write_private_file(path: Path, text: str, exclusive: bool = False) -> None:
    """Write `text` to a file only its owner can read (created 0600, never world-readable)."""
    descriptor = os.open(
        path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), 0o600
    )
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
