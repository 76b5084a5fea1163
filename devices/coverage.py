"""Wear and data coverage: how many hours of each day a patient's devices sent data.

An hour counts when at least one reading started in it. Days are the patient's local
days (their zone now), because "worn all Tuesday" means the patient's Tuesday. Hours are
counted in the database (distinct hour numbers since the epoch), so a week of minute
readings comes back as at most 168 numbers per patient.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Integer, distinct, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from dct_platform.models import Patient, Site
from devices.models import DeviceAssignment, DeviceReading


class epoch_hour(FunctionElement[int]):
    """The number of whole hours since 1970 of a UTC timestamp, on both databases."""

    type = Integer()
    inherit_cache = True


@compiles(epoch_hour, "postgresql")
def _epoch_hour_pg(element: Any, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CAST(floor(extract(epoch FROM {column}) / 3600) AS INTEGER)"


@compiles(epoch_hour, "sqlite")
def _epoch_hour_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / 3600)"


@dataclass(frozen=True)
class DayCoverage:
    day: date
    hours: int


def local_day_bounds(zone: ZoneInfo, first: date, days: int) -> tuple[datetime, datetime]:
    start = datetime.combine(first, time(0), zone).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=days), time(0), zone).astimezone(UTC)
    return start, end


def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


def patient_coverage(
    session: Session, patient: Patient, last_day: date, days: int = 14
) -> list[DayCoverage]:
    """Hours with data for each of the `days` local days ending with `last_day`."""
    zone = ZoneInfo(patient.timezone)
    first = last_day - timedelta(days=days - 1)
    start, end = local_day_bounds(zone, first, days)
    hours = session.scalars(
        select(epoch_hour(DeviceReading.effective_start))
        .distinct()
        .where(
            DeviceReading.patient_id == patient.id,
            DeviceReading.effective_start >= start,
            DeviceReading.effective_start < end,
        )
    )
    per_day: dict[date, int] = defaultdict(int)
    for hour in hours:
        per_day[_hour_start(hour).astimezone(zone).date()] += 1
    return [
        DayCoverage(first + timedelta(days=i), per_day.get(first + timedelta(days=i), 0))
        for i in range(days)
    ]


@dataclass(frozen=True)
class SiteCoverage:
    site: Site
    patients_with_devices: int
    patients_with_data: int
    # Mean hours with data per patient and day, over the patients with devices.
    mean_hours_per_day: float


def site_coverage(
    session: Session, visible_sites: ColumnElement[bool], now: datetime, days: int = 7
) -> list[SiteCoverage]:
    """Per site: who wears a device, who sent data, and the mean hours per day, over the
    last `days` days (UTC days: sites across zones are compared on the same hours)."""
    start = now - timedelta(days=days)
    sites = list(session.scalars(select(Site).where(visible_sites).order_by(Site.site_number)))
    ids = [s.id for s in sites]
    wearing: dict[int, int] = dict(
        session.execute(
            select(Patient.site_id, func.count(distinct(Patient.id)))
            .join(DeviceAssignment, DeviceAssignment.patient_id == Patient.id)
            .where(
                Patient.site_id.in_(ids),
                (DeviceAssignment.valid_to.is_(None)) | (DeviceAssignment.valid_to > start),
            )
            .group_by(Patient.site_id)
        ).all()
    )
    per_patient = (
        select(
            DeviceReading.site_id,
            DeviceReading.patient_id,
            func.count(distinct(epoch_hour(DeviceReading.effective_start))).label("hours"),
        )
        .where(
            DeviceReading.site_id.in_(ids),
            DeviceReading.effective_start >= start,
            DeviceReading.effective_start < now,
        )
        .group_by(DeviceReading.site_id, DeviceReading.patient_id)
        .subquery()
    )
    data: dict[int, tuple[int, int]] = {
        site_id: (patients, hours)
        for site_id, patients, hours in session.execute(
            select(per_patient.c.site_id, func.count(), func.sum(per_patient.c.hours)).group_by(
                per_patient.c.site_id
            )
        )
    }
    found = []
    for site in sites:
        with_devices = wearing.get(site.id, 0)
        with_data, hours = data.get(site.id, (0, 0))
        # A patient transferred in mid-week may have sent data here without wearing now.
        denominator = max(with_devices, with_data)
        mean = hours / (denominator * days) if denominator else 0.0
        found.append(SiteCoverage(site, with_devices, with_data, round(mean, 1)))
    return found
