"""Pure arithmetic of the benchmark: percentiles, per-run figures and the one result line.

No I/O here, so the numbers the benchmark prints can be checked without starting anything.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (`fraction` in 0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class RunFigures:
    """Everything measured in one run against one target (the server or the relay)."""

    target: str
    connections: int
    sent: int = 0
    processed: int = 0  # rows persisted (server) or frames relayed (relay) when the run caught up
    rows_persisted: int | None = None  # server: rows in `readings` after it stopped
    db_bytes: int | None = None  # server: database file(s) after it stopped
    window_s: float = 0.0  # from `go` until the target had processed everything sent
    cpu_s: float = 0.0  # target CPU seconds in that window
    loadgen_cpu_s: float = 0.0  # all load generators' CPU seconds in that window
    rss_idle_kib: int = 0  # target RSS before any load connection
    rss_connected_kib: int = 0  # target RSS with every load connection open and idle
    latencies_ms: list[float] = field(default_factory=list)
    late_sends: int = 0
    errors: Counter = field(default_factory=Counter)

    @property
    def msgs_per_s(self) -> float:
        return self.processed / self.window_s if self.window_s > 0 else 0.0

    @property
    def cpu_s_per_1k_msgs(self) -> float | None:
        return self.cpu_s / self.processed * 1000 if self.processed else None

    @property
    def rss_per_conn_kib(self) -> float | None:
        if not self.connections:
            return None
        return (self.rss_connected_kib - self.rss_idle_kib) / self.connections

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict:
        return {
            "msgs_per_s": _round(self.msgs_per_s, 1),
            "p50_ms": _round(percentile(self.latencies_ms, 0.50), 2),
            "p99_ms": _round(percentile(self.latencies_ms, 0.99), 2),
            "max_ms": _round(max(self.latencies_ms, default=None), 2),
            "cpu_s_per_1k_msgs": _round(self.cpu_s_per_1k_msgs, 4),
            "cpu_s": _round(self.cpu_s, 2),
            "loadgen_cpu_s": _round(self.loadgen_cpu_s, 2),
            "window_s": _round(self.window_s, 2),
            "rss_per_conn_kib": _round(self.rss_per_conn_kib, 1),
            "sent": self.sent,
            "processed": self.processed,
            "late_sends": self.late_sends,
            "errors": self.error_count,
            "error_kinds": dict(self.errors),
        }


def _round(value, digits):
    return None if value is None else round(value, digits)


def result_line(params: dict, server: RunFigures, baseline: RunFigures | None) -> dict:
    """The JSON object the benchmark prints: parameters, the server's figures, the baseline's
    figures prefixed `baseline_`, `ratio` = server throughput / relay throughput and
    `cpu_ratio` = relay CPU per reading / server CPU per reading."""
    line = dict(params)
    line.update(server.as_dict())
    line["rows_persisted"] = server.rows_persisted
    if server.db_bytes and server.rows_persisted:
        line["db_bytes_per_reading"] = round(server.db_bytes / server.rows_persisted, 1)
    if baseline is not None:
        line.update({f"baseline_{key}": value for key, value in baseline.as_dict().items()})
        ratio = server.msgs_per_s / baseline.msgs_per_s if baseline.msgs_per_s else None
        line["ratio"] = _round(ratio, 3)
        # The same comparison per CPU second: holds even when the load generators, not the
        # relay, were the limit (the relay's throughput is then only a lower bound).
        if server.cpu_s_per_1k_msgs and baseline.cpu_s_per_1k_msgs:
            line["cpu_ratio"] = _round(baseline.cpu_s_per_1k_msgs / server.cpu_s_per_1k_msgs, 3)
    return line
