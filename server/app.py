"""Wiring: open Storage, load the session core, serve WebSocket + HTTP on one port, shut down.

`App.start(config)` returns a running server (port 0 picks a free port, see `App.port`);
`await app.stop()` closes every WebSocket with 1001, waits for the handlers and flushes
Storage. Other modules extend a running App before traffic arrives:
`app.http_routes.add(path, handler)` for HTTP GET pages and APIs, and
`app.client_handlers[type] = async handler(app, connection, station_id, data)` for extra
dashboard message types, `app.owner_calls[type]` for those another process of a fleet asks
this one to run for a charger served here (server/cluster/fleet.py `forward`).

Security at the door (`_process_request`, before any handler runs): at most MAX_CONNECTIONS
WebSockets (503 beyond), browsers only from the server's own origin or ALLOWED_ORIGINS (403),
the HTTP API and /metrics only with a dashboard token (401/403, server/auth.py), frames above
MAX_FRAME_BYTES closed with 1009 by websockets, HANDSHAKE_TIMEOUT for the opening handshake.
TLS_CERT/TLS_KEY turn on wss/https.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve

from server import api, dashboard_messages, firmware, ocpp_commands
from server.auth import Authenticator, load_or_create_secret
from server.cluster import Solo
from server.config import Config
from server.core import RECENT_SESSIONS, SessionCore
from server.gc_policy import keep_long_lived_objects_frozen
from server.http import WEBSOCKET_PATH, HttpRoutes, json_response
from server.hub import Hub
from server.observability import note_message
from server.ocpp import PATH_PREFIX as OCPP_PATH_PREFIX
from server.ocpp import OcppEndpoint
from server.offline_auth import AuthLists
from server.storage import Storage, open_storage
from server.storage.demo import ensure_demo_key, seed_demo
from server.vocabulary import FORBIDDEN
from server.ws import ConnectionHandler

log = logging.getLogger(__name__)

PROTECTED_HTTP_PREFIXES = ("/api/", "/metrics")


class App:
    def __init__(self, config: Config, storage: Storage, clock=time.time, monotonic=time.monotonic):
        self.config = config
        self.storage = storage
        self.auth = Authenticator(config.auth, load_or_create_secret(config.secret_path), storage)
        self.clock = clock
        self.monotonic = monotonic
        self.demo_key: str | None = None  # the demo station's key when this start created it
        self.core = SessionCore(
            tap_debounce=config.tap_debounce, card_stop_min_age=config.card_stop_min_age
        )
        self.hub = Hub()
        self.auth_lists = AuthLists(self)  # signed offline card lists (server/offline_auth.py)
        self.http_routes = HttpRoutes()
        self.http_routes.add("/healthz", self._healthz)
        self.client_handlers: dict = {}
        # a fleet: calls another process forwards to the one serving the charger (server/cluster/)
        self.owner_calls: dict = {}
        self.counters: collections.Counter = collections.Counter()
        self.handler = ConnectionHandler(self)
        self.ocpp = OcppEndpoint(self)  # OCPP 1.6J chargers at /ocpp/{chargePointId}
        self.effects = self.handler.effects  # server/effects.py: carries out the core's effects
        api.register(self)  # dashboard pages, /api/*, /metrics
        dashboard_messages.register(self)  # admin_* messages from dashboards
        ocpp_commands.register(self)  # remote_start, OCPP configuration: calls to OCPP chargers
        self.firmware = firmware.register(self)  # over-the-air updates: bundles, orders, outcomes
        self.fleet = Solo(self)  # server/cluster/: a fleet of processes when NATS_URL is set
        self.server = None
        self._gc_policy: asyncio.Task | None = None

    @classmethod
    async def start(cls, config: Config, **options) -> App:
        storage = await open_storage(config.storage_target)
        app = None
        try:
            app = cls(config, storage, **options)
            await app._load(demo=config.demo)
            await app._join_fleet()
            await app._listen()
        except BaseException:
            if app is not None:
                await app.fleet.close()
            await storage.close()
            raise
        # after start-up: the loaded state and every connection to come are long-lived
        app._gc_policy = asyncio.create_task(keep_long_lived_objects_frozen(), name="gc-policy")
        app.auth_lists.start()  # re-checks the lists for changes made by server.admin
        return app

    async def _load(self, demo: bool) -> None:
        if not self.config.auth:
            log.warning(
                "AUTH=off: EVERY CONNECTION IS TRUSTED AS ADMIN. Bench use only; never "
                "expose this server to a network"
            )
        if demo:
            await seed_demo(self.storage)
            self.demo_key = await ensure_demo_key(self.storage, self.config.db_path.parent)
        for station in await self.storage.list_stations():
            self.core.add_station(station.id, station.name, station.tariff, station.max_power_w)
        if self.config.nats_url:
            return  # a fleet: a station's state is loaded when its charger connects here (server/cluster/)
        for record in await self.storage.open_sessions():
            self.core.load_open_session(record)
            log.info("resuming session %s on station %s", record.id, record.station_id)
        for station_id, session_ids in (
            await self.storage.recent_closed_sessions(RECENT_SESSIONS)
        ).items():
            self.core.load_recent_sessions(station_id, session_ids)
        for station_id, latched_at in (await self.storage.emergency_latches()).items():
            self.core.load_emergency_latch(station_id)
            log.warning(
                "station %s is latched in emergency since %s UTC: it stays so until its charger "
                "reports the local reset",
                station_id,
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(latched_at)),
            )

    async def _join_fleet(self) -> None:
        if self.config.nats_url:
            from server.cluster.fleet import Fleet  # nats and asyncpg only for a fleet

            self.fleet = await Fleet.start(
                self, self.config.nats_url, self.config.database_url, self.config.server_id
            )

    async def _listen(self) -> None:
        self.server = await serve(
            self.handler,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            select_subprotocol=self.ocpp.select_subprotocol,
            compression=None,
            ssl=self._tls_context(),
            open_timeout=self.config.handshake_timeout,
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            # a charger that stopped answering pings must not wait 10 s more to be desconectado
            close_timeout=self.config.close_timeout,
            max_size=self.config.max_frame_bytes,
        )

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.config.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    async def _process_request(self, connection, request):
        """The door: connection cap, Origin allowlist, dashboard token for the HTTP API."""
        url = urlsplit(request.path)
        if url.path == WEBSOCKET_PATH or url.path.startswith(OCPP_PATH_PREFIX):
            if len(self.server.connections) >= self.config.max_connections:
                log.warning(
                    "refused a connection: MAX_CONNECTIONS=%s reached", self.config.max_connections
                )
                return json_response(
                    503, {"code": "TOO_MANY_CONNECTIONS", "message": "server is full; retry later"}
                )
            origin = request.headers.get("Origin")
            if origin is not None and not self._origin_allowed(
                origin, request.headers.get("Host", "")
            ):
                log.warning("refused a WebSocket from origin %r", origin[:100])
                return json_response(
                    403, {"code": "FORBIDDEN_ORIGIN", "message": "origin not allowed"}
                )
            if url.path != WEBSOCKET_PATH:
                return await self.ocpp.admit(connection, request)
        elif url.path.startswith(PROTECTED_HTTP_PREFIXES):
            token = (parse_qs(url.query).get("token") or [None])[0]
            principal = self.auth.http_principal(request.headers, token)
            if principal is None:
                return json_response(
                    401, {"code": "UNAUTHORIZED", "message": "a valid dashboard token is required"}
                )
            if principal.stations is not None:
                log.warning(
                    "FORBIDDEN: %s (%s) tried GET %s", principal.sub, principal.role, url.path
                )
                return json_response(
                    403, {"code": FORBIDDEN, "message": "this token is limited to some stations"}
                )
        return await self.http_routes.process_request(connection, request)

    def _origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        own = f"{'https' if self.config.tls else 'http'}://{host}".lower()
        return origin == own or origin in (o.lower() for o in self.config.allowed_origins)

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Graceful shutdown: close sockets with 1001, let handlers finish, flush storage."""
        if self._gc_policy is not None:
            self._gc_policy.cancel()
            await asyncio.gather(self._gc_policy, return_exceptions=True)
        await self.auth_lists.stop()
        if self.server is not None:
            self.server.close()  # 1001 going away
            await self.server.wait_closed()
            await self.handler.wait_background()
        await self.fleet.close()
        await self.storage.close()

    # --- observability hooks (counted here; exported by whoever serves /metrics) ---------------
    def note_error(self, code: str | None) -> None:
        self.counters[f"error:{code}"] += 1

    def note_message(self, role: str, message_type) -> None:
        note_message(self.counters, role, message_type)

    def note_reading(self) -> None:
        self.counters["readings"] += 1

    def _healthz(self, request):
        return json_response(
            200,
            {
                "ok": True,
                "chargers_connected": self.core.connected_count(),
                "open_sessions": self.core.open_session_count(),
                **self.fleet.health(),
            },
        )
