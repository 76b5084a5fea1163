"""An eDiary set up for the test world: the daily symptom diary, 18:00 to midnight in the
patient's zone, and helpers to make occurrences, submit as Anna and read them back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import Patient, Trial, User
from dct_platform.timeutil import utcnow
from devices.ediary import entries, schedules
from devices.ediary.demo_instruments import DAILY_SYMPTOMS
from devices.ediary.models import Occurrence, ScheduleKind
from tests.support.world import World

BERLIN = ZoneInfo("Europe/Berlin")
ANSWERS = {
    "wellbeing": 6,
    "pain": True,
    "pain_intensity": 3,
    "nausea": "mild",
    "hours_slept": 7.5,
    "sleep_quality": "good",
}


@dataclass(frozen=True)
class Diary:
    first_day: date


def local(day: date, clock: str) -> datetime:
    hour, minute, second = (int(x) for x in clock.split(":"))
    return datetime.combine(day, time(hour, minute, second), BERLIN)


def daily_diary(app: Flask, world: World) -> Diary:
    """A daily symptom diary for the trial, 18:00 to midnight in the patient's zone."""
    first = (utcnow().astimezone(BERLIN) + timedelta(days=1)).date()
    with app.app_context():
        s, now = db.session(), utcnow()
        version = schedules.add_version(s, None, now, DAILY_SYMPTOMS, system="test")
        trial = s.get(Trial, world.trial.id)
        assert trial is not None
        schedules.add_schedule(
            s, None, now, trial=trial, version=version, kind=ScheduleKind.DAILY,
            window_start="18:00", window_end="24:00", first_date=first, system="test",
        )  # fmt: skip
        s.commit()
    return Diary(first)


def refresh(app: Flask, at: datetime) -> None:
    with app.app_context():
        schedules.refresh(db.session(), at.astimezone(ZoneInfo("UTC")))
        db.session.commit()


def occurrence(app: Flask, patient_id: int, day: date) -> Occurrence:
    with app.app_context():
        row = db.session.scalar(
            select(Occurrence).where(
                Occurrence.patient_id == patient_id, Occurrence.local_date == day
            )
        )
        assert row is not None, f"no occurrence on {day}"
        db.session.expunge(row)
        return row


def submit(
    app: Flask, world: World, occurrence_id: int, answers: dict[str, object], client_id: str
) -> entries.Submitted:
    with app.app_context():
        s = db.session()
        anna = s.get(Patient, world.patients["anna"].id)
        user = s.get(User, world.users["anna"].id)
        assert anna is not None and user is not None
        done = entries.submit(s, user, anna, occurrence_id, answers, utcnow(), client_id=client_id)
        s.commit()
        s.refresh(done.entry)
        s.expunge_all()
        return done
