"""The demo's diaries: the daily symptom diary for every enrolled patient (any time of
their day) and the mood questionnaire on protocol days, with two weeks of history filled
in through the real write path, so compliance has something to show on the first start.

Safe to run again: versions and schedules are made once, and history only for a trial
that has no diary entries yet.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dct_platform import demo as core_demo
from dct_platform.models import Patient, User
from devices.ediary import entries, schedules
from devices.ediary.demo_instruments import DAILY_SYMPTOMS, MOOD_9
from devices.ediary.models import (
    Entry,
    Instrument,
    InstrumentVersion,
    Occurrence,
    Schedule,
    ScheduleKind,
)

SYSTEM = "demo-seed"
HISTORY = timedelta(days=14)
# Most patients answer most days; these answer about half, so the flag has someone to show.
FORGETFUL = ("DE-101-002", "US-201-004")


def _version(session: Session, now: datetime, definition: dict[str, object]) -> InstrumentVersion:
    found = session.scalar(
        select(InstrumentVersion)
        .join(Instrument, Instrument.id == InstrumentVersion.instrument_id)
        .where(
            Instrument.code == definition["code"],
            InstrumentVersion.version == definition["version"],
        )
    )
    return found or schedules.add_version(session, None, now, dict(definition), system=SYSTEM)


def _answers(rng: random.Random) -> dict[str, object]:
    pain = rng.random() < 0.3
    answers: dict[str, object] = {
        "wellbeing": rng.randint(4, 9),
        "pain": pain,
        "nausea": rng.choice(["none", "none", "none", "mild", "moderate"]),
        "hours_slept": round(rng.uniform(5, 9) * 2) / 2,
        "sleep_quality": rng.choice(["poor", "fair", "good", "good", "very_good"]),
    }
    if pain:
        answers["pain_intensity"] = rng.randint(2, 7)
    return answers


def seed(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    daily = _version(session, now, DAILY_SYMPTOMS)
    mood = _version(session, now, MOOD_9)
    known = set(
        session.scalars(
            select(Schedule.instrument_version_id).where(Schedule.trial_id == seeded.trial.id)
        )
    )
    first = (now - HISTORY).date()
    if daily.id not in known:
        schedules.add_schedule(
            session, None, now, trial=seeded.trial, version=daily, kind=ScheduleKind.DAILY,
            window_start="07:00", window_end="24:00", first_date=first,
            late_allowed_minutes=120, remind_before_close_minutes=180, system=SYSTEM,
        )  # fmt: skip
    if mood.id not in known:
        schedules.add_schedule(
            session, None, now, trial=seeded.trial, version=mood,
            kind=ScheduleKind.PROTOCOL_DAYS, study_days=(1, 29, 57, 85), window_days=3,
            window_start="08:00", window_end="20:00", system=SYSTEM,
        )  # fmt: skip
    already = session.scalar(
        select(func.count(Entry.id))
        .join(Patient, Patient.id == Entry.patient_id)
        .where(Patient.trial_id == seeded.trial.id)
    )
    schedules.refresh(session, now, since=None if already else now - HISTORY)
    if not already:
        _history(session, now, seeded)


def _history(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    """Answer past daily diaries as the patients would have, at a time in each window."""
    rng = random.Random(20261126)  # noqa: S311  (made-up demo answers, not secrets)
    ids = [p.id for p in seeded.patients]
    for row in session.scalars(
        select(Occurrence)
        .join(Patient, Patient.id == Occurrence.patient_id)
        .where(
            Occurrence.patient_id.in_(ids),
            Occurrence.closes_at <= now,
            Patient.user_id.is_not(None),
        )
        .order_by(Occurrence.opens_at)
    ):
        patient = row.patient
        if row.schedule.instrument_version.definition["code"] != DAILY_SYMPTOMS["code"]:
            continue
        if rng.random() > (0.5 if patient.subject_number in FORGETFUL else 0.92):
            continue
        user = session.get(User, patient.user_id)
        assert user is not None
        at = row.opens_at + (row.closes_at - row.opens_at) * rng.uniform(0.3, 0.95)
        entries.submit(
            session, user, patient, row.id, _answers(rng), at,
            client_id=f"demo-{row.id}", source="portal",
        )  # fmt: skip
    schedules.mark_missed(session, now)


def init_app(app: Flask) -> None:
    core_demo.register_demo_seeder(app, "ediary", seed)
