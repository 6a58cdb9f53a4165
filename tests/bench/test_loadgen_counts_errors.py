"""The load generator notices what a user would notice: a refused card tap is an error.

Without this, `errors == 0` in the smoke run could be a counter that never counts.
"""

import asyncio
import json
import sys

from tools.bench.targets import REPO_ROOT, ServerTarget

PHASE_TIMEOUT_S = 60


async def test_taps_the_server_refuses_are_counted_as_errors_by_kind(tmp_path):
    server = ServerTarget(tmp_path)
    await server.start(stations=2)
    loadgen = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench.loadgen",
        "--url",
        server.url,
        "--first-station",
        "1",
        "--chargers",
        "2",
        "--rate",
        "1",
        "--duration",
        "1",
        "--card-prefix",
        "UNKNOWN-CARD-",
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        connected = json.loads(await asyncio.wait_for(loadgen.stdout.readline(), PHASE_TIMEOUT_S))
        assert connected["phase"] == "connected" and connected["errors"] == {}
        loadgen.stdin.write(b"tap\n")
        started = json.loads(await asyncio.wait_for(loadgen.stdout.readline(), PHASE_TIMEOUT_S))
        assert started["phase"] == "started"
        assert started["sessions"] == 0
        assert started["errors"]["charger_error:CARD_UNKNOWN"] == 2
        assert started["errors"]["tap_unanswered"] == 2
    finally:
        loadgen.kill()
        await loadgen.wait()
        await server.stop()
