"""Who is connected: one publisher (charger) per station and the dashboards that listen.

`Hub` only keeps the registry and moves text frames; it knows nothing of sessions. Fan-out
uses `websockets.asyncio.server.broadcast` (one encode, no awaiting slow dashboards). A
station's pushes go to its own subscribers and to every `estacionId=all` subscriber.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from server.protocol import encode

log = logging.getLogger(__name__)


class Hub:
    def __init__(self):
        self.publishers: dict[int, ServerConnection] = {}
        self.subscribers: dict[int, set[ServerConnection]] = defaultdict(set)
        self.everything: set[ServerConnection] = set()  # estacionId=all subscribers

    # --- publishers ---------------------------------------------------------------------------
    def set_publisher(self, station_id: int, connection: ServerConnection) -> ServerConnection | None:
        """Make `connection` the station's publisher; return the one it replaces, if any."""
        previous = self.publishers.get(station_id)
        self.publishers[station_id] = connection
        return previous

    def remove_publisher(self, station_id: int, connection: ServerConnection) -> bool:
        """Forget `connection`; False when a newer publisher had already replaced it."""
        if self.publishers.get(station_id) is connection:
            del self.publishers[station_id]
            return True
        return False

    def has_publisher(self, station_id: int) -> bool:
        return station_id in self.publishers

    async def send_to_publisher(self, station_id: int, message: dict) -> bool:
        connection = self.publishers.get(station_id)
        return connection is not None and await send(connection, message)

    # --- subscribers --------------------------------------------------------------------------
    def subscribe(self, station_id: int | None, connection: ServerConnection) -> None:
        """Subscribe to one station, or to all of them when station_id is None."""
        if station_id is None:
            self.everything.add(connection)
        else:
            self.subscribers[station_id].add(connection)

    def unsubscribe(self, station_id: int | None, connection: ServerConnection) -> None:
        if station_id is None:
            self.everything.discard(connection)
            return
        listeners = self.subscribers.get(station_id)
        if listeners is not None:
            listeners.discard(connection)
            if not listeners:
                del self.subscribers[station_id]

    def broadcast(self, station_id: int, message: dict) -> None:
        listeners = self.subscribers.get(station_id, set())
        if listeners or self.everything:
            broadcast(listeners | self.everything, encode(message))


async def send(connection: ServerConnection, message: dict) -> bool:
    """Send one message; False (logged) if the connection is already gone."""
    try:
        await connection.send(encode(message))
        return True
    except ConnectionClosed:
        log.debug("dropped %s for a closed connection", message.get("type"))
        return False
