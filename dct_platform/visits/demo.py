"""Demo visits: the protocol schedule of the demo trial, the investigators' weekly hours,
the patients' planned visits with some history (a week-2 call done, one of them late, a
deviation the site sees), televisits booked for some of the patients whose week-8 window
is open now, and one patient's request for an unscheduled visit in the site's queue.

Everything goes through the services, as a site would do it; a second `make demo` finds
the schedule in place and adds nothing.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform import demo as core_demo
from dct_platform.errors import Conflict
from dct_platform.models import SiteMembership, User
from dct_platform.models.patients import PatientStatus
from dct_platform.roles import Role
from dct_platform.visits import booking, planning, unscheduled
from dct_platform.visits.models import (
    Modality,
    PlannedStatus,
    PlannedVisit,
    StaffAvailability,
    VisitDefinition,
)

SYSTEM = "demo-seed"
SCHEDULE = (
    # code, name, study day, -days, +days, modalities, minutes, role
    ("W2", "Week 2 safety call", 15, 2, 2, ["telehealth"], 20, Role.INVESTIGATOR),
    ("W4", "Week 4 home visit", 29, 3, 3, ["home_nurse"], 45, Role.NURSE),
    ("W8", "Week 8 video visit", 57, 3, 3, ["telehealth"], 30, Role.INVESTIGATOR),
    ("W12", "Week 12 visit", 85, 7, 7, ["telehealth", "local_provider", "on_site"], 30,
     Role.INVESTIGATOR),
)  # fmt: skip


def seed(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    have = set(
        session.scalars(
            select(VisitDefinition.code).where(VisitDefinition.trial_id == seeded.trial.id)
        )
    )
    if have:
        return
    for code, name, day, before, after, modalities, minutes, role in SCHEDULE:
        planning.add_definition(
            session, None, now, trial=seeded.trial, code=code, name=name, target_day=day,
            window_before_days=before, window_after_days=after, modalities=modalities,
            duration_minutes=minutes, staff_role=role, system=SYSTEM,
        )  # fmt: skip
    _hours(session, now, seeded)
    for patient in seeded.patients:
        planning.plan_patient(session, patient, now)
    _history(session, now, seeded)
    _bookings(session, now, seeded)
    _request(session, now, seeded)


def _hours(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    """Investigators work Monday to Friday, 09:00-12:30 and 13:30-17:00 site time."""
    investigators = session.execute(
        select(User.id, SiteMembership.site_id)
        .join(SiteMembership, SiteMembership.user_id == User.id)
        .where(
            User.role == Role.INVESTIGATOR,
            SiteMembership.site_id.in_([s.id for s in seeded.sites]),
        )
    ).all()
    with audit.acting(session, None, now, what="Demo weekly hours", system=SYSTEM):
        for user_id, site_id in investigators:
            for weekday in range(5):
                for start, end in (("09:00", "12:30"), ("13:30", "17:00")):
                    session.add(
                        StaffAvailability(
                            user_id=user_id, site_id=site_id, weekday=weekday,
                            start_time=start, end_time=end, created_at=now, updated_at=now,
                        )
                    )  # fmt: skip


def _history(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    """Week-2 calls whose window is over were done, one of them three days late."""
    rng = random.Random(20261126)  # noqa: S311  (made-up demo history)
    late_done = False
    for visit in _planned(session, seeded, "W2"):
        if visit.window_last >= now.date():
            continue
        at = datetime.combine(visit.target_date, datetime.min.time(), now.tzinfo) + timedelta(
            hours=rng.choice((8, 9, 13, 14))
        )
        if not late_done:
            at += timedelta(days=(visit.window_last - visit.target_date).days + 3)
            late_done = True
        what = f"Recorded {visit.name} of {visit.patient.subject_number}"
        with audit.acting(session, None, now, what=what, system=SYSTEM):
            planning.record_done(session, visit, at, Modality.TELEHEALTH, now)
    planning.mark_missed(session, now, _planned(session, seeded, "W4"))


def _bookings(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    """Every other patient with an open week-8 window booked a slot in the next days."""
    for n, visit in enumerate(_planned(session, seeded, "W8")):
        if n % 2 or visit.status != PlannedStatus.PLANNED or visit.patient.user_id is None:
            continue
        patient_user = session.get(User, visit.patient.user_id)
        slots = booking.free_slots(session, visit, now, min_notice=timedelta(hours=2))
        if patient_user is None or not slots:
            continue
        slot = slots[min(len(slots) - 1, 3 * n)]
        try:
            booking.book(session, patient_user, visit, slot.staff_id, slot.starts_at, now)
        except Conflict:  # a slot another demo patient took: demo data, not a problem
            continue


def _request(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    patient = next(
        (p for p in seeded.patients if p.status == PatientStatus.ENROLLED and p.user_id), None
    )
    user = session.get(User, patient.user_id) if patient and patient.user_id else None
    if patient is None or user is None:
        return
    unscheduled.request_visit(
        session, user, patient, now, category="side_effect",
        details="Itchy rash on both arms since yesterday.",
    )  # fmt: skip


def _planned(session: Session, seeded: core_demo.Seeded, code: str) -> list[PlannedVisit]:
    return list(
        session.scalars(
            select(PlannedVisit)
            .join(VisitDefinition, VisitDefinition.id == PlannedVisit.definition_id)
            .where(
                VisitDefinition.code == code,
                PlannedVisit.patient_id.in_([p.id for p in seeded.patients]),
            )
            .order_by(PlannedVisit.patient_id)
        )
    )


def init_app(app: Flask) -> None:
    core_demo.register_demo_seeder(app, "visits", seed)
