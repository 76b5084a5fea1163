"""A site coordinator runs a televisit in the browser: the calendar shows the patient's
booking at the coordinator's time, the visit page shows it on both clocks; the visit is
started, a completion without notes is refused and explained, one with notes is recorded
with who ran it and the investigator at the time. The queue and the patient's visits page
are one link away. axe-core checks every page as the coordinator sees it, and each page
leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.models import User
from dct_platform.timeutil import utcnow
from dct_platform.visits import booking, unscheduled
from dct_platform.visits.models import Booking, BookingStatus, PlannedVisit
from dct_platform.visits.slots import Slot
from tests.e2e.accessibility import failing, run_axe
from tests.e2e.flows import sign_in
from tests.support.clock import TestClock
from tests.support.live_server import LiveServer
from tests.support.visits import week4_schedule
from tests.support.world import World

BERLIN = "Europe/Berlin"


def _anna_books(app: Flask, world: World) -> tuple[int, Slot]:
    """Anna books her Week 4 visit (a time two hours ahead at least), and asks for an
    unscheduled visit, so that the queue has something to show."""
    week4_schedule(app, world)
    with app.app_context():
        s, now = db.session(), utcnow()
        anna = s.scalars(select(User).where(User.username == "anna")).one()
        visit = s.scalars(
            select(PlannedVisit).where(PlannedVisit.patient_id == world.patients["anna"].id)
        ).one()
        slot = next(
            x for x in booking.free_slots(s, visit, now) if x.starts_at > now + timedelta(hours=2)
        )
        made = booking.book(s, anna, visit, slot.staff_id, slot.starts_at, now)
        unscheduled.request_visit(
            s, anna, visit.patient, now, category="side_effect", details="Itchy rash"
        )
        s.commit()
        booking_id = made.booking.id
        db.session.remove()
    return booking_id, slot


def _span(slot: Slot, zone: str) -> str:
    a, b = utc_to_local(slot.starts_at, zone), utc_to_local(slot.ends_at, zone)
    return f"{a.time:%H:%M}-{b.time:%H:%M} {a.abbreviation}"


def _stored(app: Flask, booking_id: int) -> Booking:
    with app.app_context():
        row = db.session.get(Booking, booking_id)
        assert row is not None
        db.session.expunge(row)
        db.session.remove()
        return row


def test_a_coordinator_completes_a_televisit_from_the_calendar(
    app: Flask,
    page: Page,
    live_server: LiveServer,
    world: World,
    clock: TestClock,
    snapshot: Callable[[Page, str], None],
) -> None:
    booking_id, slot = _anna_books(app, world)
    # Five minutes into the visit: its day is today, on the calendar's default week.
    clock.freeze(slot.starts_at + timedelta(minutes=5))

    sign_in(page, "coord_berlin", world.password)
    panel = page.get_by_test_id("visit-requests-panel")
    expect(panel).to_contain_text("1 patient asks for a visit")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Televisits").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Televisits")
    # The coordinator's own visits first: none. Everyone's at the site shows Anna's.
    expect(page.get_by_test_id("no-bookings")).to_be_visible()
    page.get_by_label("Whose visits").select_option("all")
    page.get_by_role("button", name="Show").click()
    week = page.get_by_test_id("week")
    entry = week.get_by_test_id("booking")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(_span(slot, BERLIN))
    expect(entry).to_contain_text("B1-anna")
    expect(entry).to_contain_text("Week 4 video visit")
    expect(entry).to_contain_text("room pending")
    today = utc_to_local(slot.starts_at, BERLIN).date
    expect(week.locator("th[aria-current=date]")).to_contain_text(today.strftime("%a %d %b"))
    assert failing(run_axe(page)) == []
    snapshot(page, "calendar-week")

    page.get_by_role("link", name="Next week").click()
    expect(page.get_by_test_id("period")).to_contain_text(
        (today + timedelta(days=7 - today.weekday())).strftime("%a %d %b")
    )
    page.get_by_role("link", name="Previous week").click()
    page.get_by_label("Show", exact=True).select_option("day")
    page.get_by_role("button", name="Show").click()
    day = page.get_by_test_id("day")
    expect(day.get_by_test_id("booking")).to_contain_text(_span(slot, BERLIN))
    assert failing(run_axe(page)) == []
    snapshot(page, "calendar-day")

    day.get_by_role("link", name=re.compile("^B1-anna")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Week 4 video visit of B1-anna")
    expect(page.get_by_test_id("reader-time")).to_contain_text(_span(slot, BERLIN))
    expect(page.get_by_test_id("patient-time")).to_contain_text(BERLIN)
    expect(page.get_by_test_id("visit-status")).to_have_text("booked")
    expect(page.get_by_test_id("join")).to_contain_text("Only Pi_Berlin, who runs the visit")
    assert failing(run_axe(page)) == []
    snapshot(page, "visit")

    page.get_by_role("button", name="Start the visit").click()
    expect(page.get_by_role("status")).to_contain_text("started")
    expect(page.get_by_test_id("visit-status")).to_have_text("started")

    # Without notes: refused, explained, the focus on the summary, nothing stored.
    clock.advance(timedelta(minutes=20))
    page.get_by_label("Other location").check()
    page.get_by_role("button", name="Complete the visit").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Visit notes: Write the visit notes.")
    notes = page.get_by_label("Visit notes")
    expect(notes).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Other location")).to_be_checked()
    assert _stored(app, booking_id).status == BookingStatus.STARTED
    assert failing(run_axe(page)) == []
    snapshot(page, "no-notes")

    summary.get_by_role("link").click()
    expect(notes).to_be_focused()
    notes.fill("Rash improving; continue the cream. Patient at her sister's flat.")
    page.get_by_role("button", name="Complete the visit").click()
    expect(page.get_by_role("status")).to_contain_text("completed")
    expect(page.get_by_test_id("visit-status")).to_have_text("completed")
    record = page.get_by_test_id("visit-record")
    expect(page.get_by_test_id("record-site")).to_have_text("B1 · Berlin")
    expect(page.get_by_test_id("record-investigator")).to_have_text("Pi_Berlin")
    expect(page.get_by_test_id("record-run-by")).to_have_text("Coord_Berlin")
    expect(page.get_by_test_id("record-location")).to_have_text("Other location")
    expect(record).to_contain_text("Rash improving; continue the cream.")
    expect(page.get_by_role("button", name="Complete the visit")).to_have_count(0)
    assert failing(run_axe(page)) == []
    snapshot(page, "completed")
    stored = _stored(app, booking_id)
    assert stored.status == BookingStatus.COMPLETED
    assert stored.run_by_id == world.users["coord_berlin"].id
    assert stored.investigator_id == world.users["pi_berlin"].id

    page.get_by_role("link", name="B1-anna", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Visits of subject B1-anna")
    expect(page.get_by_test_id("planned-status").first).to_contain_text("done")
    assert failing(run_axe(page)) == []
    snapshot(page, "patient-visits")

    nav.get_by_role("link", name="Visit queue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Visit queue")
    request = page.get_by_test_id("request")
    expect(request).to_contain_text("Itchy rash")
    request.get_by_role("button", name=re.compile("^Close the request")).click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_contain_text("Say why the request is closed")
    assert failing(run_axe(page)) == []
    snapshot(page, "queue-refused")

    # Planned instead: a visit in the coming week, which the coordinator books for Anna.
    request.get_by_role("button", name=re.compile("^Plan the visit")).click()
    expect(page.get_by_role("status")).to_contain_text("An unscheduled visit of B1-anna")
    expect(page.get_by_test_id("no-requests")).to_be_visible()
    assert failing(run_axe(page)) == []
    snapshot(page, "queue")

    page.goto(f"/visits/patients/{world.patients['anna'].id}")
    unscheduled_visit = page.get_by_test_id("planned-visit").filter(has_text="Unscheduled visit")
    expect(unscheduled_visit).to_contain_text("A side effect: Itchy rash")
    unscheduled_visit.get_by_role("link", name=re.compile("^Book for the patient")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Book Unscheduled visit for B1-anna")
    page.get_by_role("button", name="Book this time").click()
    expect(page.locator("[data-error-summary]")).to_contain_text("Time: Choose a time.")
    assert failing(run_axe(page)) == []
    snapshot(page, "book-refused")
    first = page.get_by_role("radio").first
    chosen = first.evaluate("el => el.labels[0].textContent").strip()
    first.check()
    page.get_by_role("button", name="Book this time").click()
    expect(page.get_by_role("status")).to_contain_text("Unscheduled visit of B1-anna is booked")
    booked = page.get_by_test_id("planned-visit").filter(has_text="Unscheduled visit")
    expect(booked.get_by_test_id("booking-of-visit")).to_contain_text(chosen.split(" with ")[0])
    assert failing(run_axe(page)) == []
    snapshot(page, "booked-for-the-patient")

    booked.get_by_role("link", name=re.compile("^Move")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Move Unscheduled visit of B1-anna")
    assert failing(run_axe(page)) == []
    snapshot(page, "move")

    nav.get_by_role("link", name="Televisits").click()
    page.get_by_role("link", name="Your hours").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your hours for televisits")
    assert failing(run_axe(page)) == []
    snapshot(page, "availability")
