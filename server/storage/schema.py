"""Numbered schema migrations, read from a backend's `migrations/NNNN_name.sql` files.

Each backend keeps its own directory with the same numbers and names (the same schema in its
own SQL dialect: server/storage/sqlite/migrations, server/storage/postgres/migrations) and
applies them its own way (sqlite/migrate.py, postgres/migrate.py). Pure file reading here.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import SchemaError

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


def load_migrations(directory: Path) -> list[Migration]:
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


def newer_than_code(version: int, migrations: list[Migration]) -> SchemaError:
    return SchemaError(
        f"the database is at schema version {version}, newer than this code "
        f"({len(migrations)}); upgrade the code, do not downgrade the database"
    )
