"""Offline authorization: the signed card list each charger keeps, and what an offline start needs.

The server pushes each seed charger that authenticated with its station key a list of the card
UIDs it may start while it cannot reach the server (docs/protocol.md, "Offline cards"):

    {"type":"auth_list","version":V,"offline":true,"cards":["04A1B2C3",...],"sig":"<hex>"}

- `cards`: normalized UIDs (server/uids.py), sorted; at most MAX_CARDS (64) and at most what
  keeps the frame within MAX_FRAME_BYTES (1024, the firmware's default receive buffer): the
  enabled cards used most recently first (never-used cards last, by UID); the others are
  online-only, and each push that leaves cards out logs how many.
- `offline`: the station's `offline_auth` setting (on by default); with it off the list is
  still pushed (empty of meaning: the charger starts nothing offline).
- `sig`: HMAC-SHA256, keyed by the SHA-256 digest (32 raw bytes) of the station's key (the
  server stores only that digest; the charger has the key in its config `token`), over the
  canonical text `"{station}|{V}|{1 or 0}|{cards joined by ,}"` (`canonical()`).
- `version` is per station and grows only when the content changes: a reconnect with nothing
  changed pushes the same version again. Every signed version is kept (table `auth_lists`),
  so an offline start is checked against the very list the charger had.

Stations authenticated by a JWT (or a server with AUTH=off) get no list: the server has no
secret the charger also holds, so their chargers cannot start offline (their taps are
refused while offline, as before).

`AuthLists` (one per server, `app.auth_lists`) builds, stores, signs and pushes the lists: on
a keyed charger's connect, when a dashboard changes a card or the station's setting, and
every REFRESH_S seconds for changes made by `python -m server.admin` in another process
(the cards are chosen once per pass, one query per station when nothing changed). A push runs
in the background of the charger's connection and logs a failure: a database error never
drops the charger. It also records when each keyed station's charger was last connected
(in memory and in `stations.last_seen_at`, written when its connection ends), the lower bound
of an offline start's time, so the bound survives a restart or a failover.

In a fleet (server/cluster/) each process pushes the lists of the chargers connected to it
and still owned by it (`fleet.owns`), so one station's versions are made by one process at a
time (PostgreSQL also locks the station's row while it takes the next version; within the
process one push per station runs at a time). A card changed from a dashboard on another
process reaches these chargers at once (`evse.fleet.cards_changed`: every process pushes its
lists), a station's setting through its owner (`station_changed`); the REFRESH_S check is for
changes made by `python -m server.admin` and for a message the bus lost. A process that
dies without closing its chargers' connections records no `last_seen_at` for them: an offline
start reported after that is bounded by the previous connection's end (or the list's signing
time), the newest bound the server stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging

from server.vocabulary import AuthList

log = logging.getLogger(__name__)

MAX_CARDS = 64
MAX_FRAME_BYTES = 1024  # the firmware's default `max_message`: a longer frame would not fit
REFRESH_S = 60.0  # lists re-checked for changes made outside this process
# an offline start is placed no earlier than the moment the server lost the charger minus
# this: the charger may go offline up to the liveness time (13 s by default) before the
# server notices, plus margin
GONE_TOLERANCE_S = 30.0
KEYED_PREFIX = "station-key:"  # the Principal.sub of a charger that presented its station key


def canonical(station_id: int, version: int, offline: bool, cards) -> str:
    """The signed text: `station|version|1 or 0|uid,uid,...`."""
    return f"{station_id}|{version}|{1 if offline else 0}|{','.join(cards)}"


def sign(key_hash_hex: str, text: str) -> str:
    """HMAC-SHA256 of `text` keyed by the station key's SHA-256 digest, as lower-case hex."""
    return hmac.new(bytes.fromhex(key_hash_hex), text.encode("utf-8"), hashlib.sha256).hexdigest()


def key_digest_hex(station_key: str) -> str:
    """What the charger computes from its `token` (= what the server stores)."""
    return hashlib.sha256(station_key.encode("utf-8")).hexdigest()


def frame_size(version: int, offline: bool, cards) -> int:
    """Bytes of the auth_list frame for these cards (the signature is 64 hex digits)."""
    return len(
        json.dumps(
            {
                "type": "auth_list",
                "version": version,
                "offline": offline,
                "cards": list(cards),
                "sig": "0" * 64,
            },
            separators=(",", ":"),
        )
    )


def choose(candidates, version_hint: int = 10**6) -> tuple[list[str], int]:
    """The cards of a list from (uid, last used or None) pairs: the most recently used first,
    up to MAX_CARDS and MAX_FRAME_BYTES; returns (sorted cards, how many were left out). The
    same for every station (the frame does not name it). `version_hint` sizes the version
    number generously (7 digits)."""
    ranked = sorted(candidates, key=lambda c: (c[1] is None, -(c[1] or 0.0), c[0]))
    chosen: list[str] = []
    for uid, _ in ranked[:MAX_CARDS]:
        if frame_size(version_hint, True, sorted(chosen + [uid])) > MAX_FRAME_BYTES:
            break
        chosen.append(uid)
    return sorted(chosen), len(candidates) - len(chosen)


class AuthLists:
    """The per-station lists of a running server (see the module docstring)."""

    def __init__(self, app):
        self.app = app
        self.keyed: set[int] = set()  # stations whose connected charger presented its key
        self.gone_at: dict[int, float] = {}  # station -> when its charger was last connected
        self._task: asyncio.Task | None = None
        # one push at a time per station: two at once (a change here and one announced by
        # another process of a fleet) would each store a new version of the same content
        self._pushing: dict[int, asyncio.Lock] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_periodically())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def connected(self, station_id: int, principal) -> bool:
        """A charger connected; True when it authenticated with its station key (it gets lists)."""
        if principal is not None and principal.sub.startswith(KEYED_PREFIX):
            self.keyed.add(station_id)
            return True
        self.keyed.discard(station_id)
        return False

    def gone(self, station_id: int, now: float) -> bool:
        """The station's charger's connection ended: remember when. True when it was a keyed
        charger (only those start offline): the caller then runs record_gone() (in the
        background: the charger is shown offline without waiting on the database)."""
        was_keyed = station_id in self.keyed
        self.keyed.discard(station_id)
        self.gone_at[station_id] = now
        return was_keyed

    async def record_gone(self, station_id: int, now: float) -> None:
        """Store when the keyed charger's connection ended (`stations.last_seen_at`); a
        failure is logged: the in-memory bound still holds until a restart."""
        try:
            await self.app.storage.set_last_seen(station_id, now)
        except Exception:  # noqa: BLE001 - the charger's connection is over either way
            log.exception("station %s: could not record when its charger left", station_id)

    async def current(self, station_id: int, chosen=None) -> AuthList | None:
        """The station's list as it should be now (a new version stored if the content
        changed), signed; None when the station has no key. `chosen`: choose()'s answer for
        the current cards, when the caller pushes several stations."""
        storage = self.app.storage
        state = await storage.offline_state(station_id)
        if state is None or not state[0]:
            return None
        key_hash, offline, latest = state
        if chosen is None:
            chosen = choose(await storage.offline_candidates())
        cards, left_out = chosen
        text = ",".join(cards)
        if latest is not None and latest[1] == offline and latest[2] == text:
            version = latest[0]
        else:
            version = await storage.save_auth_list(station_id, offline, text, self.app.clock())
            if left_out:
                log.warning(
                    "station %s: offline list version %s holds %s cards; %s enabled "
                    "cards left out (online only): the list keeps the %s most recently "
                    "used within %s bytes",
                    station_id,
                    version,
                    len(cards),
                    left_out,
                    MAX_CARDS,
                    MAX_FRAME_BYTES,
                )
        sig = sign(key_hash, canonical(station_id, version, offline, cards))
        return AuthList(version, offline, tuple(cards), sig)

    async def push(self, station_id: int, chosen=None) -> bool:
        """Send the station's current list to its charger (keyed chargers only). In a fleet
        only the station's owner does (server/cluster/): a process that lost the station keeps
        its charger's socket until it closes, and must not store or push a version then."""
        async with self._pushing.setdefault(station_id, asyncio.Lock()):
            if station_id not in self.keyed or not self.app.fleet.owns(station_id):
                return False
            command = await self.current(station_id, chosen)
            return command is not None and await self.app.hub.send_to_publisher(station_id, command)

    async def push_logged(self, station_id: int) -> None:
        """push(), a failure logged (the background push on a charger's connect: a database
        error must not end the charger's connection)."""
        try:
            await self.push(station_id)
        except Exception:  # noqa: BLE001 - the next change or REFRESH_S pass pushes again
            log.exception("could not push the offline list to station %s", station_id)

    async def push_all(self) -> None:
        """Every keyed charger's list (a card changed: the lists may all differ)."""
        if not self.keyed:
            return
        chosen = choose(await self.app.storage.offline_candidates())  # once for all stations
        for station_id in sorted(self.keyed):
            try:
                await self.push(station_id, chosen)
            except Exception:  # noqa: BLE001 - one station's failure must not stop the others
                log.exception("could not push the offline list to station %s", station_id)

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.push_all()
            except Exception:  # noqa: BLE001 - the database may come back
                log.exception("offline lists not refreshed")

    async def check(self, station_id: int, version: int, uid: str) -> tuple[bool, float | None]:
        """Was `uid` in list `version` signed for the station, with offline starts on? And the
        earliest time the offline start can have happened (None: nothing known): the list's
        signing time, and the end of the charger's previous connection (minus the tolerance)
        as this process saw it or as the database recorded it (a restart, a failover)."""
        row = await self.app.storage.auth_list(station_id, version)
        if row is None:
            return False, None
        listed = row[1] and uid in row[2].split(",")
        earliest = row[3]  # the charger cannot have had version V before it was signed
        for gone in (self.gone_at.get(station_id), await self.app.storage.last_seen(station_id)):
            if gone is not None:
                earliest = max(earliest, gone - GONE_TOLERANCE_S)
        return listed, earliest
