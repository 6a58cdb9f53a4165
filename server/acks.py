"""Acknowledged delivery on one charger connection: telling the charger which frames are committed.

`{"type":"ack","n":K}` means: the first K data frames (text or binary, valid or not) the server
read on this connection, counted from 1, have all their effects committed to the database.

The publisher loop (server/ws.py) calls `frame_read()` for every frame it reads and, once the
frame is handled, `handled(k, storage.write_mark())`: everything frame k queued is in Storage's
write sequence up to that mark, and its immediate writes (a session's start or end, an alert)
were committed before its handling returned. A frame that writes nothing (status, nfc_scan, an
invalid frame, an ignored duplicate) is covered by the same mark, so it is acknowledged as soon
as every write queued before it is durable (a replayed duplicate is never acknowledged while the
original is still only in memory). A task of the connection's waits until the latest noted
mark is durable and sends the ack: only when K grew, at most one ack per `min_interval` seconds,
and never while the database cannot be written (Storage keeps the batch and its marks stay
undurable until a commit takes them). The task runs only while there is something to
acknowledge (an idle charger costs no task) and `close()` ends it with the connection.

A frame one of whose writes failed (say the session's end on a read-only disk) is never
acknowledged, nor anything after it on this connection (`hold()`): the charger keeps it and
sends it again on its next connection (its link gives up on an unacknowledged batch after
`ack_timeout_s`), when the server may be able to store it. A refused session end is also
retried by the server itself (server/effects.py), since the core has already closed the session.
"""

from __future__ import annotations

import asyncio
import logging

from server.vocabulary import Acknowledge

log = logging.getLogger(__name__)

ACK_MIN_INTERVAL_S = 0.2  # at most 5 acks per second per connection


class AckSender:
    """`send(command) -> bool` sends a neutral command to the charger in its protocol (False
    once the connection is gone); `station_id` only names the connection in the log."""

    __slots__ = (
        "_storage",
        "_station_id",
        "_send",
        "_min_interval",
        "read",
        "sent",
        "_noted",
        "_held_at",
        "_task",
    )  # one per connected charger: thousands of them

    def __init__(self, storage, send, station_id: int, min_interval: float = ACK_MIN_INTERVAL_S):
        self._storage = storage
        self._station_id = station_id
        self._send = send
        self._min_interval = min_interval
        self.read = 0  # data frames read on this connection
        self.sent = 0  # the n of the last ack sent
        self._noted = (0, 0)  # (frames handled, write mark covering them)
        self._held_at: int | None = None  # the first frame whose write failed
        self._task: asyncio.Task | None = None  # sends acks while frames await one

    @property
    def acknowledgeable(self) -> int:
        """How many frames are handled and may be acknowledged once their writes are durable."""
        return self._noted[0]

    def frame_read(self) -> int:
        """Count one more data frame read; returns its number."""
        self.read += 1
        return self.read

    def handled(self, k: int, mark: int) -> None:
        """Frame k was handled; its queued writes are all at or below `mark`."""
        if self._held_at is not None:
            k = min(k, self._held_at - 1)
        self._noted = (k, mark)
        if k > self.sent and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name=f"acks-station-{self._station_id}")

    def hold(self) -> None:
        """A write of the frame being handled failed: acknowledge nothing from it on."""
        if self._held_at is None:
            self._held_at = self.read
            log.warning(
                "station %s: frame %d of this charger connection could not be stored; "
                "acknowledging nothing from it on (the charger resends it after reconnecting)",
                self._station_id,
                self.read,
            )

    async def _run(self) -> None:
        """Send acks while handled frames await one (a newer `handled()` is seen at the next turn:
        nothing can run between the last check and the return)."""
        while True:
            k, mark = self._noted
            if k <= self.sent:
                return
            await self._storage.wait_durable(mark)
            if not await self._send(Acknowledge(k)):
                return
            self.sent = k
            await asyncio.sleep(self._min_interval)

    async def close(self) -> None:
        """The connection ended: stop sending (nothing more can be acknowledged on it)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
