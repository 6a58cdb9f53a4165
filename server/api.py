"""The dashboard's HTTP side: GET-only JSON API, CSV export, metrics and the static pages.

Routes (all GET; websockets' HTTP side has no request bodies, so changes travel on the WebSocket,
see `server/dashboard_messages.py`):

    /                        the dashboard page (server/static/index.html)
    /static/<file>           the page's CSS and JavaScript modules
    /api/stations            every station with its live status, open session and
                             `offline_auth` (may its charger start listed cards offline)
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
them to the server's HTTP routing table (server/http.py). This module owns the handlers and the
routes only: query parsing is server/query.py, the JSON views server/views.py, the static files
server/static_files.py, answers and refusals server/answers.py.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from server.answers import (
    ApiError,
    HttpAnswer,
    error_answer,
    json_answer,
    not_found,
    server_error_answer,
)
from server.observability import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server.observability import Observability, attach
from server.query import (
    SESSION_FILTERS,
    SessionFilters,
    parse_path_id,
    parse_query,
    parse_session_filters,
)
from server.static_files import STATIC_DIR, read_static
from server.storage.export import export_sessions, time_zone
from server.views import (
    alert_json,
    card_json,
    reading_json,
    rounded_totals,
    session_json,
    station_json,
    user_json,
)
from server.vocabulary import DESCONECTADO

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    """Everything the handlers read.

    `charger_view(station_id)` returns the live description the WebSocket `init` uses for one
    charger: {"id", "status", "session"}; `register` takes it from the session core.
    """

    storage: Any
    charger_view: Callable[[int], dict]
    # a fleet (server/cluster/): every station's live description from the shared state
    live_views: Callable[[], Any] | None = None
    observability: Observability | None = None
    static_dir: Path = STATIC_DIR
    clock: Callable[[], float] = field(default=time.time)
    # what the page reads from /api/settings (server/config.py: CURRENCY_SYMBOL, ...)
    settings: dict = field(default_factory=lambda: {"currency_symbol": "$", "currency_decimals": 2})


# ---------------------------------------------------------------- handlers


async def get_index(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    return read_static(ctx.static_dir, "index.html")


async def get_static(ctx: ApiContext, raw_query: str, name: str) -> HttpAnswer:
    return read_static(ctx.static_dir, name)


async def get_stations(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    """Every station from one storage query (its record carries `offline_auth`) and the live
    status, from the fleet's shared state or the session core, in memory."""
    parse_query(raw_query, frozenset())
    stations = await ctx.storage.list_stations()
    items = []
    live = await ctx.live_views() if ctx.live_views is not None else {}
    for station in stations:
        view = live.get(station.id) or ctx.charger_view(station.id)
        items.append(
            {
                **station_json(station),
                "status": view.get("status", DESCONECTADO),
                "session": view.get("session"),
            }
        )
    return json_answer({"items": items})


async def require_known_ids(storage, filters: SessionFilters) -> None:
    """A filter naming a station or user that does not exist is a 404, not an empty list."""
    if filters.station_id is not None and await storage.get_station(filters.station_id) is None:
        raise not_found(f"station {filters.station_id} not found")
    if filters.user_id is not None and filters.user_id not in {
        user.id for user in await storage.list_users()
    }:
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
    text, _ = await export_sessions(ctx.storage, **filters.storage_kwargs(), zone=zone)
    body = text.encode("utf-8")
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d-%H%M%S")
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


async def get_metrics(ctx: ApiContext, raw_query: str) -> HttpAnswer:
    if ctx.observability is None:
        raise not_found("metrics are not enabled")
    return HttpAnswer(
        200, METRICS_CONTENT_TYPE, ctx.observability.render(), (("Cache-Control", "no-store"),)
    )


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


async def answer(
    ctx: ApiContext, handler: Handler, raw_query: str, *path_params: str
) -> HttpAnswer:
    """Run one handler; refusals become 4xx JSON, failures a 500 JSON without a traceback."""
    try:
        return await handler(ctx, raw_query, *path_params)
    except ApiError as error:
        return error_answer(error)
    except Exception:
        log.exception("GET %s failed", handler.__name__)
        return server_error_answer()


def charger_view_of(core, clock: Callable[[], float]) -> Callable[[int], dict]:
    """The live `init` description of one charger, from the session core."""

    def view(station_id: int) -> dict:
        if station_id not in core.stations:
            return {"id": station_id, "status": DESCONECTADO, "session": None}
        return core.describe(station_id, clock())

    return view


def register(app) -> ApiContext:
    """Add the dashboard's pages and API to a server.app.App's HTTP routes (before traffic)."""
    from server.http import bytes_response  # the adapter; imported here to keep this module pure

    ctx = ApiContext(
        storage=app.storage,
        charger_view=charger_view_of(app.core, app.clock),
        live_views=lambda: app.fleet.views(),
        observability=getattr(app, "observability", None) or attach(app),
        clock=app.clock,
        settings={
            "currency_symbol": app.config.currency_symbol,
            "currency_decimals": app.config.currency_decimals,
        },
    )

    def adapt(handler: Handler, prefix: str | None = None):
        async def route(request) -> Any:
            params = (unquote(request.path[len(prefix) :]),) if prefix else ()
            result = await answer(ctx, handler, request.query, *params)
            return bytes_response(result.status, result.body, result.content_type, result.headers)

        return route

    for path, handler in EXACT_ROUTES.items():
        app.http_routes.add(path, adapt(handler))
    for prefix, handler in PREFIX_ROUTES.items():
        app.http_routes.add_prefix(prefix, adapt(handler, prefix))
    return ctx
