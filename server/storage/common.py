"""What both backends run alike: every read-only query of the storage contract
(server/storage/contract.py) and the one-column station settings, written once.

`CommonQueries` is a base class of SqliteStorage and PostgresStorage. Its SQL is written with
`?` placeholders; a backend states its style in `placeholder` ("?" for SQLite, "$N" for
PostgreSQL's $1, $2...) and provides three primitives, with its own transactions:
`_rows(sql, params)` runs one query, `_rows_together(queries)` runs several on one consistent
snapshot, `_update_station(column, value, station_id)` sets one column of a station (NotFound
if there is none). Transactions, batch writes, claims, totals and backup stay in the backends.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

from .arguments import station_args
from .contract import MAX_PAGE
from .errors import Duplicate, NotFound, Unsupported
from .records import Alert, Card, OfflineAuthState, Reading, SessionRecord, Station, User
from .rows import (
    ALERT_COLUMNS,
    AUTH_LIST_COLUMNS,
    CARD_COLUMNS,
    READING_COLUMNS,
    SESSION_COLUMNS,
    STATION_COLUMNS,
    AuthList,
    Row,
    auth_list_from_row,
    card_from_row,
    session_from_row,
    station_from_row,
)
from .values import check_count, check_id, check_max_power, check_number, check_tariff

# (sql with one `?` or none, name, value, check): a filter used when its value is not None
Condition = tuple[str, str, Any, Callable[[Any, str], Any] | None]


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2... in order (our SQL has no `?` in a literal)."""
    count = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def where(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """AND of the conditions whose value is not None, and their checked parameters in order:
    `check(value, name)` validates the value bound to the condition's `?` (None: it has no `?`)."""
    clauses, params = ["TRUE"], []
    for sql, name, value, check in conditions:
        if value is not None:
            clauses.append(sql)
            if check is not None:
                params.append(check(value, name))
    return " AND ".join(clauses), params


def session_filters(
    station_id: object, user_id: object, since: object, until: object
) -> tuple[str, list[Any]]:
    """The sessions (alias s) of a station, of a user, started in [since, until)."""
    return where(
        [
            ("s.station_id = ?", "station_id", station_id, check_id),
            ("s.user_id = ?", "user_id", user_id, check_id),
            ("s.started_at >= ?", "since", since, check_number),
            ("s.started_at < ?", "until", until, check_number),
        ]
    )


class CommonQueries:
    """See the module docstring."""

    placeholder = "?"  # or "$N"

    # -- the backend's primitives ------------------------------------------------------------

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """The rows of one query (sql in the backend's placeholder style)."""
        raise NotImplementedError

    async def _rows_together(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Row]]:
        """The rows of each query, all read from one snapshot of the database."""
        raise NotImplementedError

    async def _update_station(self, column: str, value: object, station_id: int) -> None:
        """Set one column of a station, committed at once; NotFound if there is none."""
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return numbered(sql) if self.placeholder == "$N" else sql

    async def _read(self, sql: str, *params: Any) -> list[Row]:
        return await self._rows(self._sql(sql), params)

    # -- station ownership -------------------------------------------------------------------

    async def station_owner(self, station_id: int) -> tuple[str | None, int]:
        """(owner, epoch) of the station: (None, 0) if never claimed. NotFound."""
        rows = await self._read(
            "SELECT owner, owner_epoch FROM stations WHERE id = ?",
            check_id(station_id, "station id"),
        )
        if not rows:
            raise NotFound(f"station {station_id} does not exist")
        return rows[0][0], rows[0][1]

    # -- sessions ----------------------------------------------------------------------------

    async def open_sessions(self) -> list[SessionRecord]:
        rows = await self._read(f"SELECT {SESSION_COLUMNS} WHERE s.ended_at IS NULL ORDER BY s.id")
        return [session_from_row(row) for row in rows]

    async def get_session(self, session_id: int) -> SessionRecord | None:
        rows = await self._read(f"SELECT {SESSION_COLUMNS} WHERE s.id = ?", session_id)
        return session_from_row(rows[0]) if rows else None

    async def list_sessions(
        self,
        station_id: int | None = None,
        user_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[SessionRecord], int]:
        """Sessions newest first, filtered by station, user and start time (since <= started_at
        < until); returns one page and the total number matching (read on one snapshot)."""
        limit, offset = check_count(limit, "limit", MAX_PAGE), check_count(offset, "offset")
        condition, params = session_filters(station_id, user_id, since, until)
        rows, [(total, *_)] = await self._rows_together(
            [
                (
                    self._sql(
                        f"SELECT {SESSION_COLUMNS} WHERE {condition}"
                        " ORDER BY s.started_at DESC, s.id DESC LIMIT ? OFFSET ?"
                    ),
                    (*params, limit, offset),
                ),
                (self._sql(f"SELECT count(*) FROM sessions s WHERE {condition}"), params),
            ]
        )
        return [session_from_row(row) for row in rows], total

    async def sessions_before(
        self,
        station_id: int | None = None,
        user_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        before: tuple[float, int] | None = None,
        limit: int = MAX_PAGE,
    ) -> list[SessionRecord]:
        """One page of the sessions list_sessions' filters match, in its order (newest first:
        started_at, then id, descending), strictly after the row whose (started_at, id) is
        `before` (None: from the newest). Keyset paging for a long walk (the CSV export): each
        page is one index range, however deep, and a session added meanwhile neither repeats
        nor shifts a row of the walk. No total is counted."""
        limit = check_count(limit, "limit", MAX_PAGE)
        condition, params = session_filters(station_id, user_id, since, until)
        if before is not None:
            started_at, session_id = before
            # `started_at <= ?` alone bounds the index range; the rest breaks a tie by id
            condition += " AND s.started_at <= ? AND (s.started_at < ? OR s.id < ?)"
            started_at = check_number(started_at, "before started_at")
            params += [started_at, started_at, check_id(session_id, "before id")]
        rows = await self._read(
            f"SELECT {SESSION_COLUMNS} WHERE {condition}"
            " ORDER BY s.started_at DESC, s.id DESC LIMIT ?",
            *params,
            limit,
        )
        return [session_from_row(row) for row in rows]

    async def station_as_stored(
        self, station_id: int, recent: int
    ) -> tuple[SessionRecord | None, list[int], bool]:
        """The station's open session (or None), the ids of its last `recent` closed sessions
        (oldest first) and whether its emergency latch is set, from one snapshot. NotFound."""
        station_id, recent = check_id(station_id, "station id"), check_count(recent, "recent")
        latched, open_rows, closed = await self._rows_together(
            [
                (
                    self._sql("SELECT emergency_latched_at IS NOT NULL FROM stations WHERE id = ?"),
                    (station_id,),
                ),
                (
                    self._sql(
                        f"SELECT {SESSION_COLUMNS} WHERE s.station_id = ? AND s.ended_at IS NULL"
                        " ORDER BY s.id LIMIT 1"
                    ),
                    (station_id,),
                ),
                (
                    self._sql(
                        "SELECT id FROM sessions WHERE station_id = ? AND ended_at IS NOT NULL"
                        " ORDER BY id DESC LIMIT ?"
                    ),
                    (station_id, recent),
                ),
            ]
        )
        if not latched:
            raise NotFound(f"station {station_id} does not exist")
        session = session_from_row(open_rows[0]) if open_rows else None
        return session, [row[0] for row in reversed(closed)], bool(latched[0][0])

    async def readings(self, session_id: int) -> list[Reading]:
        """The committed readings of a session, oldest first (call flush() first to include
        the queued ones)."""
        rows = await self._read(
            f"SELECT {', '.join(READING_COLUMNS)} FROM readings WHERE session_id = ?"
            " ORDER BY ts, id",
            session_id,
        )
        return [Reading(*row) for row in rows]

    # -- alerts ------------------------------------------------------------------------------

    async def list_alerts(
        self, station_id: int | None = None, unacknowledged_only: bool = False, limit: int = 100
    ) -> list[Alert]:
        """Alerts newest first."""
        condition, params = where(
            [
                ("station_id = ?", "station_id", station_id, check_id),
                ("acknowledged_at IS NULL", "", unacknowledged_only or None, None),
            ]
        )
        rows = await self._read(
            f"SELECT {ALERT_COLUMNS} WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT ?",
            *params,
            min(check_count(limit, "limit"), MAX_PAGE),
        )
        return [Alert(*row) for row in rows]

    # -- the emergency latch and recent sessions (what the session core reloads at start) ----

    async def emergency_latches(self) -> dict[int, float]:
        """station id -> when its latch was set, for every latched station."""
        rows = await self._read(
            "SELECT id, emergency_latched_at FROM stations"
            " WHERE emergency_latched_at IS NOT NULL ORDER BY id"
        )
        return {row[0]: row[1] for row in rows}

    async def recent_closed_sessions(self, per_station: int) -> dict[int, list[int]]:
        """station id -> the ids of its last `per_station` closed sessions, oldest first."""
        rows = await self._read(
            "SELECT station_id, id FROM (SELECT station_id, id, ROW_NUMBER() OVER"
            " (PARTITION BY station_id ORDER BY id DESC) AS newest FROM sessions"
            " WHERE ended_at IS NOT NULL) AS ranked WHERE newest <= ? ORDER BY station_id, id",
            check_count(per_station, "per_station"),
        )
        recent: dict[int, list[int]] = {}
        for station_id, session_id in rows:
            recent.setdefault(station_id, []).append(session_id)
        return recent

    # -- reference data ----------------------------------------------------------------------

    async def get_station(self, station_id: int) -> Station | None:
        rows = await self._read(f"SELECT {STATION_COLUMNS} WHERE id = ?", station_id)
        return station_from_row(rows[0]) if rows else None

    async def list_stations(self) -> list[Station]:
        rows = await self._read(f"SELECT {STATION_COLUMNS} ORDER BY id")
        return [station_from_row(row) for row in rows]

    async def _new_station_args(
        self,
        name: object,
        tariff: object,
        station_id: object,
        max_power_w: object,
        charge_point_id: object,
    ) -> tuple[int | None, str, float, float, str, str | None]:
        """add_station's checked arguments (arguments.station_args); Duplicate if the charge
        point id already belongs to a station."""
        args = station_args(name, tariff, station_id, max_power_w, charge_point_id)
        charge_point = args[5]
        if (
            charge_point is not None
            and await self.station_by_charge_point(charge_point) is not None
        ):
            raise Duplicate(f"charge point id {charge_point!r} already belongs to a station")
        return args

    async def station_by_charge_point(self, charge_point_id: str) -> Station | None:
        """The OCPP station with this charge point id, or None."""
        rows = await self._read(
            f"SELECT {STATION_COLUMNS} WHERE charge_point_id = ?", charge_point_id
        )
        return station_from_row(rows[0]) if rows else None

    async def set_max_power(self, station_id: int, max_power_w: float) -> None:
        """The station's plausibility limit in W (0 < W <= 50,000, else ValueError); raises
        NotFound for an unknown station. Applies from the next reading on."""
        power = check_max_power(max_power_w)
        await self._update_station("max_power_w", power, check_id(station_id, "station id"))

    async def station_key_hash(self, station_id: int) -> str | None:
        """The SHA-256 of the station's charger key (server/auth.py), None if none was issued."""
        rows = await self._read("SELECT key_hash FROM stations WHERE id = ?", station_id)
        return rows[0][0] if rows else None

    async def set_station_key_hash(self, station_id: int, key_hash: str) -> None:
        """Replace the station's key hash (issuing or rotating its key). Raises NotFound."""
        await self._update_station("key_hash", key_hash, check_id(station_id, "station id"))

    async def set_tariff(self, station_id: int, tariff: float) -> None:
        """Raises NotFound for an unknown station. Open sessions keep the tariff they began with."""
        checked = check_tariff(tariff)
        await self._update_station("tariff", checked, check_id(station_id, "station id"))

    async def list_users(self) -> list[User]:
        rows = await self._read("SELECT id, name FROM users ORDER BY id")
        return [User(*row) for row in rows]

    async def find_card(self, uid: str) -> Card | None:
        """uid must already be normalized (server.uids.normalize_uid)."""
        rows = await self._read(f"SELECT {CARD_COLUMNS} WHERE c.uid = ?", uid)
        return card_from_row(rows[0]) if rows else None

    async def list_cards(self) -> list[Card]:
        rows = await self._read(f"SELECT {CARD_COLUMNS} ORDER BY u.name, c.uid")
        return [card_from_row(row) for row in rows]

    async def is_empty(self) -> bool:
        """True when there are no stations, users or cards (a fresh database)."""
        rows = await self._read(
            "SELECT (SELECT count(*) FROM stations) + (SELECT count(*) FROM users)"
            " + (SELECT count(*) FROM cards)"
        )
        return bool(rows[0][0] == 0)

    # -- offline authorization (issue 13; server/offline_auth.py) ---------------------------

    async def offline_auth(self, station_id: int) -> bool | None:
        """Whether the station's charger may start a listed card offline; None: no station."""
        rows = await self._read("SELECT offline_auth FROM stations WHERE id = ?", station_id)
        return bool(rows[0][0]) if rows else None

    async def set_offline_auth(self, station_id: int, allowed: bool) -> None:
        """Turn offline starts on or off for a seed station. Raises NotFound, and Unsupported
        for an OCPP station: its charger gets no list, so the setting would change nothing.
        (A station's protocol never changes once it is added: no race with the UPDATE.)"""
        station_id, value = check_id(station_id, "station id"), 1 if allowed else 0
        rows = await self._read(
            "SELECT protocol, charge_point_id FROM stations WHERE id = ?", station_id
        )
        if not rows:
            raise NotFound(f"station {station_id} does not exist")
        if rows[0][0] != "seed":
            raise Unsupported(
                f"station {station_id} is an OCPP 1.6J station (charge point {rows[0][1]}): "
                "offline authorization applies only to seed chargers, which get the signed "
                "card list"
            )
        await self._update_station("offline_auth", value, station_id)

    async def offline_auth_states(self) -> list[OfflineAuthState]:
        """Every seed station's setting, whether it has a station key and its newest signed
        list, by station id, in one query (the admin page's offline column)."""
        rows = await self._read(
            "SELECT s.id, s.offline_auth, coalesce(s.key_hash, '') <> '',"
            " l.version, l.offline, l.cards, l.created_at FROM stations s"
            " LEFT JOIN auth_lists l ON l.station_id = s.id AND l.version ="
            " (SELECT max(m.version) FROM auth_lists m WHERE m.station_id = s.id)"
            " WHERE s.protocol = 'seed' ORDER BY s.id"
        )
        return [
            OfflineAuthState(
                row[0],
                bool(row[1]),
                bool(row[2]),
                None if row[3] is None else auth_list_from_row(row[3:]),
            )
            for row in rows
        ]

    async def offline_state(self, station_id: int) -> tuple[str, bool, AuthList | None] | None:
        """(key hash, '' if none; offline setting; newest signed list or None) of the station in
        one query (what a list push needs from it), or None for an unknown station."""
        rows = await self._read(
            "SELECT coalesce(s.key_hash, ''), s.offline_auth,"
            " l.version, l.offline, l.cards, l.created_at FROM stations s"
            " LEFT JOIN auth_lists l ON l.station_id = s.id AND l.version ="
            " (SELECT max(m.version) FROM auth_lists m WHERE m.station_id = s.id)"
            " WHERE s.id = ?",
            station_id,
        )
        if not rows:
            return None
        row = rows[0]
        return row[0], bool(row[1]), None if row[2] is None else auth_list_from_row(row[2:])

    async def last_seen(self, station_id: int) -> float | None:
        """When the station's keyed charger's last connection ended (None: not recorded)."""
        rows = await self._read("SELECT last_seen_at FROM stations WHERE id = ?", station_id)
        return rows[0][0] if rows else None

    async def set_last_seen(self, station_id: int, at: float) -> None:
        """Record that the station's charger was connected until `at`. Raises NotFound."""
        await self._update_station(
            "last_seen_at", check_number(at, "last_seen_at"), check_id(station_id, "station id")
        )

    async def offline_candidates(self) -> list[tuple[str, float | None]]:
        """Every enabled card with the start of its latest session (None: never used); each
        lookup uses the index sessions_by_card (migration 0007)."""
        rows = await self._read(
            "SELECT c.uid, (SELECT max(s.started_at) FROM sessions s WHERE s.card_uid = c.uid)"
            " FROM cards c WHERE c.enabled = 1"
        )
        return [(row[0], row[1]) for row in rows]

    async def latest_auth_list(self, station_id: int) -> AuthList | None:
        """The newest list signed for the station: (version, offline, cards, created_at)."""
        rows = await self._read(
            f"SELECT {AUTH_LIST_COLUMNS} WHERE station_id = ? ORDER BY version DESC LIMIT 1",
            station_id,
        )
        return auth_list_from_row(rows[0]) if rows else None

    async def auth_list(self, station_id: int, version: int) -> AuthList | None:
        """The list of that version signed for the station, or None."""
        rows = await self._read(
            f"SELECT {AUTH_LIST_COLUMNS} WHERE station_id = ? AND version = ?",
            station_id,
            version,
        )
        return auth_list_from_row(rows[0]) if rows else None

    async def offline_session(self, station_id: int, local_id: int) -> int | None:
        """The session created for the charger's offline start `local_id`, or None."""
        rows = await self._read(
            "SELECT id FROM sessions WHERE station_id = ? AND offline_local_id = ?",
            station_id,
            local_id,
        )
        return rows[0][0] if rows else None
