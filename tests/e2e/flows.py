"""What a person does in the browser, in a few reusable steps."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Response

# Every role's home page, as `/` redirects there after sign-in.
ROLE_HOMES = {
    "patient": "/portal/",
    "nurse": "/nurse/visits",
    "site_staff": "/site",
    "investigator": "/investigator",
    "supply_manager": "/supply/shipments",
    "trial_manager": "/trial",
    "admin": "/admin",
}


def url_is(base_url: str, path: str) -> re.Pattern[str]:
    """Exactly `path` on the live server: no other path, query string or fragment."""
    return re.compile(rf"^{re.escape(base_url)}{re.escape(path)}$")


def is_login_post(response: Response) -> bool:
    return response.request.method == "POST" and response.url.split("?")[0].endswith("/login")


def sign_in(page: Page, username: str, password: str) -> Response:
    """Through the real sign-in form, as a person does it; the answer to the form's POST."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_response(is_login_post) as answer:
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return answer.value


# The links a signed-in person has on every page besides the main navigation.
TOPBAR_PAGES = ("/account/password",)


def reachable_pages(page: Page, home: str) -> list[str]:
    """The pages a signed-in person reaches from their home page: the home itself, every
    main-navigation link, the topbar's own page (password), and the first other page the
    home page links to (the first patient or account it lists), as paths in visiting order."""
    page.goto(home)
    found = [home]
    nav = page.locator("nav.mainnav a").evaluate_all("links => links.map(a => a.pathname)")
    found += [path for path in [*nav, *TOPBAR_PAGES] if path not in found]
    # Links of this site only (not tel: or mailto:), and no downloads.
    in_main = page.locator("main a").evaluate_all(
        "links => links.filter(a => a.origin === location.origin && !a.hasAttribute('download'))"
        ".map(a => a.pathname)"
    )
    found += [path for path in in_main if path not in found][:1]
    return found
