from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices.omh import from_omh, is_omh, validate_omh
from devices.readings import Rejection, ValidReading, validate_batch

RECEIVED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)


def point(name: str, body: dict[str, object], **header: object) -> dict[str, object]:
    return {
        "header": {
            "id": "hdr-1",
            "schema_id": {"namespace": "omh", "name": name, "version": "2.0"},
            **header,
        },
        "body": body,
    }


def heart_rate_point(**header: object) -> dict[str, object]:
    return point(
        "heart-rate",
        {
            "heart_rate": {"value": 72, "unit": "beats/min"},
            "effective_time_frame": {"date_time": "2026-03-10T08:00:00+01:00"},
        },
        **header,
    )


def steps_point(time_interval: dict[str, object]) -> dict[str, object]:
    return point(
        "step-count",
        {
            "step_count": {"value": 7939, "unit": "steps"},
            "effective_time_frame": {"time_interval": time_interval},
        },
        id="steps-1",
    )


def blood_pressure_point(systolic: float = 122, diastolic: float = 77) -> dict[str, object]:
    return point(
        "blood-pressure",
        {
            "systolic_blood_pressure": {"value": systolic, "unit": "mmHg"},
            "diastolic_blood_pressure": {"value": diastolic, "unit": "mmHg"},
            "effective_time_frame": {"date_time": "2026-03-10T07:30:00Z"},
        },
        acquisition_provenance={"source_name": "cuff", "source_data_point_id": "bp-9"},
    )


def validate(points: list[object]) -> tuple[list[ValidReading], list[Rejection]]:
    return validate_omh(points, received_at=RECEIVED, future_tolerance=TOLERANCE)


def test_is_omh_looks_at_the_first_item() -> None:
    assert is_omh([heart_rate_point()])
    assert is_omh([heart_rate_point(), "anything"])
    assert not is_omh([])
    assert not is_omh([{"metric": "heart_rate", "value": 72}])
    assert not is_omh(["header", "body"])


def test_heart_rate_becomes_a_native_reading() -> None:
    readings, rejected = from_omh([heart_rate_point()])
    assert rejected == []
    assert readings == [
        (
            0,
            {
                "metric": "heart_rate",
                "value": 72,
                "unit": "beats/min",
                "time": "2026-03-10T08:00:00+01:00",
                "id": "hdr-1",
            },
        )
    ]


def test_heart_rate_round_trips_to_utc() -> None:
    valid, rejected = validate([heart_rate_point()])
    assert rejected == []
    assert valid == [
        ValidReading(
            index=0,
            metric="heart_rate",
            value=72.0,
            effective_start=datetime(2026, 3, 10, 7, 0, tzinfo=UTC),
            effective_end=None,
            device_reading_id="hdr-1",
            dedup_key="hdr-1",
        )
    ]


def test_converted_readings_pass_validate_batch_directly() -> None:
    readings, _ = from_omh(
        [
            heart_rate_point(),
            steps_point(
                {"start_date_time": "2026-03-10T06:00:00Z", "end_date_time": "2026-03-10T07:00:00Z"}
            ),
        ]
    )
    items: list[object] = [reading for _, reading in readings]
    valid, rejected = validate_batch(items, received_at=RECEIVED, future_tolerance=TOLERANCE)
    assert rejected == []
    assert [r.metric for r in valid] == ["heart_rate", "step_count"]


def test_step_count_interval_round_trips_to_utc() -> None:
    valid, rejected = validate(
        [
            steps_point(
                {
                    "start_date_time": "2026-03-10T08:00:00+01:00",
                    "end_date_time": "2026-03-10T09:00:00+01:00",
                }
            )
        ]
    )
    assert rejected == []
    [reading] = valid
    assert reading.metric == "step_count"
    assert reading.value == 7939
    assert reading.effective_start == datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    assert reading.effective_end == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("duration", "end"),
    [
        ({"value": 1, "unit": "h"}, datetime(2026, 3, 10, 8, 0, tzinfo=UTC)),
        ({"value": 90, "unit": "sec"}, datetime(2026, 3, 10, 7, 1, 30, tzinfo=UTC)),
        ({"value": 30, "unit": "min"}, datetime(2026, 3, 10, 7, 30, tzinfo=UTC)),
        ({"value": 0.125, "unit": "d"}, datetime(2026, 3, 10, 10, 0, tzinfo=UTC)),
    ],
)
def test_step_count_interval_given_as_start_and_duration(
    duration: dict[str, object], end: datetime
) -> None:
    valid, rejected = validate(
        [steps_point({"start_date_time": "2026-03-10T08:00:00+01:00", "duration": duration})]
    )
    assert rejected == []
    assert valid[0].effective_start == datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    assert valid[0].effective_end == end


def test_step_count_interval_given_as_end_and_duration() -> None:
    valid, rejected = validate(
        [
            steps_point(
                {"end_date_time": "2026-03-10T08:00:00Z", "duration": {"value": 2, "unit": "h"}}
            )
        ]
    )
    assert rejected == []
    assert valid[0].effective_start == datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
    assert valid[0].effective_end == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def test_step_count_1_0_gives_a_bare_count() -> None:
    data_point = steps_point(
        {"start_date_time": "2026-03-10T06:00:00Z", "end_date_time": "2026-03-10T07:00:00Z"}
    )
    data_point["body"]["step_count"] = 512  # type: ignore[index]
    valid, rejected = validate([data_point])
    assert rejected == []
    assert valid[0].value == 512


def test_blood_pressure_gives_two_readings_with_distinct_ids() -> None:
    valid, rejected = validate([heart_rate_point(), blood_pressure_point()])
    assert rejected == []
    assert [(r.index, r.metric, r.value, r.device_reading_id) for r in valid] == [
        (0, "heart_rate", 72, "hdr-1"),
        (1, "systolic_blood_pressure", 122, "bp-9:systolic"),
        (1, "diastolic_blood_pressure", 77, "bp-9:diastolic"),
    ]


def test_source_data_point_id_is_preferred_over_header_id() -> None:
    readings, _ = from_omh(
        [heart_rate_point(acquisition_provenance={"source_data_point_id": "watch-42"})]
    )
    assert readings[0][1]["id"] == "watch-42"


def test_without_any_id_the_reading_has_none() -> None:
    data_point = heart_rate_point()
    del data_point["header"]["id"]  # type: ignore[attr-defined]
    readings, _ = from_omh([data_point])
    assert "id" not in readings[0][1]
    valid, _ = validate([data_point])
    assert valid[0].device_reading_id is None
    assert len(valid[0].dedup_key) == 64


def test_body_weight_oxygen_and_temperature() -> None:
    def body(code: str, value: float, unit: str) -> dict[str, object]:
        return {
            code: {"value": value, "unit": unit},
            "effective_time_frame": {"date_time": "2026-03-10T07:00:00Z"},
        }

    valid, rejected = validate(
        [
            point("body-weight", body("body_weight", 176, "lb"), id="w"),
            point("oxygen-saturation", body("oxygen_saturation", 97, "%"), id="o"),
            point("body-temperature", body("body_temperature", 99.5, "F"), id="t"),
        ]
    )
    assert rejected == []
    assert [r.metric for r in valid] == ["body_weight", "oxygen_saturation", "body_temperature"]
    assert valid[0].value == pytest.approx(79.8322571)
    assert valid[1].value == 97
    assert valid[2].value == 37.5


def test_an_implausible_half_of_a_blood_pressure_names_its_metric() -> None:
    valid, rejected = validate([blood_pressure_point(diastolic=250)])
    assert [r.metric for r in valid] == ["systolic_blood_pressure"]
    assert rejected == [
        Rejection(
            0,
            "diastolic_blood_pressure: value 250 mmHg is outside the plausible range 20\N{EN DASH}200 mmHg",
        )
    ]


def with_body(changes: dict[str, object], name: str = "heart-rate") -> dict[str, object]:
    data_point = heart_rate_point()
    body = data_point["body"]
    assert isinstance(body, dict)
    body.update(changes)
    data_point["header"]["schema_id"]["name"] = name  # type: ignore[index]
    return data_point


BAD_POINTS: list[tuple[object, str]] = [
    ("heart rate", "data point must be an object, not a string"),
    ({"body": {}}, "missing field 'header'"),
    ({"header": [], "body": {}}, "header must be an object, not a list"),
    ({"header": {"schema_id": {"namespace": "omh", "name": "heart-rate"}}}, "missing field 'body'"),
    ({"header": {}, "body": {}}, "missing field 'header.schema_id'"),
    (
        {"header": {"schema_id": {"name": "heart-rate"}}, "body": {}},
        "missing field 'header.schema_id.namespace'",
    ),
    (
        {"header": {"schema_id": {"namespace": "granola", "name": "heart-rate"}}, "body": {}},
        "schema namespace 'granola' is not supported; use omh",
    ),
    (
        {"header": {"schema_id": {"namespace": "omh"}}, "body": {}},
        "missing field 'header.schema_id.name'",
    ),
    (
        with_body({}, name="sleep-duration"),
        "schema 'sleep-duration' is not supported; use heart-rate, step-count, blood-pressure, "
        "body-weight, oxygen-saturation, body-temperature",
    ),
    (with_body({"heart_rate": None}), "missing field 'body.heart_rate'"),
    (
        with_body({"heart_rate": 72}),
        "body.heart_rate must be an object with value and unit, not a number",
    ),
    (with_body({"heart_rate": {"unit": "beats/min"}}), "missing field 'body.heart_rate.value'"),
    (with_body({"heart_rate": {"value": 72}}), "missing field 'body.heart_rate.unit'"),
    (with_body({"effective_time_frame": None}), "missing field 'body.effective_time_frame'"),
    (
        with_body({"effective_time_frame": {}}),
        "body.effective_time_frame needs date_time or time_interval",
    ),
    (
        with_body(
            {"effective_time_frame": {"time_interval": {"start_date_time": "2026-03-10T06:00:00Z"}}}
        ),
        "body.effective_time_frame.time_interval needs start_date_time and end_date_time, "
        "or one of them and duration",
    ),
    (
        with_body(
            {
                "effective_time_frame": {
                    "time_interval": {
                        "start_date_time": "2026-03-10T06:00:00Z",
                        "end_date_time": "2026-03-10T07:00:00Z",
                    }
                }
            }
        ),
        "heart-rate needs body.effective_time_frame.date_time, not time_interval",
    ),
    (
        with_body(
            {
                "step_count": {"value": 10, "unit": "steps"},
                "effective_time_frame": {"date_time": "2026-03-10T06:00:00Z"},
            },
            name="step-count",
        ),
        "step-count needs body.effective_time_frame.time_interval, not date_time",
    ),
    (
        with_body(
            {
                "effective_time_frame": {
                    "time_interval": {
                        "start_date_time": "2026-03-10T06:00:00",
                        "duration": {"value": 1, "unit": "h"},
                    }
                }
            }
        ),
        "start_date_time has no UTC offset",
    ),
    (
        with_body(
            {
                "effective_time_frame": {
                    "time_interval": {
                        "start_date_time": "2026-03-10T06:00:00Z",
                        "duration": {"value": 1, "unit": "Mo"},
                    }
                }
            }
        ),
        "time_interval.duration.unit 'Mo' is not supported; use sec, min, h, d, wk",
    ),
    (
        with_body(
            {
                "effective_time_frame": {
                    "time_interval": {
                        "start_date_time": "2026-03-10T06:00:00Z",
                        "duration": {"value": "1", "unit": "h"},
                    }
                }
            }
        ),
        "time_interval.duration.value must be a finite number",
    ),
    (
        with_body(
            {
                "effective_time_frame": {
                    "time_interval": {
                        "start_date_time": "2026-03-10T06:00:00Z",
                        "duration": {"value": 1e300, "unit": "d"},
                    }
                }
            }
        ),
        "time_interval.duration is too long",
    ),
    (
        with_body({"descriptive_statistic": "average"}),
        "descriptive statistics ('average') are not supported; send single measurements",
    ),
    (heart_rate_point(id=17), "header.id must be a string, not a number"),
    (
        heart_rate_point(acquisition_provenance={"source_data_point_id": ["a"]}),
        "header.acquisition_provenance.source_data_point_id must be a string, not a list",
    ),
    # Shape is fine, so conversion passes; readings.py refuses the content with its reasons.
    (
        with_body({"heart_rate": {"value": "72", "unit": "beats/min"}}),
        "value must be a number, not a string",
    ),
    (
        with_body({"heart_rate": {"value": 72, "unit": "Hz"}}),
        "unit 'Hz' is not accepted for heart_rate; use beats/min",
    ),
    (
        with_body({"effective_time_frame": {"date_time": "2026-03-10T08:00:00"}}),
        "time has no UTC offset",
    ),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_POINTS)
def test_each_bad_point_is_rejected_with_its_index(bad: object, reason: str) -> None:
    valid, rejected = validate([heart_rate_point(id="a"), bad, heart_rate_point(id="b")])
    assert rejected == [Rejection(1, reason)]
    assert [(r.index, r.device_reading_id) for r in valid] == [(0, "a"), (2, "b")]


def test_from_omh_keeps_the_point_index_of_each_reading() -> None:
    readings, rejected = from_omh(["junk", blood_pressure_point(), heart_rate_point()])
    assert [(index, reading["metric"]) for index, reading in readings] == [
        (1, "systolic_blood_pressure"),
        (1, "diastolic_blood_pressure"),
        (2, "heart_rate"),
    ]
    assert rejected == [Rejection(0, "data point must be an object, not a string")]
