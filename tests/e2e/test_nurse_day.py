"""A mobile nurse works a home visit on her phone: her day shows the route in order, the
first visit opens with the patient's address and directions; she accepts, checks in (the
phone gives its location), ticks every procedure, records vitals (a reading out of range
is refused and explained, nothing typed is lost), a sample and its hand-over, and checks
out. The site coordinator's board then shows the visit done, and its record shows who
did what, where and when. axe-core checks every page as each of them sees it, the nurse's
pages fit the phone's width, and each page leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Geolocation, Page, expect
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.timeutil import to_local, utcnow
from logistics.dispatch import runs
from logistics.dispatch.models import HomeVisit, HomeVisitStatus, PatientHomeLocation
from tests.e2e.accessibility import failing, run_axe
from tests.e2e.conftest import PHONE
from tests.e2e.flows import sign_in
from tests.support.clock import TestClock
from tests.support.dispatch import FAST, add_nurse, network, plan_days
from tests.support.live_server import LiveServer
from tests.support.world import World

BERLIN = "Europe/Berlin"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _plan_today(app: Flask) -> list[HomeVisit]:
    """Plan today; her visits in route order."""
    plan_days(app)
    with app.app_context():
        s = db.session()
        visits = list(s.scalars(select(HomeVisit).order_by(HomeVisit.planned_start, HomeVisit.id)))
        for v in visits:
            _ = (v.patient.subject_number, v.planned_visit.name)
        s.expunge_all()
        db.session.remove()
        return visits


def _stored(app: Flask, visit_id: int) -> HomeVisit:
    with app.app_context():
        visit = db.session.get(HomeVisit, visit_id)
        assert visit is not None
        db.session.expunge(visit)
        db.session.remove()
        return visit


def _at_the_door(app: Flask, patient_id: int) -> Geolocation:
    """Where the phone says it is: a few metres from the patient's home."""
    with app.app_context():
        home = db.session.get(PatientHomeLocation, patient_id)
        assert home is not None
        db.session.remove()
        return {"latitude": round(home.latitude + 0.0001, 6), "longitude": home.longitude}


def _checked(page: Page) -> None:
    """No serious or critical axe violation, and nothing wider than the screen."""
    assert failing(run_axe(page)) == []
    assert page.evaluate(OVERFLOW) <= 0


def test_a_nurse_works_her_first_visit_on_a_phone_and_the_site_sees_it_done(
    app: Flask,
    phone_page: Page,
    page: Page,
    live_server: LiveServer,
    world: World,
    clock: TestClock,
    snapshot: Callable[[Page, str], None],
) -> None:
    local = to_local(utcnow(), BERLIN)
    clock.freeze(local.replace(hour=8, minute=0, second=0, microsecond=0))
    net = network(app, world, patients=2)
    add_nurse(app, net, "ada", home=(52.51, 13.40))
    visits = _plan_today(app)
    assert [v.nurse_id for v in visits] == [net.nurses["ada"]] * 3
    first = visits[0]
    assert first.planned_start is not None
    staff_page, page = page, phone_page
    assert page.viewport_size == PHONE

    # Her day: three stops in route order, each a link to the visit.
    sign_in(page, "ada", world.password)
    page.goto("/nurse/visits")
    expect(page.get_by_role("heading", level=1)).to_have_text("My visits")
    route = page.get_by_test_id("route")
    expect(route.get_by_role("heading", level=2)).to_contain_text("Today,")
    stops = route.get_by_test_id("stop")
    expect(stops).to_have_count(3)
    for n, visit in enumerate(visits):
        assert visit.planned_start is not None
        start = to_local(visit.planned_start, BERLIN).strftime("%H:%M")
        expect(stops.nth(n)).to_contain_text(start)
        expect(stops.nth(n)).to_contain_text(visit.patient.subject_number)
        expect(stops.nth(n)).to_contain_text("new: accept or decline")
    expect(stops.first).to_contain_text(first.planned_visit.name)
    expect(stops.first).to_contain_text(f"{first.duration_minutes} min")
    expect(route.get_by_test_id("route-summary")).to_contain_text("3 visits in the order")
    _checked(page)
    snapshot(page, "day")

    # The first visit: the address with directions (today is the visit's day).
    stops.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(first.planned_visit.name)
    expect(page.get_by_role("heading", level=1)).to_contain_text(first.patient.subject_number)
    expect(page.get_by_test_id("address-line")).to_have_text("1 Hidden Street, 10115 Berlin")
    directions = page.get_by_role("link", name=re.compile("^Directions"))
    expect(directions).to_have_attribute("href", re.compile(r"^https://www\.openstreetmap\.org/"))
    expect(page.get_by_text("Secretname")).to_have_count(0)
    _checked(page)
    snapshot(page, "visit-new")

    page.get_by_role("button", name="Accept").click()
    expect(page.locator(".flash")).to_contain_text("You accepted")
    expect(page.get_by_test_id("visit-status")).to_have_text("accepted")
    # The phone tells where it is; the check-in records it.
    page.context.grant_permissions(["geolocation"], origin=live_server.url)
    door = _at_the_door(app, first.patient_id)
    page.context.set_geolocation(door)
    clock.freeze(first.planned_start)
    page.get_by_role("button", name="Check in").click()
    expect(page.locator(".flash")).to_contain_text("with your location")
    expect(page.get_by_test_id("visit-status")).to_have_text("in progress")
    _checked(page)
    snapshot(page, "checked-in")

    # Every procedure of the checklist, one tap each.
    procedures = page.get_by_test_id("procedures")
    ticks = procedures.get_by_role("button", name=re.compile("^Mark done"))
    expect(ticks).to_have_count(len(first.procedures))
    for _ in first.procedures:
        ticks.first.click()
        expect(page.locator(".flash")).to_contain_text("Done:")
    expect(ticks).to_have_count(0)
    expect(procedures).to_contain_text(f"{len(first.procedures)} of {len(first.procedures)} done")

    # Vitals: a heart rate no one has is refused at its field, and nothing typed is lost.
    clock.advance(timedelta(minutes=10))
    page.get_by_label("Blood pressure, systolic").fill("128")
    page.get_by_label("Blood pressure, diastolic").fill("82")
    page.get_by_label("Heart rate").fill("720")
    page.get_by_label("Temperature").fill("36,8")
    page.get_by_role("textbox", name="Notes").fill("Calm and well; site of the draw fine.")
    page.get_by_role("button", name="Save vitals and notes").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Heart rate: Between 20 and 250 bpm.")
    heart = page.get_by_label("Heart rate")
    expect(heart).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Blood pressure, systolic")).to_have_value("128")
    expect(page.get_by_role("textbox", name="Notes")).to_have_value(
        "Calm and well; site of the draw fine."
    )
    assert _stored(app, first.id).vitals == {}
    _checked(page)
    snapshot(page, "vitals-refused")

    summary.get_by_role("link").click()
    expect(heart).to_be_focused()
    heart.fill("72")
    page.get_by_role("button", name="Save vitals and notes").click()
    expect(page.locator(".flash")).to_contain_text("Vitals and notes saved.")
    expect(page.get_by_label("Heart rate")).to_have_value("72")

    page.get_by_label("Barcode").fill("TUBE-0042")
    page.get_by_label("Kind of sample").fill("serum tube")
    page.get_by_role("button", name="Record the sample").click()
    expect(page.get_by_test_id("sample")).to_contain_text("Waiting for the courier.")
    page.get_by_role("textbox", name="Courier", exact=True).fill("MedCourier")
    page.get_by_role("button", name="Hand over 1 sample").click()
    expect(page.get_by_test_id("sample")).to_contain_text("Handed to MedCourier")
    _checked(page)
    snapshot(page, "before-check-out")

    clock.advance(timedelta(minutes=15))
    page.get_by_role("button", name="Check out").click()
    expect(page.locator(".flash")).to_contain_text("is completed")
    expect(page.get_by_test_id("visit-status")).to_have_text("completed")
    expect(page.get_by_role("button", name="Check out")).to_have_count(0)
    stored = _stored(app, first.id)
    assert stored.status == HomeVisitStatus.COMPLETED
    assert stored.checked_in_lat == door["latitude"] and stored.checked_in_lon == door["longitude"]
    _checked(page)
    snapshot(page, "completed")

    page.get_by_role("link", name="My visits").first.click()
    expect(stops.first).to_contain_text("completed")
    expect(stops.nth(1)).to_contain_text("new: accept or decline")

    # The site coordinator: the board shows it done on Ada's row, the record what was done.
    sign_in(staff_page, "coord_berlin", world.password)
    staff_page.goto("/dispatch")
    expect(staff_page.get_by_role("heading", level=1)).to_have_text("Home visits")
    row = staff_page.get_by_test_id("timeline-row").filter(has_text="Ada")
    blocks = row.get_by_test_id("timeline-visit")
    expect(blocks).to_have_count(3)
    done = blocks.filter(has_text=first.patient.subject_number)
    expect(done).to_contain_text("done")
    expect(staff_page.get_by_test_id("no-attention")).to_be_visible()
    assert failing(run_axe(staff_page)) == []
    snapshot(staff_page, "board")

    done.click()
    expect(staff_page.get_by_role("heading", level=1)).to_contain_text(first.planned_visit.name)
    expect(staff_page.get_by_test_id("visit-status")).to_have_text("completed")
    expect(staff_page.get_by_test_id("record-nurse")).to_contain_text("Ada")
    expect(staff_page.get_by_test_id("record-investigator")).to_have_text("Pi_Berlin")
    expect(staff_page.get_by_test_id("record-check-in")).to_contain_text(
        "m from the patient's home"
    )
    expect(staff_page.get_by_test_id("record-vitals")).to_contain_text("72 bpm")
    expect(staff_page.get_by_test_id("record-samples")).to_contain_text("MedCourier")
    expect(staff_page.get_by_test_id("record-procedures")).not_to_contain_text("not done")
    expect(staff_page.get_by_text("Secretname")).to_have_count(0)
    assert failing(run_axe(staff_page)) == []
    snapshot(staff_page, "record")


def test_a_dispatcher_pins_a_visit_and_watches_the_replan_finish(
    app: Flask,
    page: Page,
    live_server: LiveServer,
    world: World,
    clock: TestClock,
    snapshot: Callable[[Page, str], None],
) -> None:
    local = to_local(utcnow(), BERLIN)
    clock.freeze(local.replace(hour=8, minute=0, second=0, microsecond=0))
    net = network(app, world, patients=1)
    add_nurse(app, net, "novice", skills=("vital_signs",))
    _plan_today(app)  # nobody can draw blood: both visits need attention
    add_nurse(app, net, "ada", home=(52.51, 13.40))

    sign_in(page, "coord_berlin", world.password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Home visits").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Home visits")
    waiting = page.get_by_test_id("attention-visit")
    expect(waiting).to_have_count(2)
    expect(waiting.first.get_by_test_id("attention-reason")).to_contain_text("no qualified nurse")
    expect(page.get_by_test_id("timeline-row")).to_have_count(2)  # Ada and Novice, no visits
    assert failing(run_axe(page)) == []
    snapshot(page, "board-attention")

    waiting.first.get_by_label("Pin to").select_option(label="Ada")
    waiting.first.get_by_role("button", name=re.compile("^Pin")).click()
    expect(page.locator(".flash")).to_contain_text("is pinned to Ada")
    expect(waiting.first.get_by_test_id("pinned")).to_have_text("Pinned to Ada.")

    # Too many days: refused and explained, the day kept; then a run for today.
    replan = page.get_by_test_id("replan")
    replan.get_by_label("Days").fill("9")
    replan.get_by_role("button", name="Re-plan now").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Days: Plan 1 to 7 days at a time.")
    expect(replan.get_by_label("Days")).to_have_value("9")
    assert failing(run_axe(page)) == []
    snapshot(page, "replan-refused")
    replan.get_by_label("Days").fill("1")
    replan.get_by_role("button", name="Re-plan now").click()
    expect(page.locator(".flash")).to_contain_text("is queued for")
    expect(page.get_by_test_id("run-status")).to_have_text("waiting")
    expect(page.get_by_test_id("runs-active")).to_be_visible()
    assert failing(run_axe(page)) == []
    snapshot(page, "run-queued")

    # The scheduler runs it; the page sees it finish without being reloaded.
    with app.app_context():
        assert runs.run_queued(db.session(), utcnow, FAST) == 1
        db.session.remove()
    expect(page.get_by_test_id("run-status")).to_have_text("done", timeout=15_000)
    expect(page.get_by_test_id("run-summary")).to_contain_text("2")
    changed = page.get_by_role("link", name="Show the new plan")
    expect(changed).to_be_visible()
    changed.click()
    ada = page.get_by_test_id("timeline-row").filter(has_text="Ada")
    expect(ada.get_by_test_id("timeline-visit")).to_have_count(2)
    expect(page.get_by_test_id("no-attention")).to_be_visible()
    assert failing(run_axe(page)) == []
    snapshot(page, "board-replanned")
