"""The session journal benchmark (tools/bench/journal_flash.py): its figures come from the real
journal on the MicroPython unix port, and a bad argument is one clear line."""

import json

import pytest

from tests.firmware.mpy import requires_micropython
from tools.bench import journal_flash


@requires_micropython
def test_the_journal_bench_reports_flash_bytes_writes_and_heap_per_charging_hour(capsys):
    assert journal_flash.main(["--hours", "0.1"]) == 0
    result = json.loads(capsys.readouterr().out)
    online, offline = result["online"], result["offline"]
    assert result["readings"] == 120
    # one flash write per 10 readings, plus the session's first reading and its stop (and
    # online the stop's acknowledgement): not one per reading
    assert 120 // 10 <= offline["writes"] <= 120 // 10 + 2
    assert online["writes"] == offline["writes"] + 1
    # online a batch write carries the newest reading (35 B) and the ACK (19 B): no OPEN
    # repeating the register that reading carries (68 B a write when each write had one)
    assert online["bytes_per_write"] < 55, result
    # offline 10 readings a write (251 B) and the ACK
    assert 250 < offline["bytes_per_write"] < 276, result
    assert 0 < result["write_heap_needed_bytes"] < 8192


def test_the_journal_bench_refuses_a_bad_argument_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        journal_flash.main(["--hours", "0"])
    assert exit_.value.code == 2
    assert "--hours and --interval must be positive" in capsys.readouterr().err
