"""The queue of writes waiting for the next batch: readings in order, progress coalesced.

Pure and synchronous (no SQL, no I/O). The flusher takes everything in one go and, if the
write fails, puts it back in front of whatever was queued meanwhile, so nothing is lost and
the order of readings is kept. Progress is one row per session, the latest wins; a progress
row queued during a failed write is newer than the one put back, so it is kept.
"""

from dataclasses import dataclass, field

from .records import Reading


@dataclass
class Batch:
    readings: list[Reading] = field(default_factory=list)
    # session_id -> (kwh, cost, energy_state as JSON text)
    progress: dict[int, tuple[float, float, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.readings or self.progress)


class PendingWrites:
    def __init__(self) -> None:
        self._queued = Batch()

    def add_reading(self, reading: Reading) -> None:
        self._queued.readings.append(reading)

    def set_progress(self, session_id: int, kwh: float, cost: float, state_json: str) -> None:
        self._queued.progress[session_id] = (kwh, cost, state_json)

    def take(self) -> Batch:
        batch, self._queued = self._queued, Batch()
        return batch

    def put_back(self, batch: Batch) -> None:
        self._queued.readings[:0] = batch.readings
        for session_id, row in batch.progress.items():
            self._queued.progress.setdefault(session_id, row)

    @property
    def reading_count(self) -> int:
        return len(self._queued.readings)

    def __bool__(self) -> bool:
        return bool(self._queued)
