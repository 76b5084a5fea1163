"""Site staff and administrators at work in the browser: find a patient and end their
study on a phone, find an account and lift its sign-in lockout."""

from __future__ import annotations

import re

from flask import Flask
from playwright.sync_api import Page, expect

from tests.e2e.flows import sign_in, url_is
from tests.support.clients import login
from tests.support.live_server import LiveServer
from tests.support.world import World


def test_a_coordinator_finds_a_patient_and_records_the_end_of_their_study_on_a_phone(
    phone_page: Page, live_server: LiveServer, world: World
) -> None:
    page = phone_page
    sign_in(page, "coord_berlin", world.password)
    expect(page).to_have_url(url_is(live_server.url, "/site"))
    page.get_by_label("Subject number or name").fill("secretname")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("patient-count")).to_have_text("1 patient found.")
    card = page.get_by_test_id("patient-list").get_by_role("listitem")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Anna Secretname")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390

    card.get_by_role("link", name="B1-anna").click()
    expect(page.get_by_test_id("patient-status")).to_have_text("Enrolled")
    page.get_by_label("New status").select_option("completed")
    page.get_by_label("Took effect on").fill("2026-03-01")
    page.get_by_role("button", name="Change status").click()
    # No reason: the summary at the top names it and the status stays.
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Say why the status changes.")
    page.locator("#status-reason").fill("Last visit done")
    page.get_by_label("New status").select_option("completed")
    page.get_by_label("Took effect on").fill("2026-03-01")
    page.get_by_role("button", name="Change status").click()
    expect(page.get_by_test_id("patient-status")).to_have_text("Completed")
    expect(page.get_by_text("2026-03-01: Enrolled → Completed — Last visit done")).to_be_visible()
    expect(page.get_by_text("Completed is final")).to_be_visible()
    first_action = page.get_by_test_id("trail-action").first
    expect(first_action).to_contain_text("Change status of patient B1-anna to Completed")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390


def test_an_administrator_finds_a_locked_account_and_unlocks_it(
    app: Flask, page: Page, live_server: LiveServer, world: World
) -> None:
    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_MAX_FAILURES_PER_USERNAME=2)
    guesser = app.test_client()
    for _ in range(2):
        login(guesser, "nurse", "not the password")

    sign_in(page, "admin", world.password)
    page.get_by_label("Role").select_option("nurse")
    page.get_by_role("button", name="Find").click()
    row = page.get_by_test_id("account-list").get_by_role("listitem")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("locked")).to_have_text("Sign-in locked")
    row.get_by_role("link", name="nurse").click()
    expect(page.get_by_test_id("lockout")).to_contain_text("after 2 failed attempts")
    page.locator("#unlock-reason").fill("Called in and was identified")
    page.get_by_role("button", name="Unlock sign-in").click()
    expect(page.locator(".flash-success")).to_have_text("nurse may sign in again.")
    expect(page.get_by_test_id("lockout")).to_have_text(re.compile(r"^Sign-in is not held back"))
    assert login(guesser, "nurse", world.password).status_code == 302
