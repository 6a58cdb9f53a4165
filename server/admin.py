"""`python -m server.admin`: command-line administration of stations, users, cards, sessions,
firmware updates (`firmware update` asks the running server over its WebSocket, as an admin
dashboard does), backups and credentials (station keys, dashboard tokens; see docs/security.md), through the same Storage class the server uses (safe while the server runs).

The database comes from the server's own configuration (`--db`, else DATABASE_URL for
PostgreSQL or DB_PATH from the environment or `.env`, else data/evse.sqlite3). Every number has bounds (ids up to 2^31-1, a
tariff up to MAX_TARIFF per kWh, --limit up to 1000, --days up to 3650). Every mistake
(unknown id anywhere: a station, user or card named by a command, a filter or a token's
--stations; a duplicate card; a malformed number) ends with ONE line on stderr and exit
status 1 (2 for bad usage), never a traceback, and changes nothing.
"""

import argparse
import asyncio
import math
import sqlite3
import sys
from pathlib import Path

import asyncpg

from server.auth import (
    DASHBOARD_ROLES,
    DEFAULT_TOKEN_DAYS,
    STATION,
    load_or_create_secret,
    mint_token,
)
from server.config import ConfigError, load_config
from server.energy import DEFAULT_MAX_POWER_W, MAX_POWER_CAP_W
from server.keys import hash_station_key, new_station_key
from server.storage import MAX_PAGE, NotFound, StorageError, open_storage
from server.storage.export import export_sessions, iso_utc, time_zone
from server.storage.values import MAX_TARIFF, check_max_power
from server.uids import normalize_uid


class UsageError(Exception):
    """Bad command-line usage; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see --help)")


MAX_ID = 2**31 - 1  # as the HTTP API and the chargers' estacionId


def _whole(high: int):
    def parse(text: str) -> int:
        if not text.strip().isdecimal() or not 1 <= int(text) <= high:  # isdigit() takes "²"
            raise argparse.ArgumentTypeError(
                f"expected a positive whole number up to {high}, got {text!r}"
            )
        return int(text)

    return parse


_positive_int = _whole(MAX_ID)


def _tariff(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a price per kWh, got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_TARIFF:
        raise argparse.ArgumentTypeError(
            f"a tariff must be a finite number >= 0 and at most "
            f"{MAX_TARIFF:g} per kWh, got {text!r}"
        )
    return value


def _zone(text: str):
    try:
        return time_zone(text)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _max_power(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a power in watts, got {text!r}") from None
    try:
        return check_max_power(value)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(f"{problem}") from None


def _uid(text: str) -> str:
    try:
        return normalize_uid(text)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(f"{problem}, got {text!r}") from None


def _subject(text: str) -> str:
    if not text.strip() or len(text) > 100 or any(ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError(f"expected a short printable name, got {text!r}")
    return text.strip()


def _station_list(text: str) -> list[int]:
    """ "1,3,5-8" -> [1, 3, 5, 6, 7, 8]"""
    stations = []
    for part in text.split(","):
        low, dash, high = part.partition("-")
        first, last = _positive_int(low), _positive_int(high) if dash else None
        if last is not None and not first <= last <= first + 10_000:
            raise argparse.ArgumentTypeError(f"bad station range {part!r}")
        stations += list(range(first, (last or first) + 1))
    return stations


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= 3650:
        raise argparse.ArgumentTypeError(f"days must be more than 0 and at most 3650, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m server.admin", description="Administer the EV charger database."
    )
    parser.add_argument(
        "--db",
        help="SQLite file (default: DB_PATH from the environment or .env, else data/evse.sqlite3)",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    stations = groups.add_parser("stations", help="list, add stations, set tariffs and max power")
    actions = stations.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the stations")
    add = actions.add_parser("add", help="add a station")
    add.add_argument("name")
    add.add_argument("--tariff", type=_tariff, help="price per kWh (default: DEFAULT_TARIFF)")
    add.add_argument(
        "--id",
        type=_positive_int,
        dest="station_id",
        help="station id (the charger's estacionId); default: the next free one",
    )
    add.add_argument(
        "--max-power",
        type=_max_power,
        dest="max_power_w",
        metavar="W",
        default=DEFAULT_MAX_POWER_W,
        help=f"the most power its charger can deliver, in watts: readings above it are "
        f"not billed (default {DEFAULT_MAX_POWER_W:.0f}, at most {MAX_POWER_CAP_W:.0f})",
    )
    add.add_argument(
        "--ocpp",
        dest="charge_point_id",
        metavar="CP_ID",
        help="an OCPP 1.6J charger with this charge point id: it connects to "
        "/ocpp/CP_ID (docs/ocpp.md); without it the station speaks the seed protocol",
    )
    issue = actions.add_parser(
        "issue-key",
        help="issue (or rotate) the station's charger key; printed once, only its hash is stored",
    )
    issue.add_argument("station_id", type=_positive_int, metavar="ID")
    tariff = actions.add_parser("set-tariff", help="change a station's price per kWh")
    tariff.add_argument("station_id", type=_positive_int, metavar="ID")
    tariff.add_argument("tariff", type=_tariff, metavar="TARIFF")
    power = actions.add_parser(
        "set-max-power",
        help="change a station's max power (W), the limit above which readings are not billed",
    )
    power.add_argument("station_id", type=_positive_int, metavar="ID")
    power.add_argument("max_power_w", type=_max_power, metavar="W")
    offline = actions.add_parser(
        "offline-auth",
        help="allow (on, the default) or forbid (off) starting listed cards while the charger "
        "is offline (seed stations only: an OCPP charger gets no card list)",
    )
    offline.add_argument("station_id", type=_positive_int, metavar="ID")
    offline.add_argument("setting", choices=("on", "off"))

    users = groups.add_parser("users", help="list, add users")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the users")
    actions.add_parser("add", help="add a user").add_argument("name")

    cards = groups.add_parser("cards", help="list, add, enable, disable NFC cards")
    actions = cards.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the cards")
    add = actions.add_parser("add", help="give a user a card")
    add.add_argument("uid", type=_uid, metavar="UID")
    add.add_argument("--user", type=_positive_int, required=True, dest="user_id", metavar="USER_ID")
    for action in ("enable", "disable"):
        actions.add_parser(action, help=f"{action} a card").add_argument(
            "uid", type=_uid, metavar="UID"
        )

    sessions = groups.add_parser("sessions", help="list or export charging sessions")
    actions = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the latest sessions, newest first")
    listing.add_argument("--station", type=_positive_int, dest="station_id")
    listing.add_argument("--limit", type=_whole(MAX_PAGE), default=20)
    export = actions.add_parser("export", help="every session as CSV (UTF-8 with a BOM)")
    export.add_argument("--station", type=_positive_int, dest="station_id")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.add_argument(
        "--tz",
        type=_zone,
        metavar="ZONE",
        help="IANA time zone of started_at/ended_at, e.g. Europe/Madrid (default UTC)",
    )

    tokens = groups.add_parser("tokens", help="issue dashboard tokens (JWT)")
    actions = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = actions.add_parser(
        "issue",
        help="print a signed token: a dashboard's, or a charger's (--role station --stations 1-20)",
    )
    issue.add_argument("--role", choices=(*DASHBOARD_ROLES, STATION), required=True)
    issue.add_argument(
        "--sub", type=_subject, required=True, help="who the token is for (shown in logs)"
    )
    issue.add_argument(
        "--stations",
        type=_station_list,
        help="station ids it may see, e.g. 1,3,5-8 (default: every station; "
        "required for --role station)",
    )
    issue.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_TOKEN_DAYS,
        help=f"validity in days (default {DEFAULT_TOKEN_DAYS:g})",
    )

    firmware = groups.add_parser(
        "firmware",
        help="over-the-air updates: list the bundles, update a charger (README: Updating chargers)",
    )
    actions = firmware.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the bundles in FIRMWARE_DIR and their SHA-256")
    update = actions.add_parser(
        "update", help="ask the running server to update a station's charger"
    )
    update.add_argument("station_id", type=_positive_int, metavar="STATION_ID")
    update.add_argument("version", metavar="VERSION")
    update.add_argument(
        "--server", help="the running server (default ws://127.0.0.1:PORT, wss:// with TLS_CERT)"
    )
    update.add_argument(
        "--wait",
        type=_whole(3600),
        metavar="SECONDS",
        help="wait this long for the charger's outcome (updated, refused, ...)",
    )

    backup = groups.add_parser("backup", help="copy the database, safe while the server runs")
    backup.add_argument("out", type=Path, metavar="OUT")
    return parser


def table(headers: tuple, rows: list[tuple]) -> str:
    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def money(value: float) -> str:
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


async def run(args, config, out) -> None:
    """Carry out one command; raises StorageError/ValueError/OSError for the caller to report."""
    storage = await open_storage(config.storage_target)
    try:
        await COMMANDS[(args.group, getattr(args, "action", None))](storage, args, config, out)
    finally:
        await storage.close()


async def stations_list(storage, args, config, out):
    stations = await storage.list_stations()
    if not stations:
        print("no stations yet (add one with: stations add NAME)", file=out)
        return
    print(
        table(
            ("ID", "NAME", "TARIFF/kWh", "MAX_W", "PROTOCOL"),
            [
                (
                    s.id,
                    s.name,
                    money(s.tariff),
                    f"{s.max_power_w:g}",
                    f"ocpp16 {s.charge_point_id}" if s.charge_point_id else s.protocol,
                )
                for s in stations
            ],
        ),
        file=out,
    )


async def stations_add(storage, args, config, out):
    tariff = config.default_tariff if args.tariff is None else args.tariff
    station = await storage.add_station(
        args.name,
        tariff,
        station_id=args.station_id,
        max_power_w=args.max_power_w,
        charge_point_id=args.charge_point_id,
    )
    ocpp = f", OCPP 1.6J charge point {station.charge_point_id}" if station.charge_point_id else ""
    print(
        f'added station {station.id} "{station.name}" (tariff {money(station.tariff)} per kWh, '
        f"max power {station.max_power_w:g} W{ocpp})",
        file=out,
    )


async def stations_set_tariff(storage, args, config, out):
    await storage.set_tariff(args.station_id, args.tariff)
    print(
        f"station {args.station_id} tariff is now {money(args.tariff)} per kWh "
        "(open sessions keep the tariff they started with)",
        file=out,
    )


async def stations_set_max_power(storage, args, config, out):
    await storage.set_max_power(args.station_id, args.max_power_w)
    print(
        f"station {args.station_id} max power is now {args.max_power_w:g} W (a running server "
        "applies it when the charger next connects)",
        file=out,
    )


async def stations_offline_auth(storage, args, config, out):
    await storage.set_offline_auth(args.station_id, args.setting == "on")
    print(
        f"station {args.station_id} offline starts are now {args.setting} (a running server "
        "pushes the new list to the charger within a minute)",
        file=out,
    )


async def stations_issue_key(storage, args, config, out):
    key = new_station_key()
    await storage.set_station_key_hash(args.station_id, hash_station_key(key))
    print(
        f"station {args.station_id} key (shown once; the previous key no longer works):", file=out
    )
    print(key, file=out)


async def require_stations(storage, station_ids) -> None:
    """Raise NotFound naming the ids (of `station_ids`, None = no filter) not in the database."""
    if station_ids is None:
        return
    known = {station.id for station in await storage.list_stations()}
    unknown = sorted(set(station_ids) - known)
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        raise NotFound(
            f"station{'s' if len(unknown) > 1 else ''} {shown} "
            f"{'do' if len(unknown) > 1 else 'does'} not exist "
            "(see: stations list)"
        )


async def tokens_issue(storage, args, config, out):
    await require_stations(storage, args.stations)
    secret = load_or_create_secret(config.secret_path)
    print(mint_token(secret, args.sub, args.role, args.stations, days=args.days), file=out)


async def users_list(storage, args, config, out):
    users = await storage.list_users()
    if not users:
        print("no users yet (add one with: users add NAME)", file=out)
        return
    print(table(("ID", "NAME"), [(u.id, u.name) for u in users]), file=out)


async def users_add(storage, args, config, out):
    user = await storage.add_user(args.name)
    print(f'added user {user.id} "{user.name}"', file=out)


async def cards_list(storage, args, config, out):
    cards = await storage.list_cards()
    if not cards:
        print("no cards yet (add one with: cards add UID --user USER_ID)", file=out)
        return
    print(
        table(
            ("UID", "USER_ID", "USER", "ENABLED"),
            [(c.uid, c.user_id, c.user_name, "yes" if c.enabled else "no") for c in cards],
        ),
        file=out,
    )


async def cards_add(storage, args, config, out):
    card = await storage.add_card(args.uid, args.user_id)
    print(f'added card {card.uid} for user {card.user_id} "{card.user_name}"', file=out)


async def cards_enable(storage, args, config, out):
    await storage.set_card_enabled(args.uid, args.action == "enable")
    print(f"card {args.uid} {args.action}d", file=out)


async def sessions_list(storage, args, config, out):
    await require_stations(storage, None if args.station_id is None else [args.station_id])
    sessions, total = await storage.list_sessions(station_id=args.station_id, limit=args.limit)
    if not sessions:
        print("no sessions", file=out)
        return
    rows = [
        (
            s.id,
            s.station_id,
            s.user_name,
            s.card_uid,
            iso_utc(s.started_at),
            iso_utc(s.ended_at) or "open",
            f"{s.kwh:.3f}",
            f"{s.cost:.2f}",
            s.end_reason or "",
        )
        for s in sessions
    ]
    print(
        table(("ID", "STATION", "USER", "CARD", "STARTED", "ENDED", "KWH", "COST", "REASON"), rows),
        file=out,
    )
    print(f"{len(sessions)} of {total} sessions", file=out)


async def sessions_export(storage, args, config, out):
    await require_stations(storage, None if args.station_id is None else [args.station_id])
    text, count = await export_sessions(
        storage, station_id=args.station_id, **({"zone": args.tz} if args.tz else {})
    )
    if args.out is None:
        out.write(text)
        return
    args.out.write_text(text, encoding="utf-8", newline="")
    print(f"wrote {count} sessions to {args.out}", file=out)


async def backup(storage, args, config, out):
    await storage.backup(args.out)
    _, total = await storage.list_sessions(limit=0)
    print(f"backed up {config.storage_name} to {args.out} ({total} sessions)", file=out)


async def firmware_list(storage, args, config, out):
    from server.firmware import Bundles

    bundles = sorted(Bundles(config.firmware_path).scan().values(), key=lambda b: b.version)
    if not bundles:
        print(
            f"no bundles in {config.firmware_path} (make firmware-bundle, then copy "
            "firmware-build/bundle-VERSION.bin there)",
            file=out,
        )
        return
    print(
        table(
            ("VERSION", "BYTES", "SHA256", "FILE"),
            [(b.version, b.size, b.sha256, b.path.name) for b in bundles],
        ),
        file=out,
    )


async def firmware_update(storage, args, config, out):
    """An admin dashboard's `admin_update_firmware`, over the running server's WebSocket."""
    import json
    import ssl

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, WebSocketException

    from server.auth import ADMIN

    await require_stations(storage, [args.station_id])
    server = (args.server or f"{'wss' if config.tls else 'ws'}://127.0.0.1:{config.port}").rstrip(
        "/"
    )
    if not server.startswith(("ws://", "wss://")):
        raise ValueError(f"--server {server!r}: expected ws://HOST:PORT or wss://HOST:PORT")
    token = mint_token(load_or_create_secret(config.secret_path), "server.admin", ADMIN, days=1)
    context = None
    if server.startswith("wss://"):  # the server's own certificate, often self-signed
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    url = f"{server}/ws?role=client&estacionId={args.station_id}&token={token}"
    try:
        async with asyncio.timeout(10 + (args.wait or 0)):
            async with connect(url, ssl=context, compression=None, open_timeout=10) as ws:
                await ws.send(
                    json.dumps(
                        {
                            "type": "admin_update_firmware",
                            "station_id": args.station_id,
                            "version": args.version,
                            "request_id": 1,
                        }
                    )
                )
                while True:
                    reply = json.loads(await ws.recv())
                    if reply.get("request_id") == 1:
                        break
                if reply.get("type") == "error":
                    raise ValueError(f"{reply.get('code')}: {reply.get('message')}")
                print(
                    f"station {args.station_id}: firmware {args.version} requested (the charger "
                    "installs it when idle)",
                    file=out,
                )
                while args.wait:
                    push = json.loads(await ws.recv())
                    update = push.get("update") or {}
                    if (
                        push.get("type") == "firmware"
                        and update.get("version") == args.version
                        and update.get("result") not in ("requested", "installing")
                    ):
                        code = f" ({update['code']})" if update.get("code") else ""
                        print(
                            f"station {args.station_id}: {update['result']}{code}; running "
                            f"{push.get('fw')}",
                            file=out,
                        )
                        if update["result"] != "updated":
                            raise ValueError(f"the update did not happen: {update['result']}{code}")
                        return
    except TimeoutError:
        if not args.wait:
            raise ValueError(f"the server at {server} did not answer within 10 s") from None
        raise ValueError(
            f"no outcome from station {args.station_id} within {args.wait} s "
            "(it may still be charging: the update waits for the session's end)"
        ) from None
    except (OSError, InvalidHandshake, WebSocketException) as problem:
        raise ValueError(f"cannot reach the server at {server}: {problem}") from None


COMMANDS = {
    ("firmware", "list"): firmware_list,
    ("firmware", "update"): firmware_update,
    ("stations", "list"): stations_list,
    ("stations", "add"): stations_add,
    ("stations", "set-tariff"): stations_set_tariff,
    ("stations", "issue-key"): stations_issue_key,
    ("stations", "set-max-power"): stations_set_max_power,
    ("stations", "offline-auth"): stations_offline_auth,
    ("tokens", "issue"): tokens_issue,
    ("users", "list"): users_list,
    ("users", "add"): users_add,
    ("cards", "list"): cards_list,
    ("cards", "add"): cards_add,
    ("cards", "enable"): cards_enable,
    ("cards", "disable"): cards_enable,
    ("sessions", "list"): sessions_list,
    ("sessions", "export"): sessions_export,
    ("backup", None): backup,
}


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        config = load_config(["--db", args.db] if args.db else [])
    except UsageError as problem:
        print(problem, file=sys.stderr)
        return 2
    except ConfigError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args, config, sys.stdout))
    except (sqlite3.Error, asyncpg.PostgresError) as problem:
        print(f"error: database {config.storage_name}: {problem}", file=sys.stderr)
        return 1
    except (StorageError, ValueError, OSError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
