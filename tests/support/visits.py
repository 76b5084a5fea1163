"""A protocol visit schedule for the test world: "Week 4" on study day 29, -3/+3 days, by
video, 30 minutes, run by the Berlin investigator, who works Monday to Friday 09:00-17:00
Berlin time; patients at the Berlin site whose baseline makes the window run from today
to six days ahead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Flask
from sqlalchemy import select

from dct_platform import audit
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, Trial, User
from dct_platform.models.patients import PatientStatus
from dct_platform.roles import Role
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from dct_platform.visits import planning
from dct_platform.visits.models import PlannedVisit, StaffAvailability
from tests.support.world import World

SYSTEM = "test"


@dataclass(frozen=True)
class Schedule:
    baseline: date
    definition_id: int


def _baseline(now: datetime, zone: str) -> date:
    from dct_platform.localtime import utc_to_local

    # Day 29 -3 (the window's first day) is today in the patient's zone.
    return utc_to_local(now, zone).date - timedelta(days=25)


def week4_schedule(app: Flask, world: World, *, zone: str = "Europe/Berlin") -> Schedule:
    with app.app_context():
        s, now = db.session(), utcnow()
        trial = s.get(Trial, world.trial.id)
        assert trial is not None
        definition = planning.add_definition(
            s, None, now, trial=trial, code="W4", name="Week 4 video visit", target_day=29,
            window_before_days=3, window_after_days=3, modalities=["telehealth", "home_nurse"],
            duration_minutes=30, staff_role=Role.INVESTIGATOR, system=SYSTEM,
        )  # fmt: skip
        pi = world.users["pi_berlin"]
        with audit.acting(s, None, now, what="Hours of the Berlin PI", system=SYSTEM):
            for weekday in range(5):
                s.add(
                    StaffAvailability(
                        user_id=pi.id, site_id=world.berlin.id, weekday=weekday,
                        start_time="09:00", end_time="17:00", created_at=now, updated_at=now,
                    )
                )  # fmt: skip
        baseline = _baseline(now, zone)
        anna = s.get(Patient, world.patients["anna"].id)
        assert anna is not None
        with audit.acting(s, None, now, what="Baseline of anna", system=SYSTEM):
            anna.baseline_date = baseline
        planning.plan_patient(s, anna, now)
        s.commit()
        return Schedule(baseline, definition.id)


def more_patients(app: Flask, world: World, count: int, baseline: date) -> list[int]:
    """`count` more patients with portal accounts at the Berlin site, planned."""
    from dct_platform.services import accounts

    ids = []
    with app.app_context():
        s, now = db.session(), utcnow()
        site = s.get(Site, world.berlin.id)
        assert site is not None
        for n in range(count):
            key = f"p{n:02d}"
            user = accounts.create_user(
                s, None, now, username=key, password=world.password, role=Role.PATIENT,
                display_name=f"Patient {key}", timezone="Europe/Berlin", opened_at_enrolment=True,
                system=SYSTEM,
            )  # fmt: skip
            patient = patient_service.enroll_patient(
                s, None, now, site=site, subject_number=f"B-{key}", timezone="Europe/Berlin",
                status=PatientStatus.ENROLLED, baseline_date=baseline, user=user, system=SYSTEM,
            )  # fmt: skip
            planning.plan_patient(s, patient, now)
            ids.append(patient.id)
        s.commit()
    return ids


def planned(app: Flask, patient_id: int) -> PlannedVisit:
    with app.app_context():
        visit = db.session.scalars(
            select(PlannedVisit).where(PlannedVisit.patient_id == patient_id)
        ).one()
        db.session.expunge(visit)
        return visit


def user(app: Flask, username: str) -> User:
    with app.app_context():
        found = db.session.scalars(select(User).where(User.username == username)).one()
        db.session.expunge(found)
        return found
