"""Numbered schema migrations: `migrations/NNNN_name.sql`, applied in order at open.

The schema version is SQLite's `PRAGMA user_version`. Each migration runs in its own
`BEGIN IMMEDIATE` transaction together with the version bump, so a crash leaves the database
at the previous version, never half-migrated. Two processes opening a fresh database at once
(the server and the admin CLI) are safe: the loser sees the version already bumped and skips.
"""

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .errors import SchemaError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read the migration files, checking they are numbered 1, 2, 3... without gaps."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise SchemaError(f"migration file {path.name} is not named NNNN_name.sql")
        migrations.append(Migration(int(match.group(1)), path.name, path.read_text("utf-8")))
    for expected, migration in enumerate(migrations, start=1):
        if migration.number != expected:
            raise SchemaError(f"migration {migration.name} should be number {expected:04d}")
    return migrations


async def schema_version(db) -> int:
    rows = await db.execute_fetchall("PRAGMA user_version")
    return rows[0][0]


async def migrate(db, migrations: list[Migration]) -> int:
    """Apply the migrations the database lacks; return the resulting schema version."""
    version = await schema_version(db)
    if version > len(migrations):
        raise SchemaError(
            f"the database is at schema version {version}, newer than this code "
            f"({len(migrations)}); upgrade the code, do not downgrade the database"
        )
    for migration in migrations[version:]:
        script = (
            f"BEGIN IMMEDIATE;\n{migration.sql}\n;\n"
            f"PRAGMA user_version = {migration.number};\nCOMMIT;"
        )
        try:
            await db.executescript(script)
        except sqlite3.Error as exc:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            if await schema_version(db) >= migration.number:
                continue  # another process applied it while we waited for the lock
            raise SchemaError(f"migration {migration.name} failed: {exc}") from exc
    return await schema_version(db)
