"""Both backends implement the whole `Storage` protocol with the same call signatures, so the
server, the admin CLI and the cluster code can hold either."""

import inspect

import pytest

from server.storage import Storage
from server.storage.postgres.store import PostgresStorage
from server.storage.sqlite.store import SqliteStorage

MEMBERS = sorted(
    name for name in dir(Storage) if not name.startswith("_") and name not in ("backend",)
)


@pytest.mark.parametrize("backend_class", [SqliteStorage, PostgresStorage])
def test_a_backend_has_every_member_of_the_protocol_with_the_same_parameters(backend_class):
    assert len(MEMBERS) >= 40
    for name in Storage.__annotations__:  # backend, flush_interval, max_queued_readings
        assert hasattr(backend_class, name), f"{backend_class.__name__} lacks {name}"
    for name in MEMBERS:
        declared = inspect.getattr_static(Storage, name)
        implemented = inspect.getattr_static(backend_class, name, None)
        assert implemented is not None, f"{backend_class.__name__} lacks {name}"
        if callable(declared):
            assert inspect.iscoroutinefunction(declared) == inspect.iscoroutinefunction(
                implemented
            ), name
            wanted = list(inspect.signature(declared).parameters)
            assert list(inspect.signature(implemented).parameters) == wanted, name
        else:
            assert isinstance(implemented, property), name


async def test_an_open_storage_is_a_storage(storage, backend):
    assert isinstance(storage, Storage)
    assert storage.backend == backend
