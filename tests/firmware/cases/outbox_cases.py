"""Cases for the outbox (bounds, drop order, events kept, order); CPython and MicroPython."""

import json

from charger.outbox import Outbox


def _drain(box):
    # the link's way, one entry at a time: send it, then confirm it
    out = []
    while True:
        text = box.next_unsent()
        if text is None:
            return out
        out.append(json.loads(text))
        box.confirm()


def _reading(n, sid=7):
    return (sid, 230.0 + n / 10, 1.5, 345.5, 1000 + n, 1700000000 + n)


def case_holds_at_least_200_readings_in_order():
    box = Outbox()
    for n in range(200):
        assert box.put_reading(*_reading(n))
    assert len(box) == 200 and box.dropped == 0
    got = _drain(box)
    assert [m["ts"] for m in got] == [1700000000 + n for n in range(200)]
    assert got[0] == {
        "type": "metrics",
        "session_id": 7,
        "v": 230.0,
        "a": 1.5,
        "w": 345.5,
        "wh": 1000,
        "ts": 1700000000,
    }
    assert len(box) == 0 and box.next_unsent() is None


def case_full_outbox_drops_the_oldest_reading_first():
    box = Outbox(readings=5, events=2)
    for n in range(8):
        box.put_reading(*_reading(n))
    assert len(box) == 5 and box.dropped == 3
    assert [m["wh"] for m in _drain(box)] == [1003, 1004, 1005, 1006, 1007]


def case_stop_and_emergency_are_never_dropped_for_readings():
    box = Outbox(readings=4, events=2)
    box.put_reading(*_reading(0))
    box.put_event("stop", 7, 1500, 1700000100)
    for n in range(1, 20):
        box.put_reading(*_reading(n, sid=8))
    box.put_event("emergency", 8, 1600, 1700000200)
    got = _drain(box)
    assert got[0] == {"type": "stop", "session_id": 7, "wh": 1500, "ts": 1700000100}
    assert [m["wh"] for m in got[1:5]] == [1016, 1017, 1018, 1019]
    assert got[5] == {"type": "emergency", "session_id": 8, "wh": 1600, "ts": 1700000200}
    assert len(got) == 6 and box.dropped == 16


def case_order_of_readings_and_events_is_preserved():
    box = Outbox(readings=10, events=4)
    box.put_reading(*_reading(1))
    box.put_event("stop", 7, 1001, 1700000001)
    box.put_reading(*_reading(2, sid=9))
    box.put_event("emergency", None, None, 0)
    assert [m["type"] for m in _drain(box)] == ["metrics", "stop", "metrics", "emergency"]


def case_events_beyond_their_slots_are_refused_not_silently_lost():
    box = Outbox(readings=2, events=3)
    for n in range(3):
        assert box.put_event("stop", n, None, None)
    assert box.put_event("stop", 99, None, None) is False and box.lost_events == 1
    assert box.put_reading(*_reading(0))  # readings have their own room
    assert [m["session_id"] for m in _drain(box)] == [0, 1, 2, 7]


def case_confirm_after_the_sent_reading_was_dropped_removes_nothing_else():
    box = Outbox(readings=2, events=1)
    box.put_reading(*_reading(0))
    box.put_reading(*_reading(1))
    sent = json.loads(box.next_unsent())  # the link is sending reading 0...
    box.put_reading(*_reading(2))  # ...when a put drops it
    box.confirm()  # must not remove reading 1 (never sent)
    assert sent["wh"] == 1000
    assert [m["wh"] for m in _drain(box)] == [1001, 1002]


def case_invalid_reading_is_refused_and_counted():
    box = Outbox()
    nan = float("nan")
    assert box.put_reading(7, nan, 1.0, 1.0, 1, 1) is False
    assert box.put_reading(7, 230.0, float("inf"), 1.0, 1, 1) is False
    assert box.put_reading(None, 230.0, 1.0, 1.0, 1, 1) is False
    assert box.put_reading(7, "230", 1.0, 1.0, 1, 1) is False
    assert box.put_reading(7, 230.0, 1.0, 1.0, -5000000000, 1) is False
    assert box.put_reading(7, 230.0, 1.0, 1.0, 1, -1) is False
    assert box.put_reading(-7, 230.0, 1.0, 1.0, 1, 1) is False
    assert box.put_reading(7, 230.0, 1.0, 1.0, -1, 1) is False
    assert box.put_reading(7, 230.0, 1.0, float("-inf"), 1, 1) is False
    assert box.rejected == 9 and len(box) == 0


def case_a_fault_stop_keeps_its_reason_through_a_rewind_and_the_replay():
    box = Outbox(readings=4, events=4)
    box.put_event("meter_failure", 7, None, 1700000001)
    box.put_reading(*_reading(1, sid=8))
    box.put_event("offline_limit", 8, 1500, 1700000100)
    box.put_event("stop", 9, 1600, 1700000200)
    box.put_event("emergency", 9, 1600, 1700000201)
    first = _take_unsent(box)
    box.rewind()  # the connection died before the server confirmed them
    again = _take_unsent(box)
    assert again == first
    assert first[0] == {
        "type": "stop",
        "session_id": 7,
        "reason": "meter_failure",
        "ts": 1700000001,
    }
    assert first[2] == {
        "type": "stop",
        "session_id": 8,
        "reason": "offline_limit",
        "wh": 1500,
        "ts": 1700000100,
    }
    assert "reason" not in first[3] and first[4]["type"] == "emergency"


def case_unknown_event_kind_is_a_clear_error():
    box = Outbox()
    try:
        box.put_event("start", 1, None, None)
    except ValueError as e:
        assert "stop" in str(e)
    else:
        raise AssertionError("no error")


def case_unset_clock_and_missing_wh_are_omitted():
    box = Outbox()
    box.put_reading(3, 229.9, 0.0, 0.0, None, None)
    assert json.loads(box.next_unsent()) == {
        "type": "metrics",
        "session_id": 3,
        "v": 229.9,
        "a": 0.0,
        "w": 0.0,
    }


def case_wraps_around_many_times_and_matches_a_list_model():
    # the link's way: next_unsent() one entry, then confirm(); sometimes the link drops
    # (rewind) and the entry is taken again
    box = Outbox(readings=7, events=30)
    model = []  # what the outbox must hold, oldest first: wh of readings, ("stop", sid)

    def drop_oldest_reading():
        for k, item in enumerate(model):
            if isinstance(item, int):
                del model[k]
                return

    n = 0
    for rnd in range(60):
        for _ in range(rnd % 5 + 1):
            if sum(1 for x in model if isinstance(x, int)) == 7:
                drop_oldest_reading()
            box.put_reading(*_reading(n))
            model.append(1000 + n)
            n += 1
        if rnd % 4 == 0:
            box.put_event("stop", rnd, None, None)
            model.append(("stop", rnd))
        for k in range(rnd % 4):
            text = box.next_unsent()
            if text is None:
                assert model == []
                break
            if k == 1 and rnd % 3 == 0:
                box.rewind()
                continue
            box.confirm()
            m = json.loads(text)
            got = m["wh"] if m["type"] == "metrics" else (m["type"], m["session_id"])
            assert got == model.pop(0), (got, rnd)
        assert len(box) == len(model) and box.readings == sum(isinstance(x, int) for x in model)
    assert [m.get("wh", (m["type"], m["session_id"])) for m in _drain(box)] == model


def _take_unsent(box):
    out = []
    while True:
        text = box.next_unsent()
        if text is None:
            return out
        out.append(json.loads(text))


def case_sent_entries_stay_until_confirmed_and_rewind_sends_them_again():
    box = Outbox(readings=10, events=4)
    box.put_reading(*_reading(1))
    box.put_event("stop", 7, 1001, 1700000001)
    first = _take_unsent(box)
    assert [m["type"] for m in first] == ["metrics", "stop"]
    assert len(box) == 2 and box.unconfirmed == 2  # sent, not yet delivered
    box.put_reading(*_reading(2))
    box.rewind()  # the connection died
    again = _take_unsent(box)
    assert again[:2] == first and again[2]["wh"] == 1002  # same order, then the new one
    box.confirm()
    assert len(box) == 0 and box.unconfirmed == 0 and box.next_unsent() is None


def case_confirm_removes_only_what_was_sent_before_it():
    box = Outbox(readings=10, events=4)
    box.put_reading(*_reading(1))
    _take_unsent(box)
    box.put_reading(*_reading(2))  # arrives while waiting for the pong
    box.confirm()
    assert [m["wh"] for m in _drain(box)] == [1002]


def case_a_full_outbox_can_drop_a_sent_but_unconfirmed_reading():
    box = Outbox(readings=3, events=2)
    for n in range(3):
        box.put_reading(*_reading(n))
    assert len(_take_unsent(box)) == 3
    box.put_reading(*_reading(3))  # drops reading 0 (sent, unconfirmed)
    assert box.unconfirmed == 2 and box.dropped == 1
    assert [m["wh"] for m in _take_unsent(box)] == [1003]
    box.confirm()
    assert len(box) == 0


def case_order_survives_the_put_counter_wrapping_around():
    # readings are ordered against events by a 30-bit count of readings put (a small int on
    # the ESP32) that wraps. White box: the ring state's counter (index 5) is moved next to
    # the wrap while the outbox is empty.
    def kinds(got):
        return [m["wh"] if m["type"] == "metrics" else m["type"] for m in got]

    box = Outbox(readings=3, events=2)
    box._n[5] = 0x3FFFFFFF - 1
    box.put_event("stop", 7, 1500, 1700000100)  # before the wrap
    for n in range(3):  # the last count, then after the wrap
        box.put_reading(*_reading(n))
    assert kinds(_drain(box)) == ["stop", 1000, 1001, 1002]
    box._n[5] = 0x3FFFFFFF - 1
    box.put_reading(*_reading(3))
    box.put_reading(*_reading(4))  # the last count before the wrap
    box.put_event("emergency", 7, 1600, 1700000200)
    for n in range(5, 8):  # readings 3 and 4 dropped
        box.put_reading(*_reading(n))
    assert kinds(_drain(box)) == ["emergency", 1005, 1006, 1007]
    box._n[5] = 0x3FFFFFFF - 1
    box.put_reading(*_reading(8))
    box.put_reading(*_reading(9))
    box.put_event("stop", 8, 1700, 1700000300)  # after the wrap
    box.put_reading(*_reading(10))
    assert kinds(_drain(box)) == [1008, 1009, "stop", 1010]


def case_numbers_given_as_floats_are_sent_as_integers():
    box = Outbox()
    assert box.put_reading(7.0, 230, 2, 460, 1500.0, 1700000000.0)
    box.put_event("emergency", 7.0, 1500.0, 1700000001.0)
    assert _drain(box) == [
        {
            "type": "metrics",
            "session_id": 7,
            "v": 230.0,
            "a": 2.0,
            "w": 460.0,
            "wh": 1500,
            "ts": 1700000000,
        },
        {"type": "emergency", "session_id": 7, "wh": 1500, "ts": 1700000001},
    ]


def case_invalid_event_values_are_a_clear_error_and_store_nothing():
    box = Outbox()
    for args in (
        (7, float("nan"), 1),
        ("7", 1, 1),
        (7, 1, -1),
        (7, 2**40, 1),
        (None, 1, 1),
    ):  # a stop is about a session (an emergency may have none)
        try:
            box.put_event("stop", *args)
        except ValueError as e:
            assert "session_id" in str(e), e
        else:
            raise AssertionError("accepted %r" % (args,))
    assert len(box) == 0


def case_an_outbox_without_room_is_refused():
    for r, e in ((0, 32), (200, 0)):
        try:
            Outbox(readings=r, events=e)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %d readings, %d events" % (r, e))


def case_a_meter_register_beyond_2_to_the_31_wh_is_kept_exactly():
    # the PZEM-004T energy register is a uint32 of Wh
    box = Outbox()
    assert box.put_reading(7, 230.0, 1.0, 230.0, 4294967294, 4294967295)
    box.put_event("stop", 4294967294, 4294967294, 4294967295)
    got = _drain(box)
    assert got[0]["wh"] == 4294967294 and got[0]["ts"] == 4294967295
    assert got[1] == {"type": "stop", "session_id": 4294967294, "wh": 4294967294, "ts": 4294967295}


def case_queuing_a_reading_allocates_nothing_even_when_the_outbox_is_full():
    # issue 3: a reading is queued every metrics interval for years; put_reading() fits in
    # 11 frame slots, so MicroPython allocates no heap frame for it (184 B a call before;
    # heap_lock() would not show it: a frame falls back to the C stack when the heap is
    # locked, so the bytes allocated are counted instead)
    try:
        from micropython import mem_total
    except ImportError:  # CPython: no MicroPython heap to watch
        return
    box = Outbox(readings=4)
    box.put_reading(7, 230.1, 16.2, 3680.0, 1000, 1764150000)
    assert box.next_unsent() is not None  # sent, not confirmed: a full outbox drops it
    before = mem_total()
    for i in range(1, 10):
        box.put_reading(7, 230.1, 16.2, 3680.0, 1000 + i, 1764150000 + i)
    allocated = mem_total() - before
    assert allocated == 0, allocated
    assert box.readings == 4 and box.dropped == 6 and box.unconfirmed == 0
    assert [msg["wh"] for msg in _drain(box)] == [1006, 1007, 1008, 1009]
