"""Diary entries: due in a window of the patient's local day, submitted once, on time,
late or refused by the server's clock; never changed by the patient, corrected by the
site with a reason that the audit trail keeps; missed when the window closes; and the
next windows follow a patient who moves to another zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import AuditAction, AuditEntry, Patient, Trial, User
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from devices.ediary import schedules
from devices.ediary.demo_instruments import MOOD_9
from devices.ediary.models import Entry, Occurrence, Outcome, ScheduleKind
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.ediary import (
    ANSWERS,
    BERLIN,
    Diary,
    daily_diary,
    local,
    occurrence,
    refresh,
    submit,
)
from tests.support.world import World


@pytest.fixture
def diary(app: Flask, world: World) -> Diary:
    return daily_diary(app, world)


def test_the_window_is_the_patients_evening_and_its_last_second_counts(
    app: Flask, world: World, diary: Diary, clock: TestClock
) -> None:
    anna = world.patients["anna"].id
    refresh(app, local(diary.first_day, "12:00:00"))
    row = occurrence(app, anna, diary.first_day)
    assert row.opens_at == local(diary.first_day, "18:00:00")
    assert row.closes_at == local(diary.first_day + timedelta(days=1), "00:00:00")
    clock.freeze(local(diary.first_day, "17:59:59"))
    with pytest.raises(Exception, match="not open yet"):
        submit(app, world, row.id, ANSWERS, "early")
    clock.freeze(local(diary.first_day, "23:59:59"))
    done = submit(app, world, row.id, ANSWERS, "form-1")
    assert done.created and not done.entry.late
    assert occurrence(app, anna, diary.first_day).outcome == Outcome.ON_TIME


def test_midnight_is_too_late_and_the_window_becomes_missed(
    app: Flask, world: World, diary: Diary, clock: TestClock
) -> None:
    anna = world.patients["anna"].id
    refresh(app, local(diary.first_day, "12:00:00"))
    row = occurrence(app, anna, diary.first_day)
    clock.freeze(local(diary.first_day + timedelta(days=1), "00:00:00"))
    with pytest.raises(Exception, match="time for this diary is over"):
        submit(app, world, row.id, ANSWERS, "form-1")
    refresh(app, clock())
    assert occurrence(app, anna, diary.first_day).outcome == Outcome.MISSED


def test_a_double_submit_is_stored_once(
    app: Flask, world: World, diary: Diary, clock: TestClock
) -> None:
    refresh(app, local(diary.first_day, "12:00:00"))
    row = occurrence(app, world.patients["anna"].id, diary.first_day)
    clock.freeze(local(diary.first_day, "20:00:00"))
    first = submit(app, world, row.id, ANSWERS, "form-7")
    again = submit(app, world, row.id, ANSWERS, "form-7")
    assert first.created and not again.created and again.entry.id == first.entry.id
    with pytest.raises(Exception, match="filled in already"):
        submit(app, world, row.id, ANSWERS, "form-8")
    with app.app_context():
        assert len(db.session.scalars(select(Entry)).all()) == 1


def test_invalid_answers_are_refused_by_item(
    app: Flask, world: World, diary: Diary, clock: TestClock
) -> None:
    refresh(app, local(diary.first_day, "12:00:00"))
    row = occurrence(app, world.patients["anna"].id, diary.first_day)
    clock.freeze(local(diary.first_day, "20:00:00"))
    with pytest.raises(Exception) as refused:
        submit(app, world, row.id, {**ANSWERS, "wellbeing": "six", "pain": False}, "f")
    details = refused.value.details["fields"]["answers"]  # type: ignore[attr-defined]
    assert set(details) >= {"wellbeing", "pain_intensity"}


def test_the_patient_cannot_change_an_entry_and_staff_corrections_are_audited(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    refresh(app, local(diary.first_day, "12:00:00"))
    row = occurrence(app, world.patients["anna"].id, diary.first_day)
    clock.freeze(local(diary.first_day, "20:00:00"))
    entry_id = submit(app, world, row.id, ANSWERS, "form-1").entry.id
    url = f"/api/v1/ediary/entries/{entry_id}/corrections"
    change = {"link_id": "hours_slept", "value": 6.5, "reason": "Patient called: misread"}
    patient = client.post(url, headers=token_for(client, "anna", world.password), json=change)
    assert patient.status_code == 403
    other_site = client.post(
        url, headers=token_for(client, "coord_tokyo", world.password), json=change
    )
    assert other_site.status_code == 404
    berlin = token_for(client, "coord_berlin", world.password)
    unknown = client.post(url, headers=berlin, json={**change, "link_id": "shoe_size"})
    assert unknown.status_code == 422
    assert "'shoe_size' is not a question" in unknown.get_json()["message"]
    staff = client.post(url, headers=berlin, json=change)
    assert staff.status_code == 201, staff.get_json()
    assert (staff.get_json()["old_value"], staff.get_json()["new_value"]) == (7.5, 6.5)
    with app.app_context():
        entry = db.session.get(Entry, entry_id)
        assert entry is not None and entry.answers["hours_slept"] == 6.5
        action = db.session.scalar(
            select(AuditAction)
            .join(AuditEntry, AuditEntry.action_id == AuditAction.id)
            .where(AuditEntry.table_name == "ediary_entries", AuditEntry.field == "answers")
            .order_by(AuditAction.id.desc())
        )
        assert action is not None
        assert action.reason == "Patient called: misread"
        assert action.actor_name == "coord_berlin"


def test_the_api_submits_through_the_same_rules(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    refresh(app, local(diary.first_day, "12:00:00"))
    clock.freeze(local(diary.first_day, "19:00:00"))
    headers = token_for(client, "anna", world.password)
    due = client.get("/api/v1/ediary/occurrences", headers=headers).get_json()
    today = [o for o in due if o["local_date"] == diary.first_day.isoformat()]
    assert today and today[0]["state"] == "open" and today[0]["zone"] == "Europe/Berlin"
    body = {"occurrence_id": today[0]["id"], "answers": ANSWERS, "device_time": "19:00:02"}
    keyed = {**headers, "Idempotency-Key": "tap-1"}
    first = client.post("/api/v1/ediary/entries", headers=keyed, json=body)
    again = client.post("/api/v1/ediary/entries", headers=keyed, json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    staff = token_for(client, "coord_berlin", world.password)
    refused = client.post("/api/v1/ediary/entries", headers=staff, json=body)
    assert refused.status_code == 403


def test_a_move_to_los_angeles_moves_the_next_windows(
    app: Flask, world: World, diary: Diary, clock: TestClock
) -> None:
    anna = world.patients["anna"].id
    la = ZoneInfo("America/Los_Angeles")
    refresh(app, local(diary.first_day, "12:00:00"))
    tomorrow = diary.first_day + timedelta(days=1)
    assert occurrence(app, anna, tomorrow).zone == "Europe/Berlin"
    clock.freeze(local(diary.first_day, "20:00:00"))
    submit(app, world, occurrence(app, anna, diary.first_day).id, ANSWERS, "f1")
    with app.app_context():
        s = db.session()
        patient = s.get(Patient, anna)
        coord = s.get(User, world.users["coord_berlin"].id)
        assert patient is not None and coord is not None
        patient_service.update_patient(
            s, coord, clock(), patient, {"timezone": "America/Los_Angeles"}, "moved"
        )
        s.commit()
    refresh(app, clock())
    moved = occurrence(app, anna, tomorrow)
    assert moved.zone == "America/Los_Angeles"
    assert moved.opens_at == datetime.combine(tomorrow, time(18), la)
    # The evening done in Berlin stays as it was, and no date is there twice.
    assert occurrence(app, anna, diary.first_day).zone == "Europe/Berlin"
    with app.app_context():
        keys = db.session.scalars(select(Occurrence.key).where(Occurrence.patient_id == anna)).all()
    assert len(keys) == len(set(keys))


def test_a_schedule_of_one_arm_reaches_only_that_arms_patients(
    app: Flask, client: FlaskClient, world: World, clock: TestClock
) -> None:
    first = (utcnow().astimezone(BERLIN) + timedelta(days=1)).date()
    with app.app_context():
        s, now = db.session(), utcnow()
        version = schedules.add_version(s, None, now, MOOD_9, system="test")
        trial = s.get(Trial, world.trial.id)
        assert trial is not None
        schedules.add_schedule(
            s, None, now, trial=trial, version=version, kind=ScheduleKind.ONCE, arm="B",
            window_start="09:00", window_end="21:00", first_date=first, system="test",
        )  # fmt: skip
        s.commit()
    refresh(app, local(first, "08:00:00"))
    with app.app_context():
        assert db.session.scalars(select(Occurrence)).all() == []
    staff = token_for(client, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    answer = client.patch(
        f"/api/v1/patients/{anna}", headers=staff, json={"arm": "B", "reason": "randomised"}
    )
    assert answer.status_code == 200, answer.get_json()
    assert "arm" not in answer.get_json(), "the arm is never answered (blinding)"
    refresh(app, local(first, "08:00:00"))
    assert occurrence(app, anna, first).zone == "Europe/Berlin"
