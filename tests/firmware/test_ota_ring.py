"""The outbox lends its rings to an over-the-air update (charger/otaput.py `build()`): shrunk for
the install and grown back after, whatever a session queued meanwhile comes out in the same
order, with the same sent/unsent marks, as from an outbox never resized. Runs the real module
on the MicroPython unix port (it uses `const()`)."""

import json

from tests.firmware.mpy import requires_micropython, run_mpy

pytestmark = requires_micropython

SCRIPT = """
import json
from charger.outbox import Outbox
from charger import otaput

def fill(box, sizes):
    # heads moved off slot 0 by confirmed entries, then a session's readings and its stop,
    # some sent (unconfirmed) when the resizes happen
    out = []
    for i in range(4):
        box.put_reading(7, 230.0, 1.5, 345.0, 100 + i, 1000 + i)
    box.put_event("stop", 7, 104, 1004)
    while box.next_unsent():
        pass
    box.confirm()
    for i in range(6):
        box.put_reading(8, 231.0, 2.0 + i, 460.0, 200 + i, 2000 + i)
        if i == 2:
            box.put_event("emergency", 8, 202, 2002)
    out.append(box.next_unsent())
    out.append(box.next_unsent())
    for readings, events in sizes:
        otaput.build(box, readings, events)
    box.put_reading(8, 232.0, 3.0, 500.0, 206, 2006)
    box.put_event("stop", 8, 206, 2007)
    out.append(len(box))
    out.append(box.unconfirmed)
    box.rewind()
    while True:
        m = box.next_unsent()
        if m is None:
            break
        out.append(m)
    return out

print(json.dumps([fill(Outbox(8, 3), ()), fill(Outbox(8, 3), [(12, 5), (20, 4), (8, 3)]),
                  fill(Outbox(8, 3), [(7, 2)])]))
"""


def test_the_rings_resized_keep_every_entry_in_order():
    plain, resized, shrunk = json.loads(run_mpy(SCRIPT).strip().splitlines()[-1])
    assert resized == plain
    assert shrunk == plain  # a smaller ring that still holds what waits
    sent = [json.loads(m) for m in plain[4:]]
    assert [m["type"] for m in sent] == ["metrics"] * 3 + ["emergency"] + ["metrics"] * 4 + ["stop"]
    assert [m.get("ts") for m in sent] == [2000, 2001, 2002, 2002, 2003, 2004, 2005, 2006, 2007]
