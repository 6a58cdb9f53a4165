"""The outbox: messages waiting for the link, bounded the way the firmware bounds it.

Meter readings (`metrics`) are kept up to `max_readings`; when one more arrives the oldest
reading is dropped. Session events (`stop`, `emergency`) are never dropped. Everything else
(`status`, `nfc_scan`) only makes sense on the connection it was made for, so
`drop_transient()` removes it when the link goes down. Order is always preserved.
"""

from collections import deque

READING = "metrics"
DURABLE = ("stop", "emergency")


class Outbox:
    def __init__(self, max_readings=200):
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        self.max_readings = max_readings
        self._items = deque()
        self._readings = 0
        self.dropped_readings = 0

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    @property
    def readings(self) -> int:
        return self._readings

    def put(self, message: dict) -> None:
        """Append a message; drop the oldest reading if readings are over the bound."""
        self._items.append(message)
        self._count(message, +1)

    def restore(self, message: dict) -> None:
        """Put back at the front a message whose send failed."""
        self._items.appendleft(message)
        self._count(message, +1)

    def pop(self):
        """The oldest message, or None."""
        if not self._items:
            return None
        message = self._items.popleft()
        if message.get("type") == READING:
            self._readings -= 1
        return message

    def drain(self) -> list:
        items = list(self._items)
        self.clear()
        return items

    def clear(self) -> None:
        self._items.clear()
        self._readings = 0

    def drop_transient(self) -> list:
        """Remove what only makes sense on the lost connection; return it."""
        kept, dropped = deque(), []
        for message in self._items:
            if message.get("type") == READING or message.get("type") in DURABLE:
                kept.append(message)
            else:
                dropped.append(message)
        self._items = kept
        return dropped

    def _count(self, message: dict, delta: int) -> None:
        if message.get("type") != READING:
            return
        self._readings += delta
        if self._readings > self.max_readings:
            for index, item in enumerate(self._items):
                if item.get("type") == READING:
                    del self._items[index]
                    break
            self._readings -= 1
            self.dropped_readings += 1
