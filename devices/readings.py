"""Validation of one batch of native device readings.

The input is parsed JSON from a device, so anything may arrive: each item is either turned
into a `ValidReading` in canonical units and UTC or refused with a `Rejection` naming its
index and the first problem found. Bad items never raise and never spoil the good ones.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devices.metrics import METRICS, Metric, Unit

MAX_ID_LENGTH = 128
# Devices whose clock was never set report 1970 or 2000; no wearable reading predates this.
EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)
# Enough to remove float noise from unit conversions (98.6 °F -> 37 °C, not 36.99999999)
# and far finer than any device measures.
DECIMALS = 6
_SHOWN_CHARS = 40


# Not frozen: a frozen __init__ sets each field through object.__setattr__, which doubled
# the cost of a whole reading's validation. Treat it as immutable all the same.
@dataclass(slots=True)
class ValidReading:
    index: int
    metric: str
    value: float
    effective_start: datetime
    effective_end: datetime | None
    device_reading_id: str | None
    dedup_key: str


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str


def validate_batch(
    items: Sequence[object], *, received_at: datetime, future_tolerance: timedelta
) -> tuple[list[ValidReading], list[Rejection]]:
    """Split `items` into valid readings and rejections, both in input order.

    A reading repeating an earlier one of the same batch (same dedup key) is rejected, so
    the caller can insert the valid ones without conflicts among themselves.
    """
    if received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    received_at = received_at.astimezone(UTC)
    latest = received_at + future_tolerance
    valid: list[ValidReading] = []
    rejected: list[Rejection] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        outcome = _validate(index, item, received_at, latest)
        if isinstance(outcome, str):
            rejected.append(Rejection(index, outcome))
        elif outcome.dedup_key in seen:
            rejected.append(Rejection(index, _repeated(outcome)))
        else:
            seen.add(outcome.dedup_key)
            valid.append(outcome)
    return valid, rejected


def parse_time(value: object, name: str) -> datetime | str:
    """`value` as an aware datetime in UTC, or the reason it is not one (naming `name`)."""
    if not isinstance(value, str):
        return f"{name} must be a string, not {json_kind(value)}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"{name} {quoted(value)} is not an ISO-8601 timestamp like 2026-03-10T08:00:00+01:00"
    if parsed.tzinfo is UTC:  # "Z" and "+00:00" parse to the UTC singleton itself
        return parsed
    if parsed.utcoffset() is None:
        return f"{name} has no UTC offset"
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 with a positive offset, or year 9999 with a negative one.
        return f"{name} {quoted(value)} is out of range"


def _validate(
    index: int, item: object, received_at: datetime, latest: datetime
) -> ValidReading | str:
    if not isinstance(item, dict):
        return f"reading must be an object, not {json_kind(item)}"

    if "metric" not in item:
        return "missing field 'metric'"
    code = item["metric"]
    if not isinstance(code, str):
        return f"metric must be a string, not {json_kind(code)}"
    metric = METRICS.get(code)
    if metric is None:
        return f"unknown metric {quoted(code)}"

    if "value" not in item:
        return "missing field 'value'"
    raw = item["value"]
    # bool is a subclass of int: `true` must not pass as 1.
    if type(raw) is float:
        number = raw
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        return f"value must be a number, not {json_kind(raw)}"
    else:
        try:
            number = float(raw)
        except OverflowError:
            return "value is too large"
    if not math.isfinite(number):
        return f"value must be a finite number, not {number}"

    if "unit" not in item:
        return "missing field 'unit'"
    spelling = item["unit"]
    if not isinstance(spelling, str):
        return f"unit must be a string, not {json_kind(spelling)}"
    unit = metric.accepted_unit(spelling)
    if unit is None:
        return (
            f"unit {quoted(spelling)} is not accepted for {code}; "
            f"use {metric.accepted_units_text()}"
        )
    # The canonical unit converts to itself (metrics.py checks), so only others convert.
    converted = number if unit is metric.unit else unit.to_canonical(number)
    whole = converted.is_integer()
    # Rounding leaves a whole number as it is. + 0.0 turns -0.0 into 0.0, which would
    # otherwise give a different dedup key.
    value = (converted if whole else round(converted, DECIMALS)) + 0.0
    if not metric.minimum <= value <= metric.maximum:
        return _out_of_range(metric, unit, number, value)
    if metric.integer and not whole:
        return f"{code} must be a whole number, not {_number(number)}"

    times = _times(item, metric, received_at, latest)
    if isinstance(times, str):
        return times
    start, end = times

    reading_id = item.get("id")
    if reading_id is not None:
        if not isinstance(reading_id, str):
            return f"id must be a string, not {json_kind(reading_id)}"
        if not reading_id:
            return "id must not be empty"
        if len(reading_id) > MAX_ID_LENGTH:
            return f"id has {len(reading_id)} characters; at most {MAX_ID_LENGTH} are allowed"

    key = reading_id if reading_id is not None else _content_key(code, value, start, end)
    # Positional (in the fields' order): cheaper than keywords, once per reading.
    return ValidReading(index, code, value, start, end, reading_id, key)


def _times(
    item: dict[str, object], metric: Metric, received_at: datetime, latest: datetime
) -> tuple[datetime, datetime | None] | str:
    code = metric.code
    if not metric.interval:
        if "time" not in item:
            if "start" in item or "end" in item:
                return f"{code} is measured at an instant: give time, not start and end"
            return "missing field 'time'"
        time = parse_time(item["time"], "time")
        if isinstance(time, str):
            return time
        if time > latest:
            return f"time is in the future ({_iso(time)}, received {_iso(received_at)})"
        return _too_early(time, "time") or (time, None)

    if "start" not in item or "end" not in item:
        return f"{code} needs start and end"
    start = parse_time(item["start"], "start")
    if isinstance(start, str):
        return start
    end = parse_time(item["end"], "end")
    if isinstance(end, str):
        return end
    if end < start:
        return "end is before start"
    if end == start:
        return f"end equals start; {code} is counted over an interval"
    if end > latest:
        return f"end is in the future ({_iso(end)}, received {_iso(received_at)})"
    return _too_early(start, "start") or (start, end)


def _too_early(moment: datetime, name: str) -> str | None:
    if moment < EARLIEST:
        return f"{name} {_iso(moment)} is before {EARLIEST:%Y-%m-%d}; is the device clock set?"
    return None


def _content_key(code: str, value: float, start: datetime, end: datetime | None) -> str:
    # Stored keys must match those of later resends: changing this text format breaks
    # de-duplication against every reading already stored.
    text = f"{code}|{value:.{DECIMALS}f}|{start.isoformat()}|{end.isoformat() if end else ''}"
    return hashlib.sha256(text.encode()).hexdigest()


def _repeated(reading: ValidReading) -> str:
    if reading.device_reading_id is not None:
        return f"id {quoted(reading.device_reading_id)} is repeated in this batch"
    return "repeats an earlier reading in this batch (same metric, value and time)"


def _out_of_range(metric: Metric, unit: Unit, given: float, canonical: float) -> str:
    canonical_unit = metric.unit.symbol
    shown = f"{_number(given)} {unit.symbol}"
    if unit is not metric.unit:
        shown += f" ({_number(canonical)} {canonical_unit})"
    return (
        f"value {shown} is outside the plausible range "
        f"{_number(metric.minimum)}\N{EN DASH}{_number(metric.maximum)} {canonical_unit}"
    )


def _number(value: float) -> str:
    # float(): the catalogue writes ranges as int literals, which lack is_integer on 3.11.
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def quoted(text: str) -> str:
    """Quote what the sender wrote, cut short: a reason must stay readable whatever arrived."""
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + "…"
    return repr(text)


def json_kind(value: object) -> str:
    """The JSON name of what arrived, for 'must be a number, not a string'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
