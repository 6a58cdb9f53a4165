"""Smoke run of `make bench-cluster` with tiny parameters, so the fleet benchmark keeps working.

No timing thresholds: the tool runs end to end on a real PostgreSQL, nats-server, HAProxy and
1 then 2 server processes; every reading sent is persisted and fanned out to the dashboards,
nothing goes wrong, and it prints its table and one JSON line.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 150


def run_bench(*args: str) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.bench.cluster_load", *args],
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


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_a_tiny_fleet_run_persists_and_fans_out_every_reading_on_1_and_2_processes():
    run = run_bench(
        "--processes",
        "1,2",
        "--chargers",
        "6",
        "--dashboards",
        "3",
        "--all-dashboards",
        "1",
        "--rate",
        "4",
        "--duration",
        "2",
        "--workers",
        "2",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    *table, last = run.stdout.strip().splitlines()
    assert table[1].startswith("| processes | persisted/s | fanned out/s | p50 ms | p99 ms")
    assert [line.split("|")[1].strip() for line in table[3:]] == ["1", "2"]
    result = json.loads(last)
    assert [row["processes"] for row in result["runs"]] == [1, 2]
    for row in result["runs"]:
        assert row["errors"] == 0, (row["processes"], row["error_kinds"], run.stderr[-3000:])
        assert row["sent"] > 0 and row["rows_persisted"] == row["sent"]
        # every one-station dashboard and the estacionId=all one got every measured reading
        assert row["fanned_out"] > 0 and row["p99_ms"] is not None


def test_a_bad_process_list_is_one_line_and_exit_2():
    run = run_bench("--processes", "1,x")
    assert run.returncode == 2
    assert "'1,x' is not a comma-separated list of process counts" in run.stderr
    assert "Traceback" not in run.stderr
