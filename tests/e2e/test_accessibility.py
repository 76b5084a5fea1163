"""Every page each role reaches, as that role sees it on a phone and on a desktop: axe-core
finds no serious or critical violation, every aria-describedby points at something, every
scrolling table can be reached with the keyboard, and a screenshot of each page is left in
tests/e2e/screenshots/ to look at. The patient's pages also fit a phone's width without
scrolling sideways."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from dct_platform.extensions import db
from dct_platform.models import Patient, User
from dct_platform.services import patients as patient_service
from tests.e2e.accessibility import KnownException, Violation, failing, run_axe
from tests.e2e.conftest import DESKTOP, PHONE, screenshot_path
from tests.e2e.flows import ROLE_HOMES, reachable_pages, sign_in, url_is
from tests.support.clock import TestClock
from tests.support.live_server import LiveServer
from tests.support.world import World


@dataclass(frozen=True)
class Person:
    role: str  # names the screenshots
    username: str
    home: str
    language: str | None = None  # a patient's language, chosen on their own profile page


PEOPLE = [
    Person("patient", "anna", ROLE_HOMES["patient"]),
    # Kenji reads the portal in Japanese: the CJK text must render, wrap and fit too.
    Person("patient-ja", "kenji", ROLE_HOMES["patient"], language="ja"),
    Person("nurse", "nurse", ROLE_HOMES["nurse"]),
    Person("site_staff", "coord_berlin", ROLE_HOMES["site_staff"]),
    Person("investigator", "pi_berlin", ROLE_HOMES["investigator"]),
    Person("supply_manager", "supply", ROLE_HOMES["supply_manager"]),
    Person("trial_manager", "manager", ROLE_HOMES["trial_manager"]),
    Person("admin", "admin", ROLE_HOMES["admin"]),
]
PATIENTS = [p for p in PEOPLE if p.home == ROLE_HOMES["patient"]]
SIZES = {"phone": ("phone_page", PHONE), "desktop": ("page", DESKTOP)}

# Our own rule, beside axe's: a wide table's wrapper is a named region the keyboard can
# reach, whether or not it scrolls at this width (axe judges only those that scroll now).
TABLE_REGION_RULE = "table-wrap-region"
UNREACHABLE_TABLE_REGIONS = """
() => [...document.querySelectorAll('.table-wrap')]
  .filter(el => el.getAttribute('tabindex') !== '0' || el.getAttribute('role') !== 'region'
                || !(el.getAttribute('aria-label') || '').trim())
  .map(el => el.outerHTML.slice(0, 120))
"""

# Violations in templates this test's owner may not change. Each names the change that
# removes it, and matches only its rule on its element of its page, so that it hides
# nothing else; remove the entry once the change is made.
# Violations fixed elsewhere but not yet: each names its page and the fix. None now.
KNOWN_EXCEPTIONS: list[KnownException] = []

# Ids an aria-describedby (or aria-labelledby) names that the page does not have.
DANGLING_ARIA_REFERENCES = """
() => [...document.querySelectorAll('[aria-describedby], [aria-labelledby]')].flatMap(el =>
  ['aria-describedby', 'aria-labelledby'].flatMap(attr =>
    (el.getAttribute(attr) || '').split(/\\s+/).filter(Boolean)
      .filter(id => !document.getElementById(id))
      .map(id => `${el.tagName.toLowerCase()}#${el.id} ${attr}="${id}"`)))
"""

OVERFLOW = """
() => ({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})
"""


def page_name(path: str, home: str) -> str:
    """A file-name part for a page: `home`, or its path in dashes with a record's id as
    `record` (`site-patients-new`, `admin-users-record`), the same on every run."""
    if path == home:
        return "home"
    return re.sub(r"[^A-Za-z0-9]+", "-", re.sub(r"/\d+", "/record", path)).strip("-")


def sign_in_as(page: Page, live_server: LiveServer, world: World, person: Person) -> None:
    sign_in(page, person.username, world.password)
    expect(page).to_have_url(url_is(live_server.url, person.home))
    if person.language:
        page.goto("/portal/profile")
        page.get_by_label("Language").select_option(person.language)
        page.locator("main").get_by_role("button").click()
        expect(page.locator("html")).to_have_attribute("lang", person.language)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("person", PEOPLE, ids=[p.role for p in PEOPLE])
def test_every_page_a_role_reaches_passes_axe(
    request: pytest.FixtureRequest,
    live_server: LiveServer,
    world: World,
    person: Person,
    size: str,
) -> None:
    fixture, viewport = SIZES[size]
    page: Page = request.getfixturevalue(fixture)
    sign_in_as(page, live_server, world, person)

    pages = reachable_pages(page, person.home)
    # Each role has a home and at least one more page (the password page, for all of them).
    assert len(pages) >= 2, pages

    violations: list[Violation] = []
    dangling: list[str] = []
    for path in pages:
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path}: {response}"
        expect(page.get_by_test_id("error-page")).to_have_count(0)
        page.screenshot(
            path=screenshot_path(person.role, page_name(path, person.home), viewport),
            full_page=True,
        )
        violations += run_axe(page)
        violations += [
            Violation(
                page=path,
                rule=TABLE_REGION_RULE,
                impact="serious",
                target="div.table-wrap",
                help="A scrolling table's wrapper needs tabindex=0, role=region, aria-label",
                html=html,
            )
            for html in page.evaluate(UNREACHABLE_TABLE_REGIONS)
        ]
        dangling += [f"{path}: {ref}" for ref in page.evaluate(DANGLING_ARIA_REFERENCES)]

    serious = failing(violations)
    unexpected = [v for v in serious if not any(e.covers(v) for e in KNOWN_EXCEPTIONS)]
    assert not unexpected, "axe-core found serious or critical violations:\n" + "\n".join(
        str(v) for v in unexpected
    )
    assert not dangling, "aria references to ids the page does not have:\n" + "\n".join(dangling)


# The kind of address that made "My details" 443 px wide on a 390 px phone: one word, as
# far as line breaking goes (no hyphen, no space), so it wraps only where the style sheet
# allows breaking a word.
LONG_EMAIL = "{name}.mariasophie.secretnamemueller@physiotherapiecharlottenburg.example.org"


def give_long_email(app: Flask, world: World, clock: TestClock, patient: str) -> None:
    """The patient's site records a long e-mail address, as the site would, through the
    service (the browser tests of the identity form are in test_form_errors.py)."""
    staff = {"B1": "coord_berlin", "T1": "coord_tokyo"}
    with app.app_context():
        record = db.session.get(Patient, world.patients[patient].id)
        assert record is not None
        actor = db.session.get(User, world.users[staff[record.site.site_number]].id)
        assert actor is not None
        patient_service.change_identity(
            db.session,
            actor,
            clock(),
            record,
            {"email": LONG_EMAIL.format(name=patient)},
            reason="Patient gave a new address",
        )
        db.session.commit()
        db.session.remove()


@pytest.mark.parametrize("person", PATIENTS, ids=[p.role for p in PATIENTS])
def test_every_page_a_patient_reaches_fits_a_phone(
    phone_page: Page,
    live_server: LiveServer,
    world: World,
    app: Flask,
    clock: TestClock,
    person: Person,
    snapshot: Callable[[Page, str], None],
) -> None:
    give_long_email(app, world, clock, person.username)
    page = phone_page
    assert page.viewport_size == PHONE
    page.goto("/login")
    too_wide = []
    overflow = page.evaluate(OVERFLOW)
    if overflow["scroll"] > overflow["client"]:
        too_wide.append(f"/login is {overflow['scroll']}px wide in {overflow['client']}px")

    sign_in_as(page, live_server, world, person)
    for path in reachable_pages(page, person.home):
        page.goto(path)
        if path == "/portal/profile":  # the page must show the address it is tested with
            expect(page.get_by_text(LONG_EMAIL.format(name=person.username))).to_be_visible()
            snapshot(page, "profile")
        overflow = page.evaluate(OVERFLOW)
        if overflow["scroll"] > overflow["client"]:
            too_wide.append(f"{path} is {overflow['scroll']}px wide in {overflow['client']}px")
    assert not too_wide, "pages scroll sideways on a phone:\n" + "\n".join(too_wide)


def test_axe_runs_in_the_page_under_its_security_policy(
    page: Page, live_server: LiveServer
) -> None:
    """The checks above prove something only if axe really runs, and the page keeps the
    policy its users get: a planted image without a text alternative is reported, and an
    inline script is still refused."""
    response = page.goto("/login")
    assert response is not None
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page.evaluate(
        """() => {
            const img = document.createElement('img');
            img.src = '/static/none.png';
            document.querySelector('main').append(img);
            const script = document.createElement('script');
            script.textContent = 'window.inlineRan = true';
            document.body.append(script);
        }"""
    )
    assert page.evaluate("() => window.inlineRan === undefined")
    assert [(v.rule, v.impact) for v in failing(run_axe(page))] == [("image-alt", "critical")]
