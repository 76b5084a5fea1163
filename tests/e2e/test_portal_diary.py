"""The patient's diary on a phone: a patient signs in, fills the diary due now and sees it
done, and the site's staff see it on their compliance page. The questions the answers skip hide as they answer, the answers survive a reload
and a dropped connection (localStorage), and a window that closes while they fill it in
says so. axe-core checks the list and the form as the patient sees them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import Trial
from dct_platform.timeutil import utcnow
from devices.ediary import schedules
from devices.ediary.demo_instruments import DAILY_SYMPTOMS
from devices.ediary.models import Entry, Occurrence, ScheduleKind
from tests.e2e.accessibility import failing, run_axe
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.flows import sign_in
from tests.support.clock import TestClock
from tests.support.live_server import LiveServer
from tests.support.world import World

BERLIN = ZoneInfo("Europe/Berlin")
DRAFTS = "() => Object.keys(localStorage).filter(k => k.startsWith('dct-diary-draft:'))"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _diary_due_now(app: Flask, world: World, clock: TestClock) -> tuple[date, int]:
    """The daily symptom diary, 18:00 to midnight, and the clock at 19:00 of its first
    evening in Berlin, with the occurrences job run: Anna's first diary is due."""
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
        clock.freeze(datetime.combine(first, time(19), BERLIN))
        schedules.refresh(s, utcnow())
        s.commit()
        occurrence = s.scalar(
            select(Occurrence.id).where(
                Occurrence.patient_id == world.patients["anna"].id, Occurrence.local_date == first
            )
        )
        assert occurrence is not None
        db.session.remove()
    return first, occurrence


def _entries(app: Flask) -> list[Entry]:
    with app.app_context():
        found = list(db.session.scalars(select(Entry)))
        db.session.expunge_all()
        db.session.remove()
        return found


def test_a_patient_fills_the_due_diary_on_a_phone_and_sees_it_done(
    app: Flask,
    phone_page: Page,
    browser: Browser,
    live_server: LiveServer,
    world: World,
    clock: TestClock,
    snapshot: Callable[[Page, str], None],
) -> None:
    first, occurrence = _diary_due_now(app, world, clock)
    page = phone_page
    assert page.viewport_size == PHONE
    sign_in(page, "anna", world.password)

    summary = page.get_by_test_id("diary-summary")
    expect(summary).to_contain_text("Daily symptom diary")
    expect(summary).to_contain_text("Closes in 5 hours.")
    snapshot(page, "home")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My diary").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My diary")
    due = page.get_by_test_id("diary-due-section")
    expect(due).to_contain_text("Open until midnight today.")
    expect(page.get_by_test_id("diary-coming-section")).to_contain_text("Opens at")
    assert failing(run_axe(page)) == []
    assert page.evaluate(OVERFLOW) <= 0
    snapshot(page, "list")

    due.get_by_role("link", name=re.compile("^Fill in")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Daily symptom diary")
    wellbeing = page.get_by_role("group", name=re.compile("how well do you feel today"))
    pain = page.get_by_role("group", name="Have you had any pain today?")
    intensity = page.get_by_role("group", name=re.compile("How strong was your pain"))
    # Asked only after a "yes"; the hint that says so is for pages without JavaScript.
    expect(intensity).to_be_hidden()

    # With the keyboard: to the scale, then the arrow keys move along it.
    wellbeing.get_by_label("6", exact=True).focus()
    page.keyboard.press("ArrowRight")
    expect(wellbeing.get_by_label("7", exact=True)).to_be_checked()
    pain.get_by_label("Yes").check()
    expect(intensity).to_be_visible()
    intensity.get_by_label("4", exact=True).check()
    page.get_by_role("group", name="How bad was any nausea today?").get_by_label("Mild").check()
    symptoms = page.get_by_role("group", name=re.compile("Which of these did you have"))
    symptoms.get_by_label("Headache").check()
    hours = page.get_by_label(re.compile("How many hours did you sleep"))
    expect(hours).to_have_attribute("inputmode", "decimal")
    hours.fill("7,5")
    page.get_by_role("group", name="How well did you sleep last night?").get_by_label(
        "Well", exact=True
    ).check()
    assert failing(run_axe(page)) == []
    assert page.evaluate(OVERFLOW) <= 0
    snapshot(page, "form")

    # The page is closed or reloaded before sending: the answers are still there.
    page.reload()
    expect(page.get_by_text("The answers you entered before are filled in again.")).to_be_visible()
    expect(wellbeing.get_by_label("7", exact=True)).to_be_checked()
    expect(intensity.get_by_label("4", exact=True)).to_be_checked()
    expect(symptoms.get_by_label("Headache")).to_be_checked()
    expect(hours).to_have_value("7,5")
    assert page.evaluate(DRAFTS) == [f"dct-diary-draft:{occurrence}"]

    # The network drops as they press "Save": nothing is lost, and they are told.
    page.context.set_offline(True)
    page.get_by_role("button", name="Save my diary").click()
    expect(page.get_by_role("alert")).to_contain_text("no internet connection")
    expect(hours).to_have_value("7,5")
    assert _entries(app) == []
    snapshot(page, "offline")

    page.context.set_offline(False)
    page.get_by_role("button", name="Save my diary").click()
    expect(page).to_have_url(re.compile(rf"/portal/diary/\?saved={occurrence}$"))
    day = first.strftime("%A, %B %-d, %Y")
    expect(page.get_by_test_id("diary-saved")).to_have_text(
        f"Thank you — your diary for {day} is saved."
    )
    expect(page.get_by_test_id("diary-done-section")).to_contain_text(day)
    expect(page.get_by_test_id("diary-due-section")).to_contain_text(
        "Nothing to fill in right now."
    )
    assert page.evaluate(DRAFTS) == []
    assert failing(run_axe(page)) == []
    snapshot(page, "done")

    [entry] = _entries(app)
    assert entry.answers == {
        "wellbeing": 7, "pain": True, "pain_intensity": 4, "nausea": "mild",
        "symptoms": ["headache"], "hours_slept": 7.5, "sleep_quality": "good",
    }  # fmt: skip
    assert (entry.source, entry.late) == ("portal", False)
    # The phone's own clock, as it read it, with its offset.
    assert entry.device_time and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", entry.device_time
    )

    # The site's staff see it on their compliance page, on a laptop.
    staff_context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)
    staff = staff_context.new_page()
    try:
        sign_in(staff, "coord_berlin", world.password)
        nav = staff.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Diary compliance").click()
        expect(staff.get_by_role("heading", level=1)).to_have_text("Diary compliance")
        row = staff.get_by_test_id("compliance-table").locator("tr", has_text="B1-anna")
        # Expected 1, on time 1, late 0, missed 0, still open 0, 100 %.
        expect(row.locator("td")).to_have_text(["B1-anna", "1", "1", "0", "0", "0", "100%"])
        assert (
            staff.get_by_role("img", name=re.compile("Percentage of diaries")).evaluate(
                "img => img.naturalWidth"
            )
            > 0
        )
        assert failing(run_axe(staff)) == []
        snapshot(staff, "staff-compliance")
    finally:
        staff_context.close()


def test_wrong_answers_and_a_window_that_closes_while_filling_are_explained(
    app: Flask,
    phone_page: Page,
    live_server: LiveServer,
    world: World,
    clock: TestClock,
    snapshot: Callable[[Page, str], None],
) -> None:
    first, occurrence = _diary_due_now(app, world, clock)
    page = phone_page
    sign_in(page, "anna", world.password)
    page.goto(f"/portal/diary/{occurrence}")
    page.get_by_label(re.compile("How many hours did you sleep")).fill("30")
    page.get_by_role("button", name="Save my diary").click()

    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("This question needs an answer.")
    expect(summary).to_contain_text("Must be between 0 and 24 hours.")
    hours = page.get_by_label(re.compile("How many hours did you sleep"))
    expect(hours).to_have_value("30")
    expect(hours).to_have_attribute("aria-invalid", "true")
    assert failing(run_axe(page)) == []
    snapshot(page, "errors")

    # Midnight passes before the patient sends the corrected answers.
    hours.fill("8")
    clock.freeze(datetime.combine(first + timedelta(days=1), time(0, 5), BERLIN))
    page.get_by_role("button", name="Save my diary").click()
    expect(page.get_by_test_id("diary-message")).to_have_text(
        "The time for this diary is over: it can no longer be filled in."
    )
    assert page.evaluate(DRAFTS) == []  # nothing left to send
    assert _entries(app) == []
    assert failing(run_axe(page)) == []
    snapshot(page, "closed")
