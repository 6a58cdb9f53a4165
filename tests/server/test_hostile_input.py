"""Hostile input, property-based: frames for every role -- malformed and deeply nested JSON, huge
and non-finite numbers, wrong types, unknown types, binary and oversize frames, odd Unicode,
SQL-looking UIDs.

Invariants: no exception escapes a handler; every bad frame gets an `error` (or the documented
close code 1009 when oversize); other stations keep working; no session or reading changes
because of a rejected frame; `PRAGMA integrity_check` stays `ok`.

Split (11,000 cases per run): 6,000 charger frames and 3,200 dashboard frames through the pure
layer (server/protocol.py + server/core.py, what the socket handler runs), and 1,200 charger
frames plus 600 dashboard frames through a real server socket (sync websockets client, the
server's own event loop in a thread), each followed by a marker frame that proves the reply order.
"""

import asyncio
import json
import sqlite3
import threading
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from server import core as c
from server import protocol as p
from server.auth import VIEWER, mint_token
from server.uids import InvalidUid, normalize_uid
from server.vocabulary import Refusal
from tests.live_server import running_server
from tests.server.test_core import Card

NOW = 1_800_000_000.0
CARD = "VIRTUAL-1-A4F2E8"
FRAME_LIMIT = 4096
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))

# ---------------------------------------------------------------- the hostile frames

SQL_UIDS = st.sampled_from(
    [
        "'; DROP TABLE cards;--",
        "1 OR 1=1",
        '" OR ""="',
        "%",
        "_%_",
        "x'--",
        "VIRTUAL-1-A4F2E8' --",
        "04A1B2C3; DELETE FROM sessions",
    ]
)
ODD_TEXT = st.one_of(
    st.text(max_size=30),  # any code point but lone surrogates
    st.sampled_from(
        ["\u202eevil", "\u200b", "\x00", "\ufeff", "Ω" * 40, "🔌⚡", "a\u0301" * 10, "\\ud800"]
    ),
    SQL_UIDS,
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**53 + 1, -1, 0, 1e308, -1e308, 5e-324]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ODD_TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
TYPES = st.one_of(
    st.sampled_from(
        [
            "nfc_scan",
            "metrics",
            "stop",
            "emergency",
            "status",
            "admin_add_user",
            "admin_add_card",
            "admin_set_tariff",
            "admin_set_card_enabled",
            "admin_add_station",
            "admin_ack_alert",
            "init",
            "connected",
            "error",
            "sync_request",
            "",
            "METRICS",
            "metrics ",
        ]
    ),
    ODD_TEXT,
)
FIELDS = [
    "session_id",
    "v",
    "a",
    "w",
    "ts",
    "wh",
    "nfc_uid",
    "state",
    "charger_id",
    "request_id",
    "name",
    "uid",
    "user_id",
    "station_id",
    "tariff",
    "enabled",
    "alert_id",
]
MESSAGE_SHAPED = st.builds(
    lambda kind, fields: json.dumps({"type": kind, **fields}, allow_nan=True, ensure_ascii=False),
    TYPES,
    st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6),
)
RAW_NUMBER_TOKENS = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e999",
        "1" * 400,
        "-0",
        "0x10",
        "1_000",
        "01",
        ".5",
        "+1",
        "1e",
        '"230"',
    ]
)
RAW_NUMBERS = st.builds(
    lambda field, token: (
        '{"type":"metrics","session_id":1,"v":230,"a":10,"w":2300,"ts":1800000000,'
        f'"wh":100,"{field}":{token}}}'
    ),
    st.sampled_from(["session_id", "v", "a", "w", "ts", "wh"]),
    RAW_NUMBER_TOKENS,
)
NESTED = st.builds(
    lambda depth, opener: (opener * depth) + ("]" if opener == "[" else "}") * depth,
    st.integers(30, 1500),
    st.sampled_from(["[", '{"a":']),
)
NESTED_IN_FIELD = st.builds(
    lambda depth: '{"type":"nfc_scan","nfc_uid":' + "[" * depth + "]" * depth + "}",
    st.integers(30, 1500),
)
TRUNCATED = st.builds(
    lambda text, cut: text[: max(1, int(len(text) * cut))], MESSAGE_SHAPED, st.floats(0.05, 0.95)
)
SQL_TAPS = st.builds(lambda uid: json.dumps({"type": "nfc_scan", "nfc_uid": uid}), SQL_UIDS)
TEXT_FRAMES = st.one_of(
    MESSAGE_SHAPED,
    RAW_NUMBERS,
    NESTED,
    NESTED_IN_FIELD,
    TRUNCATED,
    SQL_TAPS,
    st.text(max_size=200),
    st.builds(json.dumps, JSON_VALUES),
)
FRAMES = st.one_of(TEXT_FRAMES, st.binary(max_size=200))


# ---------------------------------------------------------------- the pure layer

PERSISTENCE = (c.CreateSession, c.QueueReading, c.QueueProgress, c.EndSession)


def two_charging_stations() -> c.SessionCore:
    """Station 1 charging session 123 (the target) and station 2 charging session 456 (a bystander)."""
    core = c.SessionCore()
    for station_id, session_id in ((1, 123), (2, 456)):
        core.add_station(station_id, f"Estación {station_id}", 7.0)
        core.publisher_connected(station_id, NOW)
        [create] = core.handle_publisher(
            station_id, c.CardTap(CARD, Card(CARD, 1, "Juan"), 7.0), NOW
        )
        core.session_created(create, session_id)
    return core


def publisher_message(frame):
    """What server/ws.py does with a charger's frame before the core: raises ProtocolError."""
    message = p.parse_publisher_message(p.decode_frame(frame))
    if isinstance(message, p.NfcScan):
        try:
            uid = normalize_uid(message.uid)
        except InvalidUid as problem:
            raise p.ProtocolError(f"nfc_scan.nfc_uid: {problem}") from None
        card = Card(CARD, 1, "Juan") if uid == CARD else None
        return c.CardTap(uid, card, 7.0)
    return message


def check_frame_through_the_core(frame, parse, handle) -> None:
    """parse(frame) -> message or ProtocolError; handle(core, message) -> effects. A rejected
    frame changes no session and stores no reading; the other station is never touched."""
    core = two_charging_stations()
    before, bystander = core.describe(1, NOW + 5), core.describe(2, NOW + 5)
    try:
        message = parse(frame)
    except p.ProtocolError as refusal:
        assert refusal.code == p.INVALID_MESSAGE and refusal.message
        assert core.describe(1, NOW + 5) == before
        return
    effects = handle(core, message)
    errors = [
        e.command for e in effects if isinstance(e, c.Reply) and isinstance(e.command, Refusal)
    ]
    if errors:
        assert not [e for e in effects if isinstance(e, PERSISTENCE)], effects
        assert all(e.code and e.message for e in errors)
    assert core.describe(2, NOW + 5) == bystander


@settings(max_examples=6000, **SETTINGS)
@given(FRAMES)
def test_charger_frames_are_a_message_or_an_error_and_rejections_change_nothing(frame):
    check_frame_through_the_core(
        frame, publisher_message, lambda core, message: core.handle_publisher(1, message, NOW + 5)
    )


@settings(max_examples=3200, **SETTINGS)
@given(FRAMES)
def test_dashboard_frames_are_a_message_or_an_error_and_rejections_change_nothing(frame):
    check_frame_through_the_core(
        frame,
        lambda text: p.parse_client_message(p.decode_frame(text)),
        lambda core, message: core.dashboard_stop(1, message, NOW + 5),
    )


# ---------------------------------------------------------------- a real server socket


class ServerThread:
    """The real server on its own event loop in a thread, so hypothesis drives it synchronously."""

    def __init__(self, db_path):
        self.db_path = db_path
        self.loop = asyncio.new_event_loop()
        self.stopping = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.app = self.run(self._start())
        return self

    async def _start(self):
        self.stopping = asyncio.Event()
        started = asyncio.get_running_loop().create_future()

        async def serve():  # rate limit out of the way: this test is about content, not rate
            async with running_server(self.db_path, rate_limit=1e9, rate_burst=100_000) as app:
                started.set_result(app)
                await self.stopping.wait()

        self.task = asyncio.ensure_future(serve())
        return await started

    def run(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.run(asyncio.wait_for(asyncio.shield(self.task), 30))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def url(self, role, station, token):
        return f"ws://127.0.0.1:{self.app.port}/ws?role={role}&estacionId={station}&token={token}"

    def rows(self):
        with sqlite3.connect(self.db_path) as db:
            return (
                db.execute(
                    "SELECT id, station_id, ended_at, kwh, cost FROM sessions ORDER BY id"
                ).fetchall(),
                db.execute("SELECT COUNT(*) FROM readings").fetchone()[0],
            )


def receive(websocket) -> dict:
    return json.loads(websocket.recv(timeout=10))


MARKER = '{"type":"__marker__"}'


@dataclass
class Link:
    """A reconnecting sync client for one role (an oversize frame closes it with 1009). Its
    receive buffer is unbounded: station 1's charger is not read while the viewer's frames run
    (each viewer reconnect sends it a `sync_request`), and a full buffer would stall its close."""

    server: ServerThread
    role: str
    station: int
    token: str
    websocket = None

    def ensure(self):
        if self.websocket is None:
            self.websocket = sync_connect(
                self.server.url(self.role, self.station, self.token),
                open_timeout=10,
                compression=None,
                max_size=None,
                max_queue=None,
                legacy=True,
            )
            first = receive(self.websocket)["type"]
            assert first in ("connected", "subscribed")
            if first == "subscribed":
                assert receive(self.websocket)["type"] == "init"
        return self.websocket

    def exchange(self, frame) -> list[dict] | int:
        """Send the frame and a marker; the replies before the marker's, or the close code."""
        websocket = self.ensure()
        try:
            websocket.send(frame)
            websocket.send(MARKER)
            replies = []
            while True:
                reply = receive(websocket)
                if reply.get("type") == "error" and "__marker__" in reply.get("message", ""):
                    return replies
                replies.append(reply)
        except ConnectionClosed:
            code = websocket.close_code
            websocket.close()
            self.websocket = None
            return code


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    with ServerThread(tmp_path_factory.mktemp("hostile") / "evse.sqlite3") as server:
        storage = server.app.storage
        server.run(storage.add_station("Bystander", 7.0, station_id=2))
        secret = server.app.auth.secret
        chargers = {}
        for station in (1, 2):  # both charging, so there is a session to protect on each
            charger = Link(
                server,
                "publisher",
                station,
                mint_token(secret, f"s{station}", "station", [station]),
            )
            charger.ensure().send(json.dumps({"type": "nfc_scan", "nfc_uid": CARD}))
            while (reply := receive(charger.websocket))["type"] != "start":
                pass
            chargers[station] = (charger, reply["session_id"])
        bystander_dashboard = Link(server, "client", 2, mint_token(secret, "watcher", VIEWER))
        bystander_dashboard.ensure()
        server.run(storage.flush())
        yield (
            server,
            chargers,
            bystander_dashboard,
            Link(server, "client", 1, mint_token(secret, "viewer", VIEWER)),
        )
        bystander, session_2 = chargers[2]
        # the bystander station still works: its reading is stored and pushed to its dashboard
        bystander.ensure().send(
            json.dumps(
                {
                    "type": "metrics",
                    "session_id": session_2,
                    "v": 230,
                    "a": 10,
                    "w": 2300,
                    "ts": 1_800_000_100,
                }
            )
        )
        while (pushed := receive(bystander_dashboard.websocket))["type"] != "metrics":
            pass
        assert pushed["session_id"] == session_2
        for link in (bystander, chargers[1][0], bystander_dashboard):
            if link.websocket is not None:  # None: its last frame was oversize and closed it (1009)
                link.websocket.close()
        server.run(storage.flush())
        with sqlite3.connect(server.db_path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def refused_by_protocol(frame) -> bool:
    if len(frame) > FRAME_LIMIT:
        return True
    try:
        publisher_message(frame)
    except p.ProtocolError:
        return True
    return False


OVERSIZE = st.builds(
    lambda n: '{"type":"nfc_scan","nfc_uid":"' + "A" * n + '"}', st.integers(4100, 20_000)
)


def check_answer(answer, frame, server, before):
    if len(frame) > FRAME_LIMIT:
        assert answer == 1009, (answer, frame[:80])
    else:
        assert isinstance(answer, list), (answer, frame[:200])
        errors = [
            reply for reply in answer if reply["type"] == "error"
        ]  # a dashboard also gets pushes
        assert errors, (answer, frame[:200])
        assert all(
            reply["code"] and reply["message"] and "Traceback" not in reply["message"]
            for reply in errors
        )
    server.run(server.app.storage.flush())
    assert server.rows() == before  # no session or reading changed


@settings(max_examples=1200, **SETTINGS)
@given(frame=st.one_of(FRAMES, OVERSIZE))
def test_refused_charger_frames_through_a_real_socket_get_an_error_and_change_nothing(
    hostile_server, frame
):
    server, chargers, _, _ = hostile_server
    assume(refused_by_protocol(frame))
    before = server.rows()
    check_answer(chargers[1][0].exchange(frame), frame, server, before)


@settings(max_examples=600, **SETTINGS)
@given(frame=st.one_of(FRAMES, OVERSIZE))
def test_viewer_dashboard_frames_through_a_real_socket_get_an_error_and_change_nothing(
    hostile_server, frame
):
    server, _, _, viewer = hostile_server
    before = server.rows()
    check_answer(viewer.exchange(frame), frame, server, before)
