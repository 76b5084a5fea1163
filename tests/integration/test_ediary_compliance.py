"""Compliance counts what the patient could have answered: on time, late, missed; a
diary still open is not held against them; below the threshold the patient is flagged,
for their site's staff and in the trial manager's per-site view."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from dct_platform.extensions import db
from dct_platform.models import Trial
from dct_platform.timeutil import utcnow
from devices.ediary import compliance, schedules
from devices.ediary.demo_instruments import DAILY_SYMPTOMS
from devices.ediary.models import Occurrence, ScheduleKind
from tests.support.clients import login
from tests.support.clock import TestClock
from tests.support.ediary import (
    ANSWERS,
    BERLIN,
    local,
    occurrence,
    refresh,
    submit,
)
from tests.support.world import World


def test_two_of_three_on_time_is_flagged_and_shown(
    app: Flask, client: FlaskClient, world: World, clock: TestClock
) -> None:
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
    anna = world.patients["anna"].id
    for day in range(4):
        when = first + timedelta(days=day)
        clock.freeze(local(when, "12:00:00"))
        refresh(app, clock())
        if day in (0, 2):  # day 1 is missed; day 3 is still open when we look
            clock.freeze(local(when, "20:00:00"))
            submit(app, world, occurrence(app, anna, when).id, ANSWERS, f"d{day}")
    clock.freeze(local(first + timedelta(days=3), "19:00:00"))
    refresh(app, clock())
    with app.app_context():
        report = compliance.by_patient(
            db.session(), Occurrence.id.is_not(None), clock() - timedelta(days=30), clock()
        )
    figures = report.rows[anna]
    assert (figures.on_time, figures.late, figures.missed, figures.pending) == (2, 0, 1, 1)
    assert figures.rate is not None and round(figures.rate, 2) == 0.67
    assert figures.below(0.8)

    login(client, "coord_berlin", world.password)
    page = client.get("/diary/compliance?days=30").get_data(as_text=True)
    assert "B1-anna" in page and "67%" in page and "below 80%" in page
    assert "T1-kenji" not in page  # Tokyo's patient: another site
    manager = app.test_client()
    login(manager, "manager", world.password)
    per_site = manager.get("/diary/compliance").get_data(as_text=True)
    assert "B1 · Berlin" in per_site and "67%" in per_site
    assert manager.get("/diary/compliance?days=5").status_code == 422
