"""Wall-clock time for `ts`: unix seconds once NTP has set the clock, else 0 (unset).

MicroPython on the ESP32 may count from 2000 instead of 1970; `unix_time()` corrects that.
The clock counts as set when it reads a year >= 2024 (a fresh ESP32 starts in 2000).
`sync(host)` sets it with `ntptime` (absent on the unix port, where the system clock is used).
"""

import time

_MIN_YEAR = 2024
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


_known_set = False


def is_set():
    global _known_set
    if not _known_set:
        _known_set = time.gmtime()[0] >= _MIN_YEAR
    return _known_set


def unix_time():
    """Unix seconds, or 0 while the clock is unset."""
    if not is_set():
        return 0
    return int(time.time()) + _EPOCH_OFFSET


def sync(host="pool.ntp.org"):
    """Set the clock from NTP; True on success (never raises)."""
    try:
        import ntptime
    except ImportError:
        return is_set()
    try:
        ntptime.host = host
        ntptime.settime()
        return True
    except Exception:  # noqa: BLE001 - any network failure means "try again later"
        return False
