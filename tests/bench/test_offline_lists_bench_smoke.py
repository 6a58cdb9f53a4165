"""`python -m tools.bench.offline_lists` kept working (a small SQLite database): its result
line, with and without the index sessions_by_card. Figures are printed, never asserted."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.bench.offline_lists", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_offline_lists_bench_prints_one_result_line():
    done = bench("--cards", "20", "--used", "5", "--sessions", "500", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["cards"], result["used"], result["sessions"]) == (20, 5, 500)
    assert result["with_index_s"] >= 0 and result["without_index_s"] >= 0


def test_a_bad_argument_is_one_usage_line():
    done = bench("--cards", "3", "--used", "4")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--used between 1 and --cards" in done.stderr
