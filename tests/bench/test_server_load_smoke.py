"""Smoke runs of `make bench-server` with tiny parameters, so the benchmark keeps working.

No timing thresholds: these prove the tool runs end to end against the real server and the
bare relay, that every reading sent was persisted, and that nothing went wrong on the way.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 100

RESULT_KEYS = {
    "chargers",
    "msgs_per_s",
    "p50_ms",
    "p99_ms",
    "baseline_msgs_per_s",
    "ratio",
    "rss_per_conn_kib",
    "errors",
    "rows_persisted",
    "cpu_s_per_1k_msgs",
}


def run_bench(*args: str) -> subprocess.CompletedProcess:
    """Run the benchmark command in its own process group; kill the whole group on timeout."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.bench.server_load", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"benchmark did not finish in {RUN_TIMEOUT_S} s\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def result_of(run: subprocess.CompletedProcess) -> dict:
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, run.stdout
    return json.loads(lines[0])


def test_a_tiny_load_run_persists_every_reading_and_reports_both_targets_without_errors():
    result = result_of(
        run_bench(
            "--chargers",
            "4",
            "--dashboards",
            "2",
            "--all-dashboards",
            "2",
            "--rate",
            "4",
            "--duration",
            "1.5",
            "--workers",
            "2",
        )
    )
    assert result.keys() >= RESULT_KEYS
    assert result["errors"] == 0, result["error_kinds"]
    assert result["baseline_errors"] == 0, result["baseline_error_kinds"]
    assert result["chargers"] == 4
    assert result["sent"] > 0
    assert result["rows_persisted"] == result["sent"]
    assert result["baseline_processed"] == result["baseline_sent"] > 0
    assert result["p99_ms"] is not None and result["baseline_p99_ms"] is not None
    assert result["msgs_per_s"] > 0 and result["ratio"] > 0


def test_an_idle_run_holds_the_connections_and_reports_memory_per_connection():
    result = result_of(
        run_bench(
            "--idle",
            "--chargers",
            "6",
            "--dashboards",
            "0",
            "--duration",
            "1",
            "--workers",
            "1",
            "--no-baseline",
        )
    )
    assert result["errors"] == 0, result["error_kinds"]
    assert result["rss_per_conn_kib"] is not None
    assert "baseline_msgs_per_s" not in result


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--chargers", "0"], "--chargers: 0 is outside"),
        (["--rate", "fast"], "--rate: 'fast' is not a float"),
        (["--chargers", "2", "--workers", "3"], "--workers cannot exceed --chargers"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message_before_anything_starts(args, complaint):
    run = run_bench(*args)
    assert run.returncode == 2
    assert complaint in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
