"""The patient's visits on a phone: a patient signs in, books a slot of the visit due with
the keyboard and sees it booked; when the clock reaches the visit's time, the button to join
shows with the video room, and the investigator's calendar shows the visit. Then a time is moved and the visit cancelled, each only with a
reason, and a visit asked for. axe-core checks every page as the patient sees it, none
scrolls sideways, and each leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.visits.models import Booking, BookingStatus, RoomStatus, UnscheduledRequest
from tests.e2e.accessibility import failing, run_axe
from tests.e2e.conftest import PHONE
from tests.e2e.flows import sign_in
from tests.support.clock import TestClock
from tests.support.live_server import LiveServer
from tests.support.visits import week4_schedule
from tests.support.world import World

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
JITSI_ROOM = re.compile(r"^https://meet\.jit\.si/dct-[a-z2-7]{32}$")


def _bookings(app: Flask) -> list[Booking]:
    with app.app_context():
        found = list(db.session.scalars(select(Booking).order_by(Booking.id)))
        db.session.expunge_all()
        db.session.remove()
        return found


def _fits_and_passes_axe(page: Page) -> None:
    assert failing(run_axe(page)) == []
    assert page.evaluate(OVERFLOW) <= 0


def test_a_patient_books_a_visit_on_a_phone_and_joins_it_when_it_is_time(
    app: Flask,
    phone_page: Page,
    page: Page,
    live_server: LiveServer,
    world: World,
    clock: TestClock,
    snapshot: Callable[[Page, str], None],
) -> None:
    week4_schedule(app, world)
    staff_page, page = page, phone_page
    assert page.viewport_size == PHONE
    sign_in(page, "anna", world.password)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My visits").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My visits")
    expect(page.get_by_test_id("visits-upcoming")).to_contain_text("You have no visits booked.")
    to_book = page.get_by_test_id("visit-to-book")
    expect(to_book).to_contain_text("Week 4 video visit")
    expect(to_book).to_contain_text(re.compile(r"Book between \w{3}, \w{3} \d+ and"))
    _fits_and_passes_axe(page)
    snapshot(page, "list")

    to_book.get_by_role("link", name=re.compile("^Choose a time")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Book a time")
    expect(page.get_by_text("Times are shown in your time zone: Berlin (Germany).")).to_be_visible()
    days = page.get_by_test_id("slot-day")
    assert days.count() >= 1
    first_day = days.first.get_by_role("heading").inner_text()
    _fits_and_passes_axe(page)
    snapshot(page, "slots")

    # Sent without a choice: the summary takes the focus and leads to the times.
    page.get_by_role("button", name="Book this time").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Choose a time: Choose a time.")
    _fits_and_passes_axe(page)
    snapshot(page, "slots-error")

    # With the keyboard: into the times, the arrow to the next one, Tab to the button.
    group = page.get_by_role("group", name=first_day)
    first, second = group.get_by_role("radio").nth(0), group.get_by_role("radio").nth(1)
    first.focus()
    page.keyboard.press("ArrowRight")
    expect(second).to_be_checked()
    chosen = second.evaluate("radio => radio.labels[0].innerText").replace("\u202f", " ")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Book this time")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/portal/visits/$"))
    expect(page.get_by_role("status")).to_contain_text(f"Your visit is booked for {first_day}")
    card = page.get_by_test_id("visit-booked")
    expect(card).to_contain_text(first_day)
    expect(card).to_contain_text(chosen.split()[0])  # the start of "10:30 to 11:00 AM"
    expect(card).to_contain_text("Germany (Berlin) Time")
    expect(card).to_contain_text("With Pi_Berlin, Investigator")
    expect(card.get_by_test_id("visit-join-note")).to_have_text(
        "The link to join appears here 15 minutes before your visit."
    )
    expect(card.get_by_test_id("visit-join")).to_have_count(0)
    expect(page.get_by_test_id("visits-to-book")).to_contain_text(
        "There is no visit to book right now."
    )
    _fits_and_passes_axe(page)
    snapshot(page, "booked")

    [booked] = _bookings(app)
    assert (
        booked.status == BookingStatus.BOOKED and booked.requested_by_id == world.users["anna"].id
    )
    # The room receiver (notifications.py) made the room after the booking's commit, with
    # the default provider (Jitsi, named locally: nothing leaves the machine).
    room = booked.room_url
    assert booked.room_status == RoomStatus.READY and room and JITSI_ROOM.match(room)

    # Ten minutes before the visit: the button to join, to the room.
    clock.freeze(booked.starts_at - timedelta(minutes=10))
    page.reload()
    join = card.get_by_role("link", name=re.compile("^Join the video visit"))
    expect(join).to_be_visible()
    expect(join).to_have_attribute("href", room)
    expect(card.get_by_test_id("visit-join-note")).to_have_text(
        "You can join now. Your visit starts soon."
    )
    _fits_and_passes_axe(page)
    snapshot(page, "join")

    # Well after its end the link is gone.
    clock.freeze(booked.ends_at + timedelta(minutes=31))
    page.reload()
    expect(card.get_by_test_id("visit-join")).to_have_count(0)
    expect(card.get_by_test_id("visit-join-note")).to_have_text("The time for this visit is over.")

    # The investigator's calendar, in another browser, shows the visit Anna booked.
    page = staff_page
    sign_in(page, "pi_berlin", world.password)
    day = utc_to_local(booked.starts_at, "Europe/Berlin").date
    page.goto(f"/visits/calendar?view=day&date={day.isoformat()}")
    entry = page.get_by_test_id("day").get_by_test_id("booking")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("B1-anna")
    expect(entry).to_contain_text("Week 4 video visit")
    start = utc_to_local(booked.starts_at, "Europe/Berlin").time.strftime("%H:%M")
    expect(entry).to_contain_text(start)
    assert failing(run_axe(page)) == []
    snapshot(page, "staff-calendar")


def test_a_patient_moves_cancels_and_asks_for_a_visit_on_a_phone(
    app: Flask,
    phone_page: Page,
    live_server: LiveServer,
    world: World,
    snapshot: Callable[[Page, str], None],
) -> None:
    week4_schedule(app, world)
    page = phone_page
    sign_in(page, "anna", world.password)
    page.goto("/portal/visits/")
    page.get_by_test_id("visit-choose").click()
    page.get_by_role("radio").first.check()
    page.get_by_role("button", name="Book this time").click()
    expect(page.get_by_test_id("visit-booked")).to_be_visible()
    [before] = _bookings(app)

    # Moving needs a new time and a reason.
    page.get_by_role("link", name=re.compile("^Change the time")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change the time")
    page.get_by_role("radio").nth(2).check()
    page.get_by_role("button", name="Move my visit").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Please say why you want to change the time.")
    reason = page.get_by_label("Why do you want to change the time?")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("radio").nth(2)).to_be_checked()  # the choice is kept
    _fits_and_passes_axe(page)
    snapshot(page, "move-error")
    summary.get_by_role("link", name=re.compile("Why do you want")).click()
    expect(reason).to_be_focused()
    reason.fill("A work meeting")
    page.get_by_role("button", name="Move my visit").click()
    expect(page.get_by_role("status")).to_contain_text("Your visit is moved to")
    [moved] = _bookings(app)
    assert moved.sequence == 1 and moved.starts_at != before.starts_at
    snapshot(page, "moved")

    # Cancelling asks to confirm, with a reason.
    page.get_by_role("link", name=re.compile("^Cancel the visit")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Cancel the visit")
    _fits_and_passes_axe(page)
    snapshot(page, "cancel")
    page.get_by_role("button", name="Yes, cancel the visit").click()
    expect(page.locator("[data-error-summary]")).to_contain_text(
        "Please say why you want to cancel."
    )
    _fits_and_passes_axe(page)
    snapshot(page, "cancel-error")
    page.get_by_label("Why do you want to cancel?").fill("I feel better")
    page.get_by_role("button", name="Yes, cancel the visit").click()
    expect(page.get_by_role("status")).to_contain_text("Your visit is cancelled.")
    expect(page.get_by_test_id("visit-to-book")).to_contain_text("Week 4 video visit")
    assert _bookings(app)[0].status == BookingStatus.CANCELLED

    # Asking for a visit: the reason is a choice, the details are optional.
    ask = page.get_by_test_id("visits-ask")
    ask.get_by_role("button", name="Ask for a visit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ask for a visit")
    expect(page.locator("[data-error-summary]")).to_contain_text(
        "Choose what your request is about."
    )
    _fits_and_passes_axe(page)
    snapshot(page, "ask-error")
    page.get_by_role("group", name="What is it about?").get_by_label("A side effect").check()
    page.get_by_label(re.compile("^Details")).fill("The rash is back since Monday")
    page.get_by_role("button", name="Ask for a visit").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Your site has your request and will contact you."
    )
    expect(page.get_by_test_id("visit-request")).to_contain_text("Your site will contact you.")
    _fits_and_passes_axe(page)
    snapshot(page, "asked")
    with app.app_context():
        [asked] = db.session.scalars(select(UnscheduledRequest)).all()
        assert (asked.category, asked.site_id) == ("side_effect", world.berlin.id)
        db.session.remove()
