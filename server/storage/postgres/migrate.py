"""PostgreSQL migrations: `postgres/migrations/NNNN_name.sql` (the same numbers and schema as
SQLite's), applied in order at open.

The applied versions are rows of `schema_migrations`. The whole run holds a session advisory
lock (`pg_advisory_lock`), so several server processes starting at once against a fresh
database migrate it once: the others wait, then find every version applied. Each migration
runs in its own transaction together with its row, so a failure leaves the database at the
previous version, never half-migrated.
"""

from pathlib import Path

import asyncpg

from ..errors import SchemaError
from ..schema import Migration, load_migrations, newer_than_code

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_lock key of the migration run: any constant other tools on the database do not use
MIGRATION_LOCK = 0x65767365  # "evse"


def postgres_migrations() -> list[Migration]:
    return load_migrations(MIGRATIONS_DIR)


async def schema_version(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")


async def migrate(conn: asyncpg.Connection, migrations: list[Migration]) -> int:
    """Apply the migrations the database lacks; return the resulting schema version."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        version = await schema_version(conn)
        if version > len(migrations):
            raise newer_than_code(version, migrations)
        for migration in migrations[version:]:
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.number,
                        migration.name,
                    )
            except asyncpg.PostgresError as exc:
                raise SchemaError(f"migration {migration.name} failed: {exc}") from exc
        return await schema_version(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
