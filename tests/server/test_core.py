"""Session rules without sockets or SQL: events in, effects out."""

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import core as c
from server import protocol as p
from server.codecs import SEED
from server.protocol import Emergency, Metrics, StatusReport, Stop
from server.vocabulary import RemoteStop

NOW = 1_800_000_000.0
UID = "VIRTUAL-1-A4F2E8"


@dataclass(frozen=True)
class Card:
    uid: str
    user_id: int
    user_name: str
    enabled: bool = True


JUAN = Card(UID, 1, "Juan Pérez")


def kinds(effects, effect_type):
    return [e for e in effects if isinstance(e, effect_type)]


def messages(effects, effect_type=c.ToClients):
    """What dashboards are pushed, or what a charger is sent in the seed protocol."""
    found = kinds(effects, effect_type)
    if effect_type is c.ToClients:
        return [e.message for e in found]
    return [SEED.message(e.command) for e in found]


@pytest.fixture
def core():
    session_core = c.SessionCore()
    session_core.add_station(1, "Estación 1", 7.0)
    session_core.add_station(2, "Estación 2", 7.0)
    session_core.publisher_connected(1, NOW)
    return session_core


def start_session(core, session_id=123, station_id=1, card=JUAN, now=NOW):
    [create] = core.handle_publisher(station_id, c.CardTap(card.uid, card, 7.0), now)
    assert isinstance(create, c.CreateSession)
    return core.session_created(create, session_id)


def test_known_card_starts_a_session_on_the_charger_and_tells_dashboards(core):
    effects = start_session(core)
    assert messages(effects, c.ToCharger) == [p.start(123, "Juan Pérez")]
    started, status = messages(effects)
    assert started["type"] == "session_started" and started["timestamp"].endswith("Z")
    assert status == {"type": "status", "charger_id": 1, "status": "cargando"}


@pytest.mark.parametrize(
    "card, code",
    [(None, p.CARD_UNKNOWN), (Card(UID, 1, "Juan Pérez", enabled=False), p.CARD_DISABLED)],
)
def test_rejected_cards_answer_the_charger_and_show_on_dashboards(core, card, code):
    effects = core.handle_publisher(1, c.CardTap(UID, card, 7.0), NOW)
    assert [m["code"] for m in messages(effects, c.Reply)] == [code]
    assert messages(effects)[0]["code"] == code and messages(effects)[0]["charger_id"] == 1
    assert not kinds(effects, c.CreateSession)


def test_other_card_on_a_charging_station_is_busy(core):
    start_session(core)
    other = Card("04A32B1C", 2, "Ana")
    effects = core.handle_publisher(1, c.CardTap(other.uid, other, 7.0), NOW)
    assert messages(effects, c.Reply)[0]["code"] == p.STATION_BUSY


def test_a_repeated_tap_while_the_session_is_being_created_is_ignored(core):
    core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW)
    assert core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW + 1) == []  # one gesture


def test_another_tap_while_the_session_is_being_created_is_busy(core):
    core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW)
    effects = core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW + 3)  # after the debounce
    assert messages(effects, c.Reply)[0]["code"] == p.STATION_BUSY


def test_same_card_tapped_again_stops_its_session(core):
    start_session(core)
    effects = core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW + 60)
    assert messages(effects, c.ToCharger) == [p.stop(123)]
    [end] = kinds(effects, c.EndSession)
    assert end.session_id == 123 and end.reason == c.CARD_STOP


def test_metrics_accumulate_energy_and_bill_the_frozen_tariff(core):
    start_session(core)
    core.add_station(1, "Estación 1", 99.0)  # tariff changed mid-session: not applied
    for k, wh in enumerate([1000.0, 3450.0]):  # 2450 Wh in ~41 min
        effects = core.handle_publisher(
            1, Metrics(123, 220.5, 16.2, 3572.1, NOW + k * 2500, wh), NOW + k * 2500
        )
    [pushed] = messages(effects)
    assert pushed["kwh"] == 2.45 and pushed["cost"] == 17.15
    [reading] = kinds(effects, c.QueueReading)
    assert reading.session_id == 123 and reading.kwh == pytest.approx(2.45)


def test_unsynced_charger_clock_is_replaced_by_server_time(core):
    start_session(core)
    effects = core.handle_publisher(1, Metrics(123, 230, 10, 2300, 0.0), NOW + 5)
    assert kinds(effects, c.QueueReading)[0].ts == NOW + 5
    effects = core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 10 * 86400), NOW + 8)
    assert kinds(effects, c.QueueReading)[0].ts == NOW + 8


def test_an_energy_anomaly_alerts_dashboards_once_per_session(core):
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, 1000.0), NOW + 3)
    effects = core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 6, 9e8), NOW + 6)
    [alert] = kinds(effects, c.AddAlert)
    assert (alert.kind, alert.session_id, alert.station_id) == (c.ENERGY_ANOMALY, 123, 1)
    assert [m["kind"] for m in messages(effects) if m["type"] == "alert"] == ["energy_anomaly"]
    [reading] = kinds(effects, c.QueueReading)
    assert reading.flag == "implausible_register" and reading.charger_ts == NOW + 6
    effects = core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 9, 2e9), NOW + 9)
    assert not kinds(effects, c.AddAlert) and kinds(effects, c.QueueReading)[0].flag


def test_an_impossible_register_in_an_idle_report_alerts_before_the_session_ends(core):
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, 1000.0), NOW + 3)
    effects = core.handle_publisher(1, StatusReport("idle", None, 5e8), NOW + 6)
    order = [type(e) for e in effects if isinstance(e, (c.AddAlert, c.EndSession))]
    assert order == [c.AddAlert, c.EndSession]
    [end] = kinds(effects, c.EndSession)
    assert end.reason == c.CHARGER_RESET and end.kwh == pytest.approx(2300 / 2 * 3 / 3600 / 1000)


def test_replayed_metrics_are_ignored(core):
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3), NOW + 3)
    assert core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3), NOW + 4) == []


def test_a_reading_replayed_for_the_stations_own_closed_session_is_ignored_silently(core):
    # the charger missed the ack of the commit that stored it and the stop: it sends both again
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, wh=1001), NOW + 3)
    core.handle_publisher(1, Stop(123, wh=1002, ts=NOW + 4), NOW + 4)
    assert core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, wh=1001), NOW + 9) == []
    assert core.handle_publisher(1, Stop(123, wh=1002, ts=NOW + 4), NOW + 9) == []
    effects = core.handle_publisher(2, Metrics(123, 230, 10, 2300, NOW + 3, wh=1001), NOW + 9)
    assert [m["code"] for m in messages(effects, c.Reply)] == [
        p.SESSION_MISMATCH
    ]  # not station 2's


def test_metrics_for_another_session_are_rejected_and_not_stored(core):
    start_session(core)
    effects = core.handle_publisher(1, Metrics(999, 230, 10, 2300, NOW), NOW)
    assert [m["code"] for m in messages(effects, c.Reply)] == [p.SESSION_MISMATCH]
    assert not kinds(effects, c.QueueReading)


def test_charger_stop_ends_the_session_and_a_repeat_is_harmless(core):
    start_session(core)
    effects = core.handle_publisher(1, Stop(123), NOW + 120)
    ended = messages(effects)[0]
    assert ended["type"] == "session_ended" and ended["duration"] == 120
    assert kinds(effects, c.EndSession)[0].reason == c.LOCAL_STOP
    assert not kinds(effects, c.AddAlert)  # the STOP button is no fault
    assert core.handle_publisher(1, Stop(123), NOW + 121) == []


@pytest.mark.parametrize(
    "reason, words", [("meter_failure", "Falla del medidor"), ("offline_limit", "sin conexión")]
)
def test_a_charger_stop_for_its_own_fault_ends_as_local_stop_and_alerts_the_operator(
    core, reason, words
):
    start_session(core)
    effects = core.handle_publisher(1, Stop(123, reason=reason), NOW + 8)
    [alert] = kinds(effects, c.AddAlert)
    assert (alert.kind, alert.session_id, alert.station_id) == (
        reason,
        123,
        1,
    ) and words in alert.detail
    [end] = kinds(effects, c.EndSession)
    assert end.reason == c.LOCAL_STOP
    pushed = messages(effects)
    assert [m["type"] for m in pushed] == ["alert", "session_ended", "status"]
    assert pushed[0] == p.alert(1, 123, reason, alert.detail, NOW + 8)
    assert core.stations[1].status == p.DISPONIBLE  # not latched: the next tap may try again


@pytest.mark.parametrize("reason", ["power_loss", "charger_reset"])
def test_a_session_the_charger_reports_interrupted_ends_with_that_reason_after_its_readings(
    core, reason
):
    """The journal's replay after a reboot: `status charging` (resume), the readings the
    server never had, then `stop` with the reason and the last journaled register."""
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, wh=1000.0), NOW + 3)
    assert core.handle_publisher(1, StatusReport("charging", 123, None), NOW + 700) == []
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 603, wh=1383.0), NOW + 700)
    effects = core.handle_publisher(1, Stop(123, wh=1383.0, ts=NOW + 603, reason=reason), NOW + 700)
    [end] = kinds(effects, c.EndSession)
    assert (end.reason, end.kwh) == (reason, pytest.approx(0.383))  # the register's delta
    assert not kinds(effects, c.AddAlert)  # the session's end says it; no fault to check
    assert [m["reason"] for m in messages(effects) if m["type"] == "session_ended"] == [reason]
    assert core.handle_publisher(1, Stop(123, wh=1383.0, reason=reason), NOW + 701) == []


def charge_then_lose_the_link(core, lost_at):
    """A session at 7.2 kW (2 Wh/s): readings a minute apart, then the charger's connection is
    lost at `lost_at` (the board died; the ping timeout noticed)."""
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 31.3, 7200, NOW + 3, wh=1000.0), NOW + 3)
    core.handle_publisher(1, Metrics(123, 230, 31.3, 7200, NOW + 63, wh=1120.0), NOW + 63)
    core.publisher_gone(1, lost_at)


@pytest.mark.parametrize("reason", ["power_loss", "charger_reset"])
def test_an_interrupted_stop_bills_no_energy_for_the_outage_after_the_connection_was_lost(
    core, reason
):
    """The board died after its last reading (NOW + 63); an hour later it is back and its
    journal's `stop` claims a register 20 kWh higher, stamped just before the reconnect. The
    session's age on the server clock (an hour at 22 kW allows 22 kWh) must not make that
    plausible: the register is bounded by the time up to the last sign of life + one metrics
    interval, the rest is flagged and alerted."""
    charge_then_lose_the_link(core, NOW + 75)
    core.publisher_connected(1, NOW + 3675)
    assert core.handle_publisher(1, StatusReport("charging", 123, None), NOW + 3676) == []
    effects = core.handle_publisher(
        1, Stop(123, wh=21_120.0, ts=NOW + 3670, reason=reason), NOW + 3676
    )
    [end] = kinds(effects, c.EndSession)
    # the register's 0.120 kWh, then at most the trapezoid (7200 W -> 0 W) over one interval
    bounded = (7200 / 2) * c.METRICS_INTERVAL_S / 3600 / 1000
    assert end.reason == reason
    assert end.kwh == pytest.approx(0.120 + bounded)
    assert end.energy_state["final_flag"] == "after_link_loss,implausible_register"
    [alert] = kinds(effects, c.AddAlert)
    assert (alert.kind, alert.session_id) == (c.ENERGY_ANOMALY, 123)
    assert "pérdida de conexión" in alert.detail
    pushed = [m["type"] for m in messages(effects)]
    assert pushed == ["alert", "session_ended", "status"]


@pytest.mark.parametrize("reason", ["power_loss", "charger_reset"])
def test_an_interrupted_stop_still_bills_the_journal_replay_of_the_offline_readings_exactly(
    core, reason
):
    """The link went first (NOW + 70), the board charged on offline for ten minutes (journaled)
    and then lost its power; after the outage its replay brings those readings, stamped before
    the outage, and the `stop` their last register: billed = the meter's delta."""
    charge_then_lose_the_link(core, NOW + 70)
    core.publisher_connected(1, NOW + 4000)
    core.handle_publisher(1, StatusReport("charging", 123, None), NOW + 4001)
    for k in range(1, 11):  # a reading a minute from NOW + 63 on, 120 Wh each
        core.handle_publisher(
            1, Metrics(123, 230, 31.3, 7200, NOW + 63 + 60 * k, wh=1120.0 + 120 * k), NOW + 4001
        )
    effects = core.handle_publisher(
        1, Stop(123, wh=2320.0, ts=NOW + 663, reason=reason), NOW + 4001
    )
    [end] = kinds(effects, c.EndSession)
    assert (end.reason, end.kwh) == (reason, pytest.approx(1.320))  # 2320 - 1000 Wh
    assert not kinds(effects, c.AddAlert)


def test_an_interrupted_stop_counts_a_register_one_metrics_interval_past_the_last_reading(core):
    """The board journaled one more reading (2 Wh/s for 3 s) after the last one the server
    heard and died before sending it: that register still counts, unflagged."""
    charge_then_lose_the_link(core, NOW + 75)
    core.publisher_connected(1, NOW + 3675)
    effects = core.handle_publisher(
        1, Stop(123, wh=1126.0, ts=NOW + 66, reason="power_loss"), NOW + 3676
    )
    [end] = kinds(effects, c.EndSession)
    assert end.kwh == pytest.approx(0.126) and end.energy_state["final_flag"] is None
    assert not kinds(effects, c.AddAlert)


def test_an_interrupted_stop_after_a_reconnect_that_replaced_the_dead_connection_is_bounded(
    core,
):
    """The board rebooted and reconnected before the server noticed its old connection was
    dead (a newer connection replaces it): the bound is still the old connection's last
    reading, not the replacement."""
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 31.3, 7200, NOW + 3, wh=1000.0), NOW + 3)
    core.handle_publisher(1, Metrics(123, 230, 31.3, 7200, NOW + 63, wh=1120.0), NOW + 63)
    core.publisher_replaced(1, NOW + 600, "10.0.0.7:5000", "10.0.0.7:5001")
    effects = core.handle_publisher(
        1, Stop(123, wh=3_000.0, ts=NOW + 599, reason="power_loss"), NOW + 600
    )
    [end] = kinds(effects, c.EndSession)
    assert end.kwh < 0.121 + 0.01 and "implausible_register" in end.energy_state["final_flag"]


def test_an_interrupted_stop_of_a_session_reloaded_after_a_restart_is_bounded_by_its_last_reading(
    core,
):
    """The server restarted during the outage: the connection's loss was not seen, the stored
    account's last arrival is the bound."""
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 31.3, 7200, NOW + 3, wh=1000.0), NOW + 3)
    core.handle_publisher(1, Metrics(123, 230, 31.3, 7200, NOW + 63, wh=1120.0), NOW + 63)
    session = core.stations[1].session
    restarted = c.SessionCore()
    restarted.add_station(1, "Estación 1", 7.0)
    restarted.load_open_session(
        Stored(
            123,
            1,
            session.user_name,
            session.card_uid,
            session.started_at,
            7.0,
            session.energy.to_dict(),
        )
    )
    restarted.publisher_connected(1, NOW + 3600)
    effects = restarted.handle_publisher(
        1, Stop(123, wh=21_120.0, ts=NOW + 3590, reason="power_loss"), NOW + 3600
    )
    [end] = kinds(effects, c.EndSession)
    assert end.kwh < 0.121 + 0.01 and "implausible_register" in end.energy_state["final_flag"]


@dataclass(frozen=True)
class Stored:
    id: int
    station_id: int
    user_name: str
    card_uid: str
    started_at: float
    tariff: float
    energy_state: dict


def test_a_replayed_fault_stop_of_an_ended_session_adds_no_second_alert(core):
    start_session(core)
    core.handle_publisher(1, Stop(123, reason="meter_failure"), NOW + 8)
    assert core.handle_publisher(1, Stop(123, reason="meter_failure"), NOW + 20) == []


def test_dashboard_stop_with_charger_offline_changes_nothing(core):
    start_session(core)
    core.publisher_gone(1, NOW)
    effects = core.dashboard_stop(1, RemoteStop(123), NOW)
    assert messages(effects, c.Reply) == [p.error("ESP32 no conectado", p.CHARGER_OFFLINE)]
    assert core.stations[1].session.id == 123


def test_dashboard_stop_forwards_stop_and_ends_with_remote_stop(core):
    start_session(core)
    effects = core.dashboard_stop(None, RemoteStop(123), NOW + 10)  # an estacionId=all dashboard
    assert messages(effects, c.ToCharger) == [p.stop(123)]
    assert kinds(effects, c.EndSession)[0].reason == c.REMOTE_STOP


def test_emergency_ends_session_latches_and_only_a_status_report_clears_it(core):
    start_session(core)
    effects = core.handle_publisher(1, Emergency(123), NOW)
    assert [m["type"] for m in messages(effects)] == ["emergency", "session_ended", "status"]
    assert kinds(effects, c.AddAlert)[0].kind == "emergency"
    assert core.stations[1].status == p.EMERGENCIA
    refused = core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW)
    assert messages(refused, c.Reply)[0]["code"] == p.STATION_FAULT
    core.handle_publisher(1, StatusReport("idle"), NOW)
    assert core.stations[1].status == p.DISPONIBLE


def test_a_replayed_emergency_of_a_latched_fault_adds_no_second_alert(core):
    start_session(core)
    core.handle_publisher(1, Emergency(123), NOW)
    core.publisher_gone(1, NOW + 1)
    core.publisher_connected(1, NOW + 5)
    core.handle_publisher(1, StatusReport("fault"), NOW + 5)
    assert core.handle_publisher(1, Emergency(123), NOW + 5) == []
    core.handle_publisher(1, StatusReport("idle"), NOW + 60)  # the local reset gesture
    again = core.handle_publisher(1, Emergency(None), NOW + 90)
    assert [a.kind for a in kinds(again, c.AddAlert)] == ["emergency"]


def test_the_latch_is_persisted_when_it_changes_and_only_then(core):
    def latches(effects):
        return [(e.station_id, e.latched_at) for e in kinds(effects, c.SetEmergencyLatch)]

    assert latches(core.handle_publisher(1, Emergency(None), NOW)) == [(1, NOW)]
    assert latches(core.handle_publisher(1, StatusReport("fault"), NOW + 1)) == []
    assert latches(core.handle_publisher(1, StatusReport("idle"), NOW + 2)) == [(1, None)]
    assert latches(core.handle_publisher(1, StatusReport("idle"), NOW + 3)) == []
    assert latches(core.handle_publisher(1, StatusReport("fault"), NOW + 4)) == [(1, NOW + 4)]


def test_a_latch_loaded_at_start_makes_no_second_alert(core):
    core.load_emergency_latch(1)
    assert core.stations[1].status == p.EMERGENCIA
    assert core.handle_publisher(1, StatusReport("fault"), NOW) == []
    assert core.handle_publisher(1, Emergency(None), NOW) == []


def test_an_emergency_replayed_after_a_restart_naming_its_own_session_is_silent(core):
    core.load_recent_sessions(1, [4, 5])
    core.load_emergency_latch(1)
    assert core.handle_publisher(1, Emergency(5), NOW) == []


@pytest.mark.parametrize("named", [None, 123, 777], ids=["none", "own", "foreign"])
def test_an_emergency_is_attributed_to_the_stations_own_open_session(core, named):
    start_session(core)
    effects = core.handle_publisher(1, Emergency(named, wh=5000.0, ts=NOW + 10), NOW + 10)
    assert [m["code"] for m in messages(effects, c.Reply)] == (
        ["SESSION_MISMATCH"] if named == 777 else []
    )
    [pushed] = [m for m in messages(effects) if m["type"] == "emergency"]
    assert pushed["session_id"] == 123
    assert [(e.session_id, e.reason) for e in kinds(effects, c.EndSession)] == [(123, c.EMERGENCY)]


def test_a_stop_naming_an_unknown_session_is_a_mismatch_and_a_replayed_own_stop_is_silent(core):
    start_session(core)
    assert (
        messages(core.handle_publisher(1, Stop(999), NOW + 10), c.Reply)[0]["code"]
        == p.SESSION_MISMATCH
    )
    assert core.stations[1].session.id == 123
    core.handle_publisher(1, Stop(123), NOW + 11)
    start_session(core, session_id=124, now=NOW + 20)
    assert core.handle_publisher(1, Stop(123), NOW + 21) == []  # the replay of the first stop
    assert core.stations[1].session.id == 124


def test_the_minimum_age_counts_from_a_session_reloaded_after_a_restart(core):
    record = type(
        "Record",
        (),
        dict(
            id=9,
            station_id=1,
            user_name="Juan Pérez",
            card_uid=UID,
            started_at=NOW - 2,
            tariff=7.0,
            energy_state={},
        ),
    )
    core.load_open_session(record)
    refused = core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW)
    assert messages(refused, c.Reply)[0]["code"] == p.SESSION_TOO_RECENT
    stopped = core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW + 3)
    assert messages(stopped, c.ToCharger) == [p.stop(9)]


def test_publisher_replacements_alert_once_per_burst(core):
    def alerts(effects):
        return [e.kind for e in kinds(effects, c.AddAlert)]

    results = [
        alerts(core.publisher_replaced(1, NOW + k, "10.0.0.5:1", "10.0.0.6:2")) for k in range(8)
    ]
    assert results == [[], [], [], ["duplicate_charger"], [], [], [], []]
    assert (
        alerts(core.publisher_replaced(1, NOW + 7 + 60, "a", "b")) == []
    )  # a quiet minute: new burst
    assert [alerts(core.publisher_replaced(1, NOW + 68 + k, "a", "b")) for k in range(3)] == [
        [],
        [],
        ["duplicate_charger"],
    ]
    assert core.publisher_replaced(2, NOW, "a", "b") == []  # counted per station


def test_reconcile_idle_charger_ends_the_open_session_as_charger_reset(core):
    start_session(core)
    effects = core.handle_publisher(1, StatusReport("idle"), NOW + 30)
    assert kinds(effects, c.EndSession)[0].reason == c.CHARGER_RESET


def test_reconcile_charging_the_open_session_resumes_it(core):
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, 100.0), NOW + 3)
    assert core.handle_publisher(1, StatusReport("charging", 123, 150.0), NOW + 9) == []
    effects = core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 12, 160.0), NOW + 12)
    assert kinds(effects, c.QueueReading)[0].kwh == pytest.approx(0.06)


def test_reconcile_charging_an_unknown_session_tells_the_charger_to_stop(core):
    effects = core.handle_publisher(1, StatusReport("charging", 77), NOW)
    assert messages(effects, c.ToCharger) == [p.stop(77)]


def test_reconcile_fault_sets_emergencia(core):
    effects = core.handle_publisher(1, StatusReport("fault"), NOW)
    assert messages(effects)[-1]["status"] == p.EMERGENCIA


def test_vanished_charger_is_desconectado_and_its_session_stays_open(core):
    start_session(core)
    effects = core.publisher_gone(1, NOW)
    assert messages(effects) == [p.status(1, p.DESCONECTADO)]
    assert core.describe(1, NOW)["session"]["session_id"] == 123


@pytest.mark.parametrize(
    "final", [Stop(123, wh=1600.0, ts=NOW + 300), Emergency(123, wh=1600.0, ts=NOW + 300)]
)
def test_final_register_reading_of_a_stop_or_emergency_is_billed(core, final):
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, 1000.0), NOW + 3)
    effects = core.handle_publisher(1, final, NOW + 301)
    [end] = kinds(effects, c.EndSession)
    assert end.kwh == pytest.approx(0.6)


events = st.lists(
    st.one_of(
        st.tuples(st.just("tap"), st.sampled_from([JUAN, Card("04AA", 2, "Ana"), None])),
        st.tuples(
            st.just("metrics"),
            st.integers(0, 3),
            st.floats(0, 50_000),
            st.one_of(st.none(), st.floats(0, 1e6)),
        ),
        st.tuples(
            st.just("stop"), st.sampled_from([None, 1, 2]), st.sampled_from([None, *p.STOP_REASONS])
        ),
        st.tuples(st.just("dash_stop"), st.sampled_from([None, 1, 2])),
        st.tuples(st.just("emergency"), st.sampled_from([None, 1, 2, 99])),
        st.tuples(
            st.just("status"),
            st.sampled_from(["idle", "charging", "fault"]),
            st.sampled_from([1, 2, 99]),
        ),
        st.tuples(st.just("gone")),
        st.tuples(st.just("back")),
    ),
    max_size=40,
)


@settings(deadline=None, max_examples=200)
@given(events)
def test_any_event_sequence_keeps_billing_consistent(sequence):
    """Whatever happens, a session's energy never decreases, every end is reported once, a
    charger's fault stop alerts only with the end of the session it names, and an emergency
    push names no session but the one it ended."""
    core = c.SessionCore()
    core.add_station(1, "Estación 1", 7.0)
    core.publisher_connected(1, NOW)
    next_id, now, ended, last_kwh = 1, NOW, [], {}
    for event in sequence:
        now += 3
        kind = event[0]
        if kind == "tap":
            card = event[1]
            effects = core.handle_publisher(
                1, c.CardTap(card.uid if card else "FFFF", card, 7.0), now
            )
            for create in kinds(effects, c.CreateSession):
                effects += core.session_created(create, next_id)
                next_id += 1
        elif kind == "metrics":
            session = core.stations[1].session
            sid = session.id if session and event[1] else event[1] or 1
            effects = core.handle_publisher(1, Metrics(sid, 230, 10, event[2], now, event[3]), now)
        elif kind == "stop":
            effects = core.handle_publisher(1, Stop(event[1], reason=event[2]), now)
        elif kind == "dash_stop":
            effects = core.dashboard_stop(1, RemoteStop(event[1]), now)
        elif kind == "emergency":
            effects = core.handle_publisher(1, Emergency(event[1]), now)
        elif kind == "status":
            effects = core.handle_publisher(1, StatusReport(event[1], event[2]), now)
        else:
            effects = (core.publisher_gone if kind == "gone" else core.publisher_connected)(1, now)
        for reading in kinds(effects, c.QueueReading):
            assert reading.kwh >= last_kwh.get(reading.session_id, 0.0)
            last_kwh[reading.session_id] = reading.kwh
        for end in kinds(effects, c.EndSession):
            assert end.session_id not in ended and end.kwh >= last_kwh.get(end.session_id, 0.0)
            assert end.cost == pytest.approx(end.kwh * 7.0)
            ended.append(end.session_id)
        for pushed in messages(effects):
            if pushed["type"] == "emergency":
                assert pushed["session_id"] in [
                    None,
                    *(e.session_id for e in kinds(effects, c.EndSession)),
                ]
        for alert in kinds(effects, c.AddAlert):  # a fault stop alerts once, with its session's end
            if alert.kind in p.STOP_REASONS:
                assert [e.session_id for e in kinds(effects, c.EndSession)] == [alert.session_id]
        assert core.stations[1].status in (p.DESCONECTADO, p.DISPONIBLE, p.CARGANDO, p.EMERGENCIA)


def test_an_idle_report_naming_another_session_does_not_bill_its_register_to_the_open_one(core):
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 10, 2300, NOW + 3, wh=1000), NOW + 3)
    effects = core.handle_publisher(1, StatusReport("idle", 999, 1500.0), NOW + 4)
    assert [m["code"] for m in messages(effects, c.Reply)] == [p.SESSION_MISMATCH]
    [end] = kinds(effects, c.EndSession)
    assert end.kwh == 0.0  # the 500 Wh labelled with session 999 are not session 123's


def test_a_tap_session_stored_after_its_handling_was_cancelled_ends_at_once(core):
    [create] = core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW)
    effects = core.session_orphaned(create, 77, NOW + 1)  # nobody told the charger `start`
    [end] = kinds(effects, c.EndSession)
    assert (end.session_id, end.reason, end.kwh, end.cost) == (77, c.START_INTERRUPTED, 0, 0)
    assert kinds(effects, c.ToCharger) == []  # its relay never closed
    assert [m["type"] for m in messages(effects)] == ["session_ended"]
    assert core.describe(1, NOW + 1)["status"] == "disponible"
    assert isinstance(
        core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW + 9)[0], c.CreateSession
    )


def test_an_orphaned_tap_session_ends_beside_another_open_session_which_stays(core):
    [create] = core.handle_publisher(1, c.CardTap(UID, JUAN, 7.0), NOW)
    core.session_created(create, 123)  # rare: another session opened meanwhile (a reload)
    effects = core.session_orphaned(create, 77, NOW + 1)
    [end] = kinds(effects, c.EndSession)
    assert (end.session_id, end.reason, end.kwh, end.cost) == (77, c.START_INTERRUPTED, 0, 0)
    assert [m["session_id"] for m in messages(effects) if m["type"] == "session_ended"] == [77]
    assert core.describe(1, NOW + 1)["session"]["session_id"] == 123


def test_an_offline_start_stored_after_its_handling_was_cancelled_is_kept_open(core):
    create = c.CreateSession(1, 1, "Juan Pérez", UID, NOW - 60, 7.0, {}, offline_local_id=5)
    core.stations[1].starting = True
    effects = core.session_orphaned(create, 78, NOW)  # the charger is charging: adopted
    assert kinds(effects, c.EndSession) == []
    assert core.describe(1, NOW)["session"]["session_id"] == 78


@pytest.mark.parametrize("reconnected", [False, True])
def test_an_idle_status_register_is_bounded_only_when_it_reports_a_lost_link(core, reconnected):
    start_session(core)
    core.handle_publisher(1, Metrics(123, 230, 30, 7000, NOW + 3, 1000.0), NOW + 3)
    if reconnected:  # the link was lost after that reading; the charger comes back an hour later
        core.publisher_gone(1, NOW + 10)
        core.publisher_connected(1, NOW + 3600)
    effects = core.handle_publisher(1, StatusReport("idle", None, 7000.0), NOW + 3601)
    [end] = kinds(effects, c.EndSession)
    [final] = kinds(effects, c.QueueReading)
    assert (final.wh, final.w, final.kwh) == (7000.0, 0.0, end.kwh)
    if reconnected:  # 6 kWh cannot have flowed in the 3 s after the last sign of life
        assert final.flag == "after_link_loss,implausible_register"
        assert end.kwh == pytest.approx(7000 / 2 * c.METRICS_INTERVAL_S / 3600 / 1000)
    else:  # the live connection (a sync_request answered) saw the hour: the rise is plausible
        assert final.flag is None and end.kwh == pytest.approx(6.0)
