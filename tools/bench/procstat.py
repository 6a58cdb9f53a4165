"""CPU seconds and resident memory of another process, read from Linux's /proc.

Two numbers from two files are all the benchmark needs, so this reads them directly instead of
adding a dependency (psutil); the benchmark is Linux-only anyway (it raises RLIMIT_NOFILE and
counts on /proc). `cpu_seconds` includes every thread of the process (aiosqlite's worker too).
"""

import os

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` and all its threads, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name (field 2) may contain spaces; fields after its ')' are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS_PER_SECOND


def rss_kib(pid: int) -> int:
    """Resident set size of process `pid` in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ProcessLookupError(f"process {pid} has no VmRSS (exited?)")
