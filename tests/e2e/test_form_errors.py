"""A form that comes back with errors puts an error summary at its top and gives it the
focus, with or without JavaScript; the summary links to each field in error. Fields name
their hint and error in aria-describedby, and only those that exist."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.accessibility import failing, run_axe
from tests.e2e.conftest import DESKTOP, PHONE, TIMEOUT_MS
from tests.e2e.flows import is_login_post, sign_in, url_is
from tests.support.live_server import LiveServer
from tests.support.world import World

SUMMARY = "[data-error-summary]"
IN_VIEW = """
el => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }
"""


@pytest.fixture
def page_without_javascript(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A browser with JavaScript off: what autofocus and plain links do on their own."""
    context = browser.new_context(
        base_url=live_server.url, viewport=DESKTOP, java_script_enabled=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_failed_sign_in_focuses_the_summary_without_javascript(
    page_without_javascript: Page, live_server: LiveServer, world: World
) -> None:
    page = page_without_javascript
    page.goto("/login")
    page.get_by_label("Username").fill("coord_berlin")
    page.get_by_label("Password").fill("not the password")
    with page.expect_response(is_login_post) as answer:
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

    assert answer.value.status == 401
    summary = page.locator(SUMMARY)
    expect(summary).to_contain_text("There is a problem")
    expect(summary).to_contain_text("The username or password is not correct.")
    # autofocus alone moved the focus: no script ran on this page.
    expect(summary).to_be_focused()


def test_empty_sign_in_links_each_field_in_error(
    page: Page, live_server: LiveServer, world: World
) -> None:
    page.goto("/login")
    with page.expect_response(is_login_post) as answer:
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

    assert answer.value.status != 302
    summary = page.locator(SUMMARY)
    expect(summary).to_be_focused()
    links = summary.get_by_role("link")
    expect(links).to_have_count(2)
    expect(links.first).to_have_attribute("href", "#username")
    expect(links.first).to_contain_text("Username")
    expect(links.last).to_have_attribute("href", "#password")

    # Each field names its own error, and nothing else: the field has no hint.
    username = page.get_by_label("Username")
    expect(username).to_have_attribute("aria-invalid", "true")
    expect(username).to_have_attribute("aria-describedby", "username-error")
    expect(username).to_have_accessible_description("This field is required.")

    links.last.click()
    expect(page.get_by_label("Password")).to_be_focused()
    assert failing(run_axe(page)) == []


def test_identity_error_at_the_foot_of_a_long_page_is_summarised_on_top(
    page: Page, live_server: LiveServer, world: World, snapshot: Callable[[Page, str], None]
) -> None:
    """The reason for a correction is the last field of a long form: the summary at the
    form's top takes the focus and leads to it."""
    anna = world.patients["anna"].id
    sign_in(page, "coord_berlin", world.password)
    page.goto(f"/site/patients/{anna}")
    # Hints are described, fields without hint or error describe nothing at all.
    expect(page.locator('[aria-describedby="None"]')).to_have_count(0)
    expect(page.get_by_label("Given name")).not_to_have_attribute("aria-describedby", "")
    assert page.get_by_label("Given name").get_attribute("aria-describedby") is None
    expect(page.get_by_label("Reason for the change")).to_have_attribute(
        "aria-describedby", "reason-hint"
    )

    page.get_by_label("Email").fill("anna.new@example.org")
    page.get_by_role("button", name="Save personal data").click()
    expect(page).to_have_url(url_is(live_server.url, f"/site/patients/{anna}/identity"))

    personal = page.locator("section.card", has=page.get_by_role("heading", name="Personal data"))
    summary = personal.locator(SUMMARY)
    expect(summary).to_be_focused()
    assert summary.evaluate(IN_VIEW), "the focused summary is scrolled into view"
    reason = page.get_by_label("Reason for the change")
    assert not reason.evaluate(IN_VIEW), "the test needs the field far below the summary"
    # The field names both its error and its hint; the error comes first.
    expect(reason).to_have_attribute("aria-describedby", "reason-error reason-hint")
    expect(reason).to_have_accessible_description(
        "required for a correction Required when you correct data already recorded."
    )
    snapshot(page, "summary")

    link = summary.get_by_role("link", name="Reason for the change: required for a correction")
    link.click()
    expect(reason).to_be_focused()
    # Its label is in view too, not scrolled off above the field.
    assert page.locator("label[for=reason]").evaluate(IN_VIEW)
    assert failing(run_axe(page)) == []

    reason.fill("Patient gave a new address")
    page.get_by_role("button", name="Save personal data").click()
    expect(page.locator(".flash-success")).to_have_text("Personal data saved.")
    expect(page.locator(SUMMARY)).to_have_count(0)


def test_patient_sees_the_summary_in_japanese_on_a_phone(
    phone_page: Page, live_server: LiveServer, world: World, snapshot: Callable[[Page, str], None]
) -> None:
    """Settings saved in a second tab make the first tab's form outdated: the summary says
    so, in the patient's language, and takes the focus."""
    page = phone_page
    assert page.viewport_size == PHONE
    sign_in(page, "kenji", world.password)
    page.goto("/portal/profile")
    page.get_by_label("Language").select_option("ja")
    page.locator("main").get_by_role("button").click()
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    page.goto("/portal/profile")

    other_tab = page.context.new_page()
    other_tab.goto("/portal/profile")
    other_tab.get_by_label("タイムゾーン").select_option("Asia/Seoul")
    other_tab.locator("main").get_by_role("button").click()
    expect(other_tab.get_by_label("タイムゾーン")).to_have_value("Asia/Seoul")
    other_tab.close()

    page.locator("main").get_by_role("button").click()
    summary = page.locator(SUMMARY)
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("問題があります")
    snapshot(page, "ja")
    assert failing(run_axe(page)) == []
