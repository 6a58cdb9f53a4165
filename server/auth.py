"""Credentials: the signing secret, dashboard and station JWTs, per-station keys, and who may do what.

Pure rules plus the secret file; no sockets. The WebSocket adapter (server/ws.py) asks
`Authenticator.authenticate()` once per connection and keeps the returned `Principal`; the
HTTP adapter asks `Authenticator.http_principal()` per request.

- Dashboards present a JWT (HS256, PyJWT): `sub`, `role` in viewer / operator / admin, `exp`,
  optionally `stations` (list of station ids it may see; absent = every station).
- Chargers present their station's key (random, 32 bytes, url-safe text; only its SHA-256 is
  stored, issued and rotated by `python -m server.admin stations issue-key ID`) or a JWT with
  role `station` whose `stations` lists the station.
- The signing secret is 32 random bytes created on first start in a 0600 file; it is never
  logged. With `AUTH=off` every connection is an admin (bench use only).

Station keys themselves (make, hash, check) live in server/keys.py, shared with the storage's
demo data.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from server import protocol as p
from server.ids import id_from_text
from server.keys import station_key_matches, write_private_file

log = logging.getLogger(__name__)

VIEWER, OPERATOR, ADMIN, STATION = "viewer", "operator", "admin", "station"
DASHBOARD_ROLES = (VIEWER, OPERATOR, ADMIN)
ALGORITHM = "HS256"
SECRET_BYTES = 32
MAX_TOKEN_CHARS = 4096
MAX_TOKEN_STATIONS = 10_000
DEFAULT_TOKEN_DAYS = 30.0


@dataclass(frozen=True)
class Principal:
    """Who is on a connection: `sub` (for logs), `role`, and the stations it may touch (None = all)."""

    sub: str
    role: str
    stations: frozenset[int] | None = None

    def may_see(self, station_id: int | None) -> bool:
        """station_id None means "every station" (estacionId=all)."""
        if self.stations is None:
            return True
        return station_id is not None and station_id in self.stations

    @property
    def may_stop(self) -> bool:
        return self.role in (OPERATOR, ADMIN)

    @property
    def may_administer(self) -> bool:
        return self.role == ADMIN and self.stations is None


AUTH_OFF = Principal("auth-off", ADMIN, None)


# ---------------------------------------------------------------- secret file


def load_or_create_secret(path: Path) -> bytes:
    """The signing secret in `path`, created (0600, 32 random bytes as hex) if missing."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: when the server and server.admin start together, one secret wins
            write_private_file(path, secrets.token_hex(SECRET_BYTES) + "\n", exclusive=True)
            log.info("created a new signing secret in %s", path)
        except FileExistsError:
            pass
    text = path.read_text(encoding="ascii").strip()
    if len(text) < 2 * SECRET_BYTES:
        raise ValueError(f"signing secret {path} is shorter than {SECRET_BYTES} bytes")
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("signing secret %s was readable by others; permissions set to 0600", path)
    return text.encode("ascii")


# ---------------------------------------------------------------- tokens


def mint_token(
    secret: bytes,
    sub: str,
    role: str,
    stations=None,
    days: float = DEFAULT_TOKEN_DAYS,
    now: float | None = None,
) -> str:
    """A signed JWT. `stations` None = every station (not allowed for role `station`)."""
    if role not in (*DASHBOARD_ROLES, STATION):
        raise ValueError(f"role must be one of {', '.join((*DASHBOARD_ROLES, STATION))}")
    if role == STATION and not stations:
        raise ValueError("a station token must name its station(s)")
    now = time.time() if now is None else now
    claims = {"sub": sub, "role": role, "iat": int(now), "exp": int(now + days * 86400)}
    if stations is not None:
        claims["stations"] = sorted(int(s) for s in stations)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: bytes, token: str | None) -> Principal | None:
    """The token's principal, or None for anything missing, malformed, forged or expired."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "role"]}
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    sub, role, stations = claims.get("sub"), claims.get("role"), claims.get("stations")
    if not isinstance(sub, str) or role not in (*DASHBOARD_ROLES, STATION):
        return None
    if stations is not None:
        if (
            not isinstance(stations, list)
            or len(stations) > MAX_TOKEN_STATIONS
            or not all(type(s) is int and s > 0 for s in stations)
        ):
            return None
        stations = frozenset(stations)
    if role == STATION and not stations:
        return None
    return Principal(sub, role, stations)


# ---------------------------------------------------------------- the adapter-facing check


def station_number(text: str | None) -> int | None:
    """The station id an `estacionId` query value names, None if it names none (the one rule,
    also used by server/ws.py): the one id rule of server/ids.py."""
    return id_from_text(text)


class Authenticator:
    """One per server. `enabled` False is AUTH=off: everyone is an admin."""

    def __init__(self, enabled: bool, secret: bytes, storage):
        self.enabled = enabled
        self.secret = secret
        self.storage = storage

    async def authenticate(
        self, token: str | None, role: str, estacion: str | None
    ) -> Principal | None:
        """The principal for a WebSocket handshake, or None (the caller closes 4003)."""
        if not self.enabled:
            return AUTH_OFF
        if role == p.ROLE_PUBLISHER:
            return await self._charger(token, estacion)
        principal = decode_token(self.secret, token)
        if principal is None or principal.role not in DASHBOARD_ROLES:
            return None
        if estacion is not None and estacion.lower() != p.ALL_STATIONS:
            if not principal.may_see(station_number(estacion)):
                return None
        elif principal.stations is not None:
            return None  # a token limited to some stations subscribes to them one by one
        return principal

    async def _charger(self, token: str | None, estacion: str | None) -> Principal | None:
        station_id = station_number(estacion)
        if not token or station_id is None:
            return None
        if "." in token:  # a JWT bound to the station
            principal = decode_token(self.secret, token)
            if principal is None or principal.role != STATION or not principal.may_see(station_id):
                return None
            return principal
        if station_key_matches(token, await self.storage.station_key_hash(station_id)):
            return Principal(f"station-key:{station_id}", STATION, frozenset({station_id}))
        return None

    def http_principal(self, headers, query_token: str | None) -> Principal | None:
        """A dashboard principal from `Authorization: Bearer T` or `?token=T` (HTTP API)."""
        if not self.enabled:
            return AUTH_OFF
        header = headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else query_token
        principal = decode_token(self.secret, token)
        if principal is None or principal.role not in DASHBOARD_ROLES:
            return None
        return principal
