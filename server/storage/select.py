"""Which storage backend a target names, and opening it: a `postgresql://` URL opens
PostgreSQL (server/storage/postgres/), anything else is a SQLite file path
(server/storage/sqlite/). `open_storage(target)` is what the server and the admin CLI call."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from .contract import Storage

POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and urlsplit(target).scheme in POSTGRES_SCHEMES


def check_database_url(text: str) -> str:
    """A PostgreSQL URL as asyncpg takes it, checked for shape only (the server is asked when
    it opens); raises ValueError with what is wrong."""
    url = text.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as problem:
        raise ValueError(f"is not a URL: {problem}") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError("must be a postgresql://user@host[:port]/database URL")
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ValueError("must name the database: postgresql://user@host[:port]/database")
    return url


async def open_storage(target: str | Path, **options) -> Storage:
    """Open the backend `target` names (see the module docstring); options: flush_interval,
    max_queued_readings."""
    if is_postgres_url(target):
        from .postgres.store import PostgresStorage

        return await PostgresStorage.open(str(target), **options)
    from .sqlite.store import SqliteStorage

    return await SqliteStorage.open(Path(target), **options)
