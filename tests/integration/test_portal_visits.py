"""The patient's visits in the portal: what is booked, what is to book and what is over;
booking a slot through the form once however often it is sent, in the patient's zone and
language; a slot taken meanwhile; moving and cancelling with a reason; asking for a visit;
the join link around the visit's time; nobody else's visits, and no staff."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from babel.dates import format_date, format_skeleton, format_time
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from dct_platform import audit
from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.models import AuditAction, Site, User
from dct_platform.models.patients import PatientStatus
from dct_platform.roles import Role
from dct_platform.services import accounts
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from dct_platform.visits import booking, planning
from dct_platform.visits.models import (
    Booking,
    BookingStatus,
    PlannedStatus,
    PlannedVisit,
    RoomStatus,
    UnscheduledRequest,
)
from dct_platform.visits.slots import Slot
from tests.integration.test_portal_languages import visible_text
from tests.support.clients import csrf_token, duplicate_ids, login
from tests.support.clock import TestClock
from tests.support.visits import more_patients, planned, week4_schedule
from tests.support.world import World

_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
_SLOT = re.compile(r'name="slot" value="([^"]+)"')
NEW_YORK = "America/New_York"


@pytest.fixture(autouse=True)
def _one_instant(clock: TestClock) -> None:
    """The page and the test read the same "now": slots offered from now + the notice
    cannot differ between the two by a boundary crossed in between."""
    clock.freeze()


def _compact(text: str) -> str:
    # Babel writes "9:00 AM" with a narrow no-break space and spans with thin spaces.
    return " ".join(text.replace("\u202f", " ").replace("\u2009", " ").split())


def _text(html: str) -> str:
    return _compact(visible_text(html))


def _section(html: str, testid: str) -> str:
    match = re.search(rf'<section[^>]*data-testid="{testid}".*?</section>', html, re.S)
    assert match, f"no section {testid}"
    return _text(match.group(0))


def _slots(app: Flask, patient_id: int) -> list[Slot]:
    """What the patient is offered: the service's free slots with the app's notice."""
    with app.app_context():
        visit = db.session.scalars(
            select(PlannedVisit).where(PlannedVisit.patient_id == patient_id)
        ).one()
        notice = timedelta(minutes=app.config["VISIT_MIN_NOTICE_MINUTES"])
        return booking.free_slots(db.session(), visit, utcnow(), min_notice=notice)


def _value(slot: Slot) -> str:
    return f"{slot.staff_id}.{int(slot.starts_at.timestamp())}"


def _bookings(app: Flask) -> list[Booking]:
    with app.app_context():
        found = list(db.session.scalars(select(Booking).order_by(Booking.id)))
        db.session.expunge_all()
        return found


def _form(client: FlaskClient, path: str) -> tuple[str, str, str]:
    """The page's HTML, CSRF token and idempotency key, as the browser has them."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    html = page.get_data(as_text=True)
    match = _KEY.search(html)
    assert match, "the booking form carries an idempotency key"
    return html, csrf_token(client, path), match.group(1)


def _post(client: FlaskClient, path: str, token: str, **data: Any) -> TestResponse:
    return client.post(path, data={"csrf_token": token, **data})


def _time(instant: datetime, zone: str, language: str = "en") -> str:
    return _compact(str(format_time(instant.astimezone(_tz(zone)), "short", locale=language)))


def _tz(zone: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(zone)


def _day(instant: datetime, zone: str, language: str = "en") -> str:
    return str(format_date(utc_to_local(instant, zone).date, "full", locale=language))


def _short(day: date) -> str:
    return str(format_skeleton("MMMEd", day, locale="en"))


def _patient_in(app: Flask, world: World, zone: str, key: str = "nyc") -> int:
    """A patient of the Berlin site who lives in `zone`, with the Week 4 visit planned so
    that its window starts today on their own calendar."""
    with app.app_context():
        s, now = db.session(), utcnow()
        site = s.get(Site, world.berlin.id)
        assert site is not None
        user = accounts.create_user(
            s, None, now, username=key, password=world.password, role=Role.PATIENT,
            display_name=key.title(), timezone=zone, opened_at_enrolment=True, system="test",
        )  # fmt: skip
        baseline = utc_to_local(now, zone).date - timedelta(days=25)
        patient = patient_service.enroll_patient(
            s, None, now, site=site, subject_number=f"B-{key}", timezone=zone,
            status=PatientStatus.ENROLLED, baseline_date=baseline, user=user, system="test",
        )  # fmt: skip
        planning.plan_patient(s, patient, now)
        s.commit()
        return patient.id


def _book_directly(app: Flask, username: str, patient_id: int, slot: Slot) -> int:
    """A booking made elsewhere (another patient's phone, the site's page): the service,
    without the request that would deliver its events."""
    with app.app_context():
        s = db.session()
        actor = s.scalars(select(User).where(User.username == username)).one()
        visit = s.scalars(select(PlannedVisit).where(PlannedVisit.patient_id == patient_id)).one()
        made = booking.book(s, actor, visit, slot.staff_id, slot.starts_at, utcnow())
        s.commit()
        return made.booking.id


def test_the_page_lists_the_visit_to_book_and_the_patients_zone(
    app: Flask, client: FlaskClient, world: World
) -> None:
    week4_schedule(app, world)
    visit = planned(app, world.patients["anna"].id)
    login(client, "anna", world.password)
    page = client.get("/portal/visits/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    text = _text(html)
    assert "My visits" in text and "Times are shown in your time zone: Berlin (Germany)." in text
    assert 'href="/portal/visits/"' in html  # in the main navigation
    assert "You have no visits booked." in _section(html, "visits-upcoming")
    to_book = _section(html, "visits-to-book")
    assert "Week 4 video visit" in to_book and "By video · 30 minutes" in to_book
    first, last = _short(visit.window_first), _short(visit.window_last)
    assert f"Book between {first} and {last}" in to_book
    assert f'href="/portal/visits/{visit.id}/book"' in html
    assert duplicate_ids(html) == set()
    ask = _section(html, "visits-ask")
    assert "A side effect" in ask and "Something else" in ask
    assert 'data-testid="visits-past"' not in html  # nothing is over yet


def test_booking_through_the_form_stores_one_booking_however_often_it_is_sent(
    app: Flask, client: FlaskClient, world: World
) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    visit = planned(app, anna)
    path = f"/portal/visits/{visit.id}/book"
    login(client, "anna", world.password)
    html, token, key = _form(client, path)

    # Grouped by the patient's local day, one heading per day, the days in order.
    slots = _slots(app, anna)
    days = list(dict.fromkeys(_day(s.starts_at, "Europe/Berlin") for s in slots))
    headings = re.findall(r'<h2 class="slot-day-title"[^>]*>([^<]+)</h2>', html)
    assert headings == days
    assert _SLOT.findall(html) == [_value(s) for s in slots]
    assert "Times are shown in your time zone: Berlin (Germany)." in _text(html)
    assert duplicate_ids(html) == set()

    # Sent without a choice: the error at the field, and in the summary.
    empty = _post(client, path, token, idempotency_key=key)
    assert empty.status_code == 422
    refused = empty.get_data(as_text=True)
    assert "There is a problem" in refused and '<a href="#slot-0">' in refused
    assert 'id="slot-error"' in refused and 'aria-invalid="true"' in refused
    assert f'name="idempotency_key" value="{key}"' in refused
    # A tampered or absurd value is not a time: asked again, never a 500.
    absurd = _post(client, path, token, idempotency_key=key, slot="9" * 30)
    assert absurd.status_code == 422
    not_offered = _post(client, path, token, idempotency_key=key, slot="1.0")  # 1970
    assert not_offered.status_code == 409
    assert _bookings(app) == []

    chosen = slots[1]
    sent = _post(client, path, token, idempotency_key=key, slot=_value(chosen))
    assert (sent.status_code, sent.headers["Location"]) == (302, "/portal/visits/")
    # The connection dropped before the answer came: the browser sends it again.
    again = _post(client, path, token, idempotency_key=key, slot=_value(chosen))
    assert (again.status_code, again.headers["Location"]) == (302, "/portal/visits/")
    [stored] = _bookings(app)
    assert (stored.starts_at, stored.staff_id, stored.idempotency_key) == (
        chosen.starts_at,
        chosen.staff_id,
        key,
    )
    assert stored.requested_by_id == world.users["anna"].id
    assert planned(app, anna).status == PlannedStatus.BOOKED

    listing = client.get("/portal/visits/").get_data(as_text=True)
    day, clock = _day(chosen.starts_at, "Europe/Berlin"), _time(chosen.starts_at, "Europe/Berlin")
    assert f"Your visit is booked for {day} at {clock}." in _text(listing)
    upcoming = _section(listing, "visits-upcoming")
    end = _time(chosen.ends_at, "Europe/Berlin")
    for phrase in [
        "Week 4 video visit",
        day,
        "Germany (Berlin) Time",
        "With Pi_Berlin, Investigator",
        "By video",
        "Booked",
        "The link to join appears here 15 minutes before your visit.",
        "Change the time",
        "Cancel the visit",
    ]:
        assert phrase in upcoming, phrase
    assert clock.split()[0] in upcoming and end.split()[0] in upcoming
    assert "There is no visit to book right now." in _section(listing, "visits-to-book")
    # The booking page of a booked visit says so and leads back.
    booked = client.get(path)
    assert (booked.status_code, booked.headers["Location"]) == (302, "/portal/visits/")
    assert "This visit is booked already." in _text(client.get("/portal/visits/").get_data(True))


def test_slots_and_bookings_show_on_the_clock_of_a_patient_in_new_york(
    app: Flask, world: World
) -> None:
    week4_schedule(app, world)
    nyc = _patient_in(app, world, NEW_YORK)
    visit = planned(app, nyc)
    client = app.test_client()
    login(client, "nyc", world.password)
    path = f"/portal/visits/{visit.id}/book"
    html, token, key = _form(client, path)
    text = _text(html)
    assert "Times are shown in your time zone: New York (United States)." in text
    slots = _slots(app, nyc)
    labels = re.findall(r'name="slot" value="[^"]+"[^>]*><span>([^<]+)</span>', html)
    assert [_compact(label) for label in labels] == [_time(s.starts_at, NEW_YORK) for s in slots]
    # The investigator works 09:00-17:00 in Berlin: 03:00-11:00 in New York (04:00-12:00 in
    # the weeks one of them keeps summer time and the other not), never after noon there.
    berlin_hours = {utc_to_local(s.starts_at, "Europe/Berlin").time.hour for s in slots}
    ny_hours = {utc_to_local(s.starts_at, NEW_YORK).time.hour for s in slots}
    assert berlin_hours <= set(range(9, 17)) and ny_hours <= set(range(3, 12))
    assert all(label.endswith("AM") for label in labels)  # as the page writes them
    headings = re.findall(r'<h2 class="slot-day-title"[^>]*>([^<]+)</h2>', html)
    assert headings == list(dict.fromkeys(_day(s.starts_at, NEW_YORK) for s in slots))

    chosen = slots[0]
    assert _post(client, path, token, idempotency_key=key, slot=_value(chosen)).status_code == 302
    upcoming = _section(client.get("/portal/visits/").get_data(as_text=True), "visits-upcoming")
    assert _day(chosen.starts_at, NEW_YORK) in upcoming
    assert "United States (New York) Time" in upcoming
    assert _time(chosen.starts_at, NEW_YORK).split()[0] in upcoming


def test_a_slot_taken_meanwhile_says_so_with_fresh_slots_and_409(
    app: Flask, client: FlaskClient, world: World
) -> None:
    schedule = week4_schedule(app, world)
    anna = world.patients["anna"].id
    (other,) = more_patients(app, world, 1, schedule.baseline)
    visit = planned(app, anna)
    path = f"/portal/visits/{visit.id}/book"
    login(client, "anna", world.password)
    _html, token, key = _form(client, path)
    wanted = _slots(app, anna)[0]
    # Another patient of the site books that time while Anna is choosing.
    _book_directly(app, "p00", other, wanted)

    taken = _post(client, path, token, idempotency_key=key, slot=_value(wanted))
    assert taken.status_code == 409
    html = taken.get_data(as_text=True)
    assert "Sorry, that time was just taken. Please choose another time." in _text(html)
    assert "data-error-summary" in html
    fresh = _SLOT.findall(html)
    assert _value(wanted) not in fresh and fresh == [_value(s) for s in _slots(app, anna)]
    assert f'name="idempotency_key" value="{key}"' in html
    assert [b.patient_id for b in _bookings(app)] == [other]

    second = _post(client, path, token, idempotency_key=key, slot=fresh[0])
    assert second.status_code == 302
    assert sorted(b.patient_id for b in _bookings(app)) == sorted([other, anna])


def test_no_free_slot_gives_the_sites_phone(
    app: Flask, client: FlaskClient, world: World, clock: TestClock
) -> None:
    week4_schedule(app, world)
    visit = planned(app, world.patients["anna"].id)
    # The window's last day is over on the patient's clock... almost: the job has not
    # marked it missed yet, and nothing can be booked.
    clock.freeze(datetime.combine(visit.window_last, datetime.min.time(), _tz("Europe/Berlin"))
                 + timedelta(hours=23, minutes=30))  # fmt: skip
    login(client, "anna", world.password)
    page = client.get(f"/portal/visits/{visit.id}/book")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "There are no free times to book online right now." in _text(html)
    assert 'href="tel:+49301234567"' in html and "Call +49 30 1234 567" in _text(html)
    assert 'name="slot"' not in html


def test_moving_and_cancelling_need_a_reason(app: Flask, client: FlaskClient, world: World) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    first = _slots(app, anna)[0]
    booking_id = _book_directly(app, "anna", anna, first)
    login(client, "anna", world.password)

    move = f"/portal/visits/booking/{booking_id}/reschedule"
    page = client.get(move)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="idempotency_key"' not in html
    offered = _SLOT.findall(html)
    assert _value(first) not in offered  # its own time is not a new one
    assert f"Booked now: {_day(first.starts_at, 'Europe/Berlin')}" in _text(html)
    token = csrf_token(client, move)

    refused = _post(client, move, token, reason="  ")
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    text = _text(html)
    assert "Choose a new time: Choose a new time." in text
    assert (
        "Why do you want to change the time?: Please say why you want to change the time." in text
    )
    field = re.search(r'<textarea id="reason".*?</div>', html, re.S)
    assert field and 'aria-invalid="true"' in field.group(0)
    assert "Please say why you want to change the time." in field.group(0)
    no_reason = _post(client, move, token, slot=offered[2], reason="")
    assert no_reason.status_code == 422
    assert f'value="{offered[2]}" checked' in no_reason.get_data(as_text=True)

    moved = _post(client, move, token, slot=offered[2], reason="A work meeting")
    assert (moved.status_code, moved.headers["Location"]) == (302, "/portal/visits/")
    [row] = _bookings(app)
    assert (_value(Slot(row.starts_at, row.ends_at, row.staff_id)), row.sequence) == (
        offered[2],
        1,
    )
    # Sent twice: moved already, nothing more changes.
    assert _post(client, move, token, slot=offered[2], reason="A work meeting").status_code == 302
    assert _bookings(app)[0].sequence == 1
    assert "Your visit is moved to" in _text(client.get("/portal/visits/").get_data(True))

    cancel = f"/portal/visits/booking/{booking_id}/cancel"
    page = client.get(cancel)
    assert page.status_code == 200 and "Yes, cancel the visit" in _text(page.get_data(True))
    refused = _post(client, cancel, token, reason="")
    assert refused.status_code == 422
    assert "Why do you want to cancel?: Please say why you want to cancel." in _text(
        refused.get_data(as_text=True)
    )
    assert _bookings(app)[0].status == BookingStatus.BOOKED
    done = _post(client, cancel, token, reason="I feel better")
    assert (done.status_code, done.headers["Location"]) == (302, "/portal/visits/")
    assert _bookings(app)[0].status == BookingStatus.CANCELLED
    listing = client.get("/portal/visits/").get_data(as_text=True)
    assert "Your visit is cancelled. You can book a new time below." in _text(listing)
    assert "Week 4 video visit" in _section(listing, "visits-to-book")
    assert "You have no visits booked." in _section(listing, "visits-upcoming")
    # A second tap on "Yes, cancel": cancelled already, said so.
    again = _post(client, cancel, token, reason="I feel better")
    assert again.status_code == 302
    assert "This visit is cancelled." in _text(client.get("/portal/visits/").get_data(True))
    with app.app_context():
        reasons = db.session.scalars(
            select(AuditAction.reason).where(AuditAction.summary.like("%Week 4%"))
        ).all()
    assert "A work meeting" in reasons and "I feel better" in reasons


def test_another_patients_visits_are_not_found(
    app: Flask, client: FlaskClient, world: World
) -> None:
    schedule = week4_schedule(app, world)
    (other,) = more_patients(app, world, 1, schedule.baseline)
    theirs = planned(app, other)
    slot = _slots(app, other)[0]
    booking_id = _book_directly(app, "p00", other, slot)
    login(client, "anna", world.password)
    token = csrf_token(client, "/portal/visits/")
    for path in (
        f"/portal/visits/{theirs.id}/book",
        f"/portal/visits/booking/{booking_id}/reschedule",
        f"/portal/visits/booking/{booking_id}/cancel",
        "/portal/visits/999999/book",
    ):
        assert client.get(path).status_code == 404, path
        posted = _post(
            client, path, token, slot=_value(slot), reason="mine now", idempotency_key="k"
        )
        assert posted.status_code == 404, path
    [row] = _bookings(app)
    assert (row.patient_id, row.status, row.sequence) == (other, BookingStatus.BOOKED, 0)
    assert "This visit was not found." in _text(
        client.get(f"/portal/visits/{theirs.id}/book").get_data(True)
    )


@pytest.mark.parametrize("username", ["coord_berlin", "pi_berlin", "manager"])
def test_staff_cannot_use_the_patients_visit_pages(
    app: Flask, client: FlaskClient, world: World, username: str
) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    visit = planned(app, anna)
    booking_id = _book_directly(app, "anna", anna, _slots(app, anna)[0])
    login(client, username, world.password)
    token = csrf_token(client, "/account/password")
    for path in (
        "/portal/visits/",
        f"/portal/visits/{visit.id}/book",
        f"/portal/visits/booking/{booking_id}/reschedule",
        f"/portal/visits/booking/{booking_id}/cancel",
        "/portal/visits/ask",
    ):
        assert client.get(path).status_code == 403, path
        if path != "/portal/visits/":  # the list only shows
            posted = _post(client, path, token, reason="x", category="other", slot="1.1")
            assert posted.status_code == 403, path
    assert _bookings(app)[0].status == BookingStatus.BOOKED
    # Signed out: to the sign-in page.
    assert app.test_client().get("/portal/visits/").status_code == 302


def test_asking_for_a_visit_reaches_the_patients_site(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "anna", world.password)
    token = csrf_token(client, "/portal/visits/")
    refused = _post(client, "/portal/visits/ask", token, details="My rash is back")
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "What is it about?: Choose what your request is about." in _text(html)
    assert '<a href="#category-0">' in html and 'aria-describedby="category-error"' in html
    assert "My rash is back" in html  # what they wrote stays

    for _tap in range(2):  # a double tap asks once
        sent = _post(client, "/portal/visits/ask", token, category="side_effect",
                     details="  My rash is back  ")  # fmt: skip
        assert (sent.status_code, sent.headers["Location"]) == (302, "/portal/visits/")
    with app.app_context():
        [asked] = db.session.scalars(select(UnscheduledRequest)).all()
        assert (asked.patient_id, asked.site_id) == (world.patients["anna"].id, world.berlin.id)
        assert (asked.category, asked.details) == ("side_effect", "My rash is back")
    listing = client.get("/portal/visits/").get_data(as_text=True)
    assert "Your site has your request and will contact you." in _text(listing)
    today = format_date(utc_to_local(utcnow(), "Europe/Berlin").date, "full", locale="en")
    assert f"You asked for a visit on {today}. Your site will contact you." in _section(
        listing, "visits-ask"
    )
    # Kenji's request goes to his own site, in Tokyo.
    other = app.test_client()
    login(other, "kenji", world.password)
    _post(other, "/portal/visits/ask", csrf_token(other, "/portal/visits/ask"), category="other")
    with app.app_context():
        sites = db.session.scalars(
            select(UnscheduledRequest.site_id).order_by(UnscheduledRequest.id)
        ).all()
    assert sites == [world.berlin.id, world.tokyo.id]


def _set_room(app: Flask, booking_id: int, status: RoomStatus, url: str | None) -> None:
    with app.app_context():
        s = db.session()
        row = s.get(Booking, booking_id)
        assert row is not None
        with audit.acting(s, None, utcnow(), what="Room of the test's televisit", system="test"):
            row.room_status, row.room_url = status, url
        s.commit()


def test_the_join_link_shows_shortly_before_the_visit_once_the_room_is_ready(
    app: Flask, client: FlaskClient, world: World, clock: TestClock
) -> None:
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    slot = _slots(app, anna)[0]
    booking_id = _book_directly(app, "anna", anna, slot)  # no request: no room yet
    login(client, "anna", world.password)

    def upcoming() -> tuple[str, str]:
        html = client.get("/portal/visits/").get_data(as_text=True)
        return html, _section(html, "visits-upcoming")

    clock.freeze(slot.starts_at - timedelta(minutes=16))
    html, text = upcoming()
    assert "The link to join appears here 15 minutes before your visit." in text
    assert 'data-testid="visit-join"' not in html

    clock.freeze(slot.starts_at - timedelta(minutes=14))
    html, text = upcoming()
    assert "The video room is being prepared. Please reload this page in a minute." in text
    assert 'data-testid="visit-join"' not in html

    room = "https://meet.jit.si/dct-testroomabcdefghijklmnopqrstuv"
    _set_room(app, booking_id, RoomStatus.READY, room)
    html, text = upcoming()
    assert f'href="{room}"' in html and "Join the video visit" in text
    assert "You can join now. Your visit starts soon." in text

    clock.freeze(slot.ends_at + timedelta(minutes=31))
    html, text = upcoming()
    assert room not in html and "The time for this visit is over." in text


def test_days_and_times_are_written_in_the_patients_language(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """The dates, clock times and zone come from CLDR in the patient's language (the
    sentences around them from the catalogues, once translated)."""
    week4_schedule(app, world)
    anna = world.patients["anna"].id
    visit = planned(app, anna)
    login(client, "anna", world.password)
    saved = _post(client, "/portal/profile", csrf_token(client, "/portal/profile"),
                  timezone="Europe/Berlin", preferred_language="de")  # fmt: skip
    assert saved.status_code == 302
    html, token, key = _form(client, f"/portal/visits/{visit.id}/book")
    slots = _slots(app, anna)
    headings = re.findall(r'<h2 class="slot-day-title"[^>]*>([^<]+)</h2>', html)
    assert headings == list(dict.fromkeys(_day(s.starts_at, "Europe/Berlin", "de") for s in slots))
    labels = re.findall(r'name="slot" value="[^"]+"[^>]*><span>([^<]+)</span>', html)
    assert labels == [_time(s.starts_at, "Europe/Berlin", "de") for s in slots]
    assert all(re.fullmatch(r"\d\d:\d\d", label) for label in labels)  # 09:00, not 9:00 AM
    first = str(format_skeleton("MMMEd", visit.window_first, locale="de"))
    assert first in _text(html)  # "Do., 26. Nov."
    sent = _post(client, f"/portal/visits/{visit.id}/book", token, idempotency_key=key,
                 slot=_value(slots[0]))  # fmt: skip
    assert sent.status_code == 302
    upcoming = _section(client.get("/portal/visits/").get_data(as_text=True), "visits-upcoming")
    assert _day(slots[0].starts_at, "Europe/Berlin", "de") in upcoming
    assert "Deutschland (Berlin) (Ortszeit)" in upcoming and "Uhr" in upcoming
