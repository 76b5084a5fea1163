"""The remote-activity record: each activity stays with the site responsible when it
happened, and each role sees the activities it oversees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform.extensions import db
from dct_platform.models import Patient, RemoteActivity, Site, User
from dct_platform.services import activities
from dct_platform.services import patients as patient_service
from dct_platform.services.activities import Originator
from tests.support.clients import login, token_for
from tests.support.world import World

DIARY = activities.register_type("test-diary-entry", "Diary entry (test)", "tests")


def _diary_entry(patient: Patient, at: datetime, record_id: int, status: str = "submitted") -> None:
    activities.record_activity(
        db.session,
        at,
        activity_type=DIARY,
        patient=patient,
        occurred_at=at,
        record_table="test_diary_entries",
        record_id=record_id,
        status=status,
        summary="Daily symptom diary",
        originator=Originator.PATIENT,
        location_type="home",
    )


@pytest.fixture
def moved(app: Flask, world: World) -> datetime:
    """Anna fills a diary entry at Berlin, moves to Tokyo, then fills another."""
    now = datetime.now(UTC)
    with app.app_context():
        s = db.session
        anna = s.get(Patient, world.patients["anna"].id)
        _diary_entry(anna, now - timedelta(days=2), 1)
        patient_service.transfer_patient(
            s,
            s.get(User, world.users["coord_berlin"].id),
            now - timedelta(days=1),
            anna,
            s.get(Site, world.tokyo.id),
            "Moved to Tokyo",
        )
        _diary_entry(anna, now - timedelta(hours=1), 2)
        s.commit()
    return now


def test_enrolment_and_transfer_are_on_the_timeline(
    app: Flask, world: World, moved: datetime
) -> None:
    with app.app_context():
        rows = db.session.scalars(
            select(RemoteActivity)
            .where(RemoteActivity.patient_id == world.patients["anna"].id)
            .where(RemoteActivity.activity_type.in_(["enrolment", "site-transfer"]))
            .order_by(RemoteActivity.occurred_at)
        ).all()
        assert [(r.activity_type, r.site_id, r.related_site_id) for r in rows] == [
            ("enrolment", world.berlin.id, None),
            ("site-transfer", world.tokyo.id, world.berlin.id),
        ]
        assert "Moved to Tokyo" not in rows[1].summary  # free text stays in the history


def test_activities_stay_with_the_site_responsible_at_their_time(
    app: Flask, world: World, moved: datetime
) -> None:
    with app.app_context():
        rows = {
            r.record_id: r
            for r in db.session.scalars(
                select(RemoteActivity).where(RemoteActivity.activity_type == DIARY.name)
            )
        }
        assert rows["1"].site_id == world.berlin.id
        assert rows["1"].investigator_id == world.users["pi_berlin"].id
        assert rows["2"].site_id == world.tokyo.id and rows["2"].investigator_id is None
        assert rows["1"].trial_id == world.trial.id and rows["1"].originator_kind == "patient"


def test_recording_the_same_record_again_updates_it(
    app: Flask, world: World, moved: datetime
) -> None:
    with app.app_context():
        anna = db.session.get(Patient, world.patients["anna"].id)
        _diary_entry(anna, moved - timedelta(hours=1), 2, status="late")
        db.session.commit()
        rows = db.session.scalars(
            select(RemoteActivity).where(
                RemoteActivity.activity_type == DIARY.name, RemoteActivity.record_id == "2"
            )
        ).all()
        assert len(rows) == 1 and rows[0].status == "late"


def test_an_unregistered_type_is_refused(app: Flask, world: World) -> None:
    with app.app_context():
        anna = db.session.get(Patient, world.patients["anna"].id)
        before = db.session.scalar(select(func.count()).select_from(RemoteActivity))
        stray = activities.ActivityType("not-registered", "Stray", "tests")
        with pytest.raises(ValueError, match="register"):
            activities.record_activity(
                db.session,
                datetime.now(UTC),
                activity_type=stray,
                patient=anna,
                occurred_at=datetime.now(UTC),
                record_table="x",
                record_id=1,
                status="done",
                summary="",
                originator=Originator.SYSTEM,
            )
        assert db.session.scalar(select(func.count()).select_from(RemoteActivity)) == before


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("coord_berlin", {"1"}),  # Berlin keeps what happened while it was responsible
        ("coord_tokyo", {"1", "2"}),  # Tokyo cares for her now: her whole timeline
        ("manager", {"1", "2"}),
        ("anna", {"1", "2"}),
        ("kenji", set()),
    ],
)
def test_each_role_sees_the_activities_it_oversees(
    client: FlaskClient, world: World, moved: datetime, who: str, expected: set[str]
) -> None:
    answer = client.get(
        f"/api/v1/activities?type={DIARY.name}", headers=token_for(client, who, world.password)
    )
    assert answer.status_code == 200, answer.get_json()
    assert {a["record_id"] for a in answer.get_json()} == expected


def test_the_site_list_and_the_patient_timeline_pages(
    app: Flask, world: World, moved: datetime
) -> None:
    browser = app.test_client()
    login(browser, "coord_berlin", world.password)
    page = browser.get("/activity").get_data(as_text=True)
    assert page.count('data-testid="activity-row"') >= 1 and "B1-anna" in page
    filtered = browser.get(f"/activity?type={DIARY.name}&site={world.berlin.id}")
    assert filtered.get_data(as_text=True).count("Diary entry (test)") >= 1
    assert browser.get("/activity?from=yesterday").status_code == 422

    tokyo = app.test_client()
    login(tokyo, "coord_tokyo", world.password)
    timeline = tokyo.get(f"/patients/{world.patients['anna'].id}/activity")
    html = timeline.get_data(as_text=True)
    assert timeline.status_code == 200 and html.count('data-testid="activity-row"') >= 2
    assert ">B1<" in html and ">T1<" in html  # each row names the site responsible then
