"""Questionnaires, their versions and schedules, and the occurrences kept in the database.

A version's content is fixed once published; a schedule names the published version it
asks for. The occurrences job (`refresh`) writes the occurrences whose windows open in
the coming `HORIZON` for every patient a schedule covers, each computed in the zone the
patient lives by when it opens (devices/ediary/occurrences.py), and marks those whose
time is over as missed. A row not yet opened is recomputed on each run, so a patient who
moves gets the next windows in the new zone; one that opened keeps its zone and times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, select, update
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.bulk import BulkInsert
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.localtime import parse_clock_time
from dct_platform.models import Patient, PatientTimezonePeriod, Trial, User
from dct_platform.models.patients import PatientStatus
from dct_platform.services.ownership import responsibilities_at
from devices.ediary import occurrences as occ
from devices.ediary.fhir_questionnaire import from_questionnaire
from devices.ediary.instruments import DefinitionError, Instrument, validate_definition
from devices.ediary.models import (
    Instrument as InstrumentRow,
)
from devices.ediary.models import (
    InstrumentVersion,
    Occurrence,
    Outcome,
    Schedule,
    ScheduleKind,
)

HORIZON = timedelta(days=2)
# Patients who fill diaries: enrolled, not yet finished or withdrawn.
ACTIVE = (PatientStatus.ENROLLED,)


def _definition_errors(exc: DefinitionError) -> ValidationFailed:
    return ValidationFailed(
        "The questionnaire definition has problems: " + "; ".join(exc.errors[:5]),
        {"fields": {"definition": exc.errors}},
    )


def add_version(
    session: Session,
    actor: User | None,
    now: datetime,
    definition: dict[str, Any],
    *,
    publish: bool = True,
    system: str | None = None,
) -> InstrumentVersion:
    """Store a questionnaire version (the instrument is created with its first version).
    A version number already used is refused: published content never changes."""
    try:
        instrument = validate_definition(definition)
    except DefinitionError as exc:
        raise _definition_errors(exc) from exc
    what = f"Questionnaire {instrument.code} version {instrument.version}"
    with audit.acting(session, actor, now, system=system, what=what):
        row = session.scalar(select(InstrumentRow).where(InstrumentRow.code == instrument.code))
        if row is None:
            row = InstrumentRow(
                code=instrument.code, title=instrument.title, created_at=now, updated_at=now
            )
            session.add(row)
            session.flush()
        taken = session.scalar(
            select(InstrumentVersion.id).where(
                InstrumentVersion.instrument_id == row.id,
                InstrumentVersion.version == instrument.version,
            )
        )
        if taken is not None:
            raise Conflict(
                f"{instrument.code} version {instrument.version} exists already; its content "
                "cannot change. Give the new content a new version number."
            )
        version = InstrumentVersion(
            instrument_id=row.id,
            version=instrument.version,
            definition=instrument.to_dict(),
            created_at=now,
            published_at=now if publish else None,
        )
        session.add(version)
        session.flush()
    return version


def import_questionnaire(
    session: Session, actor: User | None, now: datetime, resource: object, **kw: Any
) -> InstrumentVersion:
    """A FHIR R4 Questionnaire as a new version."""
    try:
        instrument = from_questionnaire(resource)
    except DefinitionError as exc:
        raise _definition_errors(exc) from exc
    return add_version(session, actor, now, instrument.to_dict(), **kw)


def instrument_of(version: InstrumentVersion) -> Instrument:
    return validate_definition(version.definition)


def _clock(text: str, field: str, *, end: bool = False) -> time:
    try:
        return parse_clock_time(text, end=end)
    except ValueError as exc:
        raise ValidationFailed(
            f"{field}: give a local time as HH:MM, e.g. 18:00.", {"fields": {field: [str(exc)]}}
        ) from exc


def rule_of(schedule: Schedule) -> occ.Rule:
    window: dict[str, Any] = {
        "start": _clock(schedule.window_start, "window_start"),
        "end": _clock(schedule.window_end, "window_end", end=True),
        "late_allowed": timedelta(minutes=schedule.late_allowed_minutes),
        "remind_before_close": (
            timedelta(minutes=schedule.remind_before_close_minutes)
            if schedule.remind_before_close_minutes
            else None
        ),
    }
    kind = schedule.kind
    if kind == ScheduleKind.DAILY:
        assert schedule.first_date is not None
        return occ.Daily(first_date=schedule.first_date, last_date=schedule.last_date, **window)
    if kind == ScheduleKind.EVERY_N_DAYS:
        assert schedule.first_date is not None and schedule.every_n is not None
        return occ.EveryNDays(
            first_date=schedule.first_date,
            every_n=schedule.every_n,
            last_date=schedule.last_date,
            **window,
        )
    if kind == ScheduleKind.PROTOCOL_DAYS:
        return occ.ProtocolDays(
            study_days=tuple(schedule.study_days or ()),
            window_days=schedule.window_days,
            **window,
        )
    assert schedule.first_date is not None
    return occ.Once(on=schedule.first_date, **window)


def add_schedule(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    trial: Trial,
    version: InstrumentVersion,
    kind: ScheduleKind,
    window_start: str,
    window_end: str,
    first_date: date | None = None,
    last_date: date | None = None,
    every_n: int | None = None,
    study_days: Iterable[int] | None = None,
    window_days: int = 0,
    late_allowed_minutes: int = 0,
    remind_before_close_minutes: int | None = None,
    patient: Patient | None = None,
    arm: str | None = None,
    system: str | None = None,
) -> Schedule:
    if version.published_at is None:
        raise ValidationFailed("Publish the questionnaire version before scheduling it.")
    if patient is not None and patient.trial_id != trial.id:
        raise ValidationFailed("The patient is not in this trial.")
    missing: dict[str, list[str]] = {}
    if kind != ScheduleKind.PROTOCOL_DAYS and first_date is None:
        missing["first_date"] = ["Give the first day (the day of a one-off diary)."]
    if kind == ScheduleKind.EVERY_N_DAYS and not every_n:
        missing["every_n"] = ["Give every how many days."]
    if kind == ScheduleKind.PROTOCOL_DAYS and not study_days:
        missing["study_days"] = ["Give the study days, e.g. 1, 8, 15 (day 1 is the baseline)."]
    if missing:
        raise ValidationFailed("The schedule is incomplete.", {"fields": missing})
    schedule = Schedule(
        trial_id=trial.id,
        patient_id=patient.id if patient else None,
        arm=(arm or "").strip() or None,
        instrument_version_id=version.id,
        kind=kind,
        window_start=window_start,
        window_end=window_end,
        first_date=first_date,
        last_date=last_date,
        every_n=every_n,
        study_days=sorted(set(study_days)) if study_days else None,
        window_days=window_days,
        late_allowed_minutes=late_allowed_minutes,
        remind_before_close_minutes=remind_before_close_minutes,
        active=True,
        created_at=now,
        updated_at=now,
    )
    try:
        rule_of(schedule)  # the rule's own checks, before anything is stored
    except ValueError as exc:
        raise ValidationFailed(f"The schedule is not valid: {exc}.") from exc
    what = f"Diary schedule of {version.instrument.code} v{version.version}"
    with audit.acting(session, actor, now, system=system, what=what):
        session.add(schedule)
        session.flush()
    return schedule


def _zones(session: Session, patient_ids: list[int]) -> dict[int, list[occ.ZonePeriod]]:
    found: dict[int, list[occ.ZonePeriod]] = defaultdict(list)
    for patient_id, start, end, zone in session.execute(
        select(
            PatientTimezonePeriod.patient_id,
            PatientTimezonePeriod.valid_from,
            PatientTimezonePeriod.valid_to,
            PatientTimezonePeriod.timezone,
        )
        .where(PatientTimezonePeriod.patient_id.in_(patient_ids))
        .order_by(PatientTimezonePeriod.patient_id, PatientTimezonePeriod.valid_from)
    ):
        found[patient_id].append(occ.ZonePeriod(start, end, zone))
    return found


def _patients(session: Session, schedule: Schedule) -> list[Patient]:
    query = select(Patient).where(Patient.status.in_(ACTIVE))
    if schedule.patient_id is not None:
        query = query.where(Patient.id == schedule.patient_id)
    else:
        query = query.where(Patient.trial_id == schedule.trial_id)
    if schedule.arm is not None:
        query = query.where(Patient.arm == schedule.arm)
    return list(session.scalars(query))


def refresh(
    session: Session,
    now: datetime,
    horizon: timedelta = HORIZON,
    *,
    since: datetime | None = None,
) -> dict[str, int]:
    """The occurrences job: write what opens before `now + horizon`, recompute what has
    not opened yet, and mark what is over as missed. `since` also writes the windows of an
    earlier period (the demo's history); the job never does, so a new schedule never
    counts days before it existed against a patient."""
    counts = {"added": 0, "moved": 0, "missed": 0}
    for schedule in session.scalars(select(Schedule).where(Schedule.active)):
        added, moved = _refresh_schedule(session, schedule, now, horizon, since or now)
        counts["added"] += added
        counts["moved"] += moved
    counts["missed"] = mark_missed(session, now)
    return counts


def _refresh_schedule(
    session: Session, schedule: Schedule, now: datetime, horizon: timedelta, since: datetime
) -> tuple[int, int]:
    patients = _patients(session, schedule)
    if not patients:
        return 0, 0
    rule = rule_of(schedule)
    zones = _zones(session, [p.id for p in patients])
    # Every row whose window may overlap the coming hours (it closes after now), decided
    # or not: a key is written once.
    known = {
        (row.patient_id, row.key): row
        for row in session.scalars(
            select(Occurrence).where(
                Occurrence.schedule_id == schedule.id,
                Occurrence.patient_id.in_([p.id for p in patients]),
                Occurrence.closes_at > since - timedelta(days=1),
            )
        )
    }
    wanted: list[tuple[Patient, occ.Occurrence]] = []
    for patient in patients:
        for found in occ.occurrences(
            rule,
            zones.get(patient.id, []),
            baseline=patient.baseline_date,
            start=since,
            end=now + horizon,
        ):
            if not found.is_empty:
                wanted.append((patient, found))
    # The site responsible when a window opened; one that opens later: today's site.
    sites = responsibilities_at(
        session, [(p.id, o.opens_at) for p, o in wanted if o.opens_at <= now]
    )
    moved = 0
    new: list[dict[str, Any]] = []
    for patient, found in wanted:
        row = known.get((patient.id, found.key))
        if row is None:
            new.append(
                {
                    "schedule_id": schedule.id,
                    "patient_id": patient.id,
                    "site_id": sites.get((patient.id, found.opens_at), patient.site_id),
                    # Over already (a backfill): written missed, rather than updated
                    # row by row afterwards.
                    "outcome": Outcome.MISSED if found.late_until <= now else None,
                    **_times(found),
                }
            )
        elif row.opens_at > now and row.outcome is None and _times(found) != _times(row):
            # Not opened yet: follows the patient's zone (travel) and site as they are now.
            for name, value in _times(found).items():
                setattr(row, name, value)
            row.site_id = patient.site_id
            moved += 1
    session.flush()
    return _insert_new(session, new), moved


# A 90-day history of 5,000 patients is 450,000 rows: the platform's bulk insert, not ORM
# objects (bench/ediary.py). A row another run wrote first stays as it is.
_insert_new = BulkInsert(
    cast(Table, Occurrence.__table__),
    ("schedule_id", "patient_id", "site_id", "outcome", "key", "local_date", "zone",
     "opens_at", "closes_at", "late_until", "remind_at"),
)  # fmt: skip


# What an occurrence's rule decides; the stored row and the computed one share the names.
_TIMES = ("key", "local_date", "zone", "opens_at", "closes_at", "late_until", "remind_at")


def _times(found: occ.Occurrence | Occurrence) -> dict[str, Any]:
    return {name: getattr(found, name) for name in _TIMES}


def mark_missed(session: Session, now: datetime) -> int:
    """Occurrences whose time for an entry is over without one: missed, once."""
    result = session.execute(
        update(Occurrence)
        .where(Occurrence.outcome.is_(None), Occurrence.late_until <= now)
        .values(outcome=Outcome.MISSED)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount or 0


def as_window(row: Occurrence) -> occ.Occurrence:
    """The stored occurrence as the rules module reads it."""
    return occ.Occurrence(
        key=row.key,
        local_date=row.local_date,
        zone=row.zone,
        opens_at=row.opens_at,
        closes_at=row.closes_at,
        late_until=row.late_until,
        remind_at=row.remind_at,
    )
