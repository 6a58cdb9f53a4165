"""The queue of writes waiting for the next batch: readings in order, progress coalesced.

Pure and synchronous (no SQL, no I/O). The flusher takes everything in one go and, if the
write fails, puts it back in front of whatever was queued meanwhile, so nothing is lost and
the order of readings is kept. Progress is one row per session, the latest wins; a progress
row queued during a failed write is newer than the one put back, so it is kept.

The write sequence: every queued write (a reading or a progress row) takes the next number;
`mark` is the number of the last one. A taken batch carries the mark of that moment: once
it is committed, every write up to that mark is durable (the rest is in a later batch). A
batch put back keeps nothing of its mark; the next take covers it again with a newer one.

Cheap per reading (the server queues thousands a second): a reading is kept as the plain
row tuple it is inserted as (tuples of numbers are untracked by the garbage collector, a
dataclass instance is not), and a progress row may carry a live state object (anything with
`to_dict()`) that is encoded once, when the batch is taken, instead of once per reading.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .records import Reading


@dataclass
class Batch:
    # (session_id, ts, v, a, w, wh, kwh, charger_ts, received_at, flag): _INSERT_READING's order
    readings: list[tuple]
    # session_id -> (kwh, cost, energy_state as JSON text, the writer's ownership epoch | None)
    progress: dict[int, tuple[float, float, str, int | None]]
    # the write sequence number of the last write queued before the take (see `mark`)
    mark: int
    # set by the write that committed it (server/storage/batcher.py `write_through`)
    committed: bool = False

    def __bool__(self) -> bool:
        return bool(self.readings or self.progress)


class PendingWrites:
    """`encode(state) -> str | None` turns a live state into JSON text when a batch is taken
    (None: it cannot be stored, the session's progress row is left out of that batch)."""

    def __init__(self, encode: Callable[[object], str | None]) -> None:
        self._encode = encode
        self._readings: list[tuple] = []
        self._progress: dict[int, tuple] = {}  # state: JSON text or a live object
        self.mark = 0  # the write sequence: how many writes were ever queued

    def add_reading(self, reading: Reading) -> None:
        self._readings.append(
            (
                reading.session_id,
                reading.ts,
                reading.v,
                reading.a,
                reading.w,
                reading.wh,
                reading.kwh,
                reading.charger_ts,
                reading.received_at,
                reading.flag,
            )
        )
        self.mark += 1

    def set_progress(
        self, session_id: int, kwh: float, cost: float, state, epoch: int | None = None
    ) -> None:
        self._progress[session_id] = (kwh, cost, state, epoch)
        self.mark += 1

    def take(self) -> Batch:
        readings, progress = self._readings, self._progress
        self._readings, self._progress = [], {}
        encoded = {}
        for session_id, (kwh, cost, state, epoch) in progress.items():
            text = state if isinstance(state, str) else self._encode(state)
            if text is not None:
                encoded[session_id] = (kwh, cost, text, epoch)
        return Batch(readings, encoded, self.mark)

    def put_back(self, batch: Batch) -> None:
        self._readings[:0] = batch.readings
        for session_id, row in batch.progress.items():
            self._progress.setdefault(session_id, row)

    @property
    def reading_count(self) -> int:
        return len(self._readings)

    def __bool__(self) -> bool:
        return bool(self._readings or self._progress)
