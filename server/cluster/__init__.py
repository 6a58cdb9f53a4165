"""Several server processes as one fleet (NATS_URL with a PostgreSQL DATABASE_URL).

`server/cluster/bus.py` is the NATS client and its subjects, `presence.py` the shared live
status table, `fleet.py` the hooks the adapters call. A single process (the default, SQLite)
runs with `SOLO`, whose hooks do what one server always did. The session core knows nothing
of any of this.
"""

from __future__ import annotations


class FleetUnavailable(RuntimeError):
    """NATS or the shared PostgreSQL cannot be reached when the process starts (one line)."""


class Solo:
    """The fleet of one process: every charger is here, the local core is the truth."""

    clustered = False

    def __init__(self, app=None):
        self.app = app

    async def claim(self, station_id: int) -> bool:
        return True  # no other process to lose a race to

    def release(self, station_id: int, connection) -> bool:
        return True

    def owns(self, station_id: int) -> bool:
        return True  # a connected charger's station is this process's

    def epoch(self, station_id) -> int | None:
        return None  # one process: writes are not fenced

    def stale(self, station_id, refused) -> None:
        return None  # never happens without epochs

    async def forward_stop(self, station_id, stop, connection) -> bool:
        return False

    def request_status(self, station_id: int) -> None:
        return None

    async def forward(self, station_id: int, command: dict, timeout: float = 0.0) -> dict | None:
        return None  # every charger is here: the caller runs the command itself

    async def station_changed(self, station_id: int) -> None:
        return None  # the caller's own core and lists took the change

    def cards_changed(self) -> None:
        return None

    async def views(self) -> dict:
        return {}

    async def describe(self, station_id: int) -> dict:
        return self.app.core.describe(station_id, self.app.clock())

    async def describe_all(self) -> list[dict]:
        return self.app.core.describe_all(self.app.clock())

    def health(self) -> dict:
        return {}  # /healthz as a single server always answered it

    async def close(self) -> None:
        return None
