"""`python -m tools.bench.export_sessions` kept working (a few thousand sessions, SQLite only):
its result line, and both walks of the history (OFFSET, keyset) reading every session once.
Figures are printed, never asserted."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_export_bench_prints_one_result_line_with_every_session_exported():
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.export_sessions"]
        + ["--sessions", "2500", "--repeat", "1", "--backends", "sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout.strip().splitlines()[-1])["export_sessions"]
    assert (result["backend"], result["export_all_rows"]) == ("sqlite", 2500)
    assert result["export_station_rows"] == 833  # station 2: every third start from the second
    walks = result["pages_all"]
    assert walks["offset"]["rows"] == walks["keyset"]["rows"] == 2500


def test_a_bad_argument_is_one_usage_line():
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.export_sessions", "--backends", "mysql"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--backends: a comma-separated list of sqlite and postgres" in done.stderr
