"""The dashboard's HTTP side: GET-only JSON API, CSV export, metrics and the static pages.

Routes (all GET; websockets' HTTP side has no request bodies, so changes travel on the WebSocket,
see `server/dashboard_messages.py`):

    /                        the dashboard page (server/static/index.html)
    /static/<file>           the page's CSS and JavaScript modules
    /api/stations            every station with its live status and open session
    /api/sessions            history: filters station, user, from, to, limit, offset;
                             answers {"items", "total", "totals", "limit", "offset"}
    /api/sessions/<id>       one session with its stored readings
    /api/sessions.csv        the same filters as /api/sessions, as a CSV download (UTF-8
                             with a BOM); `tz` (IANA zone, default UTC) sets the offset of
                             started_at/ended_at; an unknown zone answers 400 UNKNOWN_TIME_ZONE
    /api/settings            how the page shows money: {"currency_symbol", "currency_decimals"}
    /api/users, /api/cards   administration lists
    /api/alerts              alerts not yet acknowledged by an operator
    /metrics                 Prometheus text format (server/observability.py)

Unknown ids answer 404 (also a `station` or `user` filter naming none) and bad filters 400,
both as JSON `{"code": ..., "message": ...}`; a failure inside a handler answers 500 with a
generic message, never a traceback.

`/healthz` is the server's own route (server/app.py). The handlers are plain coroutines
`handler(ctx, raw_query, *path_params) -> HttpAnswer`, free of websockets; `register(app)` adds
them to the server's HTTP routing table (server/http.py). Query strings are parsed with
urllib.parse; the validation rules are a few lines per filter, so no schema library.
"""

import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from server.observability import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server.observability import Observability, attach
from server.storage.export import sessions_to_csv, time_zone

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000_000
SCAN_CHUNK = 500
SESSION_FILTERS = frozenset({"station", "user", "from", "to", "limit", "offset"})

JSON = "application/json; charset=utf-8"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
PAGE_HEADERS = (
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        # ws:/wss: spelled out: older mobile Safari does not count the page's own WebSocket as 'self'
        "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
)
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9]+)+$")


@dataclass(frozen=True)
class HttpAnswer:
    """What the HTTP adapter sends back: status, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class ApiContext:
    """Everything the handlers read.

    `charger_view(station_id)` returns the live description the WebSocket `init` uses for one
    charger: {"id", "status", "session"}; `register` takes it from the session core.
    """

    storage: Any
    charger_view: Callable[[int], dict]
    observability: Observability | None = None
    static_dir: Path = STATIC_DIR
    clock: Callable[[], float] = field(default=time.time)
    # what the page reads from /api/settings (server/config.py: CURRENCY_SYMBOL, ...)
    settings: dict = field(default_factory=lambda: {"currency_symbol": "$", "currency_decimals": 2})


class ApiError(Exception):
    """A request the API refuses: becomes a JSON answer with this status and code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def json_answer(payload: object, status: int = 200) -> HttpAnswer:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return HttpAnswer(status, JSON, body, (("Cache-Control", "no-store"),))


def error_answer(error: ApiError) -> HttpAnswer:
    return json_answer({"code": error.code, "message": error.message}, error.status)


# ---------------------------------------------------------------- query parsing (pure)


CREDENTIAL_PARAMETER = "token"


def parse_query(raw_query: str, allowed: frozenset[str]) -> dict[str, str]:
    """Split a query string; unknown or repeated parameters are refused, not ignored.
    `token` is the credential, checked before any handler runs (server/app.py), so skipped."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, strict_parsing=False, max_num_fields=32)
    except ValueError as exc:
        raise bad_request(f"malformed query string: {exc}") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name == CREDENTIAL_PARAMETER:
            continue
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise bad_request(f"unknown parameter {name!r} (known: {known})")
        if name in query:
            raise bad_request(f"parameter {name!r} given twice")
        query[name] = value
    return query


def parse_int(query: dict[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    raw = query.get(name, "")
    if raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise bad_request(f"{name} must be an integer from {low} to {high}, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def parse_time(query: dict[str, str], name: str, end_of_day: bool) -> float | None:
    """Unix seconds, an ISO date (UTC day; `to` includes the whole day) or an ISO datetime."""
    raw = query.get(name, "").strip()
    if raw == "":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
            raise bad_request(f"{name} must be unix seconds, YYYY-MM-DD or an ISO-8601 time")
        return seconds
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise bad_request(f"{name}: {raw!r} is not a calendar date") from None
        if end_of_day:
            day += timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be unix seconds, YYYY-MM-DD or an ISO-8601 time, got {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@dataclass(frozen=True)
class SessionFilters:
    """Validated history filters, in the Storage.list_sessions vocabulary."""

    station_id: int | None = None
    user_id: int | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def storage_kwargs(self) -> dict:
        return {
            "station_id": self.station_id,
            "user_id": self.user_id,
            "since": self.since,
            "until": self.until,
        }


def parse_session_filters(raw_query: str, extra: frozenset[str] = frozenset()) -> SessionFilters:
    """The history filters; `extra` names further parameters the caller reads itself."""
    query = parse_query(raw_query, SESSION_FILTERS | extra)
    filters = SessionFilters(
        station_id=parse_int(query, "station", None, 1, 2**31 - 1),
        user_id=parse_int(query, "user", None, 1, 2**31 - 1),
        since=parse_time(query, "from", end_of_day=False),
        until=parse_time(query, "to", end_of_day=True),
        limit=parse_int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=parse_int(query, "offset", 0, 0, MAX_OFFSET),
    )
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        raise bad_request("from must not be later than to")
    return filters


# ---------------------------------------------------------------- records to JSON (pure)


def session_duration(record, now: float) -> int:
    end = record.ended_at if record.ended_at is not None else now
    return max(0, int(end - record.started_at))


def session_json(record, now: float) -> dict:
    return {
        "id": record.id,
        "station_id": record.station_id,
        "user_id": record.user_id,
        "user_name": record.user_name,
        "card_uid": record.card_uid,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "open": record.ended_at is None,
        "duration": session_duration(record, now),
        "kwh": round(record.kwh, 3),
        "cost": round(record.cost, 2),
        "tariff": record.tariff,
        "end_reason": record.end_reason,
    }


def user_json(user) -> dict:
    return {"id": user.id, "name": user.name}


def card_json(card) -> dict:
    return {"uid": card.uid, "user_id": card.user_id, "user_name": card.user_name, "enabled": card.enabled}


def station_json(station) -> dict:
    return {"id": station.id, "name": station.name, "tariff": station.tariff,
            "protocol": station.protocol, "charge_point_id": station.charge_point_id}


def reading_json(reading) -> dict:
    """`ts` is the reading's place on the session's server-bounded timeline; `charger_ts` what
    the charger claimed; `flag` why it was not billed as claimed (docs/protocol.md)."""
    return {
        "ts": reading.ts,
        "v": reading.v,
        "a": reading.a,
        "w": reading.w,
        "wh": reading.wh,
        "kwh": None if reading.kwh is None else round(reading.kwh, 4),
        "charger_ts": reading.charger_ts,
        "flag": reading.flag,
    }


def rounded_totals(totals: dict) -> dict:
    return {**totals, "kwh": round(totals["kwh"], 3), "cost": round(totals["cost"], 2)}


# ---------------------------------------------------------------- handlers


async def matching_sessions(storage, filters: SessionFilters) -> AsyncIterator[Any]:
    """Every session the filters match (ignoring limit/offset), read in bounded chunks."""
    offset = 0
    while True:
        chunk, total = await storage.list_sessions(
            **filters.storage_kwargs(), limit=SCAN_CHUNK, offset=offset
        )
        for record in chunk:
            yield record
        offset += len(chunk)
        if not chunk or offset >= total:
            return


async def get_index(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    return read_static(ctx, "index.html")


async def get_static(ctx: ApiContext, raw_query: str, name: str) -> HttpAnswer:
    return read_static(ctx, name)


def read_static(ctx: ApiContext, name: str) -> HttpAnswer:
    """A file directly under the static directory; anything else (including `..`) is 404."""
    suffix = Path(name).suffix
    if not _STATIC_NAME.match(name) or suffix not in CONTENT_TYPES:
        raise not_found(f"no such file: {name}")
    path = ctx.static_dir / name
    try:
        body = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise not_found(f"no such file: {name}") from None
    return HttpAnswer(200, CONTENT_TYPES[suffix], body, PAGE_HEADERS)


async def get_stations(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    parse_query(raw_query, frozenset())
    stations = await ctx.storage.list_stations()
    items = []
    for station in stations:
        view = ctx.charger_view(station.id)
        items.append({**station_json(station), "max_power_w": station.max_power_w,
                      "status": view.get("status", "desconectado"), "session": view.get("session")})
    return json_answer({"items": items})


async def require_known_ids(storage, filters: SessionFilters) -> None:
    """A filter naming a station or user that does not exist is a 404, not an empty list."""
    if filters.station_id is not None and await storage.get_station(filters.station_id) is None:
        raise not_found(f"station {filters.station_id} not found")
    if filters.user_id is not None and filters.user_id not in {
            user.id for user in await storage.list_users()}:
        raise not_found(f"user {filters.user_id} not found")


async def get_sessions(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    filters = parse_session_filters(raw_query)
    await require_known_ids(ctx.storage, filters)
    now = ctx.clock()
    page, total = await ctx.storage.list_sessions(
        **filters.storage_kwargs(), limit=filters.limit, offset=filters.offset
    )
    totals = await ctx.storage.session_totals(now, **filters.storage_kwargs())
    return json_answer(
        {
            "items": [session_json(record, now) for record in page],
            "total": total,
            "totals": rounded_totals(totals),
            "limit": filters.limit,
            "offset": filters.offset,
        }
    )


async def get_sessions_csv(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    filters = parse_session_filters(raw_query, extra=frozenset({"tz"}))
    try:
        zone = time_zone(parse_query(raw_query, SESSION_FILTERS | {"tz"}).get("tz"))
    except ValueError as problem:
        raise ApiError(400, "UNKNOWN_TIME_ZONE", str(problem)) from None
    await require_known_ids(ctx.storage, filters)
    now = ctx.clock()
    records = [record async for record in matching_sessions(ctx.storage, filters)]
    body = sessions_to_csv(records, zone).encode("utf-8")
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d-%H%M%S")
    return HttpAnswer(
        200,
        "text/csv; charset=utf-8",
        body,
        (
            ("Content-Disposition", f'attachment; filename="sessions-{stamp}.csv"'),
            ("Cache-Control", "no-store"),
        ),
    )


async def get_settings(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    parse_query(raw_query, frozenset())
    return json_answer(ctx.settings)


async def get_session(ctx: ApiContext, raw_query: str, session_id: str) -> HttpAnswer:
    parse_query(raw_query, frozenset())
    number = parse_path_id(session_id, "session")
    record = await ctx.storage.get_session(number)
    if record is None:
        raise not_found(f"session {number} not found")
    if record.ended_at is None:
        await ctx.storage.flush()  # an open session's newest readings may still be queued
    readings = await ctx.storage.readings(number)
    payload = session_json(record, ctx.clock())
    payload["readings"] = [reading_json(reading) for reading in readings]
    return json_answer(payload)


def parse_path_id(raw: str, what: str) -> int:
    if not re.fullmatch(r"[0-9]{1,12}", raw) or not 1 <= int(raw) <= 2**63 - 1:
        raise not_found(f"{what} {raw!r} not found (ids are positive integers)")
    return int(raw)


async def get_users(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    parse_query(raw_query, frozenset())
    users = await ctx.storage.list_users()
    return json_answer({"items": [user_json(user) for user in users]})


async def get_cards(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    parse_query(raw_query, frozenset())
    cards = await ctx.storage.list_cards()
    return json_answer({"items": [card_json(card) for card in cards]})


async def get_alerts(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    parse_query(raw_query, frozenset())
    alerts = await ctx.storage.list_alerts(unacknowledged_only=True)
    return json_answer({"items": [alert_json(alert) for alert in alerts]})


def alert_json(alert) -> dict:
    return {
        "id": alert.id,
        "station_id": alert.station_id,
        "session_id": alert.session_id,
        "kind": alert.kind,
        "created_at": alert.created_at,
        "detail": alert.detail,
        "acknowledged_at": alert.acknowledged_at,
    }


async def get_metrics(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    if ctx.observability is None:
        raise not_found("metrics are not enabled")
    return HttpAnswer(200, METRICS_CONTENT_TYPE, ctx.observability.render(), (("Cache-Control", "no-store"),))


Handler = Callable[..., Awaitable[HttpAnswer]]

# Exact paths and path prefixes, in the server's HttpRoutes vocabulary (server/http.py).
# /healthz is the server's own route (server/app.py).
EXACT_ROUTES: dict[str, Handler] = {
    "/": get_index,
    "/index.html": get_index,
    "/api/stations": get_stations,
    "/api/sessions": get_sessions,
    "/api/sessions.csv": get_sessions_csv,
    "/api/users": get_users,
    "/api/cards": get_cards,
    "/api/alerts": get_alerts,
    "/api/settings": get_settings,
    "/metrics": get_metrics,
}
PREFIX_ROUTES: dict[str, Handler] = {
    "/static/": get_static,
    "/api/sessions/": get_session,
}


async def answer(ctx: ApiContext, handler: Handler, raw_query: str, *path_params: str) -> HttpAnswer:
    """Run one handler; refusals become 4xx JSON, failures a 500 JSON without a traceback."""
    try:
        return await handler(ctx, raw_query, *path_params)
    except ApiError as error:
        return error_answer(error)
    except Exception:
        log.exception("GET %s failed", handler.__name__)
        return json_answer({"code": "INTERNAL_ERROR", "message": "internal error; see the server log"}, 500)


def charger_view_of(core, clock: Callable[[], float]) -> Callable[[int], dict]:
    """The live `init` description of one charger, from the session core."""

    def view(station_id: int) -> dict:
        if station_id not in core.stations:
            return {"id": station_id, "status": "desconectado", "session": None}
        return core.describe(station_id, clock())

    return view


def register(app) -> ApiContext:
    """Add the dashboard's pages and API to a server.app.App's HTTP routes (before traffic)."""
    from server.http import bytes_response  # the adapter; imported here to keep this module pure

    ctx = ApiContext(
        storage=app.storage,
        charger_view=charger_view_of(app.core, app.clock),
        observability=getattr(app, "observability", None) or attach(app),
        clock=app.clock,
        settings={"currency_symbol": app.config.currency_symbol,
                  "currency_decimals": app.config.currency_decimals},
    )

    def adapt(handler: Handler, prefix: str | None = None):
        async def route(request) -> Any:
            params = (unquote(request.path[len(prefix):]),) if prefix else ()
            result = await answer(ctx, handler, request.query, *params)
            return bytes_response(result.status, result.body, result.content_type, result.headers)

        return route

    for path, handler in EXACT_ROUTES.items():
        app.http_routes.add(path, adapt(handler))
    for prefix, handler in PREFIX_ROUTES.items():
        app.http_routes.add_prefix(prefix, adapt(handler, prefix))
    return ctx
