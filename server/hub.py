"""Who is connected: one publisher (charger) per station and the dashboards that listen.

`Hub` only keeps the registry and moves text frames; it knows nothing of sessions. It keeps an
encoder per connection: a charger's is its protocol's codec (server/codecs/), a dashboard's
the dashboards' JSON (server/codecs/dashboard.py), so `send(connection, item)` takes a neutral
command (server/vocabulary.py) or a dashboard message and writes it as that connection speaks. Fan-out
uses `websockets.asyncio.server.broadcast` (one encode, no awaiting slow dashboards). A
station's pushes go to its own subscribers and to every `estacionId=all` subscriber; in a fleet
(server/cluster/) also to `relay`, which carries them to the other processes' dashboards.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from server.codecs.dashboard import DASHBOARD
from server.pushes import encode

log = logging.getLogger(__name__)


class Hub:
    def __init__(self):
        self.publishers: dict[int, ServerConnection] = {}
        self.subscribers: dict[int, set[ServerConnection]] = defaultdict(set)
        self.everything: set[ServerConnection] = set()  # estacionId=all subscribers
        self.encoders: dict[ServerConnection, object] = {}  # connection -> its encoder
        # a fleet (server/cluster/): relay(station_id, text, type) gets every message broadcast here
        self.relay = None

    async def send(self, connection: ServerConnection, item) -> bool:
        """Send a neutral command or a dashboard message as `connection` speaks; False (logged)
        if the connection is already gone."""
        encoder = self.encoders.get(connection, DASHBOARD)
        return await send_text(connection, encoder.encode(item), item)

    # --- publishers ---------------------------------------------------------------------------
    def set_publisher(
        self, station_id: int, connection: ServerConnection, codec
    ) -> ServerConnection | None:
        """Make `connection` the station's publisher, speaking `codec`; return the one it
        replaces, if any."""
        previous = self.publishers.get(station_id)
        self.publishers[station_id] = connection
        self.encoders[connection] = codec
        return previous

    def remove_publisher(self, station_id: int, connection: ServerConnection) -> bool:
        """Forget `connection`; False when a newer publisher had already replaced it."""
        self.encoders.pop(connection, None)
        if self.publishers.get(station_id) is connection:
            del self.publishers[station_id]
            return True
        return False

    def has_publisher(self, station_id: int) -> bool:
        return station_id in self.publishers

    async def send_to_publisher(self, station_id: int, command) -> bool:
        """A neutral command to the station's charger, in its protocol."""
        connection = self.publishers.get(station_id)
        return connection is not None and await self.send(connection, command)

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
        if self.relay is not None:
            text = encode(message)
            self.relay(station_id, text, message.get("type"))
            self.deliver(station_id, text)
        elif listeners or self.everything:
            broadcast(listeners | self.everything, encode(message))

    def deliver(self, station_id: int, text: str) -> None:
        """A station's message already encoded (from another process of the fleet) to the
        dashboards here; not relayed again."""
        listeners = self.subscribers.get(station_id, set())
        if listeners or self.everything:
            broadcast(listeners | self.everything, text)


async def send(connection: ServerConnection, message: dict) -> bool:
    """Send one dashboard message (JSON); False (logged) if the connection is already gone."""
    return await send_text(connection, encode(message), message)


async def send_text(connection: ServerConnection, text: str, item) -> bool:
    try:
        await connection.send(text)
        return True
    except ConnectionClosed:
        what = item.get("type") if isinstance(item, dict) else type(item).__name__
        log.debug("dropped %s for a closed connection", what)
        return False
