"""Open mHealth data points turned into native reading dicts, for readings.py to validate.

Only the shape is checked here (schema, where value, unit, time and id sit); whether the
value, unit and times are acceptable is readings.py's job, so both formats get the same rules.
https://www.openmhealth.org/documentation/#/schema-docs/schema-library
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from math import isfinite
from types import MappingProxyType

from devices.metrics import METRICS
from devices.readings import (
    Rejection,
    ValidReading,
    json_kind,
    parse_time,
    quoted,
    validate_batch,
)

# In every supported schema the body property holding the value is named like our metric.
SCHEMAS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "heart-rate": ("heart_rate",),
        "step-count": ("step_count",),
        "blood-pressure": ("systolic_blood_pressure", "diastolic_blood_pressure"),
        "body-weight": ("body_weight",),
        "oxygen-saturation": ("oxygen_saturation",),
        "body-temperature": ("body_temperature",),
    }
)
# One blood-pressure point gives two readings, which need distinct device ids.
_ID_SUFFIXES = {
    "systolic_blood_pressure": ":systolic",
    "diastolic_blood_pressure": ":diastolic",
}
# Months and years are left out: their length depends on the calendar.
DURATION_UNITS: Mapping[str, timedelta] = MappingProxyType(
    {
        "sec": timedelta(seconds=1),
        "min": timedelta(minutes=1),
        "h": timedelta(hours=1),
        "d": timedelta(days=1),
        "wk": timedelta(weeks=1),
    }
)


def is_omh(items: Sequence[object]) -> bool:
    """Whether a batch is in Open mHealth form; the first item decides."""
    if not items:
        return False
    first = items[0]
    return isinstance(first, dict) and "header" in first and "body" in first


def from_omh(
    points: Sequence[object],
) -> tuple[list[tuple[int, dict[str, object]]], list[Rejection]]:
    """Native reading dicts, each with the index of the data point it came from, and the
    data points that could not be read at all."""
    readings: list[tuple[int, dict[str, object]]] = []
    rejected: list[Rejection] = []
    for index, point in enumerate(points):
        outcome = _convert(point)
        if isinstance(outcome, str):
            rejected.append(Rejection(index, outcome))
        else:
            readings.extend((index, reading) for reading in outcome)
    return readings, rejected


def validate_omh(
    points: Sequence[object], *, received_at: datetime, future_tolerance: timedelta
) -> tuple[list[ValidReading], list[Rejection]]:
    """`from_omh` then `validate_batch`, with every index pointing at the data point.

    Both halves of a blood-pressure point share its index, so their rejections name the
    metric.
    """
    converted, rejected = from_omh(points)
    items: list[object] = [reading for _, reading in converted]
    valid, refused = validate_batch(
        items, received_at=received_at, future_tolerance=future_tolerance
    )
    point_of = [index for index, _ in converted]
    shared = {index for index, count in Counter(point_of).items() if count > 1}
    for rejection in refused:
        index = point_of[rejection.index]
        reason = rejection.reason
        if index in shared:
            reason = f"{converted[rejection.index][1]['metric']}: {reason}"
        rejected.append(Rejection(index, reason))
    rejected.sort(key=lambda rejection: rejection.index)
    return [replace(reading, index=point_of[reading.index]) for reading in valid], rejected


def _convert(point: object) -> list[dict[str, object]] | str:
    if not isinstance(point, dict):
        return f"data point must be an object, not {json_kind(point)}"
    header = point.get("header")
    if not isinstance(header, dict):
        return _misplaced("header", header, "an object")
    body = point.get("body")
    if not isinstance(body, dict):
        return _misplaced("body", body, "an object")

    schema = header.get("schema_id")
    if not isinstance(schema, dict):
        return _misplaced("header.schema_id", schema, "an object")
    namespace = schema.get("namespace")
    if namespace != "omh":
        if namespace is None:
            return "missing field 'header.schema_id.namespace'"
        shown = quoted(namespace) if isinstance(namespace, str) else json_kind(namespace)
        return f"schema namespace {shown} is not supported; use omh"
    name = schema.get("name")
    if not isinstance(name, str):
        return _misplaced("header.schema_id.name", name, "a string")
    codes = SCHEMAS.get(name)
    if codes is None:
        return f"schema {quoted(name)} is not supported; use {', '.join(SCHEMAS)}"

    statistic = body.get("descriptive_statistic")
    if statistic is not None:
        # An average or maximum over a period is not a measurement, and storing it as one
        # would mislead every analysis downstream.
        shown = quoted(statistic) if isinstance(statistic, str) else json_kind(statistic)
        return f"descriptive statistics ({shown}) are not supported; send single measurements"

    times = _times(body.get("effective_time_frame"))
    if isinstance(times, str):
        return times
    interval = METRICS[codes[0]].interval
    if interval and "time" in times:
        return f"{name} needs body.effective_time_frame.time_interval, not date_time"
    if not interval and "time" not in times:
        return f"{name} needs body.effective_time_frame.date_time, not time_interval"

    provenance = header.get("acquisition_provenance")
    source_id = provenance.get("source_data_point_id") if isinstance(provenance, dict) else None
    if source_id is not None:
        reading_id, id_field = source_id, "header.acquisition_provenance.source_data_point_id"
    else:
        reading_id, id_field = header.get("id"), "header.id"
    if reading_id is not None and not isinstance(reading_id, str):
        return f"{id_field} must be a string, not {json_kind(reading_id)}"

    readings: list[dict[str, object]] = []
    for code in codes:
        value = _value(body, code)
        if isinstance(value, str):
            return value
        reading: dict[str, object] = {"metric": code, **value, **times}
        if reading_id is not None:
            reading["id"] = reading_id + _ID_SUFFIXES.get(code, "")
        readings.append(reading)
    return readings


def _value(body: dict[str, object], code: str) -> dict[str, object] | str:
    field = body.get(code)
    if isinstance(field, dict):
        for key in ("value", "unit"):
            if key not in field:
                return f"missing field 'body.{code}.{key}'"
        return {"value": field["value"], "unit": field["unit"]}
    if code == "step_count" and isinstance(field, int | float):
        # step-count 1.0 gives a bare count where later versions give value and unit.
        return {"value": field, "unit": "steps"}
    return _misplaced(f"body.{code}", field, "an object with value and unit")


def _times(frame: object) -> dict[str, object] | str:
    """{"time": ...} or {"start": ..., "end": ...} as the native format has them."""
    if not isinstance(frame, dict):
        return _misplaced("body.effective_time_frame", frame, "an object")
    if "date_time" in frame:
        return {"time": frame["date_time"]}
    interval = frame.get("time_interval")
    if not isinstance(interval, dict):
        return "body.effective_time_frame needs date_time or time_interval"
    start = interval.get("start_date_time")
    end = interval.get("end_date_time")
    if start is not None and end is not None:
        return {"start": start, "end": end}
    incomplete = (
        "body.effective_time_frame.time_interval needs start_date_time and end_date_time, "
        "or one of them and duration"
    )
    if "duration" not in interval or (start is None and end is None):
        return incomplete
    length = _duration(interval["duration"])
    if isinstance(length, str):
        return length
    known, name = (start, "start_date_time") if start is not None else (end, "end_date_time")
    moment = parse_time(known, name)
    if isinstance(moment, str):
        return moment
    try:
        if start is not None:
            return {"start": start, "end": (moment + length).isoformat()}
        return {"start": (moment - length).isoformat(), "end": end}
    except OverflowError:
        return "body.effective_time_frame.time_interval is out of range"


def _duration(duration: object) -> timedelta | str:
    if not isinstance(duration, dict):
        return _misplaced("time_interval.duration", duration, "an object with value and unit")
    value = duration.get("value")
    unit = duration.get("unit")
    if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
        return "time_interval.duration.value must be a finite number"
    step = DURATION_UNITS.get(unit) if isinstance(unit, str) else None
    if step is None:
        shown = quoted(unit) if isinstance(unit, str) else json_kind(unit)
        return (
            f"time_interval.duration.unit {shown} is not supported; use {', '.join(DURATION_UNITS)}"
        )
    try:
        return step * value
    except OverflowError:
        return "time_interval.duration is too long"


def _misplaced(path: str, found: object, wanted: str) -> str:
    if found is None:
        return f"missing field '{path}'"
    return f"{path} must be {wanted}, not {json_kind(found)}"
