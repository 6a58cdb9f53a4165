"""The benchmark's arithmetic: what the result line reports from what was measured."""

from collections import Counter

from tools.bench.server_load import split, station_shares
from tools.bench.summary import RunFigures, percentile, result_line


def test_percentile_is_nearest_rank_and_none_without_samples():
    samples = [float(n) for n in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(samples, 0.50) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile(samples, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_result_line_reports_throughput_memory_and_ratio_to_the_relay():
    server = RunFigures(
        target="server",
        connections=200,
        sent=3000,
        processed=3000,
        window_s=2.0,
        cpu_s=1.5,
        rss_idle_kib=20_000,
        rss_connected_kib=24_000,
        latencies_ms=[1.0, 2.0, 3.0, 40.0],
        rows_persisted=3000,
        db_bytes=300_000,
    )
    relay = RunFigures(
        target="relay",
        connections=200,
        sent=3000,
        processed=3000,
        window_s=1.0,
        cpu_s=0.3,
        rss_idle_kib=10_000,
        rss_connected_kib=12_000,
    )
    line = result_line({"chargers": 100}, server, relay)
    assert line["chargers"] == 100
    assert line["msgs_per_s"] == 1500.0
    assert line["baseline_msgs_per_s"] == 3000.0
    assert line["ratio"] == 0.5
    assert line["cpu_ratio"] == 0.2  # the relay spends 0.1 CPU s per 1,000 readings, the server 0.5
    assert line["rss_per_conn_kib"] == 20.0
    assert line["cpu_s_per_1k_msgs"] == 0.5
    assert (line["p50_ms"], line["p99_ms"], line["max_ms"]) == (2.0, 40.0, 40.0)
    assert line["rows_persisted"] == 3000
    assert line["db_bytes_per_reading"] == 100.0
    assert line["errors"] == 0


def test_errors_are_summed_over_kinds_and_listed_by_kind():
    figures = RunFigures(
        target="server", connections=1, errors=Counter(connect_failed=2, charger_closed=1)
    )
    line = result_line({}, figures, None)
    assert line["errors"] == 3
    assert line["error_kinds"] == {"connect_failed": 2, "charger_closed": 1}
    assert "ratio" not in line


def test_stations_are_shared_between_load_generators_without_gaps_or_overlap():
    shares = station_shares(10, 3)
    assert [list(share) for share in shares] == [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]]
    assert split(2, 3) == [1, 1, 0]
