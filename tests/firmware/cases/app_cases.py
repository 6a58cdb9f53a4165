"""The app's interrupt path and hot loop on simulated hardware; MicroPython only."""

import json
import machine
import micropython
import time
from time import ticks_ms as ticks

from pzem_emu import PZEMEmulator
from rc522_emu import RC522Emulator

from charger import app, config
from charger.board import Board
from charger.link import Link
from charger.outbox import Outbox
from charger.state import ChargerState

CFG = config.validate({"server_url": "ws://127.0.0.1:9/ws", "station": 1, "watchdog_s": 0})


def _app():
    machine.attach_spi(1, RC522Emulator())
    machine.attach_uart(2, PZEMEmulator(power=3600.0))
    machine.Pin.board(CFG["pins"]["emergency"]).drive(0)
    a = app.App(CFG, Board(CFG), Outbox(), Link)
    a.on_link(True)  # as the link reports it once connected
    return a


def case_emergency_interrupt_opens_the_relay_without_allocating():
    a = _app()
    a.board.relay.on()
    pin = machine.Pin(CFG["pins"]["emergency"])
    micropython.heap_lock()
    try:
        a.emergency_irq(pin)  # a MemoryError here means the handler allocates
    finally:
        micropython.heap_unlock()
    assert not a.board.relay.is_on


def case_state_machine_hot_path_allocates_nothing():
    # Bytes allocated are counted, not heap_lock(): with the heap locked a frame above 11
    # slots falls back to the C stack, so a heap frame per tick would pass unseen. The loop
    # is a while (a range would be an allocation of the test's own).
    m = ChargerState()
    m.boot(True, False, 0)
    m.link(True, 0)
    m.card("AA", 0)
    m.server("start", 1, 10)
    total0 = micropython.mem_total()
    t = 1000
    while t < 20000:
        m.tick(t, t // 100)  # a meter reading
        m.tick(t + 100)
        m.tick(t)
        m.button("stop", False, t)
        m.card("AA", t)  # the same card again, within the same-card time
        t += 250
    allocated = micropython.mem_total() - total0
    assert allocated == 0, allocated
    assert m.state_name == "charging"


def case_a_poll_pass_with_nothing_to_do_allocates_nothing():
    # buttons, the state machine's clock, the LED, the card reader (no card); the meter's
    # poll is left out: its reading becomes three floats, which MicroPython allocates
    a = _app()
    a._do(a.sm.boot(a.board.reader.init(), False, 0))
    a.due[1] = time.ticks_add(time.ticks_ms(), 3600000)  # the meter
    sim0 = machine.sim_alloc[0]
    total0 = micropython.mem_total()
    for _ in range(20):
        a.due[0] = time.ticks_ms()  # the card reader
        assert 10 <= a.poll(time.ticks_ms()) <= 200
    firmware = micropython.mem_total() - total0 - (machine.sim_alloc[0] - sim0)
    assert firmware == 0, firmware


def _charging_app():
    # session 7 started and its first reading (register 1000 Wh) queued at t = 0
    a = _app()
    a.sm.card("AA", 0)
    a._do(a.sm.server("start", 7, 0))
    a._do(a.sm.tick(0, 1000))
    return a


def _sent(a):
    # everything in the outbox, as the link sends it
    texts = []
    while True:
        text = a.outbox.next_unsent()
        if text is None:
            return texts
        texts.append(json.loads(text))


def case_a_stop_in_the_same_second_as_the_last_reading_keeps_its_true_ts():
    # the server counts a register rise within the same whole second: no bumped ts
    a = _charging_app()
    a._do(a.sm.button("stop", True, 10))
    texts = _sent(a)
    stop = texts[-1]
    assert stop["type"] == "stop" and stop["session_id"] == 7 and "reason" not in stop
    assert texts[0]["ts"] <= stop["ts"] <= int(time.time())


def case_a_silent_meter_queues_a_stop_that_says_meter_failure():
    a = _charging_app()
    a._do(a.sm.tick(5000))  # no good reading for the meter silence time
    assert not a.board.relay.is_on
    stop = _sent(a)[-1]
    assert stop["type"] == "stop" and stop["session_id"] == 7
    assert stop["reason"] == "meter_failure"


def case_relay_never_closes_while_emergency_is_open():
    a = _app()
    machine.Pin.board(CFG["pins"]["emergency"]).drive(1)
    a.board.emergency.pressed = True
    a._do(2)  # relay on
    assert not a.board.relay.is_on


def case_status_reports_charging_with_the_latest_reading():
    a = _app()
    sm = a.sm
    sm.card("AA", 0)
    sm.server("start", 7, 0)
    sm.tick(100, 1234)
    texts = a.status_messages()
    assert '"state":"charging"' in texts[0] and '"session_id":7' in texts[0]
    assert len(texts) == 2 and '"wh":1234' in texts[1]


def case_status_reports_an_ended_session_as_charging_until_its_emergency_is_sent():
    # EMERGENCY while charging, the link down: the reconnect's status reports session 7 as
    # charging (its replay closes it as `emergency`); once the emergency went out on this
    # connection, a `sync_request`'s status tells the physical truth: fault. Before, it said
    # "charging 7" until the ack, and the server, which had already latched the emergency,
    # unlatched it (the station shown `disponible` with the charger in fault).
    a = _charging_app()
    a.on_link(False)
    a._do(a.sm.button("emergency", True, 10))
    a.outbox.rewind()  # the reconnect (the link rewinds before the status)
    assert json.loads(a.status_messages()[0])["state"] == "charging"
    sent = _sent(a)  # the replay: the first reading, then the emergency (not acked yet)
    assert [m["type"] for m in sent] == ["metrics", "emergency"]
    status = json.loads(a.status_messages()[0])
    assert status["state"] == "fault" and status["session_id"] is None


def case_malformed_server_messages_are_ignored():
    a = _app()
    a.sm.card("AA", 0)
    for msg in (
        {"type": "start"},
        {"type": "start", "session_id": "7"},
        {"type": "start", "session_id": True},
        {"type": "stop", "session_id": [1]},
        {"type": "start", "session_id": 2**40},
        {"type": "start", "session_id": 0},
        {"type": "start", "session_id": -7},
        {"type": "weird"},
        {"type": "error"},
    ):
        a.on_message(msg)
    assert not a.board.relay.is_on and a.sm.session_id is None


def case_an_emergency_seen_only_by_the_interrupt_faults_at_the_next_poll_pass():
    # A press too short for the debounce: the interrupt opened the relay and the pin is
    # closed again before the poll loop looks. The charger must still go to fault and report
    # the emergency, not stay "charging" with the relay open.
    a = _app()
    sm = a.sm
    a._do(sm.boot(a.board.reader.init(), False, 0))
    sm.card("AA", 0)
    a._do(sm.server("start", 7, 0))
    assert a.board.relay.is_on
    a.emergency_irq(machine.Pin(CFG["pins"]["emergency"]))
    assert not a.board.relay.is_on
    a._do(2)  # a relay-on action before the poll pass (a late start): stays off
    assert not a.board.relay.is_on
    a.poll(time.ticks_ms())
    assert sm.state_name == "fault" and not a.board.relay.is_on
    last = _sent(a)[-1]
    assert last["type"] == "emergency" and last["session_id"] == 7


def case_a_server_start_then_stop_switches_the_relay():
    a = _app()
    a.sm.card("AA", 0)
    a.on_message({"type": "start", "session_id": 7, "user_name": "Juan"})
    assert a.board.relay.is_on and a.sm.state_name == "charging"
    a.on_message({"type": "stop", "session_id": None})
    assert not a.board.relay.is_on and a.sm.state_name == "idle"


def case_a_refused_card_flashes_the_error_then_the_led_is_idle_again_not_waiting():
    a = _app()
    led = a.board.led
    a._do(a.sm.card("04A1B2C3", ticks()))
    assert led.pattern == 1  # waiting for the server
    a.on_message({"type": "error", "code": "CARD_UNKNOWN", "message": "Tarjeta desconocida"})
    assert led.pattern == 3  # the error flashes
    now = led.at
    while led.pattern == 3 and now - led.at < 10000:
        now += 50
        led.step(now)
    assert led.pattern == 0  # idle (online), not the waiting blink


def case_main_with_a_bad_config_shows_the_fault_pattern_instead_of_crashing():
    import asyncio
    import sys

    started = []
    real_run = asyncio.run
    asyncio.run = started.append  # keep the coroutine instead of blinking forever
    app.CONFIG_PATH = "no/such/config.json"
    try:
        sys.modules.pop("main", None)
        import main
    finally:
        asyncio.run = real_run
        app.CONFIG_PATH = "config.json"
    # no charger: the LED runs instead (charger/startup.py), showing the fault pattern
    assert not isinstance(main.charger_app, app.App) and main.charger_app.pattern == 4
    assert len(started) == 1
    started[0].close()


def case_main_whose_start_up_fails_to_load_shows_the_fault_pattern_instead_of_crashing():
    import asyncio
    import os
    import random
    import sys

    # charger/startup.py as a module whose loading failed half-way (a real module: main.py
    # unloads it with charger.forget())
    folder = "/tmp/evse-broken-startup-%d" % random.getrandbits(30)
    os.mkdir(folder)
    with open(folder + "/broken_startup.py", "w") as f:
        f.write("def build():\n    raise ImportError('no start-up')\n")
    sys.path.insert(0, folder)
    try:
        import broken_startup
    finally:
        sys.path.pop(0)
    started = []
    real_run = asyncio.run
    asyncio.run = started.append  # keep the coroutine instead of blinking forever
    sys.modules["charger.startup"] = broken_startup
    try:
        sys.modules.pop("main", None)
        import main
    finally:
        asyncio.run = real_run
        sys.modules.pop("charger.startup", None)
    # no charger (it died with AttributeError on None): the LED shows the fault pattern
    assert not isinstance(main.charger_app, app.App) and main.charger_app.pattern == 4
    assert len(started) == 1
    started[0].close()


# --- offline authorization (issue 13, charger/offline.py) ------------------------------------


def _offline_app(cards=("04A1B2C3",), offline=True, version=3, token="station-key-1"):
    # an app whose link is down, with a signed list stored beside its config (a fresh dir)
    import os
    import random
    from binascii import hexlify
    from hashlib import sha256

    from charger.offline import digest

    folder = "/tmp/evse-offline-case-%d" % random.getrandbits(30)
    os.mkdir(folder)
    app.CONFIG_PATH = folder + "/config.json"
    cfg = dict(CFG)
    cfg["token"] = token
    machine.attach_spi(1, RC522Emulator())
    machine.attach_uart(2, PZEMEmulator(power=3600.0))
    machine.Pin.board(CFG["pins"]["emergency"]).drive(0)
    a = app.App(cfg, Board(cfg), Outbox(), Link)
    a.on_link(False)
    msg = {"type": "auth_list", "version": version, "offline": offline, "cards": list(cards)}
    text = "1|%d|%d|%s" % (version, 1 if offline else 0, ",".join(cards))
    msg["sig"] = hexlify(digest(sha256(token.encode()).digest(), text.encode())).decode()
    a.on_message(msg)
    return a, folder, msg


def _tap_offline(a, uid, now=100):
    a._do(a.sm.tick(now, 1000))  # the meter's register before the relay closes
    a._do(a.sm.card(uid, now))


def case_a_signed_list_is_stored_and_a_forged_one_ignored():
    a, folder, msg = _offline_app(cards=("04A1B2C3", "0411223344AABB"))
    with open(folder + "/authlist.txt") as f:
        assert f.read() == "3\n04A1B2C3\n0411223344AABB\n"
    forged = dict(msg)
    forged["cards"] = ["04A1B2C3", "0411223344AABB", "04FFFFFF"]
    forged["version"] = 4
    a.on_message(forged)
    for bad in (
        {"type": "auth_list"},
        dict(msg, sig="00" * 32),
        dict(msg, cards="04A1B2C3"),
        dict(msg, version=True),
    ):
        a.on_message(bad)
    with open(folder + "/authlist.txt") as f:
        assert f.read() == "3\n04A1B2C3\n0411223344AABB\n"  # still the signed one
    import sys

    assert "charger.offline" not in sys.modules  # unloaded after each use


def case_an_offline_tap_of_a_listed_card_charges_and_holds_its_entries_until_accepted():
    a, _folder, _msg = _offline_app()
    _tap_offline(a, "04A1B2C3")
    local = a.waiting
    assert a.board.relay.is_on and a.sm.session_id == local and local >= 0x80000000
    a._do(a.sm.tick(ticks() + 3500, 1010))  # a reading of the offline session (3 s on)
    assert a.status_messages() == []  # no status while the start awaits its answer
    sent = _sent(a)  # the link's replay stops at the held entries
    assert [m["type"] for m in sent] == ["offline_start"]
    assert sent[0]["local_id"] == local and sent[0]["uid"] == "04A1B2C3"
    assert sent[0]["version"] == 3 and sent[0]["wh"] == 1000
    a.outbox.confirm()  # the server acked the offline_start
    a.on_message({"type": "start", "session_id": 42, "user_name": "Ana", "local_id": local})
    assert a.waiting is None and a.sm.session_id == 42 and a.board.relay.is_on
    sent = _sent(a)
    assert [(m["type"], m["session_id"], m["wh"]) for m in sent] == [
        ("metrics", 42, 1000),
        ("metrics", 42, 1010),
    ]
    status = json.loads(a.status_messages()[0])
    assert status["state"] == "charging" and status["session_id"] == 42


def case_an_accepted_offline_start_whose_card_was_disabled_is_ended_by_the_charger():
    a, _folder, _msg = _offline_app()
    _tap_offline(a, "04A1B2C3")
    local = a.waiting
    _sent(a)
    a.on_message(
        {"type": "start", "session_id": 43, "user_name": "Ana", "local_id": local, "end": True}
    )
    assert not a.board.relay.is_on and a.sm.state_name == "idle"
    sent = _sent(a)  # the baseline reading, then the stop: billed, then ended
    assert [(m["type"], m["session_id"]) for m in sent] == [("metrics", 43), ("stop", 43)]


def case_a_refused_offline_start_opens_the_relay_and_drops_its_entries():
    a, _folder, _msg = _offline_app()
    a.outbox.put_event("emergency", None, 900, 0)  # an older event, before the offline start
    _tap_offline(a, "04A1B2C3")
    local = a.waiting
    a._do(a.sm.button("stop", True, 3000))  # ended offline: its stop is queued (held)
    a._do(a.sm.button("stop", False, 3100))
    assert not a.board.relay.is_on
    assert [m["type"] for m in _sent(a)] == ["emergency", "offline_start"]
    a.on_message(
        {"type": "error", "code": "OFFLINE_START_REFUSED", "message": "no", "local_id": local}
    )
    assert a.waiting is None and a.ended is None
    assert _sent(a) == [] and len(a.outbox) == 2  # only the two sent, unconfirmed
    a.outbox.confirm()
    assert len(a.outbox) == 0
    # the next entries flow normally, and the next offline tap may start again
    a.outbox.put_reading(44, 230.0, 1.0, 230.0, 1100, 0)
    assert [m["session_id"] for m in _sent(a)] == [44]
    _tap_offline(a, "04A1B2C3", 50000)
    assert a.board.relay.is_on and a.waiting is not None and a.waiting != local


def case_a_refused_offline_start_still_charging_opens_the_relay():
    a, _folder, _msg = _offline_app()
    _tap_offline(a, "04A1B2C3")
    _sent(a)
    a.on_message({"type": "error", "code": "OFFLINE_START_REFUSED", "local_id": a.waiting})
    assert not a.board.relay.is_on and a.sm.session_id is None and _sent(a) == []


def case_offline_taps_that_may_not_start():
    a, _folder, _msg = _offline_app()
    _tap_offline(a, "04FFFFFF")  # not listed
    assert not a.board.relay.is_on and a.sm.state_name == "idle" and a.waiting is None
    _tap_offline(a, "04A1B2C3", 10000)  # listed: starts
    first = a.waiting
    a._do(a.sm.button("stop", True, 12000))
    a._do(a.sm.button("stop", False, 12100))
    _tap_offline(a, "04A1B2C3", 20000)  # one offline start awaits its answer: no second one
    assert not a.board.relay.is_on and a.waiting == first
    b, _folder, _msg = _offline_app(offline=False)  # the station's setting is off
    _tap_offline(b, "04A1B2C3")
    assert not b.board.relay.is_on and b.waiting is None


def case_the_offline_start_kind_is_the_one_offline_py_uses():
    # charger/offline.py reads the outbox's arrays and knows an offline_start event by kind 7
    # (its `_START`): the place of "offline_start" in the outbox's kinds, plus one
    from charger import outbox

    assert outbox._KINDS.index("offline_start") + 1 == 7


def case_a_list_is_refused_when_the_charger_has_no_token():
    # without a token the key would be sha256(b""): anyone could sign a list
    import os

    a, folder, _msg = _offline_app(token="")
    assert "authlist.txt" not in os.listdir(folder)
    _tap_offline(a, "04A1B2C3")
    assert not a.board.relay.is_on and a.waiting is None


def case_an_offline_start_acked_but_not_answered_is_reported_again_by_the_status():
    # its answer lost (or not handled): the status reports it again until one is handled
    a, _folder, _msg = _offline_app()
    _tap_offline(a, "04A1B2C3")
    local = a.waiting
    assert a.status_messages() == []  # its offline_start is still to go (the replay)
    assert [m["type"] for m in _sent(a)] == ["offline_start"]
    assert a.status_messages() == []  # sent, not acked yet: it is replayed if need be
    a.outbox.confirm()  # the server acked it; its answer never came
    again = [json.loads(text) for text in a.status_messages()]
    assert again == [{"type": "offline_start", "local_id": local, "uid": "04A1B2C3", "version": 3}]
    assert _sent(a) == []  # the session's entries are held until the answer
    answer = {"type": "start", "session_id": 42, "user_name": "Ana", "local_id": local}
    a.on_message(answer)
    assert a.waiting is None and a.sm.session_id == 42
    assert [(m["type"], m["session_id"]) for m in _sent(a)] == [("metrics", 42)]
    a.on_message(answer)  # a second answer (the report went twice) changes nothing
    assert a.sm.session_id == 42 and a.board.relay.is_on and _sent(a) == []
    status = json.loads(a.status_messages()[0])
    assert status["state"] == "charging" and status["session_id"] == 42


def case_a_local_reset_while_an_offline_start_awaits_its_answer():
    a, _folder, _msg = _offline_app()
    _tap_offline(a, "04A1B2C3")
    local = a.waiting
    a._do(a.sm.button("emergency", True, 1000))  # opened: the fault
    a._do(a.sm.button("emergency", False, 2000))
    a._do(a.sm.button("stop", True, 3000))  # STOP held: the local reset
    a._do(a.sm.tick(3000 + CFG["reset_hold_s"] * 1000, None))  # (IndexError before the fix)
    assert a.sm.state_name == "idle" and not a.board.relay.is_on and a.waiting == local
    sent = _sent(a)  # the offline start, then its emergency, held until the answer
    assert [m["type"] for m in sent] == ["offline_start"]


def _journaled_boot(cfg, path):
    # the board (re)booting with its journal, as charger/startup.py does it
    from charger import forget, jboot
    from charger.outbox import Journal

    machine.attach_spi(1, RC522Emulator())
    machine.attach_uart(2, PZEMEmulator(power=3600.0))
    machine.Pin.board(CFG["pins"]["emergency"]).drive(0)
    box = Journal(path)
    ended = jboot.boot(box, False)
    forget("charger.jboot")
    forget("charger.jfile")
    a = app.App(cfg, Board(cfg), box, Link)
    a.ended = ended
    a.on_link(False)
    for data in box.state[7]:
        if data[1] == 32:  # an unanswered offline start
            from charger import offline

            offline.run(a, data)
            forget("charger.offline")
            break
    return a


def case_an_offline_start_acked_then_cut_by_a_reboot_is_reported_and_its_record_dropped():
    a, folder, _msg = _offline_app()
    path = folder + "/journal.bin"
    b = _journaled_boot(a.cfg, path)
    _tap_offline(b, "04A1B2C3")
    local = b.waiting
    assert [m["type"] for m in _sent(b)] == ["offline_start"]
    b.outbox.confirm()  # acked; the board reboots before the answer
    assert [r[1] for r in b.outbox.state[7]] == [32]
    c = _journaled_boot(a.cfg, path)
    assert c.waiting == local  # from its held entries (its offline_start left the outbox)
    again = [json.loads(text) for text in c.status_messages()]
    assert again == [{"type": "offline_start", "local_id": local, "uid": "04A1B2C3", "version": 3}]
    c.on_message({"type": "start", "session_id": 42, "user_name": "Ana", "local_id": local})
    assert c.waiting is None
    sent = _sent(c)  # the baseline reading, the stop the reboot made: re-labelled
    assert [(m["type"], m["session_id"]) for m in sent] == [("metrics", 42), ("stop", 42)]
    assert sent[1]["reason"] == "charger_reset"
    assert c.outbox.state[7] == []  # answered: the record is gone from the journal too
    d = _journaled_boot(a.cfg, path)
    assert d.outbox.state[7] == [] and d.waiting is None


def case_an_offline_start_record_with_nothing_left_of_its_session_is_dropped_at_boot():
    # acked, no reading of it yet (no meter reading before the tap), then a reboot: nothing
    # of it waits for an answer, so the record goes (every boot would load offline.py for it)
    a, folder, _msg = _offline_app()
    path = folder + "/journal.bin"
    b = _journaled_boot(a.cfg, path)
    b._do(b.sm.card("04A1B2C3", 100))  # the meter not read yet: no baseline reading
    assert b.waiting is not None and b.board.relay.is_on
    assert [m["type"] for m in _sent(b)] == ["offline_start"]
    b.outbox.confirm()
    c = _journaled_boot(a.cfg, path)
    assert c.waiting is None and c.outbox.state[7] == [] and c.status_messages()
    d = _journaled_boot(a.cfg, path)
    assert d.outbox.state[7] == []  # gone from the file too
