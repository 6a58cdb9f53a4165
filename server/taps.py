"""Card-tap hygiene for one station: the debounce of repeated taps and the coalescing of
refused-tap pushes to dashboards. Pure: the caller passes the time and the window.

A card held at the reader, a flaky reader or a hostile charger can send the same `nfc_scan`
many times a second. `TapGuard.repeated()` says whether a tap repeats the station's last
ACCEPTED tap (one that started or stopped a session, recorded with `accepted()`) of the same
card within the debounce window. The window slides: every repeat extends it, so a burst is one
gesture however long it lasts (the firmware's own same-card rule slides the same way).
`forget()` ends the gesture early: a session ended by something other than this card's tap
(STOP button, dashboard, emergency) or a session the server failed to create makes the next
tap a new intention.

Refused taps (unknown or disabled card, station busy, ...) change nothing, so they are not a
gesture to debounce: each is answered to the charger (a card enabled a moment ago works at
the next tap), but pushed to dashboards at most once per window: `refusal_push()` answers
None (hold it back) or how many refusals were held back since the last push.
"""

from __future__ import annotations


class TapGuard:
    """One station's last tap and refused-tap pushes."""

    __slots__ = ("uid", "at", "ignored", "pushed_at", "held")

    def __init__(self) -> None:
        self.uid: str | None = None  # the card of the station's previous tap
        self.at = 0.0  # when it was seen (server time)
        self.ignored = 0  # repeats ignored in the current burst
        self.pushed_at: float | None = None  # last refused tap pushed to dashboards
        self.held = 0  # refused taps not pushed since then

    def repeated(self, uid: str, now: float, window: float) -> bool:
        """True if the tap repeats the last accepted tap's card less than `window` seconds
        after it or after its latest repeat (a clock that went back does not count)."""
        if uid != self.uid or not 0.0 <= now - self.at < window:
            return False
        self.at = now  # the window slides: a burst is one gesture
        self.ignored += 1
        return True

    def accepted(self, uid: str, now: float) -> None:
        """This tap started or stopped a session: its repeats are the same gesture."""
        self.uid, self.at, self.ignored = uid, now, 0

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
