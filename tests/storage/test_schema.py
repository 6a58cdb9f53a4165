"""Migrations, pragmas and integrity of the database file."""

import pytest

from server.storage import NotFound, SchemaError, Storage
from server.storage.migrations import load_migrations

from .conftest import outside, reading

TABLES = {"stations", "users", "cards", "sessions", "readings", "alerts"}


async def test_opening_a_new_file_creates_every_table_and_the_history_indexes(db_path):
    storage = await Storage.open(db_path)
    await storage.close()
    tables = {r[0] for r in outside(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert TABLES <= tables
    indexes = {r[0]: r[1] for r in outside(
        db_path, "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")}
    assert "sessions(station_id, started_at)" in indexes["sessions_by_station"]
    assert "readings(session_id, ts)" in indexes["readings_by_session"]
    assert outside(db_path, "PRAGMA user_version") == [(len(load_migrations()),)]


async def test_reopening_keeps_the_data_and_applies_nothing_twice(db_path):
    storage = await Storage.open(db_path)
    await storage.add_station("Estación 1", 7.0, station_id=1)
    await storage.close()
    for _ in range(2):
        storage = await Storage.open(db_path)
        assert [s.name for s in await storage.list_stations()] == ["Estación 1"]
        await storage.close()
    assert outside(db_path, "PRAGMA user_version") == [(len(load_migrations()),)]


async def test_a_database_from_a_newer_version_is_refused_untouched(db_path):
    storage = await Storage.open(db_path)
    await storage.close()
    outside(db_path, "PRAGMA user_version = 99")
    with pytest.raises(SchemaError, match="newer than this code"):
        await Storage.open(db_path)
    assert outside(db_path, "PRAGMA user_version") == [(99,)]


async def test_a_failing_migration_leaves_the_database_at_the_previous_version(db_path, tmp_path,
                                                                              monkeypatch):
    good = load_migrations()
    broken_dir = tmp_path / "migrations"
    broken_dir.mkdir()
    for migration in good:
        (broken_dir / migration.name).write_text(migration.sql)
    (broken_dir / f"{len(good) + 1:04d}_broken.sql").write_text(
        "CREATE TABLE half_done (x);\nINSERT INTO no_such_table VALUES (1);\n")
    monkeypatch.setattr("server.storage.store.load_migrations",
                        lambda: load_migrations(broken_dir))
    with pytest.raises(SchemaError, match="broken.sql failed"):
        await Storage.open(db_path)
    assert outside(db_path, "PRAGMA user_version") == [(len(good),)]
    assert not outside(db_path, "SELECT name FROM sqlite_master WHERE name = 'half_done'")


def test_migration_files_must_be_numbered_without_gaps(tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x);")
    (tmp_path / "0003_third.sql").write_text("CREATE TABLE b (x);")
    with pytest.raises(SchemaError, match="should be number 0002"):
        load_migrations(tmp_path)


async def test_the_database_uses_wal_and_enforces_foreign_keys(storage, db_path):
    assert outside(db_path, "PRAGMA journal_mode") == [("wal",)]
    with pytest.raises(ValueError):
        await storage.add_card("04A32B1C", user_id=0)
    with pytest.raises(NotFound):
        await storage.add_card("04A32B1C", user_id=42)
    rows = await storage._fetch("PRAGMA foreign_keys")  # the storage's own connection
    assert rows == [(1,)]


async def test_the_file_passes_sqlite_integrity_check_after_use(storage, session_id, db_path):
    for i in range(500):
        storage.queue_reading(reading(session_id, i))
    await storage.flush()
    await storage.end_session(session_id, 1_700_000_600.0, 0.5, 3.5, "local_stop", {})
    await storage.close()
    assert outside(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert outside(db_path, "PRAGMA foreign_key_check") == []
