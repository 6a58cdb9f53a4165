"""Publisher replacements (close 4008) of one station, counted to spot two chargers configured
with the same station: they take the station from each other in turn, every reconnect closing
the other's connection. One replacement is normal (a rebooted charger's half-open old socket);
more than `limit` within `window_s` seconds is a burst, reported once. The burst ends after a
whole window without a replacement; the next one starts a new burst. Pure: the caller passes
the time.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0
LIMIT = 3  # more than this many replacements within WINDOW_S is a burst


class ReplacementBurst:
    __slots__ = ("window_s", "limit", "times", "reported")

    def __init__(self, window_s: float = WINDOW_S, limit: int = LIMIT):
        self.window_s, self.limit = window_s, limit
        self.times: deque[float] = deque(maxlen=limit + 1)  # the newest replacements only
        self.reported = False

    def note(self, now: float) -> bool:
        """Record a replacement; True exactly once per burst, when it crosses the limit."""
        while self.times and not 0.0 <= now - self.times[0] < self.window_s:
            self.times.popleft()
        if not self.times:  # a whole window without a replacement: any burst is over
            self.reported = False
        self.times.append(now)
        if len(self.times) > self.limit and not self.reported:
            self.reported = True
            return True
        return False

    @property
    def count(self) -> int:
        """Replacements in the current window (at most limit + 1 are kept)."""
        return len(self.times)
