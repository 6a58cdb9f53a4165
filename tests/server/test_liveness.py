"""Liveness: a charger whose link goes silent (WiFi gone, a half-open socket) is shown
`desconectado` to dashboards within 15 s with the default settings; its session stays open.
Real server, real websockets clients, a real TCP proxy that starts to blackhole mid-session."""

import asyncio
import contextlib
import time

from websockets.asyncio.client import connect as ws_connect

from server.config import Config
from tests.live_server import (
    base_url,
    connect,
    publisher,
    receive_type,
    running_server,
    send_json,
    token_for,
)

CARD = "VIRTUAL-1-A4F2E8"
PROMISED_S = 15.0  # docs/protocol.md "Liveness"


class BlackholeProxy:
    """A TCP proxy to `port`; `blackhole()` stops moving bytes either way while keeping both
    sockets open and unread, as when a charger's WiFi drops without a FIN or RST."""

    def __init__(self, port: int):
        self.upstream_port = port
        self.pumps: set[asyncio.Task] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        self.blackhole()
        for writer in self.writers:
            writer.transport.abort()

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self.pumps.add(task)

    @staticmethod
    async def _pump(source, sink):
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()

    def blackhole(self) -> None:
        for task in self.pumps:
            task.cancel()


async def test_a_charger_whose_link_goes_silent_is_shown_desconectado_and_its_session_stays_open(
    tmp_path,
):
    async with running_server(
        tmp_path / "evse.sqlite3", ping_interval=0.5, ping_timeout=0.5
    ) as app:
        url = base_url(app)
        async with BlackholeProxy(app.port) as proxy, connect(url, "client", 1) as dashboard:
            await receive_type(dashboard, "init")
            charger = await _charger_through(proxy, url)
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
            session_id = (await receive_type(charger, "start"))["session_id"]
            await send_json(
                charger,
                {
                    "type": "metrics",
                    "session_id": session_id,
                    "v": 230,
                    "a": 16,
                    "w": 3680,
                    "ts": time.time(),
                    "wh": 1000,
                },
            )
            assert (await receive_type(dashboard, "metrics"))["session_id"] == session_id
            proxy.blackhole()  # the charger answers nothing from now on, and no FIN arrives
            status = await receive_type(dashboard, "status", timeout=30)
            assert status == {"type": "status", "charger_id": 1, "status": "desconectado"}
            assert (await app.storage.get_session(session_id)).ended_at is None  # relay may be on
            assert app.core.open_session_count() == 1
            charger.transport.abort()


async def _charger_through(proxy: BlackholeProxy, url: str):
    """A charger connected through the proxy; its own keepalive off (only the server's counts)."""
    token = token_for(url, "publisher", 1)
    charger = await ws_connect(
        f"ws://127.0.0.1:{proxy.port}/ws?role=publisher&estacionId=1&token={token}",
        compression=None,
        ping_interval=None,
        close_timeout=0.1,
    )
    assert (await receive_type(charger, "connected"))["estacionId"] == "1"
    return charger


async def test_by_default_a_silent_charger_is_dropped_within_15_seconds(tmp_path):
    defaults = Config()
    async with running_server(
        tmp_path / "evse.sqlite3",
        ping_interval=defaults.ping_interval,
        ping_timeout=defaults.ping_timeout,
    ) as app:
        charger = await publisher(base_url(app))
        async with charger:
            connection = app.hub.publishers[1]  # the server's side of this charger's socket
            # worst case: silent right after a pong; the next ping within ping_interval, its pong
            # awaited ping_timeout, then the close frame close_timeout before the TCP drop
            worst = connection.ping_interval + connection.ping_timeout + connection.close_timeout
            assert worst <= PROMISED_S, f"a silent charger may look connected for {worst} s"
            assert worst == defaults.offline_detection_s
