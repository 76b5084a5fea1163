"""Sign-in and role homes in a real browser: each role lands on its own home, every other
role's home answers with the 403 page, and a site sees only its own patients."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.flows import ROLE_HOMES, is_login_post, sign_in, url_is
from tests.support.live_server import LiveServer
from tests.support.world import World

pytestmark = pytest.mark.e2e

# user -> (role, label shown in the header)
ROLE_USERS = {
    "anna": ("patient", "Patient"),
    "nurse": ("nurse", "Mobile nurse"),
    "coord_berlin": ("site_staff", "Site staff"),
    "pi_berlin": ("investigator", "Investigator"),
    "supply": ("supply_manager", "Supply manager"),
    "manager": ("trial_manager", "Trial manager"),
    "admin": ("admin", "Administrator"),
}
# Other roles' homes a role works on too: the investigator oversees the site's patient list.
ALSO_REACHES = {"investigator": {ROLE_HOMES["site_staff"]}}
WRONG_CREDENTIALS = "The username or password is not correct."


@pytest.mark.parametrize("username", list(ROLE_USERS))
def test_role_lands_on_its_home_and_is_refused_every_other_home(
    page: Page,
    live_server: LiveServer,
    world: World,
    username: str,
    snapshot: Callable[[Page, str], None],
) -> None:
    role, label = ROLE_USERS[username]
    own_home = ROLE_HOMES[role]

    answer = sign_in(page, username, world.password)

    assert answer.status == 302, f"sign-in answered {answer.status}"
    expect(page).to_have_url(url_is(live_server.url, own_home))
    expect(page.get_by_test_id("home-heading")).to_be_visible()
    expect(page.get_by_test_id("who")).to_have_text(re.compile(rf"·\s*{re.escape(label)}\s*$"))
    expect(page.get_by_test_id("error-page")).to_have_count(0)
    snapshot(page, "home")

    for other_home in sorted(set(ROLE_HOMES.values()) - {own_home} - ALSO_REACHES.get(role, set())):
        response = page.goto(other_home)
        assert response is not None
        assert response.status == 403, f"{username} on {other_home}: {response.status}"
        expect(page).to_have_url(url_is(live_server.url, other_home))
        error = page.get_by_test_id("error-page")
        expect(error).to_be_visible()
        expect(error.get_by_role("heading", level=1)).to_have_text("Not allowed")
        expect(page.get_by_test_id("home-heading")).to_have_count(0)
        # Still signed in as the same person: a refusal is no sign-out.
        expect(page.get_by_test_id("who")).to_contain_text(label)


def test_wrong_password_shows_inline_error_using_the_keyboard_only(
    page: Page, live_server: LiveServer, world: World
) -> None:
    page.goto("/login")
    username = page.get_by_label("Username")
    password = page.get_by_label("Password")

    username.focus()
    page.keyboard.type("coord_berlin")
    page.keyboard.press("Tab")
    expect(password).to_be_focused()
    page.keyboard.type("not the password")
    with page.expect_response(is_login_post) as answer:
        page.keyboard.press("Enter")
    page.wait_for_load_state()

    assert answer.value.status == 401
    expect(page).to_have_url(url_is(live_server.url, "/login"))
    # The error summary says what went wrong and has the focus, so it is read out first.
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(WRONG_CREDENTIALS)
    expect(alert).to_be_focused()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The username is kept for the next try, the password never is.
    expect(page.get_by_label("Username")).to_have_value("coord_berlin")
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_test_id("who")).to_have_count(0)

    # The same keyboard path with the right password signs in.
    page.get_by_label("Password").focus()
    page.keyboard.type(world.password)
    with page.expect_response(is_login_post) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 302
    expect(page).to_have_url(url_is(live_server.url, ROLE_HOMES["site_staff"]))
    expect(page.get_by_test_id("home-heading")).to_be_visible()


def test_phone_login_has_labels_and_patient_home_does_not_scroll_sideways(
    phone_page: Page, live_server: LiveServer, world: World
) -> None:
    page = phone_page
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert width == 390

    page.goto("/login")
    expect(page.get_by_label("Username")).to_have_attribute("name", "username")
    expect(page.get_by_label("Password")).to_have_attribute("type", "password")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width

    sign_in(page, "anna", world.password)
    expect(page).to_have_url(url_is(live_server.url, ROLE_HOMES["patient"]))
    expect(page.get_by_test_id("home-heading")).to_be_visible()
    expect(page.get_by_text("B1-anna")).to_be_visible()
    scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll_width <= width, f"patient home is {scroll_width}px wide on a {width}px phone"


def test_site_staff_sees_only_patients_of_their_site(
    page: Page, live_server: LiveServer, world: World
) -> None:
    kenji_id = world.patients["kenji"].id

    sign_in(page, "coord_berlin", world.password)
    expect(page).to_have_url(url_is(live_server.url, "/site"))
    patients = page.locator("main")
    expect(patients.get_by_role("link", name="B1-anna")).to_be_visible()
    expect(page.get_by_text("T1-kenji")).to_have_count(0)

    # Anna's record opens from the list.
    page.get_by_role("link", name="B1-anna").click()
    expect(page.get_by_role("heading", name="Subject B1-anna")).to_be_visible()
    expect(page.get_by_test_id("patient-name")).to_have_text("Anna Secretname")

    # Kenji belongs to Tokyo: his record does not exist for Berlin staff, even by URL.
    response = page.goto(f"/site/patients/{kenji_id}")
    assert response is not None
    assert response.status == 404
    error = page.get_by_test_id("error-page")
    expect(error).to_be_visible()
    expect(error.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_text("Kenji")).to_have_count(0)
