"""The protocol visit schedule and each patient's planned visits.

A trial's `VisitDefinition`s say which visits its protocol has: "Week 4" on study day 29
(day 1 is the baseline date, as for diary study days), allowed 3 days early and 3 late,
by telehealth or a home nurse, 30 minutes, run by an investigator. `plan_patient` turns
them into `PlannedVisit`s for a patient with a baseline date: the target date and the
window are local dates of the patient's calendar, so a window "day 26 to day 32" means
those days where the patient lives, whatever zone the site is in.

`record_done` says when a visit happened. A visit whose local date (in the zone the
patient lived by at that instant, from their time-zone history) is outside its window is
done all the same, flagged out of window, and recorded as a protocol deviation the site
sees: the protocol says so, the platform does not refuse what already happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import ValidationFailed
from dct_platform.localtime import utc_to_local
from dct_platform.models import Patient, Trial, User
from dct_platform.models.patients import PatientStatus
from dct_platform.roles import is_role
from dct_platform.services.ownership import timezone_at
from dct_platform.visits.models import (
    Modality,
    PlannedStatus,
    PlannedVisit,
    ProtocolDeviation,
    VisitDefinition,
)

OUT_OF_WINDOW = "visit_out_of_window"


def add_definition(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    trial: Trial,
    code: str,
    name: str,
    target_day: int,
    window_before_days: int = 0,
    window_after_days: int = 0,
    modalities: Sequence[str],
    duration_minutes: int,
    staff_role: str,
    system: str | None = None,
) -> VisitDefinition:
    """Add a visit to the trial's protocol schedule."""
    code, name = code.strip(), name.strip()
    if not code or len(code) > 20:
        raise ValidationFailed.on_field(
            "code", "Give the visit a code of up to 20 characters (e.g. W4)."
        )
    if not name or len(name) > 120:
        raise ValidationFailed.on_field("name", "Give the visit a name of up to 120 characters.")
    if target_day < 1:
        raise ValidationFailed.on_field(
            "target_day", "Study days start at day 1, the baseline date."
        )
    if window_before_days < 0 or window_after_days < 0:
        raise ValidationFailed.on_field("window_before_days", "A window cannot be negative.")
    if target_day - window_before_days < 1:
        raise ValidationFailed.on_field(
            "window_before_days", "The window cannot open before the baseline date."
        )
    if not 5 <= duration_minutes <= 480:
        raise ValidationFailed.on_field("duration_minutes", "A visit lasts from 5 to 480 minutes.")
    chosen = list(dict.fromkeys(modalities))
    unknown = [m for m in chosen if m not in set(Modality)]
    if not chosen or unknown:
        allowed = ", ".join(m.value for m in Modality)
        raise ValidationFailed.on_field("modalities", f"Choose one or more of: {allowed}.")
    if not is_role(staff_role):
        raise ValidationFailed.on_field(
            "staff_role", f"{staff_role!r} is not a role of this platform."
        )
    taken = session.scalar(
        select(VisitDefinition.id).where(
            VisitDefinition.trial_id == trial.id, VisitDefinition.code == code
        )
    )
    if taken is not None:
        raise ValidationFailed.on_field("code", f"The trial has a visit {code} already.")
    definition = VisitDefinition(
        trial_id=trial.id,
        code=code,
        name=name,
        target_day=target_day,
        window_before_days=window_before_days,
        window_after_days=window_after_days,
        modalities=chosen,
        duration_minutes=duration_minutes,
        staff_role=staff_role,
        active=True,
        created_at=now,
        updated_at=now,
    )
    what = f"Protocol visit {code} of {trial.protocol_number}"
    with audit.acting(session, actor, now, what=what, system=system):
        session.add(definition)
    return definition


def window_of(definition: VisitDefinition, baseline: date) -> tuple[date, date, date]:
    """The target date and the first and last day of the window, on the patient's calendar."""
    target = baseline + timedelta(days=definition.target_day - 1)
    return (
        target,
        target - timedelta(days=definition.window_before_days),
        target + timedelta(days=definition.window_after_days),
    )


def plan_patient(
    session: Session,
    patient: Patient,
    now: datetime,
    *,
    actor: User | None = None,
    system: str | None = "visits.plan",
) -> list[PlannedVisit]:
    """Plan the patient's protocol visits not planned yet (none without a baseline date)."""
    if patient.baseline_date is None or patient.status != PatientStatus.ENROLLED:
        return []
    have = set(
        session.scalars(
            select(PlannedVisit.definition_id).where(PlannedVisit.patient_id == patient.id)
        )
    )
    definitions = session.scalars(
        select(VisitDefinition)
        .where(VisitDefinition.trial_id == patient.trial_id, VisitDefinition.active)
        .order_by(VisitDefinition.target_day, VisitDefinition.code)
    ).all()
    new = []
    for definition in definitions:
        if definition.id in have:
            continue
        target, first, last = window_of(definition, patient.baseline_date)
        new.append(
            PlannedVisit(
                patient_id=patient.id,
                definition_id=definition.id,
                site_id=patient.site_id,
                name=definition.name,
                target_date=target,
                window_first=first,
                window_last=last,
                duration_minutes=definition.duration_minutes,
                modalities=list(definition.modalities),
                staff_role=definition.staff_role,
                status=PlannedStatus.PLANNED,
                created_at=now,
                updated_at=now,
            )
        )
    if new:
        what = f"Planned {len(new)} protocol visits of {patient.subject_number}"
        with audit.acting(session, actor, now, what=what, system=None if actor else system):
            session.add_all(new)
    return new


def plan_all(session: Session, now: datetime) -> int:
    """The planning job: every enrolled patient with a baseline date gets the visits of
    the schedule (a visit added to the protocol later reaches the patients enrolled)."""
    planned = 0
    patients = session.scalars(
        select(Patient).where(
            Patient.status == PatientStatus.ENROLLED, Patient.baseline_date.is_not(None)
        )
    )
    for patient in patients:
        planned += len(plan_patient(session, patient, now))
    return planned


def local_day(session: Session, patient_id: int, at: datetime) -> date:
    """The patient's calendar date at `at`, in the zone they lived by then."""
    return utc_to_local(at, timezone_at(session, patient_id, at)).date


def in_window(visit: PlannedVisit, day: date) -> bool:
    return visit.window_first <= day <= visit.window_last


def record_done(
    session: Session, visit: PlannedVisit, at: datetime, modality: Modality, now: datetime
) -> ProtocolDeviation | None:
    """Mark the planned visit done at `at`; a date outside its window is a deviation.
    The caller's audit context (who ran the visit) covers these changes."""
    day = local_day(session, visit.patient_id, at)
    visit.status = PlannedStatus.COMPLETED
    visit.done_at = at
    visit.modality = modality
    visit.updated_at = now
    visit.out_of_window = visit.definition_id is not None and not in_window(visit, day)
    if not visit.out_of_window:
        return None
    early = day < visit.window_first
    days = (visit.window_first - day).days if early else (day - visit.window_last).days
    deviation = session.scalar(
        select(ProtocolDeviation).where(
            ProtocolDeviation.planned_visit_id == visit.id, ProtocolDeviation.kind == OUT_OF_WINDOW
        )
    ) or ProtocolDeviation(planned_visit_id=visit.id, kind=OUT_OF_WINDOW)
    deviation.patient_id = visit.patient_id
    deviation.site_id = visit.site_id
    deviation.detail = (
        f"{visit.name} done on {day.isoformat()}, {days} day{'s' if days != 1 else ''} "
        f"{'before' if early else 'after'} its window "
        f"({visit.window_first.isoformat()} to {visit.window_last.isoformat()})"
    )
    deviation.occurred_at = at
    deviation.recorded_at = now
    session.add(deviation)
    return deviation


def mark_missed(session: Session, now: datetime, visits: Iterable[PlannedVisit]) -> int:
    """Planned visits whose window is over on the patient's calendar, with nothing booked."""
    over = [
        v
        for v in visits
        if v.status == PlannedStatus.PLANNED
        and v.definition_id is not None
        and local_day(session, v.patient_id, now) > v.window_last
    ]
    if over:
        with audit.acting(
            session, None, now, what="Visits whose window closed", system="visits.plan"
        ):
            for visit in over:
                visit.status = PlannedStatus.MISSED
                visit.updated_at = now
    return len(over)
