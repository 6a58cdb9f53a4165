"""SQLite migrations: `sqlite/migrations/NNNN_name.sql`, applied in order at open.

The schema version is SQLite's `PRAGMA user_version`. Each migration runs in its own
`BEGIN IMMEDIATE` transaction together with the version bump, so a crash leaves the database
at the previous version, never half-migrated. Two processes opening a fresh database at once
(the server and the admin CLI) are safe: the loser sees the version already bumped and skips.
Runs on the storage's own thread (plain sqlite3 connection).
"""

import sqlite3
from pathlib import Path

from ..errors import SchemaError
from ..schema import Migration, load_migrations, newer_than_code

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlite_migrations() -> list[Migration]:
    return load_migrations(MIGRATIONS_DIR)


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: list[Migration]) -> int:
    """Apply the migrations the database lacks; return the resulting schema version."""
    version = schema_version(conn)
    if version > len(migrations):
        raise newer_than_code(version, migrations)
    for migration in migrations[version:]:
        script = (
            f"BEGIN IMMEDIATE;\n{migration.sql}\n;\n"
            f"PRAGMA user_version = {migration.number};\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if schema_version(conn) >= migration.number:
                continue  # another process applied it while we waited for the lock
            raise SchemaError(f"migration {migration.name} failed: {exc}") from exc
    return schema_version(conn)
