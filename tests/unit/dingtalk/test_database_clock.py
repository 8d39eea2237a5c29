"""``DatabaseClock``: the database's clock placed on ours from reservation round trips."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.db.pacing import DatabaseClock

# One reservation: seconds since the last, its round trip, where in it the database read
# its clock (0: as it was sent, 1: as the answer left).
_trips = st.tuples(st.floats(0.0, 3.0), st.floats(1e-5, 0.05), st.floats(0.0, 1.0))


@given(offset=st.floats(-1e6, 1e6), trips=st.lists(_trips, min_size=1, max_size=60))
def test_a_time_is_placed_no_later_than_it_is_and_within_the_fastest_trip(
    offset: float, trips: list[tuple[float, float, float]]
) -> None:
    clock = DatabaseClock(keep=10.0)
    now = 1000.0
    seen: list[tuple[float, float]] = []
    for gap, trip, read in trips:
        now += gap
        clock.observe(now, now + trip, now + read * trip + offset)
        seen.append((now, trip))
        now += trip
        placed = clock.local(5000.0 + offset)
        fastest = min(t for at, t in seen if at >= seen[-1][0] - 10.0)
        # Never later than the truth (5000 on our clock), never earlier by more than the
        # fastest round trip of the last ten seconds (rounding aside).
        assert placed <= 5000.0 + 1e-6
        assert placed >= 5000.0 - fastest - 1e-6


def test_a_stepped_clock_is_followed_from_the_newest_trip() -> None:
    clock = DatabaseClock()
    clock.observe(10.0, 10.001, 110.0)  # the database is 100 s ahead
    assert clock.local(120.0) == 20.0
    clock.observe(11.0, 11.001, 51.0)  # stepped back 60 s: the bounds cannot both hold
    assert clock.local(92.0) == 52.0  # 40 s ahead now
    clock.observe(12.0, 12.002, 52.001)
    assert clock.local(92.0) == 52.0
