"""The errors Storage raises on purpose, each with a message fit to show a person."""


class StorageError(Exception):
    """Base class of the errors Storage raises on purpose."""


class NotFound(StorageError, LookupError):
    """The station, user, card or session named does not exist."""


class Duplicate(StorageError):
    """A row with the same key (card UID, station id) already exists."""


class SchemaError(StorageError):
    """The database schema cannot be brought to the version this code expects."""


class StaleOwner(StorageError):
    """A write carried an ownership epoch the station has moved past: another server process
    claimed the station since (server/storage/contract.py, "Station ownership")."""


class Unsupported(StorageError):
    """The station's protocol has no such thing: offline authorization on an OCPP 1.6J station
    (its charger gets no signed card list)."""
