"""The firmware's peak heap during an over-the-air update stays within 64 KB (issue 13), on the
64-bit unix port with the session journal on: tools/bench/firmware_ota_memory.py run as a test
(a memory figure, not a timing; a few seconds). Both paths: a corrupted bundle (downloaded,
hashed, refused, the update's modules unloaded, no reset) and a good one (downloaded, unpacked,
switched, reset); also corrected for the qstr pool as the firmware alone would hold it."""

import pytest

from tests.firmware.mpy import requires_micropython
from tools.bench import firmware_ota_memory

pytestmark = [requires_micropython, pytest.mark.timeout(300)]


async def test_an_update_installs_or_is_refused_within_64_kb_of_heap():
    result = await firmware_ota_memory.measure()
    refused, installed = result["refused"], result["installed"]
    assert refused["update_result"] == {
        "version": "bench",
        "result": "refused",
        "code": "HASH_MISMATCH",
    }
    assert installed["switched"]
    assert refused["memory_errors"] == installed["memory_errors"] == 0
    assert refused["peak_heap_bytes"] <= firmware_ota_memory.LIMIT, result
    assert installed["peak_heap_bytes"] <= firmware_ota_memory.LIMIT, result
    # and for the firmware alone: the names the update interns must not take the qstr pool
    # past its next chunk (300 names: 3.5 KB at once, for good)
    assert result["peak_heap_alone_bytes"] <= firmware_ota_memory.LIMIT, result
    # the update's code and the outbox's rings are back to what they were: what stays is the
    # names it interned (a few hundred bytes), not its modules (2 to 3 KB each)
    assert refused["heap_after_update_bytes"] - refused["heap_before_update_bytes"] < 1500, result
