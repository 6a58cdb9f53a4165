"""Migrations, pragmas and integrity of the database, on each backend: SQLite's user_version,
WAL and integrity check; PostgreSQL's schema_migrations under an advisory lock, so several
processes opening a fresh database at once migrate it once."""

import asyncio
from pathlib import Path

import pytest

from server.storage import NotFound, SchemaError, open_storage
from server.storage.postgres.migrate import MIGRATIONS_DIR as PG_MIGRATIONS
from server.storage.postgres.migrate import postgres_migrations
from server.storage.schema import load_migrations
from server.storage.sqlite.migrate import MIGRATIONS_DIR as SQLITE_MIGRATIONS
from server.storage.sqlite.migrate import sqlite_migrations

from .conftest import outside, reading

TABLES = {"stations", "users", "cards", "sessions", "readings", "alerts"}
VERSION = len(sqlite_migrations())


def schema_version_sql(target) -> str:
    if isinstance(target, Path):
        return "PRAGMA user_version"
    return "SELECT coalesce(max(version), 0) FROM schema_migrations"


async def tables(target) -> set[str]:
    if isinstance(target, Path):
        rows = await outside(target, "SELECT name FROM sqlite_master WHERE type='table'")
    else:
        rows = await outside(target, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows}


async def index_definitions(target) -> dict[str, str]:
    if isinstance(target, Path):
        rows = await outside(
            target, "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
        )
    else:
        rows = await outside(
            target, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        )
    return dict(rows)


def test_both_backends_have_the_same_migrations_by_number_and_name():
    assert [m.name for m in sqlite_migrations()] == [m.name for m in postgres_migrations()]


async def test_opening_a_new_database_creates_every_table_and_the_history_indexes(target):
    storage = await open_storage(target)
    await storage.close()
    assert await tables(target) >= TABLES
    indexes = await index_definitions(target)
    assert "(station_id, started_at)" in indexes["sessions_by_station"]
    assert "(session_id, ts)" in indexes["readings_by_session"]
    assert await outside(target, schema_version_sql(target)) == [(VERSION,)]


async def test_reopening_keeps_the_data_and_applies_nothing_twice(target):
    storage = await open_storage(target)
    await storage.add_station("Estación 1", 7.0, station_id=1)
    await storage.close()
    for _ in range(2):
        storage = await open_storage(target)
        assert [s.name for s in await storage.list_stations()] == ["Estación 1"]
        await storage.close()
    assert await outside(target, schema_version_sql(target)) == [(VERSION,)]


async def test_a_database_from_a_newer_version_is_refused_untouched(target):
    storage = await open_storage(target)
    await storage.close()
    if isinstance(target, Path):
        await outside(target, "PRAGMA user_version = 99")
    else:
        await outside(target, "INSERT INTO schema_migrations (version, name) VALUES (99, 'x')")
    with pytest.raises(SchemaError, match="newer than this code"):
        await open_storage(target)
    assert await outside(target, schema_version_sql(target)) == [(99,)]


async def test_a_failing_migration_leaves_the_database_at_the_previous_version(
    target, tmp_path, monkeypatch
):
    postgres = not isinstance(target, Path)
    good = postgres_migrations() if postgres else sqlite_migrations()
    broken_dir = tmp_path / "migrations"
    broken_dir.mkdir()
    for migration in good:
        (broken_dir / migration.name).write_text(migration.sql)
    (broken_dir / f"{len(good) + 1:04d}_broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    module = "server.storage.postgres.store" if postgres else "server.storage.sqlite.store"
    name = "postgres_migrations" if postgres else "sqlite_migrations"
    monkeypatch.setattr(f"{module}.{name}", lambda: load_migrations(broken_dir))
    with pytest.raises(SchemaError, match="broken.sql failed"):
        await open_storage(target)
    assert await outside(target, schema_version_sql(target)) == [(len(good),)]
    assert "half_done" not in await tables(target)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_processes_opening_a_fresh_database_at_once_migrate_it_once(target):
    opened = await asyncio.gather(*(open_storage(target) for _ in range(4)))
    try:
        assert await outside(target, "SELECT version FROM schema_migrations ORDER BY version") == [
            (n,) for n in range(1, VERSION + 1)
        ]
        await opened[0].add_station("Estación 1", 7.0, station_id=1)
        assert [s.id for s in await opened[3].list_stations()] == [1]
    finally:
        for storage in opened:
            await storage.close()


def test_migration_files_must_be_numbered_without_gaps(tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x);")
    (tmp_path / "0003_third.sql").write_text("CREATE TABLE b (x);")
    with pytest.raises(SchemaError, match="should be number 0002"):
        load_migrations(tmp_path)
    assert SQLITE_MIGRATIONS != PG_MIGRATIONS


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_database_uses_wal_and_enforces_foreign_keys(storage, target):
    assert await outside(target, "PRAGMA journal_mode") == [("wal",)]
    with pytest.raises(ValueError):
        await storage.add_card("04A32B1C", user_id=0)
    with pytest.raises(NotFound):
        await storage.add_card("04A32B1C", user_id=42)
    rows = await storage._fetch("PRAGMA foreign_keys")  # the storage's own connection
    assert rows == [(1,)]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_file_passes_sqlite_integrity_check_after_use(storage, session_id, target):
    for i in range(500):
        storage.queue_reading(reading(session_id, i))
    await storage.flush()
    await storage.end_session(session_id, 1_700_000_600.0, 0.5, 3.5, "local_stop", {})
    await storage.close()
    assert await outside(target, "PRAGMA integrity_check") == [("ok",)]
    assert await outside(target, "PRAGMA foreign_key_check") == []
