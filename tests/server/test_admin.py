"""`python -m server.admin`, run as a person would: a real subprocess on a real SQLite file."""

import csv
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from server.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "evse.sqlite3"


@pytest.fixture
def admin(tmp_path, db):
    """Run the CLI from an empty directory (no .env) against `db`; return the finished process."""

    def run(*args, use_db=True, env=None):
        environ = {k: v for k, v in os.environ.items() if k not in ("DB_PATH", "DEFAULT_TARIFF")}
        environ.update(PYTHONPATH=str(ROOT), **(env or {}))
        command = [sys.executable, "-m", "server.admin"] + (["--db", str(db)] if use_db else [])
        return subprocess.run(
            command + [str(a) for a in args],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def ok(process) -> str:
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    return process.stdout


async def seeded_sessions(db):
    """Two stations, one user, one ended and one open session (written as the server would)."""
    storage = await open_storage(db)
    try:
        await storage.add_station("Estación 1", 7.0, station_id=1)
        await storage.add_station("Estación 2", 7.0, station_id=2)
        user = await storage.add_user("Juan Pérez")
        await storage.add_card("VIRTUAL-1-A4F2E8", user.id)
        first = await storage.create_session(
            1, user.id, "VIRTUAL-1-A4F2E8", 1_767_225_600.0, 7.0, {}
        )
        await storage.end_session(first, 1_767_225_600.0 + 1800, 3.12, 21.84, "local_stop", {})
        second = await storage.create_session(
            2, user.id, "VIRTUAL-1-A4F2E8", 1_767_229_200.0, 7.0, {}
        )
        storage.queue_progress(second, 2.45, 17.15, {})
    finally:
        await storage.close()
    return first, second


def test_stations_are_added_listed_and_repriced(admin):
    assert "no stations yet" in ok(admin("stations", "list"))
    assert ok(admin("stations", "add", "Estación 1")) == (
        'added station 1 "Estación 1" (tariff 7.00 per kWh, max power 22000 W)\n'
    )
    assert ok(
        admin("stations", "add", "Garage", "--tariff", "6.5", "--id", "7", "--max-power", "7400")
    ) == ('added station 7 "Garage" (tariff 6.50 per kWh, max power 7400 W)\n')
    assert "station 7 tariff is now 8.25 per kWh" in ok(admin("stations", "set-tariff", 7, 8.25))
    assert "station 1 max power is now 11000 W" in ok(admin("stations", "set-max-power", 1, 11000))
    assert ok(admin("stations", "list")).splitlines() == [
        "ID  NAME        TARIFF/kWh  MAX_W  PROTOCOL",
        "1   Estación 1  7.00        11000  seed",
        "7   Garage      8.25        7400   seed",
    ]


async def test_an_ocpp_station_is_added_with_its_charge_point_id_and_found_by_it(admin, db):
    assert ok(admin("stations", "add", "Wallbox", "--ocpp", "CP-0042")) == (
        'added station 1 "Wallbox" (tariff 7.00 per kWh, max power 22000 W, '
        "OCPP 1.6J charge point CP-0042)\n"
    )
    assert ok(admin("stations", "list")).splitlines()[1].split()[-2:] == ["ocpp16", "CP-0042"]
    storage = await open_storage(db)
    try:
        station = await storage.station_by_charge_point("CP-0042")
        assert (station.id, station.protocol, station.charge_point_id) == (1, "ocpp16", "CP-0042")
        assert await storage.station_by_charge_point("CP-0043") is None
    finally:
        await storage.close()
    taken = admin("stations", "add", "Otra", "--ocpp", "CP-0042")
    assert taken.returncode == 1 and "CP-0042" in taken.stderr and "Traceback" not in taken.stderr
    bad = admin("stations", "add", "Mala", "--ocpp", "CP/1:x")
    assert bad.returncode == 1 and "charge point id" in bad.stderr and "Traceback" not in bad.stderr
    assert len(ok(admin("stations", "list")).splitlines()) == 2


def test_the_default_tariff_comes_from_the_server_configuration(admin):
    assert "tariff 5.50 per kWh" in ok(admin("stations", "add", "S", env={"DEFAULT_TARIFF": "5.5"}))


def test_users_and_cards_are_managed_and_uids_normalized_like_the_server_does(admin, db):
    assert ok(admin("users", "add", "Juan Pérez")) == 'added user 1 "Juan Pérez"\n'
    assert ok(admin("users", "list")).splitlines() == ["ID  NAME", "1   Juan Pérez"]
    assert ok(admin("cards", "add", "04:a3:2b:1c", "--user", 1)) == (
        'added card 04A32B1C for user 1 "Juan Pérez"\n'
    )
    assert ok(admin("cards", "disable", "04 A3 2B 1C")) == "card 04A32B1C disabled\n"
    assert ok(admin("cards", "list")).splitlines() == [
        "UID       USER_ID  USER        ENABLED",
        "04A32B1C  1        Juan Pérez  no",
    ]
    assert ok(admin("cards", "enable", "04a32b1c")) == "card 04A32B1C enabled\n"
    assert ok(admin("cards", "list")).splitlines()[1].endswith("yes")


async def test_sessions_are_listed_newest_first_with_open_ones_marked(admin, db):
    first, second = await seeded_sessions(db)
    lines = ok(admin("sessions", "list")).splitlines()
    assert lines[0].split() == [
        "ID",
        "STATION",
        "USER",
        "CARD",
        "STARTED",
        "ENDED",
        "KWH",
        "COST",
        "REASON",
    ]
    assert lines[1].split() == [
        str(second),
        "2",
        "Juan",
        "Pérez",
        "VIRTUAL-1-A4F2E8",
        "2026-01-01T01:00:00Z",
        "open",
        "2.450",
        "17.15",
    ]
    assert lines[2].split() == [
        str(first),
        "1",
        "Juan",
        "Pérez",
        "VIRTUAL-1-A4F2E8",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:30:00Z",
        "3.120",
        "21.84",
        "local_stop",
    ]
    assert lines[3] == "2 of 2 sessions"
    station_1 = ok(admin("sessions", "list", "--station", 1, "--limit", 5)).splitlines()
    assert [line.split()[0] for line in station_1[1:-1]] == [str(first)]
    assert station_1[-1] == "1 of 1 sessions"


async def test_sessions_export_as_csv_to_stdout_or_a_file(admin, db, tmp_path):
    first, second = await seeded_sessions(db)
    text = ok(admin("sessions", "export"))
    assert text.startswith("\ufeff")  # the BOM: a spreadsheet reads "Pérez" as UTF-8
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert [int(r["session_id"]) for r in rows] == [second, first]
    assert rows[1] == {
        "session_id": str(first),
        "station_id": "1",
        "user": "Juan Pérez",
        "card_uid": "VIRTUAL-1-A4F2E8",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:30:00+00:00",
        "duration_s": "1800",
        "duration": "0:30:00",
        "kwh": "3.120",
        "cost": "21.84",
        "tariff": "7.0",
        "end_reason": "local_stop",
    }
    assert (
        rows[0]["ended_at"],
        rows[0]["duration_s"],
        rows[0]["duration"],
        rows[0]["end_reason"],
    ) == ("", "", "", "")
    out = tmp_path / "sessions.csv"
    assert ok(admin("sessions", "export", "--out", out)) == f"wrote 2 sessions to {out}\n"
    assert out.read_bytes().startswith(b"\xef\xbb\xbfsession_id,station_id,user,card_uid,")


async def test_sessions_export_writes_times_in_the_zone_asked_for(admin, db):
    _first, _ = await seeded_sessions(db)
    text = ok(
        admin("sessions", "export", "--station", "1", "--tz", "America/Argentina/Buenos_Aires")
    )
    [row] = list(csv.DictReader(io.StringIO(text[1:])))
    # 2026-01-01T00:00:00Z is 21:00 the day before in Buenos Aires (UTC-3)
    assert (row["started_at"], row["ended_at"], row["duration"]) == (
        "2025-12-31T21:00:00-03:00",
        "2025-12-31T21:30:00-03:00",
        "0:30:00",
    )


async def test_backup_while_the_database_is_in_use_opens_and_has_the_sessions(admin, db, tmp_path):
    first, second = await seeded_sessions(db)
    running = await open_storage(db)  # the server holds the database open meanwhile
    try:
        out = tmp_path / "backups" / "evse-backup.sqlite3"
        out.parent.mkdir()
        assert ok(admin("backup", out)) == f"backed up {db} to {out} (2 sessions)\n"
    finally:
        await running.close()
    with sqlite3.connect(out) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    restored = await open_storage(out)
    try:
        sessions, total = await restored.list_sessions()
        assert total == 2
        assert {s.id: s.kwh for s in sessions} == {first: 3.12, second: 2.45}
    finally:
        await restored.close()
    assert not list(out.parent.glob("*.partial"))


def test_without_db_the_path_comes_from_db_path(admin, tmp_path):
    target = tmp_path / "elsewhere" / "x.sqlite3"
    ok(admin("users", "add", "Ana", use_db=False, env={"DB_PATH": str(target)}))
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("Ana",)]


@pytest.mark.parametrize(
    "args, message",
    [
        (["stations", "add", "Dup", "--id", "1"], "station 1 already exists"),
        (["stations", "set-tariff", "9", "1"], "station 9 does not exist"),
        (["stations", "set-tariff", "1", "-1"], "tariff must be a finite number >= 0"),
        (["stations", "set-tariff", "1", "nan"], "tariff must be a finite number >= 0"),
        (["stations", "set-tariff", "1", "cheap"], "expected a price per kWh"),
        (["stations", "set-tariff", "one", "1"], "expected a positive whole number"),
        (["stations", "add", "S", "--tariff", "inf"], "tariff must be a finite number >= 0"),
        (["stations", "add", "S", "--id", "0"], "expected a positive whole number"),
        (["stations", "add", "   "], "station name must not be empty"),
        (["users", "add", ""], "user name must not be empty"),
        (
            ["cards", "add", "VIRTUAL-1-A4F2E8", "--user", "1"],
            "card VIRTUAL-1-A4F2E8 already exists",
        ),
        (["cards", "add", "04A32B1C", "--user", "99"], "user 99 does not exist"),
        (["cards", "add", "04A32B1C"], "--user"),
        (["cards", "add", "not a uid!", "--user", "1"], "nfc_uid must be 1-64 characters"),
        (["cards", "disable", "DEADBEEF"], "card DEADBEEF does not exist"),
        (["sessions", "list", "--limit", "-3"], "expected a positive whole number"),
        # issue 11: bounds on every number, unknown ids are errors everywhere
        (["stations", "set-tariff", "1", "1e308"], "at most 10000 per kWh"),
        (["stations", "add", "S", "--tariff", "10000.01"], "at most 10000 per kWh"),
        (["stations", "add", "S", "--id", "99999999999999999999"], "up to 2147483647"),
        (["sessions", "list", "--station", "99"], "station 99 does not exist"),
        (["sessions", "list", "--limit", "1000000"], "up to 1000"),
        (["sessions", "export", "--station", "99"], "station 99 does not exist"),
        (["sessions", "export", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (
            ["tokens", "issue", "--role", "viewer", "--sub", "ana", "--stations", "1,99"],
            "station 99 does not exist",
        ),
        (
            ["tokens", "issue", "--role", "station", "--sub", "sim", "--stations", "1-20"],
            "stations 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, ... do not exist",
        ),
        (["stations", "issue-key", "99"], "station 99 does not exist"),
        (["backup", "/nonexistent/dir/copy.sqlite3"], "cannot write the backup"),
        (["stations"], "required"),
        (["stations", "set-max-power", "1", "50001"], "at most 50000"),
        (["stations", "set-max-power", "1", "0"], "above 0"),
        (["stations", "set-max-power", "1", "lots"], "expected a power in watts"),
        (["stations", "set-max-power", "9", "7400"], "station 9 does not exist"),
        (["stations", "add", "X", "--max-power", "nan"], "at most 50000"),
        (["stations", "offline-auth", "9", "off"], "station 9 does not exist"),
        (["stations", "offline-auth", "1", "maybe"], "invalid choice"),
        (["fly"], "invalid choice"),
        ([], "required"),
    ],
)
async def test_mistakes_give_one_clear_line_and_a_failure_status(admin, db, args, message):
    await seeded_sessions(db)
    process = admin(*args)
    assert process.returncode != 0
    assert process.stdout == ""
    assert len(process.stderr.splitlines()) == 1, process.stderr
    assert message in process.stderr
    assert "Traceback" not in process.stderr


async def test_a_backup_onto_the_database_itself_is_refused(admin, db):
    await seeded_sessions(db)
    process = admin("backup", db)
    assert process.returncode == 1
    assert process.stderr == "error: the backup file must not be the database itself\n"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchall() == [(2,)]


def test_a_file_that_is_not_a_database_gives_one_clear_line_and_is_left_alone(admin, db):
    db.write_text("not a database")
    process = admin("stations", "list")
    assert process.returncode == 1
    assert process.stderr == f"error: database {db}: file is not a database\n"
    assert db.read_text() == "not a database"


def test_an_unusable_database_path_gives_one_clear_line(admin, tmp_path):
    process = admin("stations", "list", use_db=False, env={"DB_PATH": str(tmp_path)})
    assert process.returncode != 0
    assert process.stderr.splitlines() == [
        f"error: invalid DB_PATH={str(tmp_path)!r}: is a directory, expected a file"
    ]


async def test_issue_key_prints_a_key_once_stores_only_its_hash_and_rotation_retires_the_old_one(
    admin, db
):
    from server.keys import station_key_matches

    ok(admin("stations", "add", "Garage", "--id", "2"))
    first = ok(admin("stations", "issue-key", "2")).splitlines()[-1]
    second = ok(admin("stations", "issue-key", "2")).splitlines()[-1]
    assert len(first) >= 43 and first != second  # 32 random bytes, url-safe
    with sqlite3.connect(db) as database:
        [(stored,)] = database.execute("SELECT key_hash FROM stations WHERE id = 2").fetchall()
    assert first not in stored and second not in stored
    assert station_key_matches(second, stored) and not station_key_matches(first, stored)
    failed = admin("stations", "issue-key", "9")
    assert failed.returncode == 1 and failed.stderr.strip() == "error: station 9 does not exist"


def test_tokens_issue_prints_a_token_the_server_accepts_for_that_role_and_stations(
    admin, db, tmp_path
):
    from server.auth import decode_token, load_or_create_secret

    for station in (1, 2, 3, 7):  # a token names stations that exist (issue 11)
        ok(admin("stations", "add", f"S{station}", "--id", station))
    token = ok(
        admin("tokens", "issue", "--role", "operator", "--sub", "ana", "--stations", "1,3")
    ).strip()
    secret_file = tmp_path / "secret.key"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    principal = decode_token(load_or_create_secret(secret_file), token)
    assert (principal.sub, principal.role, principal.stations) == (
        "ana",
        "operator",
        frozenset({1, 3}),
    )
    fleet = ok(
        admin("tokens", "issue", "--role", "station", "--sub", "sim", "--stations", "1-3,7")
    ).strip()
    assert decode_token(load_or_create_secret(secret_file), fleet).stations == frozenset(
        {1, 2, 3, 7}
    )
    unbound = admin("tokens", "issue", "--role", "station", "--sub", "sim")
    assert (
        unbound.returncode == 1
        and unbound.stderr.strip() == "error: a station token must name its station(s)"
    )
    for args in (
        ["--role", "root", "--sub", "x"],
        ["--role", "admin", "--sub", "x", "--stations", "5-2"],
        ["--role", "admin", "--sub", "x", "--days", "0"],
        ["--role", "admin", "--sub", "x", "--stations", "1,a"],
    ):
        refused = admin("tokens", "issue", *args)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


async def test_on_postgres_the_cli_administers_and_backs_up_with_pg_dump(
    admin, tmp_path, postgres_server
):
    url = postgres_server.create_database(f"admin{os.getpid()}")
    env = {"DATABASE_URL": url}
    first, second = await seeded_sessions(url)
    assert (
        ok(admin("stations", "add", "Garage", "--tariff", "6.5", use_db=False, env=env))
        == 'added station 3 "Garage" (tariff 6.50 per kWh, max power 22000 W)\n'
    )
    out = tmp_path / "evse.pgdump"
    assert ok(admin("backup", out, use_db=False, env=env)) == (
        f"backed up {url} to {out} (2 sessions)\n"
    )
    restored_url = postgres_server.create_database(f"restored{os.getpid()}")
    subprocess.run(
        ["pg_restore", "--no-owner", "--dbname", restored_url, str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    restored = await open_storage(restored_url)
    try:
        sessions, total = await restored.list_sessions()
        assert total == 2 and {s.id: s.kwh for s in sessions} == {first: 3.12, second: 2.45}
        assert [s.name for s in await restored.list_stations()] == [
            "Estación 1",
            "Estación 2",
            "Garage",
        ]
    finally:
        await restored.close()
    assert not list(tmp_path.glob("*.partial"))


async def test_offline_starts_are_turned_off_and_on_per_station(admin, db):
    await seeded_sessions(db)
    assert "station 2 offline starts are now off" in ok(admin("stations", "offline-auth", 2, "off"))
    storage = await open_storage(db)
    try:
        assert await storage.offline_auth(1) is True and await storage.offline_auth(2) is False
    finally:
        await storage.close()
    ok(admin("stations", "offline-auth", 2, "on"))
    storage = await open_storage(db)
    try:
        assert await storage.offline_auth(2) is True
    finally:
        await storage.close()


async def test_an_ocpp_station_s_offline_setting_is_refused_with_why(admin, db):
    """An OCPP charger gets no card list: turning its offline starts off would change nothing,
    so the command says so (one line, status 1) instead of claiming it did."""
    await seeded_sessions(db)
    ok(admin("stations", "add", "Wallbox", "--id", 3, "--ocpp", "CP-0042"))
    for setting in ("off", "on"):
        process = admin("stations", "offline-auth", 3, setting)
        assert (process.returncode, process.stdout) == (1, "")
        assert process.stderr == (
            "error: station 3 is an OCPP 1.6J station (charge point CP-0042): offline "
            "authorization applies only to seed chargers, which get the signed card list\n"
        )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT offline_auth FROM stations WHERE id = 3").fetchall() == [(1,)]
