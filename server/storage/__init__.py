"""SQLite storage for the server: numbered migrations, batched readings, history queries.

`Storage` (store.py) is the only code that touches the database; see docs/architecture.md.
"""

from .errors import Duplicate, NotFound, SchemaError, StorageError
from .records import Alert, Card, Reading, SessionRecord, Station, User
from .store import Storage

__all__ = [
    "Alert", "Card", "Duplicate", "NotFound", "Reading", "SchemaError", "SessionRecord",
    "Station", "Storage", "StorageError", "User",
]
