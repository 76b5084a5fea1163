"""A patient's readings of one metric over a period, shaped for a chart: every point when
there are few, means over equal time buckets when there are many (a chart 860 pixels wide
cannot show 10,000 points, and sending them would make the page slow on a phone).
Interval metrics (step counts) become totals per local day."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from devices.coverage import epoch_hour
from devices.models import DeviceReading

MAX_POINTS = 400


def _in_range(
    patient_id: int, metric: str, start: datetime, end: datetime
) -> list[ColumnElement[bool]]:
    return [
        DeviceReading.patient_id == patient_id,
        DeviceReading.metric == metric,
        DeviceReading.effective_start >= start,
        DeviceReading.effective_start < end,
    ]


def points(
    session: Session, patient_id: int, metric: str, start: datetime, end: datetime
) -> tuple[list[tuple[datetime, float]], int]:
    """(time, value) pairs in time order, and the bucket size in hours (0: raw readings)."""
    where = _in_range(patient_id, metric, start, end)
    count = session.scalar(select(func.count()).select_from(DeviceReading).where(*where)) or 0
    if count <= MAX_POINTS:
        rows = session.execute(
            select(DeviceReading.effective_start, DeviceReading.value)
            .where(*where)
            .order_by(DeviceReading.effective_start)
        )
        return [(t, v) for t, v in rows], 0
    hours = max(1, math.ceil((end - start).total_seconds() / 3600 / MAX_POINTS))
    bucket = (epoch_hour(DeviceReading.effective_start) / hours).label("bucket")
    buckets = session.execute(
        select(bucket, func.avg(DeviceReading.value), func.min(DeviceReading.effective_start))
        .where(*where)
        .group_by(bucket)
        .order_by(bucket)
    )
    return [(first, round(float(mean), 2)) for _bucket, mean, first in buckets], hours


def daily_totals(
    session: Session, patient_id: int, metric: str, start: datetime, end: datetime, zone: ZoneInfo
) -> dict[date, float]:
    """Sum per local day (of the interval's start), for counts such as steps."""
    hour = epoch_hour(DeviceReading.effective_start).label("hour")
    totals: dict[date, float] = defaultdict(float)
    for h, total in session.execute(
        select(hour, func.sum(DeviceReading.value))
        .where(*_in_range(patient_id, metric, start, end))
        .group_by(hour)
    ):
        day = datetime.fromtimestamp(h * 3600, tz=zone).date()
        totals[day] += float(total)
    return dict(totals)
