"""Wiring: open Storage, load the session core, serve WebSocket + HTTP on one port, shut down.

`App.start(config)` returns a running server (port 0 picks a free port, see `App.port`);
`await app.stop()` closes every WebSocket with 1001, waits for the handlers and flushes
Storage. Other modules extend a running App before traffic arrives:
`app.http_routes.add(path, handler)` for HTTP GET pages and APIs, and
`app.client_handlers[type] = async handler(app, connection, station_id, data)` for extra
dashboard message types.
"""

from __future__ import annotations

import collections
import logging
import time

from websockets.asyncio.server import serve

from server import api, dashboard_messages
from server.config import Config
from server.core import SessionCore
from server.http import HttpRoutes, json_response
from server.hub import Hub
from server.observability import note_message
from server.storage import Storage
from server.storage.demo import seed_demo
from server.ws import ConnectionHandler, is_token_valid

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024  # the largest protocol message is a few hundred bytes
MAX_CLOSE_TIMEOUT = 5.0


class App:
    def __init__(self, config: Config, storage: Storage, token_check=is_token_valid, clock=time.time):
        self.config = config
        self.storage = storage
        self.token_check = token_check
        self.clock = clock
        self.core = SessionCore()
        self.hub = Hub()
        self.http_routes = HttpRoutes()
        self.http_routes.add("/healthz", self._healthz)
        self.client_handlers: dict = {}
        self.counters: collections.Counter = collections.Counter()
        self.handler = ConnectionHandler(self)
        api.register(self)  # dashboard pages, /api/*, /metrics
        dashboard_messages.register(self)  # admin_* messages from dashboards
        self.server = None

    @classmethod
    async def start(cls, config: Config, **options) -> "App":
        storage = await Storage.open(config.db_path)
        try:
            app = cls(config, storage, **options)
            await app._load(demo=config.demo)
            await app._listen()
        except BaseException:
            await storage.close()
            raise
        return app

    async def _load(self, demo: bool) -> None:
        if demo:
            await seed_demo(self.storage)
        for station in await self.storage.list_stations():
            self.core.add_station(station.id, station.name, station.tariff)
        for record in await self.storage.open_sessions():
            self.core.load_open_session(record)
            log.info("resuming session %s on station %s", record.id, record.station_id)

    async def _listen(self) -> None:
        self.server = await serve(
            self.handler,
            self.config.host,
            self.config.port,
            process_request=self.http_routes.process_request,
            compression=None,
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            # a charger that stopped answering pings must not wait 10 s more to be desconectado
            close_timeout=min(MAX_CLOSE_TIMEOUT, self.config.ping_timeout),
            max_size=MAX_FRAME_BYTES,
        )

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Graceful shutdown: close sockets with 1001, let handlers finish, flush storage."""
        if self.server is not None:
            self.server.close()  # 1001 going away
            await self.server.wait_closed()
            await self.handler.wait_background()
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
            },
        )
