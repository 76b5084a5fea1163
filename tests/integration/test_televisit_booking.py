"""Booking televisits: slots inside the visit window and the investigator's hours; one
booking per slot and per planned visit, enforced by the database against real races; the
same idempotency key gives the same booking; patients book only their own visits; moves
and cancellations carry a reason into the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from dct_platform.errors import Conflict, DomainError, Forbidden, ValidationFailed
from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.models import AuditAction, RemoteActivity, User
from dct_platform.timeutil import utcnow
from dct_platform.visits import booking
from dct_platform.visits.models import Booking, BookingStatus, PlannedStatus, PlannedVisit
from tests.support.concurrency import all_at_once
from tests.support.visits import more_patients, planned, week4_schedule
from tests.support.world import World


def _slots(app: Flask, patient_id: int) -> list[booking.slot_rules.Slot]:
    with app.app_context():
        visit = db.session.scalars(
            select(PlannedVisit).where(PlannedVisit.patient_id == patient_id)
        ).one()
        return booking.free_slots(db.session(), visit, utcnow())


def _book(app: Flask, username: str, patient_id: int, slot: booking.slot_rules.Slot,
          key: str | None = None) -> booking.Booked:  # fmt: skip
    with app.app_context():
        s = db.session()
        actor = s.scalars(select(User).where(User.username == username)).one()
        visit = s.scalars(select(PlannedVisit).where(PlannedVisit.patient_id == patient_id)).one()
        done = booking.book(s, actor, visit, slot.staff_id, slot.starts_at, utcnow(),
                            idempotency_key=key)  # fmt: skip
        s.commit()
        s.refresh(done.booking)
        s.expunge(done.booking)
        return done


def test_slots_are_the_investigators_hours_inside_the_window(app: Flask, world: World) -> None:
    schedule = week4_schedule(app, world)
    anna = world.patients["anna"].id
    visit = planned(app, anna)
    assert (visit.window_first, visit.window_last) == (
        schedule.baseline + timedelta(days=25),
        schedule.baseline + timedelta(days=31),
    )
    slots = _slots(app, anna)
    assert slots, "the investigator works on some weekday of a 7-day window"
    for slot in slots:
        local = utc_to_local(slot.starts_at, "Europe/Berlin")
        assert visit.window_first <= local.date <= visit.window_last
        assert local.date.weekday() < 5
        assert "09:00" <= local.time.strftime("%H:%M") <= "16:30"
        assert slot.ends_at - slot.starts_at == timedelta(minutes=30)
        assert slot.staff_id == world.users["pi_berlin"].id
        assert slot.starts_at > utcnow()


def test_a_booked_slot_is_no_longer_offered_and_the_visit_is_booked(
    app: Flask, world: World
) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    slot = _slots(app, anna)[0]
    done = _book(app, "anna", anna, slot)
    assert done.created and done.booking.status == BookingStatus.BOOKED
    assert planned(app, anna).status == PlannedStatus.BOOKED
    assert slot not in _slots(app, anna)
    with app.app_context():
        activity = db.session.scalars(
            select(RemoteActivity).where(RemoteActivity.activity_type == "televisit")
        ).one()
        assert (activity.site_id, activity.modality) == (world.berlin.id, "telehealth")
        assert activity.investigator_id == world.users["pi_berlin"].id


def test_the_same_idempotency_key_gives_the_same_booking(app: Flask, world: World) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    slot = _slots(app, anna)[0]
    first = _book(app, "anna", anna, slot, key="tap-1")
    again = _book(app, "anna", anna, slot, key="tap-1")
    assert (again.created, again.booking.id) == (False, first.booking.id)
    with app.app_context():
        assert db.session.scalar(select(func.count(Booking.id))) == 1


def test_one_planned_visit_holds_one_booking(app: Flask, world: World) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    first, second = _slots(app, anna)[:2]
    _book(app, "anna", anna, first)
    with pytest.raises(Conflict, match="booked already"):
        _book(app, "anna", anna, second)


def test_a_patient_cannot_book_another_patients_visit(app: Flask, world: World) -> None:
    schedule = week4_schedule(app, world)
    (other,) = more_patients(app, world, 1, schedule.baseline)
    slot = _slots(app, other)[0]
    with pytest.raises(Forbidden):
        _book(app, "anna", other, slot)
    # Staff of another site cannot book for the patient either.
    with pytest.raises(Forbidden):
        _book(app, "coord_tokyo", other, slot)
    assert _book(app, "coord_berlin", other, slot).created


def test_a_time_outside_the_hours_or_the_window_is_refused(app: Flask, world: World) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    slot = _slots(app, anna)[0]
    for wrong in (slot.starts_at + timedelta(minutes=7), slot.starts_at + timedelta(days=30)):
        moved = booking.slot_rules.Slot(wrong, wrong + timedelta(minutes=30), slot.staff_id)
        with pytest.raises(Conflict, match="no longer free"):
            _book(app, "anna", anna, moved)


def test_racing_patients_for_one_slot_one_wins_the_rest_get_a_conflict(
    app: Flask, world: World
) -> None:
    schedule = week4_schedule(app, world)
    patients = more_patients(app, world, 12, schedule.baseline)
    slot = _slots(app, patients[0])[0]

    def attempt(patient_id: int, n: int) -> str:
        try:
            _book(app, f"p{n:02d}", patient_id, slot)
            return "booked"
        except Conflict:
            return "conflict"
        except DomainError as exc:  # pragma: no cover - shown in the failure
            return f"error: {exc}"

    outcomes = all_at_once([lambda p=p, n=n: attempt(p, n) for n, p in enumerate(patients)])
    assert outcomes.count("booked") == 1, outcomes
    assert outcomes.count("conflict") == len(patients) - 1, outcomes
    with app.app_context():
        held = db.session.scalar(
            select(func.count(Booking.id)).where(Booking.status != BookingStatus.CANCELLED)
        )
        assert held == 1


def test_moving_and_cancelling_need_a_reason_that_the_trail_keeps(app: Flask, world: World) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    first, later = _slots(app, anna)[0], _slots(app, anna)[3]
    made = _book(app, "anna", anna, first).booking
    with app.app_context():
        s = db.session()
        actor = s.scalars(select(User).where(User.username == "anna")).one()
        row = s.get(Booking, made.id)
        assert row is not None
        with pytest.raises(ValidationFailed, match="Say why"):
            booking.reschedule(s, actor, row, later.staff_id, later.starts_at, " ", utcnow())
        booking.reschedule(s, actor, row, later.staff_id, later.starts_at, "Work meeting", utcnow())
        s.commit()
        assert (row.starts_at, row.sequence) == (later.starts_at, 1)
        booking.cancel(s, actor, row, "Feeling better, will rebook", utcnow())
        s.commit()
        assert row.status == BookingStatus.CANCELLED and row.sequence == 2
        reasons = s.scalars(
            select(AuditAction.reason).where(AuditAction.summary.like("%Week 4%"))
        ).all()
        assert "Work meeting" in reasons and "Feeling better, will rebook" in reasons
    # The freed time is offered again, and the visit can be booked anew.
    assert first in _slots(app, anna) and later in _slots(app, anna)
    assert _book(app, "anna", anna, later).created


def test_the_database_itself_refuses_overlapping_time_of_one_staff_member(
    app: Flask, world: World
) -> None:
    """Past the service: rows written straight to the table. PostgreSQL refuses any overlap
    (the exclusion constraint), SQLite a second booking at the same start."""
    from sqlalchemy.exc import IntegrityError

    from dct_platform import audit

    schedule = week4_schedule(app, world)
    a, b = more_patients(app, world, 2, schedule.baseline)
    slot = _slots(app, a)[0]
    _book(app, "p00", a, slot)
    with app.app_context():
        s = db.session()
        overlap = timedelta(minutes=15) if s.get_bind().dialect.name == "postgresql" else None
        starts = slot.starts_at + (overlap or timedelta(0))
        visit = s.scalars(select(PlannedVisit).where(PlannedVisit.patient_id == b)).one()
        now = utcnow()
        with pytest.raises(IntegrityError), audit.acting(s, None, now, what="x", system="test"):
            s.add(
                Booking(
                    planned_visit_id=visit.id, patient_id=b, site_id=visit.site_id,
                    staff_id=slot.staff_id, starts_at=starts,
                    ends_at=starts + timedelta(minutes=30), status=BookingStatus.BOOKED,
                    sequence=0, requested_by_id=world.users["coord_berlin"].id,
                    room_attempts=0, created_at=now, updated_at=now,
                )
            )  # fmt: skip
