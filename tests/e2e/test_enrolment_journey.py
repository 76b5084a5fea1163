"""A site enrols a patient; the patient signs in on a phone, in German, and sets a password."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.flows import sign_in, url_is
from tests.support.live_server import LiveServer
from tests.support.world import World

UNLABELLED_CONTROLS = """
() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.labels.length === 0)
  .map(el => el.name)
"""


def test_enrolment_to_first_sign_in_on_a_phone(
    page: Page, phone_page: Page, live_server: LiveServer, world: World
) -> None:
    sign_in(page, "coord_berlin", world.password)
    # The main navigation's link: the patient list has a link of the same name.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Enrol a patient").click()
    expect(page).to_have_url(url_is(live_server.url, "/site/patients/new"))
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    expect(page.get_by_label("Patient's time zone")).to_have_value("Europe/Berlin")
    page.get_by_label("Subject number").fill("B1-200")
    page.get_by_label("Status").select_option("enrolled")
    page.get_by_label("Consent signed on").fill("2026-03-01")
    page.get_by_label("Consent form version").fill("v2.0")
    page.get_by_label("Language").select_option("de")
    page.get_by_label("Given name").fill("Greta")
    page.get_by_label("Family name").fill("Neumann")
    page.get_by_label("Date of birth").fill("1961-04-12")
    expect(page.get_by_label("Open a portal account")).to_be_checked()
    page.get_by_role("button", name="Enrol").click()

    secret = page.locator(".flash-secret")
    expect(secret).to_contain_text("temporary password")
    username, temporary = re.search(
        r"username (\S+), temporary password (\S+) \(", secret.inner_text()
    ).groups()
    expect(page.get_by_role("heading", level=1)).to_have_text("Subject B1-200")

    phone = phone_page
    sign_in(phone, username, temporary)
    expect(phone).to_have_url(url_is(live_server.url, "/account/password"))
    expect(phone.locator("html")).to_have_attribute("lang", "de")
    assert phone.evaluate(UNLABELLED_CONTROLS) == []
    phone.get_by_label("Bisheriges Passwort").fill(temporary)
    phone.get_by_label(re.compile(r"^Neues Passwort\s*\*?$")).fill("mein eigenes Passwort")
    phone.get_by_label("Neues Passwort wiederholen").fill("mein eigenes Passwort")
    phone.get_by_role("button", name="Passwort ändern").click()

    expect(phone).to_have_url(url_is(live_server.url, "/portal/"))
    expect(phone.get_by_test_id("home-heading")).to_have_text("Hallo, Greta")
    expect(phone.get_by_text("B1-200")).to_be_visible()
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390
