"""A wristband stops sending; the device-health job raises an alert, and the site's staff
see it on their home page, acknowledge it, and read the patient's data as charts and
tables. The trial manager sees each site's data coverage."""

from __future__ import annotations

from datetime import timedelta

import requests
from flask import Flask
from playwright.sync_api import Page, expect

from dct_platform.scheduler import run_job
from dct_platform.timeutil import utcnow
from tests.e2e.accessibility import failing, run_axe
from tests.e2e.flows import sign_in
from tests.support.devices import issue_wearable
from tests.support.live_server import LiveServer
from tests.support.world import World


def _history(live_server: LiveServer, headers: dict[str, str]) -> None:
    """Two days of data that stopped three days ago: a unit gone silent."""
    now = utcnow()
    readings: list[dict[str, object]] = []
    for i in range(2 * 24 * 6):
        at = now - timedelta(days=3, minutes=10 * i)
        readings.append({"metric": "heart_rate", "value": 60 + (i * 7) % 35,
                         "unit": "beats/min", "time": at.isoformat()})  # fmt: skip
        if i % 3 == 0:
            readings.append({"metric": "step_count", "value": (i * 37) % 900, "unit": "steps",
                             "start": at.isoformat(),
                             "end": (at + timedelta(minutes=15)).isoformat()})  # fmt: skip
    answer = requests.post(
        f"{live_server.url}/api/v1/devices/readings",
        headers=headers,
        json={"readings": readings},
        timeout=30,
    )
    assert answer.status_code == 200 and not answer.json()["rejected"], answer.text


def test_a_silent_wristband_alerts_its_site_staff(
    app: Flask, page: Page, live_server: LiveServer, world: World, snapshot: object
) -> None:
    band = issue_wearable(app, world.patients["anna"].id, serial="BAND-0042", issued_days_ago=6)
    _history(live_server, band.headers)
    assert run_job(app, "devices.health")  # the scheduled job, as the scheduler runs it

    sign_in(page, "coord_berlin", world.password)
    panel = page.get_by_test_id("device-alerts-panel")
    expect(panel).to_contain_text("No data")
    expect(panel).to_contain_text("B1-anna")
    expect(panel).to_contain_text("No data from device BAND-0042 since")
    snapshot(page, "site-home")  # type: ignore[operator]

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Device alerts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Device alerts")
    assert failing(run_axe(page)) == []
    page.get_by_label("Note (optional)").fill("Called Anna: the band was in a drawer")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".flash-success")).to_contain_text("acknowledged")
    expect(page.get_by_test_id("device-alerts")).to_contain_text("the band was in a drawer")
    snapshot(page, "alerts")  # type: ignore[operator]

    page.get_by_role("link", name="Subject B1-anna").click()
    devices = page.get_by_test_id("patient-devices")
    expect(devices).to_contain_text("BAND-0042")
    chart = devices.get_by_role(
        "img", name="Hours with data on each of the last 14 days", exact=False
    )
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.naturalWidth") > 0  # the SVG decoded and drew
    devices.get_by_role("link", name="See the readings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Readings of subject B1-anna")
    expect(page.get_by_test_id("readings-table")).to_contain_text("BAND-0042")
    assert failing(run_axe(page)) == []
    snapshot(page, "readings-heart-rate")  # type: ignore[operator]
    page.get_by_label("Measurement").select_option(label="Step count")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("table", name="Step count per day")).to_be_visible()
    snapshot(page, "readings-steps")  # type: ignore[operator]


def test_the_trial_manager_sees_coverage_by_site(
    app: Flask, page: Page, live_server: LiveServer, world: World, snapshot: object
) -> None:
    band = issue_wearable(app, world.patients["anna"].id, issued_days_ago=6)
    _history(live_server, band.headers)
    sign_in(page, "manager", world.password)
    coverage = page.get_by_test_id("site-coverage")
    expect(coverage).to_contain_text("B1 · Berlin")
    rows = coverage.locator("tbody tr")
    expect(rows.first).to_contain_text("1")  # Berlin: one patient wears a device
    assert failing(run_axe(page)) == []
    snapshot(page, "trial-coverage")  # type: ignore[operator]
