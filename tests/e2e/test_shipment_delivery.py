"""A delivery of study medicine to Anna's home, followed end to end in the browser.

Set up through the services and the real HTTP interfaces: supply at the central depot, an
order requested by Berlin's coordinator and released with the investigator's signature,
the courier (the simulator, on loopback) booked by the after-commit event, a cold logger
with the kits sending its readings through the device ingestion API. Then the supply
manager follows the shipment on the board while the courier's signed webhooks move it
from booked to delivered: each status on the board and on the shipment's page, the
tracking timeline growing, the temperature chart drawn from the logger's readings, and
never Anna's name or street. Anna confirms on her phone that both kits arrived; the supply
manager's page then shows them dispensed. axe-core checks every page as each of them sees
it, Anna's pages fit her phone, and each page leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect

from logistics.courier.simulator import CourierSimulator
from logistics.shipments.states import ShipmentStatus
from tests.e2e.accessibility import failing, run_axe
from tests.e2e.conftest import PHONE
from tests.e2e.flows import sign_in
from tests.support.clock import TestClock
from tests.support.live_server import LiveServer
from tests.support.shipment_e2e import Trip, booked_delivery, send_readings, shipment_status
from tests.support.world import World

API_KEY = "courier-api-key-e2e"
SECRET = "courier-webhook-secret-e2e"
WEBHOOK = "/api/v1/courier/webhook"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
# What the supply manager must never read: Anna's name, street, postcode, e-mail.
PRIVATE = ("Secretname", "Hidden Street", "10115", "anna@example.org")
ANNA = re.compile(r"\bAnna\b")  # her given name; her subject number "B1-anna" is fine

READING_EVERY = timedelta(minutes=10)
LEG = timedelta(hours=1)
# An hour of readings (one every 10 minutes) before each move of the courier; all of them
# inside the product's 2 to 8 °C.
LEGS = {
    ShipmentStatus.PICKED_UP: [5.0, 5.2, 5.1, 4.9, 5.0, 5.3],  # waiting at the depot
    ShipmentStatus.IN_TRANSIT: [5.6, 6.1, 6.4, 6.8, 7.4, 7.0],
    ShipmentStatus.OUT_FOR_DELIVERY: [6.6, 6.2, 5.8, 5.5, 5.0, 4.6],
    ShipmentStatus.DELIVERED: [4.2, 3.9, 4.1, 4.4, 4.8, 5.0],
}
WHERE = {
    ShipmentStatus.PICKED_UP: "Central depot EU",
    ShipmentStatus.IN_TRANSIT: "Leipzig hub",
    ShipmentStatus.OUT_FOR_DELIVERY: "Berlin",
    ShipmentStatus.DELIVERED: "Berlin",
}
LABEL = {
    ShipmentStatus.BOOKED: "Courier booked",
    ShipmentStatus.PICKED_UP: "Picked up",
    ShipmentStatus.IN_TRANSIT: "In transit",
    ShipmentStatus.OUT_FOR_DELIVERY: "Out for delivery",
    ShipmentStatus.DELIVERED: "Delivered",
}


@pytest.fixture
def courier(app: Flask, clock: TestClock) -> Iterator[CourierSimulator]:
    """The courier's simulator, on the app's clock, configured in the app before the live
    server serves it (the test points its webhook at the live server)."""
    with CourierSimulator(
        api_key=API_KEY, webhook_secret=SECRET, retry_delays=(0.05, 0.1, 0.2), clock=clock
    ) as simulator:
        app.config.update(
            COURIER_NAME="simcourier", COURIER_URL=simulator.url, COURIER_API_KEY=API_KEY,
            COURIER_WEBHOOK_SECRET=SECRET,
        )  # fmt: skip
        yield simulator


def _pseudonymous(page: Page) -> None:
    """Neither the rendered text nor the markup names Anna or her address."""
    html, text = page.content(), page.locator("body").inner_text()
    for secret in PRIVATE:
        assert secret not in html, secret
    assert not ANNA.search(html) and not ANNA.search(text)


def _supply_checked(page: Page) -> None:
    assert failing(run_axe(page)) == []
    _pseudonymous(page)


def _phone_checked(page: Page) -> None:
    """No serious or critical axe violation, and nothing wider than the screen."""
    assert failing(run_axe(page)) == []
    assert page.evaluate(OVERFLOW) <= 0


def _status_tag(scope: Locator) -> Locator:
    return scope.locator("span.tag[class*='status-']")


def _hour_of_readings(
    app: Flask, live_server: LiveServer, trip: Trip, clock: TestClock, celsius: list[float]
) -> None:
    """An hour passes with the kits; the logger sends what it measured."""
    started = clock()
    clock.advance(LEG)
    send_readings(app, live_server.url, trip, celsius, first=started + READING_EVERY)


def _courier_moves(courier: CourierSimulator, trip: Trip, status: ShipmentStatus) -> None:
    """The courier reports a status by its signed webhook, which the platform takes."""
    courier.advance(trip.tracking_number, status.value, location=WHERE[status])
    courier.wait_webhooks()
    body, answered = courier.webhooks_sent[-1]
    assert answered == 200, body


def test_a_supply_manager_follows_a_delivery_and_the_patient_confirms_receipt(
    app: Flask,
    clock: TestClock,
    courier: CourierSimulator,
    world: World,
    live_server: LiveServer,
    page: Page,
    phone_page: Page,
    snapshot: Callable[[Page, str], None],
) -> None:
    start: datetime = clock.freeze()
    courier.webhook_url = live_server.url + WEBHOOK
    trip = booked_delivery(app, world, start)
    assert len(trip.kit_numbers) == 2
    clock.freeze(start + timedelta(minutes=5))
    statuses = list(LEGS)
    # The kits wait at the depot with their logger for the courier's pickup.
    _hour_of_readings(app, live_server, trip, clock, LEGS[statuses[0]])

    # The board: the shipment, booked, by subject number, site and city only.
    sign_in(page, "supply", world.password)
    expect(page).to_have_url(re.compile(r"/supply/shipments$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Shipments")
    row = page.locator(f"[data-testid='shipment-row'][data-shipment='{trip.shipment_id}']")
    expect(_status_tag(row)).to_have_text("Courier booked")
    expect(row).to_contain_text(trip.subject_number)
    expect(row).to_contain_text("B1")
    expect(row).to_contain_text(trip.tracking_number)
    expect(page.get_by_test_id("status-counts")).to_contain_text("Courier booked: 1")
    _supply_checked(page)
    snapshot(page, "board-booked")

    # Its page: booked by the platform, after the order's own steps; the chart so far.
    row.get_by_role("link", name=f"#{trip.shipment_id}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Shipment #{trip.shipment_id}")
    facts = page.get_by_test_id("facts")
    expect(_status_tag(facts)).to_have_text("Courier booked")
    expect(facts).to_contain_text(f"simcourier · tracking number {trip.tracking_number}")
    expect(page.get_by_test_id("release")).to_contain_text("Pi_Berlin")
    events = page.get_by_test_id("tracking-event")
    expect(events.last).to_contain_text("Courier booked")
    expect(events.last).to_contain_text("platform")
    before = events.count()
    kits = page.get_by_test_id("kit")
    expect(kits).to_have_count(2)
    for n, number in enumerate(trip.kit_numbers):
        expect(kits.nth(n)).to_contain_text(number)
        expect(kits.nth(n)).to_contain_text("reserved")
    expect(page.get_by_test_id("arm")).to_have_count(0)  # blinded
    expect(page.locator("[data-testid='temperature-svg'] desc")).to_contain_text("6 readings")
    _supply_checked(page)
    snapshot(page, "detail-booked")
    detail_url = page.url

    # The courier moves it, by webhook; each time the board and the page show where it is.
    for n, status in enumerate(statuses):
        if n:
            _hour_of_readings(app, live_server, trip, clock, LEGS[status])
        _courier_moves(courier, trip, status)
        page.get_by_role("link", name="All shipments").click()
        expect(_status_tag(row)).to_have_text(LABEL[status])
        row.get_by_role("link", name=f"#{trip.shipment_id}").click()
        expect(_status_tag(facts)).to_have_text(LABEL[status])
        expect(events).to_have_count(before + n + 1)
        latest = events.last
        expect(latest).to_contain_text(LABEL[status])
        expect(latest).to_contain_text("courier (webhook)")
        expect(latest).to_contain_text(WHERE[status])
        expect(latest).to_have_attribute("data-outcome", "applied")
        _pseudonymous(page)
    assert shipment_status(app, trip.shipment_id) is ShipmentStatus.DELIVERED
    expect(page).to_have_url(detail_url)
    expect(facts).to_contain_text("Delivered")
    for n in range(2):
        expect(kits.nth(n)).to_contain_text("delivered")

    # The temperature chart: an image with its readings, inside the allowed band.
    chart = page.get_by_role("img", name=re.compile(rf"^Shipment #{trip.shipment_id}: temperature"))
    expect(chart).to_be_visible()
    all_readings = [c for leg in LEGS.values() for c in leg]
    description = chart.locator("desc")
    expect(description).to_contain_text(f"{len(all_readings)} readings from ")
    expect(description).to_contain_text(
        f"lowest {min(all_readings):g} °C, highest {max(all_readings):g} °C"
    )
    expect(description).to_contain_text("No excursion.")
    points = chart.locator("polyline.readings").get_attribute("points") or ""
    assert len(points.split()) == len(all_readings)
    expect(chart.locator("rect.allowed-range")).to_have_count(1)
    expect(chart.locator("circle.out-of-range")).to_have_count(0)
    expect(page.locator("[data-flag='excursion']")).to_have_count(0)
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 150
    _supply_checked(page)
    snapshot(page, "detail-delivered")
    page.get_by_role("link", name="All shipments").click()
    expect(page.get_by_test_id("status-counts")).to_contain_text("Delivered: 1")
    _supply_checked(page)
    snapshot(page, "board-delivered")

    # Anna, on her phone: the delivery has arrived; she says both kits did.
    clock.advance(timedelta(minutes=20))
    assert phone_page.viewport_size == PHONE
    sign_in(phone_page, "anna", world.password)
    phone_page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="My deliveries"
    ).click()
    expect(phone_page.get_by_role("heading", level=1)).to_have_text("Your deliveries")
    card = phone_page.get_by_test_id("delivery-card")
    expect(card).to_have_count(1)
    expect(card.get_by_test_id("delivery-status")).to_have_text("Delivered")
    for number in trip.kit_numbers:
        expect(card).to_contain_text(number)
    expect(card).to_contain_text("Please tell us what arrived.")
    _phone_checked(phone_page)
    snapshot(phone_page, "patient-deliveries")

    card.get_by_role("link", name=re.compile("^Confirm what arrived")).click()
    expect(phone_page.get_by_role("heading", level=1)).to_have_text(
        "Delivery of your study medicine"
    )
    where = phone_page.get_by_test_id("delivery-timeline")
    for said in ("Packed, waiting for the courier", "On its way", "Arriving today", "Delivered"):
        expect(where).to_contain_text(said)
    form = phone_page.get_by_test_id("confirm-form")
    for number in trip.kit_numbers:
        kit = form.get_by_role("group", name=f"Kit {number}")
        kit.get_by_role("radio", name="I have it, it is fine").check()
    _phone_checked(phone_page)
    snapshot(phone_page, "patient-confirm")
    form.get_by_role("button", name="Confirm").click()
    expect(phone_page.locator(".flash")).to_contain_text("We have noted what you received.")
    expect(phone_page.get_by_test_id("confirm-form")).to_have_count(0)
    confirmed = phone_page.get_by_test_id("delivery-card")
    expect(confirmed).to_contain_text("You confirmed this delivery. Thank you.")
    for number in trip.kit_numbers:
        expect(confirmed).to_contain_text(f"{number} (Received)")
    _phone_checked(phone_page)
    snapshot(phone_page, "patient-confirmed")

    # The supply manager's page: receipt confirmed, both kits dispensed.
    page.goto(detail_url)
    expect(facts).to_contain_text("Receipt confirmed")
    expect(kits).to_have_count(2)
    for n, number in enumerate(trip.kit_numbers):
        expect(kits.nth(n)).to_contain_text(number)
        expect(kits.nth(n).locator("td").nth(3)).to_have_text("dispensed")
        expect(kits.nth(n).locator("td").nth(4)).to_have_text("received")
    _supply_checked(page)
    snapshot(page, "detail-dispensed")
