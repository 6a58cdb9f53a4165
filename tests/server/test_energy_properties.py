"""Properties of the energy rules over arbitrary reading sequences (pure: no sockets, no SQL).

Every sequence is (arrival on the server's clock, claimed ts, w, wh) after a session that
started at T0. Whatever a charger sends, the bill never exceeds what the station's max power
could deliver in the time the session has existed on the server's clock (plus the named
tolerances), never goes down, is never negative; and when a real meter is read honestly
(whatever the network does: delays, outages, replayed bursts, duplicates) it is exactly the
meter register's delta.
"""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from server import energy as e
from server.energy import EnergyAccount

T0 = 1_800_000_000.0
MAX_WS = [3_700.0, 7_400.0, 11_000.0, 22_000.0, 50_000.0]


def bound_wh(max_w: float, now: float) -> float:
    """The most a session may have billed by server time `now` (docs/protocol.md)."""
    credited = now - T0 + e.START_TOLERANCE_S + e.TS_QUANTUM_S
    return max_w * credited / 3600.0 + e.REGISTER_SLACK_WH


# --- arbitrary (hostile or broken) chargers ---------------------------------------------------
claimed_ts = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=1e11),  # anything the protocol accepts
    st.floats(min_value=-4000, max_value=4000),  # near the arrival time (offset added below)
    st.sampled_from([0.0, 1_609_459_200.0, 946_684_800.0]),  # unsynced, 2021, the 2000 epoch
)
readings = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=600),  # seconds since the previous arrival
        claimed_ts,
        st.floats(min_value=0, max_value=50_000),  # w, as the protocol bounds it
        st.one_of(st.none(), st.floats(min_value=0, max_value=2**32)),  # wh
        st.booleans(),  # a final reading (stop, emergency, idle report)
    ),
    max_size=40,
)


def near(ts, now):
    """Small claimed values are offsets from the arrival time; others are absolute."""
    if ts is not None and -4000 <= ts <= 4000:
        return now + ts
    return ts


@settings(deadline=None, max_examples=400)  # no timing in tests: a loaded CI must not fail this
@given(readings, st.sampled_from(MAX_WS), st.floats(min_value=0, max_value=30))
def test_the_bill_is_bounded_by_server_time_never_negative_and_never_goes_down(
    samples, max_w, first_delay
):
    account = EnergyAccount()
    now = T0 + first_delay
    for gap, ts, w, wh, final in samples:
        now += gap
        before = account.wh
        claim = near(ts, now)
        if final:
            counted = account.add_final(claim, wh, now=now, started_at=T0, max_w=max_w)
        else:
            counted = account.add(claim, w, wh, now=now, started_at=T0, max_w=max_w)
        assert account.wh >= before >= 0  # monotonic, never negative
        assert account.wh <= bound_wh(max_w, now)  # bounded by server time x max power
        if counted is None:
            assert account.wh == before  # a refused reading changes nothing
        else:
            assert T0 - e.START_TOLERANCE_S <= counted.ts <= now  # its place is on server time
        restored = EnergyAccount.from_dict(account.to_dict())  # what a restart would load
        assert restored == account


# --- honest meters behind any network -----------------------------------------------------------
@st.composite
def honest_sessions(draw):
    """A real meter at powers up to the station's max, read every few seconds with an NTP
    clock stamping whole seconds; the frames reach the server late, in bursts after outages,
    some twice (replayed after a reconnect that lost the ack). Returns (max_w, arrivals)."""
    max_w = draw(st.sampled_from(MAX_WS))
    offset = draw(st.floats(min_value=-0.5, max_value=0.5))  # the charger's clock vs the server's
    t, energy_wh = T0 + draw(st.floats(min_value=0.5, max_value=10)), 0.0
    register0 = draw(st.integers(min_value=0, max_value=10**6))
    measured = []
    for _ in range(draw(st.integers(min_value=2, max_value=40))):
        power = draw(st.floats(min_value=0, max_value=max_w))
        step = draw(st.floats(min_value=1.0, max_value=30.0))
        energy_wh += power * step / 3600.0
        t += step
        measured.append(
            (t, float(math.floor(t + offset)), power, register0 + math.floor(energy_wh))
        )
    arrivals, link_free = [], T0
    for t, ts, power, wh in measured:
        delay = draw(
            st.one_of(
                st.floats(min_value=0.01, max_value=0.5),  # live
                st.floats(min_value=0.5, max_value=600),
            )
        )  # queued in an outage
        link_free = max(link_free + 0.001, t + delay)  # in order: the outbox replays in order
        arrivals.append((link_free, ts, power, wh))
        if draw(st.integers(min_value=0, max_value=9)) == 0:  # delivered twice
            link_free += 0.001
            arrivals.append((link_free, ts, power, wh))
    return max_w, arrivals


@settings(deadline=None, max_examples=400)
@given(honest_sessions())
def test_an_honest_meter_is_billed_exactly_its_register_delta_with_no_flag(session):
    max_w, arrivals = session
    account = EnergyAccount()
    for now, ts, power, wh in arrivals:
        counted = account.add(ts, power, wh, now=now, started_at=T0, max_w=max_w)
        if counted is not None:
            assert counted.flag is None
    first_wh, last_wh = arrivals[0][3], arrivals[-1][3]
    assert account.wh == last_wh - first_wh
    assert account.anomalies == 0
