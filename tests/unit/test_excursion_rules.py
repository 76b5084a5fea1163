"""The temperature excursion rules: hard limits at once, time out of range cumulative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from logistics.shipments.temperature import Range, Rule, find_excursion, minutes_out_of_range

FRIDGE = Range(min_c=2, max_c=8, hard_min_c=0, hard_max_c=25, excursion_minutes=30)
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def series(*values: float, every: float = 10) -> list[tuple[datetime, float]]:
    return [(at(i * every), v) for i, v in enumerate(values)]


def test_readings_in_range_and_exactly_at_the_limits_are_no_excursion() -> None:
    assert find_excursion(series(5, 2, 8, 2.0, 8.0, 6), FRIDGE) is None
    assert find_excursion([], FRIDGE) is None


def test_exactly_the_allowed_minutes_is_no_excursion_one_more_is() -> None:
    # In range, then out at 10 and 20 minutes, back at 40: intervals 0-10, 10-20, 20-30
    # touch an out-of-range reading: 30 minutes, exactly the budget.
    exactly = [(at(0), 5.0), (at(10), 9.0), (at(20), 9.0), (at(30), 5.0), (at(60), 5.0)]
    assert find_excursion(exactly, FRIDGE) is None
    longer = [(at(0), 5.0), (at(10), 9.0), (at(20), 9.0), (at(31), 5.0)]
    found = find_excursion(longer, FRIDGE)
    assert found is not None
    assert found.rule is Rule.TIME_OUT_OF_RANGE
    assert found.minutes_out_of_range == 31
    assert found.first_at == at(10)
    assert found.worst_c == 9.0


def test_the_budget_is_cumulative_across_separate_stretches() -> None:
    # Three short warm spells of 20 minutes each, in range for hours between them.
    readings = []
    for start in (0, 180, 360):
        readings += [(at(start), 5.0), (at(start + 10), 10.0), (at(start + 20), 5.0)]
    found = find_excursion(readings, FRIDGE)
    assert found is not None and found.rule is Rule.TIME_OUT_OF_RANGE
    assert found.minutes_out_of_range == 60
    assert found.first_at == at(10)


def test_a_single_spike_beyond_the_hard_limit_is_an_excursion_at_once() -> None:
    found = find_excursion(series(5, 5, 26, 5, 5), FRIDGE)
    assert found is not None
    assert found.rule is Rule.HARD_LIMIT
    assert (found.worst_c, found.worst_at, found.first_at) == (26, at(20), at(20))
    # At the hard limit itself it is only out of range (20 minutes: within the budget).
    assert find_excursion(series(5, 5, 25, 5, 5), FRIDGE) is None
    frozen = find_excursion(series(5, -0.5), FRIDGE)
    assert frozen is not None and frozen.rule is Rule.HARD_LIMIT and frozen.worst_c == -0.5


def test_a_gap_after_or_before_an_out_of_range_reading_counts_in_full() -> None:
    # The logger was silent for two hours after reading 9 °C: nothing shows it cooled.
    found = find_excursion([(at(0), 9.0), (at(120), 5.0)], FRIDGE)
    assert found is not None and found.minutes_out_of_range == 120
    # A gap between good readings counts nothing.
    assert find_excursion([(at(0), 5.0), (at(600), 5.0)], FRIDGE) is None
    # A lone reading out of range, with no later reading, has no duration yet.
    assert find_excursion([(at(0), 12.0)], FRIDGE) is None
    assert find_excursion([(at(0), 5.0), (at(1), 12.0)], FRIDGE) is None


def test_order_and_repeats_do_not_matter_and_the_worst_repeat_wins() -> None:
    readings = [(at(0), 5.0), (at(10), 9.0), (at(20), 9.0), (at(31), 5.0)]
    shuffled = [readings[2], readings[0], readings[3], readings[1], readings[1]]
    assert find_excursion(shuffled, FRIDGE) == find_excursion(readings, FRIDGE)
    # Two readings at one instant: the one beyond the hard limit counts, also when the other
    # is further out of the range (12 °C is 4 above it, -0.5 °C only 2.5 below).
    found = find_excursion([(at(0), 12.0), (at(0), -0.5), (at(10), 5.0)], FRIDGE)
    assert found is not None and found.rule is Rule.HARD_LIMIT and found.worst_c == -0.5

    found = find_excursion([(at(0), 5.0), (at(0), 30.0), (at(10), 5.0)], FRIDGE)
    assert found is not None and found.rule is Rule.HARD_LIMIT and found.worst_c == 30.0


def test_the_description_names_the_rule_and_figures() -> None:
    found = find_excursion(series(5, 26), FRIDGE)
    assert found is not None
    assert found.describe(FRIDGE) == "A reading of 26 °C is beyond the hard limits (0 to 25 °C)."


temps = st.floats(min_value=-5, max_value=30, allow_nan=False)
points = st.lists(st.tuples(st.integers(min_value=0, max_value=600), temps), max_size=30)


@given(points)
def test_properties_of_the_finding(raw: list[tuple[int, float]]) -> None:
    readings = [(at(m), c) for m, c in raw]
    found = find_excursion(readings, FRIDGE)
    # The same answer whatever the order of the input.
    assert find_excursion(list(reversed(readings)), FRIDGE) == found
    beyond = any(FRIDGE.beyond_hard_limit(c) for _, c in readings)
    if found is None:
        assert not beyond
        times = [t for t, _ in readings]
        if len(set(times)) == len(times):  # no repeats: the series is the input, sorted
            assert minutes_out_of_range(sorted(readings), FRIDGE) <= FRIDGE.excursion_minutes
    else:
        assert (found.rule is Rule.HARD_LIMIT) == beyond
        # The worst reading: beyond a hard limit before any within them, then the furthest
        # out of range.
        assert FRIDGE.severity(found.worst_c) == max(FRIDGE.severity(c) for _, c in readings)
        assert found.first_at <= found.worst_at or found.rule is Rule.HARD_LIMIT
        if found.rule is Rule.TIME_OUT_OF_RANGE:
            assert found.minutes_out_of_range > FRIDGE.excursion_minutes
    # Readings that are all in range never make a finding.
    calm = [(t, min(max(c, 2.0), 8.0)) for t, c in readings]
    assert find_excursion(calm, FRIDGE) is None
