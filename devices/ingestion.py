"""Storing a batch of readings from one unit, each exactly once.

The unit is known from its credential. Each valid reading is linked to the patient who
held the unit at the reading's time and to the site responsible for that patient then;
readings outside every holding period are refused with a reason. Rows go in with one
set-based `INSERT ... ON CONFLICT DO NOTHING` per chunk, so the database, not a read
before the write, decides what is a duplicate. A batch sent again with the same
Idempotency-Key gets the answer it got the first time.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Table,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform import events
from dct_platform.bulk import BulkInsert
from dct_platform.errors import Conflict
from dct_platform.models import Patient, RemoteActivity
from dct_platform.services import activities
from dct_platform.services.ownership import responsibilities_at, timezone_at
from devices.models import DeviceAssignment, DeviceBatch, DeviceReading, DeviceUnit
from devices.omh import is_omh, validate_omh
from devices.readings import Rejection, ValidReading, validate_batch

CHUNK = 1000

SHIPMENT_READINGS_STORED = events.declare(
    "devices.shipment-readings-stored",
    "New readings were stored from a logger travelling with shipments. Payload: unit_id, "
    "batch_id, shipment_ids.",
)

# The patient and site that the readings of a logger travelling with a shipment are filed
# under (the shipment's). The shipments capability registers it: devices must not import it.
ShipmentHolders = Callable[[Session, Sequence[int]], dict[int, tuple[int, int]]]
_shipment_holders: list[ShipmentHolders] = []


def register_shipment_holders(resolve: ShipmentHolders) -> None:
    """Accept readings of units held by shipments, filed as `resolve` says (one resolver)."""
    _shipment_holders[:] = [resolve]


@dataclass(frozen=True)
class IngestSettings:
    future_tolerance: timedelta = timedelta(minutes=5)
    late_after: timedelta = timedelta(hours=24)
    clock_drift: timedelta = timedelta(minutes=2)


@dataclass(frozen=True)
class UnitStatus:
    """What a unit reports about itself with a batch; every part is optional."""

    battery_percent: int | None = None
    signal: str | None = None
    # The unit's own clock when it sent the batch: compared with the arrival time.
    device_time: datetime | None = None

    def clock_offset(self, received_at: datetime) -> float | None:
        if self.device_time is None:
            return None
        return round((self.device_time - received_at).total_seconds(), 3)


# A holding period: from, to, and the holder: a patient id, or a shipment id (negative, so
# that one int names either; shipments held only when a resolver is registered).
Period = tuple[datetime, datetime | None, int]


def _holding_periods(session: Session, unit: DeviceUnit) -> list[Period]:
    held_by: ColumnElement[bool] = DeviceAssignment.patient_id.is_not(None)
    if _shipment_holders:
        held_by = held_by | DeviceAssignment.shipment_id.is_not(None)
    return [
        (start, end, patient_id if patient_id is not None else -(shipment_id or 0))
        for start, end, patient_id, shipment_id in session.execute(
            select(
                DeviceAssignment.valid_from,
                DeviceAssignment.valid_to,
                DeviceAssignment.patient_id,
                DeviceAssignment.shipment_id,
            )
            .where(DeviceAssignment.unit_id == unit.id, held_by)
            .order_by(DeviceAssignment.valid_from)
        )
    ]


def _holder(periods: list[Period], starts: list[datetime], r: ValidReading) -> int | None:
    i = bisect_right(starts, r.effective_start) - 1
    if i < 0:
        return None
    _start, end, holder = periods[i]
    last = r.effective_end or r.effective_start
    if end is not None and (r.effective_start >= end or last > end):
        return None
    return holder


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def ingest(
    session: Session,
    unit: DeviceUnit,
    token_id: int,
    body: bytes,
    items: list[object],
    received_at: datetime,
    *,
    idempotency_key: str | None = None,
    settings: IngestSettings | None = None,
    status: UnitStatus | None = None,
) -> dict[str, Any]:
    """Store what is valid in `items` (native readings or Open mHealth data points); the
    answer: the batch's id, how many were stored, how many were duplicates, and each
    rejected item's index and reason."""
    settings = settings or IngestSettings()
    digest = hashlib.sha256(body).hexdigest()
    if idempotency_key is not None:
        earlier = session.scalar(
            select(DeviceBatch).where(
                DeviceBatch.unit_id == unit.id, DeviceBatch.idempotency_key == idempotency_key
            )
        )
        if earlier is not None:
            return _replay(earlier, digest)

    omh = is_omh(items)
    validate = validate_omh if omh else validate_batch
    valid, rejected = validate(
        items, received_at=received_at, future_tolerance=settings.future_tolerance
    )

    periods = _holding_periods(session, unit)
    starts = [p[0] for p in periods]
    placed: list[tuple[ValidReading, int]] = []
    carried: list[tuple[ValidReading, int]] = []  # by a shipment: (reading, shipment id)
    for reading in valid:
        holder = _holder(periods, starts, reading)
        if holder is None:
            rejected.append(
                Rejection(
                    reading.index,
                    f"time {reading.effective_start.isoformat()} is outside the periods "
                    f"device {unit.serial_number} was assigned to a patient",
                )
            )
        elif holder < 0:
            carried.append((reading, -holder))
        else:
            placed.append((reading, holder))
    sites = responsibilities_at(session, [(pid, r.effective_start) for r, pid in placed])
    # A shipment's logger is filed under the shipment's patient and site as ordered: the
    # kits' journey is that site's responsibility, whatever the patient's site later.
    shipment_ids = sorted({sid for _r, sid in carried})
    holders = _shipment_holders[0](session, shipment_ids) if carried else {}
    patient_days = {(pid, r.effective_start) for r, pid in placed}
    for reading, shipment_id in carried:
        patient_id, site_id = holders[shipment_id]
        placed.append((reading, patient_id))
        sites[(patient_id, reading.effective_start)] = site_id
    for reading, patient_id in placed:
        if (patient_id, reading.effective_start) not in sites:
            rejected.append(
                Rejection(reading.index, "time is before the patient's enrolment at a site")
            )

    status = status or UnitStatus()
    offset = status.clock_offset(received_at)
    batch = _open_batch(
        session, unit, token_id, received_at, digest, idempotency_key, omh, status, offset
    )
    if batch is None:  # a concurrent send with the same key committed first
        return _replay(_batch_with_key(session, unit, idempotency_key), digest)

    rows = [
        {
            "unit_id": unit.id,
            "dedup_key": r.dedup_key,
            "effective_start": r.effective_start,
            "effective_end": r.effective_end,
            "metric": r.metric,
            "value": r.value,
            "patient_id": pid,
            "site_id": sites[(pid, r.effective_start)],
            "device_reading_id": r.device_reading_id,
            "received_at": received_at,
            "batch_id": batch.id,
            "late": received_at - (r.effective_end or r.effective_start) > settings.late_after,
        }
        for r, pid in placed
        if (pid, r.effective_start) in sites
    ]
    stored = _store(session, rows)
    if stored:
        # A logger's data is the shipment's, not a day the patient wore a device.
        worn = [row for row in rows if (row["patient_id"], row["effective_start"]) in patient_days]
        if worn:
            _record_patient_days(session, unit, worn, received_at)
        if carried:
            events.emit(
                session,
                SHIPMENT_READINGS_STORED,
                received_at,
                {"unit_id": unit.id, "batch_id": batch.id, "shipment_ids": shipment_ids},
                subject=unit.serial_number,
            )
    rejected.sort(key=lambda rejection: rejection.index)
    answer: dict[str, Any] = {
        "batch_id": batch.id,
        "format": "openmhealth" if omh else "native",
        "received": len(items),
        "stored": stored,
        "duplicates": len(rows) - stored,
        "late": sum(1 for row in rows if row["late"]),
        "rejected": [{"index": r.index, "reason": r.reason} for r in rejected],
    }
    if offset is not None:
        answer["clock_offset_seconds"] = offset
        # Flagged here for the device; the health job raises it for the site staff.
        answer["clock_drift"] = abs(offset) > settings.clock_drift.total_seconds()
    batch.stored, batch.duplicates, batch.rejected = stored, len(rows) - stored, len(rejected)
    batch.newest_reading_at = max(
        (
            r.effective_end or r.effective_start
            for r, pid in placed
            if (pid, r.effective_start) in sites
        ),
        default=None,
    )
    batch.answer = answer
    session.flush()
    return answer


# Readings are written by the thousand: the platform's one bulk insert (unnest arrays on
# PostgreSQL), skipping a reading the database already has.
_store = BulkInsert(
    cast(Table, DeviceReading.__table__),
    ("unit_id", "dedup_key", "effective_start", "effective_end", "metric", "value",
     "patient_id", "site_id", "device_reading_id", "received_at", "batch_id", "late"),
    chunk=CHUNK,
)  # fmt: skip


def _open_batch(
    session: Session,
    unit: DeviceUnit,
    token_id: int,
    received_at: datetime,
    digest: str,
    idempotency_key: str | None,
    omh: bool,
    status: UnitStatus,
    clock_offset: float | None,
) -> DeviceBatch | None:
    """The batch's provenance row, or None when another request holds the same key: the
    unique key makes the second of two concurrent sends wait for the first, then yield."""
    values = {
        "unit_id": unit.id,
        "token_id": token_id,
        "received_at": received_at,
        "body_sha256": digest,
        "idempotency_key": idempotency_key,
        "data_format": "openmhealth" if omh else "native",
        "stored": 0,
        "duplicates": 0,
        "rejected": 0,
        "battery_percent": status.battery_percent,
        "signal": status.signal,
        "clock_offset_seconds": clock_offset,
    }
    return session.scalars(
        _insert(session)(DeviceBatch).values(values).on_conflict_do_nothing().returning(DeviceBatch)
    ).first()


def _batch_with_key(session: Session, unit: DeviceUnit, key: str | None) -> DeviceBatch:
    batch = session.scalar(
        select(DeviceBatch).where(
            DeviceBatch.unit_id == unit.id, DeviceBatch.idempotency_key == key
        )
    )
    assert batch is not None  # the insert conflicted on exactly this row
    return batch


def _replay(batch: DeviceBatch, digest: str) -> dict[str, Any]:
    if batch.body_sha256 != digest:
        raise Conflict(
            "This Idempotency-Key was used for a different batch; send a new key for new data."
        )
    return dict(batch.answer or {})


DEVICE_DATA = activities.register_type("device-data", "Device data", "devices")


def _record_patient_days(
    session: Session, unit: DeviceUnit, rows: list[dict[str, Any]], now: datetime
) -> None:
    """One remote activity per patient and local day with data, updated as batches
    arrive: the timeline shows days of wear, not every reading or batch."""
    days: dict[tuple[int, date], tuple[datetime, datetime]] = {}
    zones: dict[int, ZoneInfo] = {}
    for row in rows:
        patient_id = row["patient_id"]
        if patient_id not in zones:
            zones[patient_id] = ZoneInfo(timezone_at(session, patient_id, row["effective_start"]))
        start = row["effective_start"]
        end = row["effective_end"] or start
        key = (patient_id, start.astimezone(zones[patient_id]).date())
        first, last = days.get(key, (start, end))
        days[key] = (min(first, start), max(last, end))
    for (patient_id, day), (first, last) in sorted(days.items()):
        record_id = f"{patient_id}:{day.isoformat()}"
        known = session.scalar(
            select(RemoteActivity).where(
                RemoteActivity.activity_type == DEVICE_DATA.name,
                RemoteActivity.record_table == "device_readings",
                RemoteActivity.record_id == record_id,
            )
        )
        if known is not None:
            first = min(first, known.occurred_at)
            last = max(last, known.ends_at or last)
        patient = session.get(Patient, patient_id)
        assert patient is not None  # the reading was linked to this patient just now
        for attempt in range(2):
            try:
                # A savepoint: another batch of the same day may create the row first.
                with session.begin_nested():
                    activities.record_activity(
                        session,
                        now,
                        activity_type=DEVICE_DATA,
                        patient=patient,
                        occurred_at=first,
                        ends_at=last,
                        record_table="device_readings",
                        record_id=record_id,
                        status="received",
                        summary=f"Data from device {unit.serial_number} on {day.isoformat()}",
                        originator=activities.Originator.DEVICE,
                        originator_ref=unit.serial_number,
                        location_type="home",
                    )
                break
            except IntegrityError:
                if attempt:
                    raise
