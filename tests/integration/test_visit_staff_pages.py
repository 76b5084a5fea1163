"""The televisit pages of site staff: the calendar shows a booking at the reader's local
time, to the patient's site only; the visit is started and completed with notes (the
record keeps who ran it and the investigator at the time), or recorded as a no-show, which
frees the planned visit; the queue shows a patient's visit request to their site, which
plans a visit the patient can book or closes the request with a reason; a visit done
outside its window shows in the queue; staff book, move and cancel for the patient; the
staff member keeps their hours. Every refusal is a 4xx with the reason on the page, and
stores nothing."""

from __future__ import annotations

import html
import re
from datetime import date, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from dct_platform import audit
from dct_platform.extensions import db
from dct_platform.localtime import local_to_utc, utc_to_local
from dct_platform.models import Patient, User
from dct_platform.timeutil import utcnow
from dct_platform.visits import booking, unscheduled
from dct_platform.visits.models import (
    AvailabilityException,
    Booking,
    BookingStatus,
    PlannedStatus,
    PlannedVisit,
    ProtocolDeviation,
    RequestStatus,
    RoomStatus,
    SiteHoliday,
    StaffAvailability,
    UnscheduledRequest,
)
from dct_platform.visits.slots import Slot
from tests.support.clients import csrf_token, login
from tests.support.clock import TestClock
from tests.support.visits import week4_schedule
from tests.support.world import World

BERLIN = "Europe/Berlin"


# --- helpers ------------------------------------------------------------------------------


def _user(username: str) -> User:
    return db.session.scalars(select(User).where(User.username == username)).one()


def _visit_of(patient_id: int) -> PlannedVisit:
    return db.session.scalars(
        select(PlannedVisit)
        .where(PlannedVisit.patient_id == patient_id)
        .order_by(PlannedVisit.id.desc())
    ).first()  # type: ignore[return-value]


def _book_for_anna(app: Flask, world: World, slot_index: int = 0) -> tuple[int, Slot]:
    """Anna books her Week 4 visit through the booking service (a free slot two hours
    ahead at least)."""
    week4_schedule(app, world)
    with app.app_context():
        s, now = db.session(), utcnow()
        visit = _visit_of(world.patients["anna"].id)
        # Two hours ahead at least: the visit cannot be started yet.
        later = [
            x for x in booking.free_slots(s, visit, now) if x.starts_at > now + timedelta(hours=2)
        ]
        slot = later[slot_index]
        made = booking.book(s, _user("anna"), visit, slot.staff_id, slot.starts_at, now)
        s.commit()
        return made.booking.id, slot


def _booking(app: Flask, booking_id: int) -> Booking:
    with app.app_context():
        row = db.session.get(Booking, booking_id)
        assert row is not None
        db.session.expunge(row)
        return row


def _signed_in(app: Flask, who: str, world: World) -> FlaskClient:
    client = app.test_client()
    login(client, who, world.password)
    return client


def _post(client: FlaskClient, page: str, action: str, data: dict[str, object]) -> TestResponse:
    return client.post(action, data={"csrf_token": csrf_token(client, page), **data})


def _text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def _span(starts: datetime, ends: datetime, zone: str) -> str:
    a, b = utc_to_local(starts, zone), utc_to_local(ends, zone)
    return f"{a.time:%H:%M}-{b.time:%H:%M} {a.abbreviation}"


def _count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


# --- the calendar -------------------------------------------------------------------------


def test_the_calendar_shows_the_booking_at_the_readers_time_to_the_site_only(
    app: Flask, world: World
) -> None:
    booking_id, slot = _book_for_anna(app, world)
    day = utc_to_local(slot.starts_at, BERLIN).date.isoformat()
    berlin_time = _span(slot.starts_at, slot.ends_at, BERLIN)

    coordinator = _signed_in(app, "coord_berlin", world)
    # The coordinator's own bookings by default: the visit is the investigator's.
    mine = coordinator.get(f"/visits/calendar?view=day&date={day}")
    assert mine.status_code == 200
    assert "B1-anna" not in _text(mine)
    for view in ("day", "week"):
        page = coordinator.get(f"/visits/calendar?view={view}&date={day}&staff=all")
        assert page.status_code == 200
        text = _text(page)
        assert f'data-testid="{view}"' in text
        assert "B1-anna" in text and "Week 4 video visit" in text
        assert berlin_time in text, berlin_time
        assert "room pending" in text and "booked" in text
        assert f"/visits/bookings/{booking_id}" in text
        assert f"Times are yours, in {BERLIN}" in text
    pi = world.users["pi_berlin"].id
    chosen = coordinator.get(f"/visits/calendar?view=week&date={day}&staff={pi}")
    assert "B1-anna" in _text(chosen)

    # The investigator's own calendar shows it by default.
    investigator = _signed_in(app, "pi_berlin", world)
    assert "B1-anna" in _text(investigator.get(f"/visits/calendar?view=week&date={day}"))

    # The trial manager reads it on their own clock (UTC): the same instant, other digits.
    manager = _signed_in(app, "manager", world)
    utc = utc_to_local(slot.starts_at, "UTC").date.isoformat()
    read = _text(manager.get(f"/visits/calendar?view=day&date={utc}"))
    assert _span(slot.starts_at, slot.ends_at, "UTC") in read and "B1-anna" in read
    assert "Retry" not in read and "Start the visit" not in read

    # The other site's staff see nothing of it, and its page does not exist for them.
    tokyo = _signed_in(app, "coord_tokyo", world)
    assert "B1-anna" not in _text(tokyo.get(f"/visits/calendar?view=week&date={day}&staff=all"))
    assert tokyo.get(f"/visits/bookings/{booking_id}").status_code == 404


def test_previous_and_next_move_by_the_view_and_a_failed_room_can_be_retried(
    app: Flask, world: World
) -> None:
    booking_id, slot = _book_for_anna(app, world)
    with app.app_context():
        row = db.session.get(Booking, booking_id)
        assert row is not None
        with audit.acting(db.session, None, utcnow(), what="Room gave up", system="test"):
            row.room_status = RoomStatus.FAILED
        db.session.commit()
    day = utc_to_local(slot.starts_at, BERLIN).date
    client = _signed_in(app, "coord_berlin", world)
    page = f"/visits/calendar?view=week&date={day.isoformat()}&staff=all"
    text = _text(client.get(page))
    assert f"date={(day - timedelta(days=7)).isoformat()}" in text
    assert f"date={(day + timedelta(days=7)).isoformat()}" in text
    assert "room failed" in text and "Retry" in text
    answer = _post(client, page, f"/visits/bookings/{booking_id}/room", {"next": page})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(page)
    assert _booking(app, booking_id).room_status != RoomStatus.FAILED
    # A room that is not failed any more cannot be retried a second time the same way.
    again = _post(client, page, f"/visits/bookings/{booking_id}/room", {"next": page})
    if _booking(app, booking_id).room_status == RoomStatus.READY:
        assert again.status_code == 409


def test_the_join_link_is_for_the_assigned_investigator_near_the_time(
    app: Flask, world: World, clock: TestClock
) -> None:
    booking_id, slot = _book_for_anna(app, world)
    room = "https://meet.jit.si/dct-abcdefghijklmnopqrstuvwxyz234567"
    with app.app_context():
        row = db.session.get(Booking, booking_id)
        assert row is not None
        with audit.acting(db.session, None, utcnow(), what="Room made", system="test"):
            row.room_status, row.room_url = RoomStatus.READY, room
        db.session.commit()
    page = f"/visits/bookings/{booking_id}"
    investigator = _signed_in(app, "pi_berlin", world)
    coordinator = _signed_in(app, "coord_berlin", world)
    early = _text(investigator.get(page))
    assert room not in early and "The join link shows here from" in early
    clock.freeze(slot.starts_at - timedelta(minutes=10))
    assert room in _text(investigator.get(page))
    assert room not in _text(coordinator.get(page))
    assert "room ready" in _text(coordinator.get(page))
    clock.freeze(slot.ends_at + timedelta(hours=1))
    assert room not in _text(investigator.get(page))


# --- the visit record ---------------------------------------------------------------------


def test_start_then_complete_with_notes_records_who_ran_it_and_the_investigator(
    app: Flask, world: World, clock: TestClock
) -> None:
    booking_id, slot = _book_for_anna(app, world)
    client = _signed_in(app, "coord_berlin", world)
    page = f"/visits/bookings/{booking_id}"
    before = _text(client.get(page))
    assert "Start the visit" not in before and "You can start the visit from" in before

    clock.freeze(slot.starts_at + timedelta(minutes=2))
    shown = _text(client.get(page))
    assert "Start the visit" in shown and "Complete the visit" in shown
    assert _span(slot.starts_at, slot.ends_at, BERLIN) in shown
    # Only the assigned investigator gets the join link; the coordinator is told so.
    assert "Only Pi_Berlin, who runs the visit, and the patient get the link." in shown

    started = _post(client, page, f"{page}/start", {})
    assert started.status_code == 302
    clock.advance(timedelta(minutes=25))
    done = _post(
        client,
        page,
        f"{page}/complete",
        {"notes": "Discussed the side effects; no change.", "location_type": "patient_home"},
    )
    assert done.status_code == 302
    with app.app_context():
        row = db.session.get(Booking, booking_id)
        assert row is not None
        assert row.status == BookingStatus.COMPLETED
        assert row.run_by_id == world.users["coord_berlin"].id
        assert row.investigator_id == world.users["pi_berlin"].id
        assert row.location_type == "patient_home"
        assert row.notes == "Discussed the side effects; no change."
        assert row.planned_visit.status == PlannedStatus.COMPLETED
    text = _text(client.get(page))
    assert "completed." in text  # the flash message
    for fact in (
        "B1 · Berlin",
        "Pi_Berlin",
        "Coord_Berlin",
        "Patient's home",
        "Video (telehealth)",
    ):
        assert fact in text, fact
    assert "Complete the visit" not in text


def test_completing_without_notes_is_refused_and_stores_nothing(
    app: Flask, world: World, clock: TestClock
) -> None:
    booking_id, slot = _book_for_anna(app, world)
    clock.freeze(slot.starts_at + timedelta(minutes=5))
    client = _signed_in(app, "coord_berlin", world)
    page = f"/visits/bookings/{booking_id}"
    refused = _post(client, page, f"{page}/complete", {"notes": "  ", "location_type": "other"})
    assert refused.status_code == 422
    text = _text(refused)
    assert "Write the visit notes." in text and 'aria-invalid="true"' in text
    assert 'value="other" checked' in text  # what was chosen is kept
    no_place = _post(client, page, f"{page}/complete", {"notes": "Fine."})
    assert no_place.status_code == 422 and "Choose where the patient was." in _text(no_place)
    odd = _post(client, page, f"{page}/complete", {"notes": "Fine.", "location_type": "moon"})
    assert odd.status_code == 422
    row = _booking(app, booking_id)
    assert (row.status, row.notes, row.run_by_id) == (BookingStatus.BOOKED, None, None)


def test_a_no_show_frees_the_planned_visit_for_a_new_booking(
    app: Flask, world: World, clock: TestClock
) -> None:
    booking_id, slot = _book_for_anna(app, world)
    client = _signed_in(app, "coord_berlin", world)
    page = f"/visits/bookings/{booking_id}"
    early = _post(client, page, f"{page}/no-show", {"notes": ""})
    assert early.status_code == 409 and "once it has started" in _text(early)
    clock.freeze(slot.starts_at + timedelta(minutes=10))
    answer = _post(client, page, f"{page}/no-show", {"notes": "Called twice, no answer."})
    assert answer.status_code == 302
    row = _booking(app, booking_id)
    assert row.status == BookingStatus.NO_SHOW and row.notes == "Called twice, no answer."
    with app.app_context():
        assert _visit_of(world.patients["anna"].id).status == PlannedStatus.PLANNED
    visits = _text(client.get(f"/visits/patients/{world.patients['anna'].id}"))
    assert "not booked yet" in visits and "Book for the patient" in visits
    assert "no-show" in visits


# --- the queue ----------------------------------------------------------------------------


def _request_visit(app: Flask, world: World, details: str = "Rash on both arms") -> int:
    with app.app_context():
        s = db.session()
        anna = s.get(Patient, world.patients["anna"].id)
        assert anna is not None
        made = unscheduled.request_visit(
            s, _user("anna"), anna, utcnow(), category="side_effect", details=details
        )
        s.commit()
        return made.id


def test_the_queue_shows_a_request_to_its_site_and_planning_makes_a_bookable_visit(
    app: Flask, world: World
) -> None:
    week4_schedule(app, world)
    request_id = _request_visit(app, world)
    client = _signed_in(app, "coord_berlin", world)
    queue = _text(client.get("/visits/queue"))
    assert "B1-anna" in queue and "A side effect" in queue and "Rash on both arms" in queue
    # The site's home counts the open requests.
    home = _text(client.get("/site"))
    assert 'data-testid="visit-requests-panel"' in home
    assert "1 patient asks for a visit" in home

    tokyo = _signed_in(app, "coord_tokyo", world)
    assert "Rash on both arms" not in _text(tokyo.get("/visits/queue"))
    assert "visit-requests-panel" not in _text(tokyo.get("/site"))
    stranger = _post(tokyo, "/visits/queue", f"/visits/requests/{request_id}/close",
                     {"reason": "Not ours"})  # fmt: skip
    assert stranger.status_code == 404

    today = utc_to_local(utcnow(), BERLIN).date
    action = f"/visits/requests/{request_id}/plan"
    backwards = {
        "first_day": (today + timedelta(days=3)).isoformat(),
        "last_day": today.isoformat(),
        "duration_minutes": "30",
        "modalities": ["telehealth"],
        "staff_role": "investigator",
    }
    refused = _post(client, "/visits/queue", action, backwards)
    assert refused.status_code == 422 and "The window ends before it starts." in _text(refused)
    nothing = _post(client, "/visits/queue", action, {**backwards, "modalities": []})
    assert nothing.status_code == 422 and "at least one way" in _text(nothing)

    planned = _post(
        client, "/visits/queue", action,
        {**backwards, "first_day": today.isoformat(),
         "last_day": (today + timedelta(days=6)).isoformat()},
    )  # fmt: skip
    assert planned.status_code == 302
    with app.app_context():
        s = db.session()
        request = s.get(UnscheduledRequest, request_id)
        assert request is not None and request.status == RequestStatus.SCHEDULED
        visit = s.get(PlannedVisit, request.planned_visit_id)
        assert visit is not None and visit.name == "Unscheduled visit"
        assert visit.unscheduled_reason == "A side effect: Rash on both arms"
        # The patient can book it like any other.
        slot = booking.free_slots(s, visit, utcnow())[0]
        made = booking.book(s, _user("anna"), visit, slot.staff_id, slot.starts_at, utcnow())
        assert made.created
        s.commit()
    assert "Rash on both arms" not in _text(client.get("/visits/queue"))


def test_closing_a_request_needs_a_reason(app: Flask, world: World) -> None:
    request_id = _request_visit(app, world)
    client = _signed_in(app, "pi_berlin", world)
    action = f"/visits/requests/{request_id}/close"
    refused = _post(client, "/visits/queue", action, {"reason": "   "})
    assert refused.status_code == 422
    assert "Say why the request is closed" in _text(refused)
    with app.app_context():
        row = db.session.get(UnscheduledRequest, request_id)
        assert row is not None and row.status == RequestStatus.OPEN
    closed = _post(client, "/visits/queue", action, {"reason": "Answered by phone."})
    assert closed.status_code == 302
    with app.app_context():
        row = db.session.get(UnscheduledRequest, request_id)
        assert row is not None and row.status == RequestStatus.CLOSED
    again = _post(client, "/visits/queue", action, {"reason": "Twice"})
    assert again.status_code == 409


def test_a_visit_done_after_its_window_shows_in_the_queue(
    app: Flask, world: World, clock: TestClock
) -> None:
    booking_id, _slot = _book_for_anna(app, world)
    with app.app_context():
        last = _visit_of(world.patients["anna"].id).window_last
    # Two days after the window's last day, at noon in Berlin: the visit starts late.
    clock.freeze(local_to_utc(last + timedelta(days=2), time(12), BERLIN))
    client = _signed_in(app, "coord_berlin", world)
    page = f"/visits/bookings/{booking_id}"
    assert _post(client, page, f"{page}/start", {}).status_code == 302
    done = _post(client, page, f"{page}/complete",
                 {"notes": "Done late: patient was travelling.", "location_type": "other"})  # fmt: skip
    assert done.status_code == 302
    with app.app_context():
        deviation = db.session.scalars(select(ProtocolDeviation)).one()
        assert "2 days after its window" in deviation.detail
    queue = _text(client.get("/visits/queue"))
    assert 'data-testid="deviation"' in queue and "2 days after its window" in queue
    visit_page = _text(client.get(page))
    assert "2 days after its window" in visit_page
    visits = _text(client.get(f"/visits/patients/{world.patients['anna'].id}"))
    assert 'data-testid="out-of-window"' in visits
    assert "2 days after its window" not in _text(
        _signed_in(app, "coord_tokyo", world).get("/visits/queue")
    )


# --- booking, moving and cancelling on the patient's behalf -------------------------------

_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
_SLOT = re.compile(r'name="slot" value="([^"]+)"')


def test_booking_for_the_patient_stores_one_booking(app: Flask, world: World) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    with app.app_context():
        visit_id = _visit_of(anna).id
    client = _signed_in(app, "coord_berlin", world)
    visits = _text(client.get(f"/visits/patients/{anna}"))
    page = f"/visits/patients/{anna}/visits/{visit_id}/book"
    assert page in visits
    form = client.get(page)
    assert form.status_code == 200
    text = form.get_data(as_text=True)
    key, slot = _KEY.search(text), _SLOT.search(text)
    assert key and slot, "the page offers times with a key"
    data = {"csrf_token": csrf_token(client, page), "idempotency_key": key[1], "slot": slot[1]}

    refused = client.post(page, data={**data, "slot": "7@not-a-time"})
    assert refused.status_code == 422 and "not one of those offered" in _text(refused)
    none = client.post(page, data={**data, "slot": ""})
    assert none.status_code == 422 and "Choose a time." in _text(none)
    stale = client.post(page, data={**data, "idempotency_key": "x"})
    assert stale.status_code == 422

    first = client.post(page, data=data)
    again = client.post(page, data=data)  # a double click, or the browser sending it twice
    assert (first.status_code, again.status_code) == (302, 302)
    with app.app_context():
        rows = db.session.scalars(select(Booking)).all()
        assert len(rows) == 1
        assert rows[0].requested_by_id == world.users["coord_berlin"].id
        assert rows[0].idempotency_key == key[1]
    listed = _text(client.get(f"/visits/patients/{anna}"))
    assert "booked already by this form" in listed
    assert "Book for the patient" not in listed and "Move" in listed

    # A fresh form for a visit that is booked already: a conflict, said so.
    fresh = client.get(page).get_data(as_text=True)
    other = _KEY.search(fresh)
    assert other
    taken = client.post(page, data={**data, "idempotency_key": other[1]})
    assert taken.status_code == 409 and "booked already" in _text(taken)


def test_moving_and_cancelling_for_the_patient_need_a_reason(app: Flask, world: World) -> None:
    booking_id, slot = _book_for_anna(app, world)
    client = _signed_in(app, "coord_berlin", world)
    page = f"/visits/bookings/{booking_id}/move"
    form = client.get(page)
    assert form.status_code == 200
    offered = _SLOT.findall(form.get_data(as_text=True))
    assert offered
    target = offered[-1]
    no_reason = _post(client, page, page, {"slot": target, "reason": " "})
    assert no_reason.status_code == 422 and "Say why the visit moves." in _text(no_reason)
    assert _booking(app, booking_id).starts_at == slot.starts_at
    moved = _post(client, page, page, {"slot": target, "reason": "Patient at work then"})
    assert moved.status_code == 302
    row = _booking(app, booking_id)
    assert row.starts_at.isoformat() == target.split("@", 1)[1] and row.sequence == 1

    visits = f"/visits/patients/{world.patients['anna'].id}"
    action = f"/visits/bookings/{booking_id}/cancel"
    refused = _post(client, visits, action, {"reason": ""})
    assert refused.status_code == 422 and "Say why" in _text(refused)
    assert _booking(app, booking_id).status == BookingStatus.BOOKED
    cancelled = _post(client, visits, action, {"reason": "Patient withdrew from the visit"})
    assert cancelled.status_code == 302
    assert _booking(app, booking_id).status == BookingStatus.CANCELLED
    with app.app_context():
        assert _visit_of(world.patients["anna"].id).status == PlannedStatus.PLANNED


def test_a_local_provider_visit_is_recorded_on_the_patients_clock(app: Flask, world: World) -> None:
    request_id = _request_visit(app, world, "Blood test at my GP")
    client = _signed_in(app, "coord_berlin", world)
    today = utc_to_local(utcnow(), BERLIN).date
    planned = _post(client, "/visits/queue", f"/visits/requests/{request_id}/plan", {
        "first_day": today.isoformat(), "last_day": (today + timedelta(days=3)).isoformat(),
        "duration_minutes": "20", "modalities": ["local_provider"], "staff_role": "investigator",
    })  # fmt: skip
    assert planned.status_code == 302
    anna = world.patients["anna"].id
    with app.app_context():
        visit_id = _visit_of(anna).id
    visits = f"/visits/patients/{anna}"
    assert "Record a local provider visit" in _text(client.get(visits))
    action = f"/visits/planned/{visit_id}/local-provider"
    fields = {
        "done_on": today.isoformat(),
        "done_time": "25:99",
        "provider_name": "Dr. Weber",
        "provider_address": "Hauptstr. 1, Berlin",
        "results": "Hb 13.5 g/dl",
    }
    bad = _post(client, visits, action, fields)
    assert bad.status_code == 422 and "HH:MM" in _text(bad)
    future = _post(client, visits, action, {**fields, "done_on": (today + timedelta(days=2))
                                            .isoformat(), "done_time": "10:00"})  # fmt: skip
    assert future.status_code == 422 and "cannot be in the future" in _text(future)
    now_local = utc_to_local(utcnow() - timedelta(minutes=5), BERLIN)
    done = _post(client, visits, action, {**fields, "done_on": now_local.date.isoformat(),
                                          "done_time": f"{now_local.time:%H:%M}"})  # fmt: skip
    assert done.status_code == 302
    with app.app_context():
        visit = db.session.get(PlannedVisit, visit_id)
        assert visit is not None and visit.status == PlannedStatus.COMPLETED
        assert visit.provider_name == "Dr. Weber"
        assert visit.done_at is not None
        assert utc_to_local(visit.done_at, BERLIN).time.strftime("%H:%M") == (
            f"{now_local.time:%H:%M}"
        )


# --- availability -------------------------------------------------------------------------


def test_a_staff_member_keeps_their_hours_with_clear_field_errors(app: Flask, world: World) -> None:
    client = _signed_in(app, "coord_berlin", world)
    page = "/visits/availability"
    assert client.get(page).status_code == 200
    bad = _post(client, page, f"{page}/hours", {"weekday": "1", "start_time": "9am",
                                                "end_time": "17:00"})  # fmt: skip
    assert bad.status_code == 422
    text = _text(bad)
    assert "is not a time of day" in text and 'href="#hours-start"' in text
    no_day = _post(client, page, f"{page}/hours", {"weekday": "9", "start_time": "09:00",
                                                   "end_time": "17:00"})  # fmt: skip
    assert no_day.status_code == 422 and "Choose a day of the week." in _text(no_day)
    added = _post(client, page, f"{page}/hours", {"weekday": "1", "start_time": "09:00",
                                                  "end_time": "12:00"})  # fmt: skip
    assert added.status_code == 302
    overlap = _post(client, page, f"{page}/hours", {"weekday": "1", "start_time": "11:00",
                                                    "end_time": "13:00"})  # fmt: skip
    assert overlap.status_code == 409 and "overlaps" in _text(overlap)
    shown = _text(client.get(page))
    assert "Tuesday 09:00\u201312:00" in shown

    day = (utc_to_local(utcnow(), BERLIN).date + timedelta(days=10)).isoformat()
    missing = _post(client, page, f"{page}/exceptions", {"day": day, "kind": "extra"})
    assert missing.status_code == 422 and "Give the start of the hours" in _text(missing)
    off = _post(client, page, f"{page}/exceptions", {"day": day, "kind": "off", "note": "Course"})
    assert off.status_code == 302
    holiday = _post(client, page, f"{page}/holidays", {"day": day, "name": ""})
    assert holiday.status_code == 422 and "Name the holiday" in _text(holiday)
    assert _post(client, page, f"{page}/holidays", {"day": day, "name": "Founders' day"}
                 ).status_code == 302  # fmt: skip
    with app.app_context():
        hours = db.session.scalars(select(StaffAvailability)).one()
        exception = db.session.scalars(select(AvailabilityException)).one()
        assert (hours.weekday, hours.start_time, hours.end_time) == (1, "09:00", "12:00")
        assert (exception.available, exception.start_time, exception.note) == (
            False,
            None,
            "Course",
        )
        assert _count(SiteHoliday) == 1
        ids = hours.id, exception.id
    # The investigator does not manage the site's holidays, nor the coordinator's hours.
    investigator = _signed_in(app, "pi_berlin", world)
    text = _text(investigator.get(page))
    assert "Founders' day" in text and "Add a holiday" not in text
    assert _post(investigator, page, f"{page}/hours/{ids[0]}/remove", {}).status_code == 404
    assert _post(client, page, f"{page}/hours/{ids[0]}/remove", {}).status_code == 302
    assert _post(client, page, f"{page}/exceptions/{ids[1]}/remove", {}).status_code == 302
    with app.app_context():
        assert _count(StaffAvailability) == 0 and _count(AvailabilityException) == 0


# --- refusals -----------------------------------------------------------------------------


def test_bad_inputs_are_answered_4xx_never_500(app: Flask, world: World) -> None:
    booking_id, _slot = _book_for_anna(app, world)
    kenji = world.patients["kenji"].id
    client = _signed_in(app, "coord_berlin", world)
    gets = {
        "/visits/calendar?view=month": 422,
        "/visits/calendar?date=2026-02-30": 422,
        "/visits/calendar?date=tomorrow": 422,
        "/visits/calendar?date=0001-01-01": 422,
        "/visits/calendar?staff=abc": 422,
        f"/visits/calendar?staff={world.users['coord_tokyo'].id}": 422,
        "/visits/calendar?staff=99999999999999999999999": 422,
        "/visits/bookings/999999": 404,
        "/visits/bookings/99999999999999999999999999": 404,
        f"/visits/patients/{kenji}": 404,
        f"/visits/patients/{world.patients['anna'].id}/visits/999999/book": 404,
        f"/visits/bookings/{booking_id}/move?day=2026-99-01": 422,
        f"/visits/bookings/{booking_id}/move?day=1999-01-01": 422,
    }
    for path, status in gets.items():
        answer = client.get(path)
        assert answer.status_code == status, (path, answer.status_code)
        if status == 422:
            assert 'class="error-summary"' in answer.get_data(as_text=True), path
    page = f"/visits/bookings/{booking_id}"
    token = csrf_token(client, page)
    posts = {
        f"/visits/bookings/{booking_id}/start": ({}, 409),  # not due yet
        f"/visits/bookings/{booking_id}/complete": ({"notes": "x" * 20_000,
                                                      "location_type": "patient_home"}, 422),
        "/visits/bookings/999999/start": ({}, 404),
        "/visits/requests/999999/plan": ({}, 404),
        f"/visits/planned/{_slot_visit(app, world)}/local-provider": (
            {"done_on": "2026-01-01", "done_time": "10:00", "provider_name": "A",
             "provider_address": "B", "results": "C"}, 422),
        "/visits/availability/hours": ({"weekday": "x" * 50, "start_time": "", "end_time": ""},
                                       422),
        "/visits/availability/exceptions": ({"day": "2026-13-01", "kind": "nope"}, 422),
        "/visits/availability/hours/999999/remove": ({}, 404),
    }  # fmt: skip
    for path, (data, status) in posts.items():
        answer = client.post(path, data={"csrf_token": token, **data})
        assert answer.status_code == status, (path, answer.status_code)
    # Without the form's token: refused before anything is looked at.
    assert client.post(f"/visits/bookings/{booking_id}/start").status_code == 400
    # The trial manager reads, and is refused every change.
    manager = _signed_in(app, "manager", world)
    assert manager.get(page).status_code == 200
    assert manager.get("/visits/queue").status_code == 200
    assert manager.get("/visits/availability").status_code == 403
    manager_token = csrf_token(manager, page)
    for action in ("start", "complete", "no-show", "cancel", "room"):
        answer = manager.post(f"{page}/{action}", data={"csrf_token": manager_token})
        assert answer.status_code == 403, action
    # A patient has no business here at all.
    patient = _signed_in(app, "anna", world)
    assert patient.get("/visits/calendar").status_code == 403
    assert patient.get(page).status_code == 403
    assert _booking(app, booking_id).status == BookingStatus.BOOKED


def _slot_visit(app: Flask, world: World) -> int:
    with app.app_context():
        return _visit_of(world.patients["anna"].id).id


@pytest.mark.parametrize("who", ["coord_berlin", "pi_berlin", "manager"])
def test_every_page_renders_for_its_readers(app: Flask, world: World, who: str) -> None:
    booking_id, _slot = _book_for_anna(app, world)
    _request_visit(app, world)
    client = _signed_in(app, who, world)
    anna = world.patients["anna"].id
    pages = [
        "/visits/calendar",
        "/visits/calendar?view=day",
        "/visits/queue",
        f"/visits/bookings/{booking_id}",
        f"/visits/patients/{anna}",
        f"/visits/bookings/{booking_id}/move",
    ]
    if who != "manager":
        pages.append("/visits/availability")
        pages.append(f"/site/patients/{anna}")
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
    nav = _text(client.get("/visits/queue"))
    assert ("Televisits" in nav) == (who != "manager")


def test_dates_of_the_calendar_are_the_readers_days(app: Flask, world: World) -> None:
    """A week starts on the reader's Monday; the day view is the reader's day."""
    client = _signed_in(app, "coord_berlin", world)
    text = _text(client.get("/visits/calendar?view=week&date=2026-03-11"))
    assert "Week of Mon 09 Mar to Sun 15 Mar 2026" in text
    day = _text(client.get("/visits/calendar?view=day&date=2026-03-29"))
    assert "Sunday 29 March 2026" in day
    assert date(2026, 3, 29).isoformat() in day
