"""Storage for the server behind one contract, two backends.

`Storage` (contract.py) is the typed protocol; `open_storage(target)` (select.py) opens SQLite
for a file path (sqlite/, the default) or PostgreSQL for a `postgresql://` URL (postgres/).
The batching, back-pressure and durability marks are backend-neutral (batcher.py). Nothing
else in the server touches a database; see docs/architecture.md ("Storage contract").
"""

from .contract import MAX_PAGE, Storage
from .errors import Duplicate, NotFound, SchemaError, StaleOwner, StorageError, Unsupported
from .records import Alert, Card, OfflineAuthState, Reading, SessionRecord, Station, User
from .select import open_storage

__all__ = [
    "MAX_PAGE",
    "Alert",
    "Card",
    "Duplicate",
    "NotFound",
    "OfflineAuthState",
    "Reading",
    "SchemaError",
    "SessionRecord",
    "StaleOwner",
    "Station",
    "Storage",
    "StorageError",
    "Unsupported",
    "User",
    "open_storage",
]
