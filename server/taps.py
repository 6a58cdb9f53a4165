"""Card-tap hygiene for one station: the debounce of repeated taps and the coalescing of
refused-tap pushes to dashboards. Pure: the caller passes the time and the window.

A card held at the reader, a flaky reader or a hostile charger can send the same `nfc_scan`
many times a second. `TapGuard.repeated()` says whether a tap repeats the station's previous
tap of the same card within the debounce window. The window slides: every repeat extends it,
so a burst is one gesture however long it lasts (the firmware's own same-card rule slides the
same way). `forget()` ends the gesture early: a session ended by something other than this
card's tap (STOP button, dashboard, emergency) makes the next tap a new intention.

Refused taps (unknown card, station busy, ...) are always answered to the charger, but pushed
to dashboards at most once per window: `refusal_push()` answers None (hold it back) or how
many refusals were held back since the last push.
"""

from __future__ import annotations


class TapGuard:
    """One station's last tap and refused-tap pushes."""

    __slots__ = ("uid", "at", "ignored", "pushed_at", "held")

    def __init__(self):
        self.uid: str | None = None  # the card of the station's previous tap
        self.at = 0.0  # when it was seen (server time)
        self.ignored = 0  # repeats ignored in the current burst
        self.pushed_at: float | None = None  # last refused tap pushed to dashboards
        self.held = 0  # refused taps not pushed since then

    def repeated(self, uid: str, now: float, window: float) -> bool:
        """Record a tap; True if it repeats the previous tap of the same card less than
        `window` seconds ago (a clock that went back does not count as a repeat)."""
        repeat = uid == self.uid and 0.0 <= now - self.at < window
        self.uid, self.at = uid, now
        self.ignored = self.ignored + 1 if repeat else 0
        return repeat

    def forget(self) -> None:
        """The next tap of any card is a new gesture."""
        self.uid, self.ignored = None, 0

    def refusal_push(self, now: float, window: float) -> int | None:
        """None: hold this refused tap back from dashboards. Else push it, saying how many
        were held back since the previous push (a fixed window from that push, so a steady
        stream of refusals still shows, once per window)."""
        if self.pushed_at is not None and 0.0 <= now - self.pushed_at < window:
            self.held += 1
            return None
        held, self.held, self.pushed_at = self.held, 0, now
        return held
