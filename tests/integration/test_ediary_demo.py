"""The demo's diaries: a daily diary and a mood questionnaire scheduled for the trial, two
weeks of answers filled in through the real write path (most patients keep up, two do
not, so the compliance page has someone to flag), and a second seed that adds nothing."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from dct_platform.demo import seed_and_report
from dct_platform.extensions import db
from dct_platform.models import Patient
from dct_platform.timeutil import utcnow
from devices.ediary import compliance
from devices.ediary.demo import FORGETFUL
from devices.ediary.models import Entry, Occurrence, Schedule


def _counts(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        s = db.session()
        return (
            s.scalar(select(func.count(Schedule.id))) or 0,
            s.scalar(select(func.count(Occurrence.id))) or 0,
            s.scalar(select(func.count(Entry.id))) or 0,
        )


def test_the_demo_has_diaries_with_history_and_a_second_seed_adds_nothing(app: Flask) -> None:
    seed_and_report(app)
    schedules_made, occurrences, entries = _counts(app)
    assert schedules_made == 2 and entries > 100 and occurrences > entries
    with app.app_context():
        s, now = db.session(), utcnow()
        report = compliance.by_patient(s, Occurrence.id.is_not(None), now - timedelta(14), now)
        numbers = dict(s.execute(select(Patient.id, Patient.subject_number)).all())
    flagged = {numbers[pid] for pid, c in report.rows.items() if c.below(0.8)}
    assert set(FORGETFUL) <= flagged
    assert len(flagged) < len(report.rows) / 2  # most patients keep up
    seed_and_report(app)
    assert _counts(app) == (schedules_made, occurrences, entries)
