from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from devices.readings import Rejection, ValidReading, parse_time, validate_batch

RECEIVED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)


def validate(items: list[object]) -> tuple[list[ValidReading], list[Rejection]]:
    return validate_batch(items, received_at=RECEIVED, future_tolerance=TOLERANCE)


def heart_rate(**changes: object) -> dict[str, object]:
    reading: dict[str, object] = {
        "metric": "heart_rate",
        "value": 72,
        "unit": "beats/min",
        "time": "2026-03-10T08:00:00+01:00",
    }
    reading.update(changes)
    return reading


def steps(**changes: object) -> dict[str, object]:
    reading: dict[str, object] = {
        "metric": "step_count",
        "value": 1200,
        "unit": "steps",
        "start": "2026-03-10T05:00:00-05:00",
        "end": "2026-03-10T06:00:00-05:00",
    }
    reading.update(changes)
    return reading


def without(reading: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in reading.items() if k != key}


def test_an_instant_reading_is_normalised_to_utc() -> None:
    valid, rejected = validate([heart_rate(id="hr-1")])
    assert rejected == []
    assert valid == [
        ValidReading(
            index=0,
            metric="heart_rate",
            value=72.0,
            effective_start=datetime(2026, 3, 10, 7, 0, tzinfo=UTC),
            effective_end=None,
            device_reading_id="hr-1",
            dedup_key="hr-1",
        )
    ]
    assert valid[0].effective_start.tzinfo is UTC


def test_an_interval_reading_keeps_start_and_end_in_utc() -> None:
    [reading], rejected = validate([steps()])
    assert rejected == []
    assert reading.value == 1200
    assert reading.effective_start == datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    assert reading.effective_end == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert reading.device_reading_id is None


def test_z_suffix_and_fractional_seconds_are_accepted() -> None:
    [reading], _ = validate([heart_rate(time="2026-03-10T07:00:00.250Z")])
    assert reading.effective_start == datetime(2026, 3, 10, 7, 0, 0, 250_000, tzinfo=UTC)


def test_fahrenheit_is_stored_as_celsius() -> None:
    valid, rejected = validate(
        [
            {
                "metric": "body_temperature",
                "value": 98.6,
                "unit": "°F",
                "time": "2026-03-10T08:00:00Z",
            },
            {
                "metric": "body_temperature",
                "value": 100.4,
                "unit": "[degF]",
                "time": "2026-03-10T09:00:00Z",
            },
        ]
    )
    assert rejected == []
    # Rounded to DECIMALS, so the float noise of 5/9 is gone, not merely approximately equal.
    assert [r.value for r in valid] == [37.0, 38.0]


def test_pounds_are_stored_as_kilograms() -> None:
    [reading], _ = validate(
        [{"metric": "body_weight", "value": 150, "unit": "lb", "time": "2026-03-10T08:00:00Z"}]
    )
    assert reading.value == pytest.approx(68.0388555)


def test_a_resent_reading_without_id_gets_the_same_key() -> None:
    [first], _ = validate([heart_rate()])
    # Same instant written with another offset, and the value as a float.
    [again], _ = validate([heart_rate(value=72.0, time="2026-03-10T07:00:00Z")])
    [other], _ = validate([heart_rate(value=73)])
    assert len(first.dedup_key) == 64
    assert int(first.dedup_key, 16) >= 0
    assert again.dedup_key == first.dedup_key
    assert other.dedup_key != first.dedup_key


def test_the_same_value_in_another_unit_gets_the_same_key() -> None:
    [celsius], _ = validate(
        [{"metric": "body_temperature", "value": 37, "unit": "Cel", "time": "2026-03-10T08:00:00Z"}]
    )
    [fahrenheit], _ = validate(
        [
            {
                "metric": "body_temperature",
                "value": 98.6,
                "unit": "°F",
                "time": "2026-03-10T08:00:00Z",
            }
        ]
    )
    assert celsius.dedup_key == fahrenheit.dedup_key


def test_interval_key_depends_on_the_end() -> None:
    [hour], _ = validate([steps()])
    [longer], _ = validate([steps(end="2026-03-10T06:30:00-05:00")])
    assert hour.dedup_key != longer.dedup_key


def test_a_repeat_within_the_batch_is_rejected() -> None:
    valid, rejected = validate(
        [heart_rate(), heart_rate(), heart_rate(id="a"), heart_rate(id="a", value=80)]
    )
    assert [r.index for r in valid] == [0, 2]
    assert rejected == [
        Rejection(1, "repeats an earlier reading in this batch (same metric, value and time)"),
        Rejection(3, "id 'a' is repeated in this batch"),
    ]


BAD_READINGS: list[tuple[object, str]] = [
    ("heart rate 72", "reading must be an object, not a string"),
    (None, "reading must be an object, not null"),
    ([72], "reading must be an object, not a list"),
    (True, "reading must be an object, not a boolean"),
    (without(heart_rate(), "metric"), "missing field 'metric'"),
    (heart_rate(metric=7), "metric must be a string, not a number"),
    (heart_rate(metric="x"), "unknown metric 'x'"),
    (heart_rate(metric="x" * 10_000), "unknown metric '" + "x" * 40 + "…'"),
    (without(heart_rate(), "value"), "missing field 'value'"),
    (heart_rate(value="72"), "value must be a number, not a string"),
    (heart_rate(value=True), "value must be a number, not a boolean"),
    (heart_rate(value=None), "value must be a number, not null"),
    (heart_rate(value={"v": 1}), "value must be a number, not an object"),
    (heart_rate(value=float("nan")), "value must be a finite number, not nan"),
    (heart_rate(value=float("inf")), "value must be a finite number, not inf"),
    (heart_rate(value=10**400), "value is too large"),
    (
        heart_rate(value=10**30),
        "value 1e+30 beats/min is outside the plausible range 20\N{EN DASH}300 beats/min",
    ),
    (
        heart_rate(value=400),
        "value 400 beats/min is outside the plausible range 20\N{EN DASH}300 beats/min",
    ),
    (
        heart_rate(value=-1),
        "value -1 beats/min is outside the plausible range 20\N{EN DASH}300 beats/min",
    ),
    (
        {"metric": "body_temperature", "value": 122, "unit": "°F", "time": "2026-03-10T08:00:00Z"},
        "value 122 °F (50 °C) is outside the plausible range 25\N{EN DASH}45 °C",
    ),
    (
        {"metric": "oxygen_saturation", "value": 0.97, "unit": "%", "time": "2026-03-10T08:00:00Z"},
        "value 0.97 % is outside the plausible range 50\N{EN DASH}100 %",
    ),
    (without(heart_rate(), "unit"), "missing field 'unit'"),
    (heart_rate(unit=None), "unit must be a string, not null"),
    (
        {"metric": "body_weight", "value": 150, "unit": "lbs", "time": "2026-03-10T08:00:00Z"},
        "unit 'lbs' is not accepted for body_weight; use kg or lb",
    ),
    (steps(value=12.5), "step_count must be a whole number, not 12.5"),
    (without(heart_rate(), "time"), "missing field 'time'"),
    (
        heart_rate(time=None),
        "time must be a string, not null",
    ),
    (
        without(heart_rate(start="2026-03-10T08:00:00Z", end="2026-03-10T09:00:00Z"), "time"),
        "heart_rate is measured at an instant: give time, not start and end",
    ),
    (heart_rate(time="2026-03-10T08:00:00"), "time has no UTC offset"),
    (heart_rate(time="2026-03-10"), "time has no UTC offset"),
    (
        heart_rate(time="yesterday"),
        "time 'yesterday' is not an ISO-8601 timestamp like 2026-03-10T08:00:00+01:00",
    ),
    (heart_rate(time=1_773_129_600), "time must be a string, not a number"),
    (
        heart_rate(time="0001-01-01T00:00:00+01:00"),
        "time '0001-01-01T00:00:00+01:00' is out of range",
    ),
    (
        heart_rate(time="1970-01-01T00:00:00Z"),
        "time 1970-01-01T00:00:00Z is before 2010-01-01; is the device clock set?",
    ),
    (
        heart_rate(time="2026-03-10T12:06:00Z"),
        "time is in the future (2026-03-10T12:06:00Z, received 2026-03-10T12:00:00Z)",
    ),
    (without(steps(), "end"), "step_count needs start and end"),
    (
        without(without(steps(), "start"), "end") | {"time": "2026-03-10T08:00:00Z"},
        "step_count needs start and end",
    ),
    (steps(start="2026-03-10T07:00:00-05:00"), "end is before start"),
    (
        steps(start="2026-03-10T06:00:00-05:00"),
        "end equals start; step_count is counted over an interval",
    ),
    (steps(end="2026-03-10T08:00:00"), "end has no UTC offset"),
    (
        steps(end="2026-03-10T07:06:00-05:00", start="2026-03-10T07:00:00-05:00"),
        "end is in the future (2026-03-10T12:06:00Z, received 2026-03-10T12:00:00Z)",
    ),
    (heart_rate(id=17), "id must be a string, not a number"),
    (heart_rate(id=""), "id must not be empty"),
    (heart_rate(id="x" * 129), "id has 129 characters; at most 128 are allowed"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_READINGS)
def test_each_bad_reading_is_rejected_with_its_index(bad: object, reason: str) -> None:
    good_before = heart_rate(id="before")
    good_after = steps(id="after")
    valid, rejected = validate([good_before, bad, good_after])
    assert rejected == [Rejection(1, reason)]
    assert [(r.index, r.device_reading_id) for r in valid] == [(0, "before"), (2, "after")]


def test_the_future_tolerance_is_inclusive() -> None:
    valid, rejected = validate([heart_rate(time="2026-03-10T12:05:00Z")])
    assert rejected == []
    assert len(valid) == 1


def test_range_limits_are_inclusive() -> None:
    valid, rejected = validate([heart_rate(value=20, id="low"), heart_rate(value=300, id="high")])
    assert rejected == []
    assert [r.value for r in valid] == [20, 300]


def test_a_mixed_batch_keeps_every_good_reading() -> None:
    items: list[object] = []
    for i in range(100):
        items.append(heart_rate(id=f"ok-{i}", value=60 + i % 40))
        items.append(heart_rate(id=f"bad-{i}", value="high"))
    valid, rejected = validate(items)
    assert [r.index for r in valid] == list(range(0, 200, 2))
    assert [r.index for r in rejected] == list(range(1, 200, 2))


def test_unknown_extra_fields_are_ignored() -> None:
    valid, rejected = validate([heart_rate(note="after a run")])
    assert rejected == []
    assert len(valid) == 1


def test_received_at_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_batch([], received_at=datetime(2026, 3, 10, 12), future_tolerance=TOLERANCE)


def test_parse_time_returns_utc_or_a_reason() -> None:
    assert parse_time("2026-03-10T08:00:00+01:00", "time") == datetime(2026, 3, 10, 7, tzinfo=UTC)
    assert parse_time("2026-03-10T08:00:00", "when") == "when has no UTC offset"


def test_five_thousand_readings_validate() -> None:
    start = datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
    items: list[object] = []
    for i in range(5000):
        moment = start + timedelta(seconds=15 * i)
        if i % 5 == 4:
            items.append(
                {
                    "metric": "step_count",
                    "value": i,
                    "unit": "steps",
                    "start": moment.isoformat(),
                    "end": (moment + timedelta(seconds=15)).isoformat(),
                }
            )
        else:
            items.append(
                {
                    "metric": "heart_rate",
                    "value": 50 + i % 100,
                    "unit": "bpm",
                    "time": moment.isoformat(),
                    "id": f"r{i}",
                }
            )
    began = time.perf_counter()
    valid, rejected = validate(items)
    elapsed = time.perf_counter() - began
    print(f"\n5,000 readings validated in {elapsed * 1000:.1f} ms")
    assert rejected == []
    assert len(valid) == 5000
    assert len({r.dedup_key for r in valid}) == 5000
    assert valid[4999].metric == "step_count"
    assert valid[4999].effective_end == start + timedelta(seconds=15 * 5000)
    assert valid[1].value == 51
