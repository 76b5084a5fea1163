"""A patient's device readings read back out of the platform: as rows, as CSV for a
spreadsheet, and as a FHIR R4 Bundle of Observations for other systems.

Plain Python on a session. Callers decide first that the reader may see the patient
(`policy.get_visible`); everything here reads that one patient's readings only. A time
range is half-open, `[start, end)`, and selects readings by the instant they began, the
column the readings' index and their monthly partitions are keyed on.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NoReturn

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from dct_platform.audit_reading import safe_cell
from dct_platform.errors import ValidationFailed
from dct_platform.models import Patient, Site
from devices.metrics import METRICS
from devices.models import DeviceReading, DeviceUnit

DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=366)
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


# --- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportedReading:
    """One stored reading as readers see it: subject, site and device by their numbers."""

    subject_number: str
    # The site responsible for the patient when the reading was taken, not today's.
    site_number: str
    metric: str
    value: float
    effective_start: datetime
    effective_end: datetime | None
    received_at: datetime
    late: bool
    device_serial: str
    device_reading_id: str | None
    unit_id: int
    dedup_key: str

    @property
    def metric_label(self) -> str:
        return METRICS[self.metric].label

    @property
    def unit(self) -> str:
        """The canonical unit's symbol, as people write it (beats/min, °C)."""
        return METRICS[self.metric].unit.symbol

    @property
    def unit_ucum(self) -> str:
        return METRICS[self.metric].unit.code

    @property
    def key(self) -> str:
        """The reading's primary key as text: stable across exports, unique on the platform.
        The effective start is part of it because a device may reuse its own ids."""
        return f"{self.unit_id}|{self.effective_start.isoformat()}|{self.dedup_key}"


def reading_window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The range asked for, in UTC: the last `DEFAULT_SPAN` up to `now` when neither end is
    given, `DEFAULT_SPAN` before `end`, or from `start` up to `now`. Refused (422, naming
    the field) when a time lacks its offset, the range is empty or reversed, or it spans
    more than `MAX_SPAN`, which bounds what one request makes the database read."""
    start_utc = None if start is None else _utc(start, "from")
    end_utc = now.astimezone(UTC) if end is None else _utc(end, "to")
    if end is None and start_utc is not None and start_utc >= end_utc:
        _refuse("from", f"`from` ({start_utc.isoformat()}) must be in the past.")
    if start_utc is None:
        try:
            start_utc = end_utc - DEFAULT_SPAN
        except OverflowError:
            _refuse("from", "The range would begin before the year 1; send `from` as well.")
    _check_order(start_utc, end_utc)
    _check_span(start_utc, end_utc)
    return start_utc, end_utc


def readings_for(
    session: Session,
    patient: Patient,
    *,
    metric: str | None = None,
    start: datetime,
    end: datetime,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[ExportedReading]:
    """The patient's readings that began in `[start, end)`, of one metric or of all, oldest
    first (or newest first: a page shows the latest), at most `limit` of them (None: all).
    One query, on the index `ix_device_readings_patient_metric_time`. Any span is allowed
    here: a page exporting a whole study asks for more than the API's `MAX_SPAN` (see
    `reading_window`)."""
    start_utc, end_utc = _utc(start, "from"), _utc(end, "to")
    _check_order(start_utc, end_utc)
    if metric is not None and metric not in METRICS:
        _refuse("metric", f"Unknown metric {metric!r}; use one of: {', '.join(METRICS)}.")
    if limit is not None and limit < 1:
        _refuse("limit", "Ask for at least one reading.")
    # All metrics as an IN list rather than no condition: the database then bounds every
    # column of the index, the time included, instead of reading all of the patient's
    # entries. Readings are stored only for metrics of the catalogue.
    codes = [metric] if metric is not None else list(METRICS)
    query = _readings_query(patient.id, codes, start_utc, end_utc, newest_first).limit(limit)
    return [_exported(patient, row) for row in session.execute(query)]


def _readings_query(
    patient_id: int, codes: list[str], start: datetime, end: datetime, newest_first: bool
) -> Select[*tuple[Any, ...]]:
    order = [
        DeviceReading.effective_start,
        DeviceReading.metric,
        DeviceReading.unit_id,
        DeviceReading.dedup_key,
    ]
    return (
        select(
            DeviceReading.metric,
            DeviceReading.value,
            DeviceReading.effective_start,
            DeviceReading.effective_end,
            DeviceReading.received_at,
            DeviceReading.late,
            DeviceReading.device_reading_id,
            DeviceReading.unit_id,
            DeviceReading.dedup_key,
            DeviceUnit.serial_number,
            Site.site_number,
        )
        .join(DeviceUnit, DeviceUnit.id == DeviceReading.unit_id)
        # The reading's own site: the one responsible when it was taken.
        .join(Site, Site.id == DeviceReading.site_id)
        .where(
            DeviceReading.patient_id == patient_id,
            DeviceReading.metric.in_(codes),
            DeviceReading.effective_start >= start,
            DeviceReading.effective_start < end,
        )
        # The key's other columns after the time: a stable order for readings of one instant.
        .order_by(*(c.desc() for c in order) if newest_first else order)
    )


def _exported(patient: Patient, row: Row[Any]) -> ExportedReading:
    return ExportedReading(
        subject_number=patient.subject_number,
        site_number=row.site_number,
        metric=row.metric,
        value=row.value,
        effective_start=row.effective_start,
        effective_end=row.effective_end,
        received_at=row.received_at,
        late=row.late,
        device_serial=row.serial_number,
        device_reading_id=row.device_reading_id,
        unit_id=row.unit_id,
        dedup_key=row.dedup_key,
    )


def _utc(moment: datetime, field: str) -> datetime:
    if moment.utcoffset() is None:
        _refuse(field, "Give the time with its UTC offset, e.g. 2026-03-10T09:30:00+01:00.")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        _refuse(field, "The time is out of range.")


def _check_order(start: datetime, end: datetime) -> None:
    if end <= start:
        _refuse("to", f"`to` ({end.isoformat()}) must be after `from` ({start.isoformat()}).")


def _check_span(start: datetime, end: datetime) -> None:
    if end - start > MAX_SPAN:
        days = MAX_SPAN.days
        _refuse(
            "to",
            f"The range spans {(end - start).days} days; ask for at most {days} days at a time.",
        )


def _refuse(field: str, message: str) -> NoReturn:
    raise ValidationFailed(message, {"fields": {field: [message]}})


# --- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "subject_number", "site_number", "metric", "metric_label", "value", "unit", "unit_ucum",
    "effective_start", "effective_end", "received_at", "late", "device_serial",
    "device_reading_id",
)  # fmt: skip


def readings_csv(
    session: Session,
    patient: Patient,
    *,
    metric: str | None = None,
    start: datetime,
    end: datetime,
    limit: int | None = None,
) -> Iterator[str]:
    """`readings_for` as CSV lines, the header first. The readings are read now, not when
    the lines are consumed: a streamed response may outlive the request's session."""
    readings = readings_for(session, patient, metric=metric, start=start, end=end, limit=limit)
    return csv_lines(readings)


def csv_lines(readings: Iterable[ExportedReading]) -> Iterator[str]:
    """Each line ends in CRLF (RFC 4180). Text from devices and people is neutralised for
    spreadsheets (a device id "=HYPERLINK(...)" stays text); numbers, which the platform
    formats itself, stay numbers, so that a negative value is not turned into text."""
    yield _line(CSV_COLUMNS)
    for r in readings:
        yield _line(
            (
                safe_cell(r.subject_number),
                safe_cell(r.site_number),
                r.metric,
                r.metric_label,
                str(_plain(r.value)),
                r.unit,
                r.unit_ucum,
                r.effective_start.isoformat(),
                r.effective_end.isoformat() if r.effective_end else "",
                r.received_at.isoformat(),
                "yes" if r.late else "no",
                safe_cell(r.device_serial),
                safe_cell(r.device_reading_id or ""),
            )
        )


def _line(cells: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def _plain(value: float) -> float | int:
    # 1200 steps, not 1200.0: in CSV as in FHIR, whose decimals keep the precision they
    # are written with. Other values as Python writes floats, the shortest exact text.
    value = float(value)  # an int has no is_integer() on Python 3.11
    return int(value) if value.is_integer() else value


# --- FHIR R4 ---------------------------------------------------------------------------------

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# The platform's own systems. It has no web address of its own, so its names are URNs,
# which FHIR accepts wherever a system URI is expected.
PLATFORM_METRICS = "urn:dct-platform:device-metric"
PLATFORM_CATEGORIES = "urn:dct-platform:observation-category"
SUBJECT_NUMBERS = "urn:dct-platform:subject-number"
DEVICE_SERIALS = "urn:dct-platform:device-serial-number"
READING_KEYS = "urn:dct-platform:device-reading"
# fullUrl of each entry: the same reading always gets the same UUID.
_READING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, READING_KEYS)


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str

    def as_fhir(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class FhirMetric:
    """How a metric reads in FHIR: its codes (the first is the main one), its category, and
    the UCUM code of the canonical unit its values are stored in."""

    codes: tuple[Coding, ...]
    category: Coding
    ucum: str


def _loinc(code: str, display: str) -> Coding:
    return Coding(LOINC, code, display)


def _platform(code: str) -> Coding:
    return Coding(PLATFORM_METRICS, code, METRICS[code].label)


VITAL_SIGNS = Coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
ACTIVITY = Coding(OBSERVATION_CATEGORY, "activity", "Activity")
# What a device reports about itself or its surroundings is no clinical category of HL7's.
ENVIRONMENT = Coding(PLATFORM_CATEGORIES, "environment", "Environment")
DEVICE_STATUS = Coding(PLATFORM_CATEGORIES, "device-status", "Device status")

# The one table of metric -> FHIR. A metric without a fitting LOINC code has the platform's.
FHIR_METRICS: Mapping[str, FhirMetric] = MappingProxyType(
    {
        "heart_rate": FhirMetric((_loinc("8867-4", "Heart rate"),), VITAL_SIGNS, "/min"),
        "step_count": FhirMetric(
            (_loinc("55423-8", "Number of steps in unspecified time Pedometer"),),
            ACTIVITY,
            "{steps}",
        ),
        "systolic_blood_pressure": FhirMetric(
            (_loinc("8480-6", "Systolic blood pressure"),), VITAL_SIGNS, "mm[Hg]"
        ),
        "diastolic_blood_pressure": FhirMetric(
            (_loinc("8462-4", "Diastolic blood pressure"),), VITAL_SIGNS, "mm[Hg]"
        ),
        "body_weight": FhirMetric((_loinc("29463-7", "Body weight"),), VITAL_SIGNS, "kg"),
        # 2708-6 is the code FHIR's vital-signs profile requires; 59408-5 says that a
        # pulse oximeter, as worn at home, measured it.
        "oxygen_saturation": FhirMetric(
            (
                _loinc("2708-6", "Oxygen saturation in Arterial blood"),
                _loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            ),
            VITAL_SIGNS,
            "%",
        ),
        "body_temperature": FhirMetric((_loinc("8310-5", "Body temperature"),), VITAL_SIGNS, "Cel"),
        "ambient_temperature": FhirMetric((_platform("ambient_temperature"),), ENVIRONMENT, "Cel"),
        "battery_level": FhirMetric((_platform("battery_level"),), DEVICE_STATUS, "%"),
        "signal_strength": FhirMetric((_platform("signal_strength"),), DEVICE_STATUS, "dB[mW]"),
    }
)


def observation_bundle(
    session: Session,
    patient: Patient,
    *,
    metric: str | None = None,
    start: datetime,
    end: datetime,
    limit: int | None = None,
    now: datetime | None = None,
) -> Bundle:
    """`readings_for` as a FHIR R4 Bundle of type collection, one Observation per reading;
    `now`, when given, is the Bundle's timestamp. Serialise it with `.model_dump_json()`."""
    readings = readings_for(session, patient, metric=metric, start=start, end=end, limit=limit)
    return bundle_of(readings, now=now)


def bundle_of(readings: Iterable[ExportedReading], *, now: datetime | None = None) -> Bundle:
    """The readings as a Bundle, validated by fhir.resources' R4B models (R4-compatible
    for Bundle and Observation) as it is built."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(_READING_NAMESPACE, r.key)}",
                "resource": observation(r),
            }
            for r in readings
        ],
    }
    if now is not None:
        bundle["timestamp"] = now.astimezone(UTC)
    return Bundle.model_validate(bundle)


def observation(reading: ExportedReading) -> dict[str, Any]:
    """One reading as an Observation resource (JSON-like, for Bundle validation)."""
    fhir = FHIR_METRICS[reading.metric]
    unit = METRICS[reading.metric].unit
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": READING_KEYS, "value": reading.key}],
        "status": "final",
        "category": [{"coding": [fhir.category.as_fhir()]}],
        "code": {
            "coding": [c.as_fhir() for c in fhir.codes],
            "text": reading.metric_label,
        },
        "subject": {
            "type": "Patient",
            "identifier": {"system": SUBJECT_NUMBERS, "value": reading.subject_number},
            "display": reading.subject_number,
        },
        "issued": reading.received_at,
        "valueQuantity": {
            "value": _plain(reading.value),
            "unit": unit.symbol,
            "system": UCUM,
            "code": fhir.ucum,
        },
        "device": {
            "type": "Device",
            "identifier": {"system": DEVICE_SERIALS, "value": reading.device_serial},
            "display": reading.device_serial,
        },
    }
    if reading.effective_end is None:
        resource["effectiveDateTime"] = reading.effective_start
    else:
        resource["effectivePeriod"] = {
            "start": reading.effective_start,
            "end": reading.effective_end,
        }
    return resource
