"""Planned visits from the protocol schedule, the visit record and unscheduled requests:
windows on the patient's calendar, a visit outside its window recorded as a protocol
deviation the site sees, the record carrying who ran it and the investigator at the time,
missed windows, and requests that reach the site responsible for the patient."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Patient, RemoteActivity, Site, User
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from dct_platform.visits import booking, plan_job, planning, record, unscheduled
from dct_platform.visits.models import (
    Booking,
    BookingStatus,
    PlannedStatus,
    PlannedVisit,
    ProtocolDeviation,
    RequestStatus,
    UnscheduledRequest,
)
from tests.support.clock import TestClock
from tests.support.visits import planned, week4_schedule
from tests.support.world import World


def _user(name: str) -> User:
    return db.session.scalars(select(User).where(User.username == name)).one()


def _book_first_slot(app: Flask, world: World) -> int:
    with app.app_context():
        s = db.session()
        visit = s.scalars(
            select(PlannedVisit).where(PlannedVisit.patient_id == world.patients["anna"].id)
        ).one()
        slot = booking.free_slots(s, visit, utcnow())[0]
        made = booking.book(s, _user("anna"), visit, slot.staff_id, slot.starts_at, utcnow())
        s.commit()
        return made.booking.id


def test_planned_visits_follow_the_baseline_and_a_visit_added_later_reaches_them(
    app: Flask, world: World
) -> None:
    schedule = week4_schedule(app, world)
    visit = planned(app, world.patients["anna"].id)
    assert visit.target_date == schedule.baseline + timedelta(days=28)
    assert visit.status == PlannedStatus.PLANNED
    with app.app_context():
        s = db.session()
        kenji = s.get(Patient, world.patients["kenji"].id)
        assert kenji is not None and kenji.baseline_date is None
        assert planning.plan_patient(s, kenji, utcnow()) == []
        trial = world.trial
        planning.add_definition(
            s, None, utcnow(), trial=s.merge(trial), code="W8", name="Week 8", target_day=57,
            window_before_days=7, window_after_days=7, modalities=["home_nurse"],
            duration_minutes=45, staff_role="nurse", system="test",
        )  # fmt: skip
        assert "planned 1 visits" in plan_job(s, utcnow())
        s.commit()
        names = s.scalars(
            select(PlannedVisit.name).where(PlannedVisit.patient_id == world.patients["anna"].id)
        ).all()
        assert sorted(names) == ["Week 4 video visit", "Week 8"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("target_day", 0, "Study days start at day 1"),
        ("window_before_days", 90, "cannot open before the baseline"),
        ("duration_minutes", 2, "from 5 to 480 minutes"),
        ("modalities", ["teleport"], "Choose one or more of"),
        ("staff_role", "wizard", "not a role"),
        ("code", "W4", "has a visit W4 already"),
    ],
)
def test_a_definition_is_checked_field_by_field(
    app: Flask, world: World, field: str, value: object, message: str
) -> None:
    week4_schedule(app, world)
    good: dict[str, object] = dict(
        code="W12", name="Week 12", target_day=85, window_before_days=3, window_after_days=3,
        modalities=["telehealth"], duration_minutes=30, staff_role="investigator",
    )  # fmt: skip
    with app.app_context():
        s = db.session()
        with pytest.raises(ValidationFailed, match=message) as refused:
            planning.add_definition(
                s, None, utcnow(), trial=s.merge(world.trial), system="test",
                **{**good, field: value},  # type: ignore[arg-type]
            )  # fmt: skip
        assert field in refused.value.details["fields"]


def test_a_visit_done_in_its_window_keeps_the_record_the_regulator_asks_for(
    app: Flask, world: World, clock: TestClock
) -> None:
    week4_schedule(app, world)
    booking_id = _book_first_slot(app, world)
    with app.app_context():
        s = db.session()
        row = s.get(Booking, booking_id)
        assert row is not None
        clock.freeze(row.starts_at + timedelta(minutes=1))
        pi = _user("pi_berlin")
        with pytest.raises(Forbidden):
            record.start(s, _user("coord_tokyo"), row, utcnow())
        record.start(s, pi, row, utcnow())
        clock.advance(timedelta(minutes=25))
        with pytest.raises(ValidationFailed, match="Write the visit notes"):
            record.complete(s, pi, row, utcnow(), notes="  ")
        record.complete(s, pi, row, utcnow(), notes="No new symptoms.", location_type="other")
        s.commit()
        assert row.status == BookingStatus.COMPLETED
        assert (row.run_by_id, row.investigator_id) == (pi.id, pi.id)
        assert row.location_type == "other" and row.ended_at == utcnow()
        visit = row.planned_visit
        assert visit.status == PlannedStatus.COMPLETED and not visit.out_of_window
        assert s.scalars(select(ProtocolDeviation)).all() == []
        activity = s.scalars(
            select(RemoteActivity).where(
                RemoteActivity.activity_type == "televisit",
                RemoteActivity.record_id == str(row.id),
            )
        ).one()
        assert (activity.status, activity.originator_user_id) == ("completed", pi.id)
        assert (activity.location_type, activity.site_id) == ("other", world.berlin.id)
        with pytest.raises(Conflict):
            record.complete(s, pi, row, utcnow(), notes="again")


def test_a_visit_recorded_after_its_window_is_a_deviation_the_site_sees(
    app: Flask, world: World, clock: TestClock
) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    visit = planned(app, anna)
    with app.app_context():
        s = db.session()
        row = s.get(PlannedVisit, visit.id)
        assert row is not None
        with audit.acting(s, None, utcnow(), what="Local provider allowed", system="test"):
            row.modalities = [*row.modalities, "local_provider"]
        clock.freeze(clock() + timedelta(days=9))
        done_at = clock() - timedelta(hours=2)
        record.record_local_provider_visit(
            s, _user("coord_berlin"), row, utcnow(), done_at=done_at,
            provider_name="Dr. Weber", provider_address="Hauptstr. 1, Berlin",
            results="BP 120/80; ECG normal.",
        )  # fmt: skip
        s.commit()
        assert row.out_of_window and row.status == PlannedStatus.COMPLETED
        deviation = s.scalars(select(ProtocolDeviation)).one()
        assert deviation.site_id == world.berlin.id
        assert "after its window" in deviation.detail
        assert deviation.detail.startswith("Week 4 video visit done on ")


def test_a_window_that_closes_without_a_visit_is_missed(
    app: Flask, world: World, clock: TestClock
) -> None:
    week4_schedule(app, world)
    with app.app_context():
        s = db.session()
        clock.freeze(clock() + timedelta(days=6))
        assert "0 missed" in plan_job(s, utcnow())
        clock.freeze(clock() + timedelta(days=2))
        assert "1 missed" in plan_job(s, utcnow())
        s.commit()
    assert planned(app, world.patients["anna"].id).status == PlannedStatus.MISSED


def test_an_unscheduled_request_reaches_the_site_responsible_now(
    app: Flask, world: World, clock: TestClock
) -> None:
    with app.app_context():
        s = db.session()
        anna = s.get(Patient, world.patients["anna"].id)
        assert anna is not None
        with pytest.raises(Forbidden):
            unscheduled.request_visit(s, _user("kenji"), anna, utcnow(), category="other")
        with pytest.raises(ValidationFailed, match="Choose one of"):
            unscheduled.request_visit(s, _user("anna"), anna, utcnow(), category="bored")
        first = unscheduled.request_visit(
            s, _user("anna"), anna, utcnow(), category="side_effect", details="Rash on my arm"
        )
        s.commit()
        assert first.site_id == world.berlin.id
        tokyo = s.get(Site, world.tokyo.id)
        assert tokyo is not None
        clock.advance(timedelta(minutes=5))
        patient_service.transfer_patient(
            s, _user("coord_berlin"), utcnow(), anna, tokyo, "Moved to Japan"
        )
        s.commit()
        clock.advance(timedelta(minutes=5))
        second = unscheduled.request_visit(s, _user("anna"), anna, utcnow(), category="other")
        s.commit()
        assert second.site_id == world.tokyo.id
        # The Tokyo staff plan it; the Berlin staff no longer can.
        with pytest.raises(Forbidden):
            unscheduled.plan_for_request(
                s, _user("coord_berlin"), second, utcnow(),
                first_day=utcnow().date() + timedelta(days=1),
                last_day=utcnow().date() + timedelta(days=3),
            )  # fmt: skip
        visit = unscheduled.plan_for_request(
            s, _user("coord_tokyo"), second, utcnow(),
            first_day=utcnow().date() + timedelta(days=1),
            last_day=utcnow().date() + timedelta(days=3),
        )  # fmt: skip
        s.commit()
        assert (visit.site_id, visit.name) == (world.tokyo.id, "Unscheduled visit")
        assert second.status == RequestStatus.SCHEDULED and second.planned_visit_id == visit.id
        # The request still open from before the move follows her to Tokyo.
        with pytest.raises(Forbidden):
            unscheduled.close_request(s, _user("coord_berlin"), first, utcnow(), reason="x")
        with pytest.raises(ValidationFailed, match="Say why"):
            unscheduled.close_request(s, _user("coord_tokyo"), first, utcnow(), reason="")
        unscheduled.close_request(
            s, _user("coord_tokyo"), first, utcnow(), reason="Called her: see GP"
        )
        s.commit()
        assert first.site_id == world.tokyo.id
        statuses = dict(s.execute(select(UnscheduledRequest.id, UnscheduledRequest.status)).all())
        assert statuses == {first.id: RequestStatus.CLOSED, second.id: RequestStatus.SCHEDULED}
