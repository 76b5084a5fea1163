"""Browser tests: the real app over HTTP, driven in headless Chromium.

One Chromium per test session; per test a fresh database (the `app` fixture), a live
server for it, and a fresh browser context (cookies, storage). Every test leaves a
screenshot in test-artifacts/ for inspection; test_accessibility.py also leaves one of every
page each role reaches, at phone and desktop size, in tests/e2e/screenshots/.

`make chromium` (scripts/install-chromium.sh) installs what these tests need: Debian's
Chromium, its CJK fonts, and axe-core from the npm registry.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.support.browser import ChromiumMissing, chromium_path, launch_chromium
from tests.support.live_server import LiveServer

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
# Every role's pages at both sizes, named by role, page and size, to look at (git-ignored).
SCREENSHOTS = E2E_DIR / "screenshots"

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


def artifact_path(node: pytest.Item, suffix: str = "") -> Path:
    nodeid = node.nodeid.removeprefix("tests/e2e/").replace(".py::", "__")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}{'-' + suffix if suffix else ''}.png"


def screenshot_path(role: str, page_name: str, viewport: dict[str, int]) -> Path:
    """tests/e2e/screenshots/<role>--<page>--<width>x<height>.png"""
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS / f"{role}--{page_name}--{viewport['width']}x{viewport['height']}.png"


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Fails every browser test, saying what to do, when Chromium is not installed."""
    try:
        return chromium_path()
    except ChromiumMissing as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def browser(chromium_executable: str) -> Iterator[Browser]:
    playwright = sync_playwright().start()
    try:
        chromium = launch_chromium(playwright, chromium_executable)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


def _page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest, **options: object
) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(base_url=live_server.url, **options)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            page.screenshot(path=artifact_path(request.node), full_page=True)
        except PlaywrightError as exc:  # a crashed page must not hide the test's own failure
            print(f"screenshot failed: {exc}", file=sys.stderr)
        context.close()


@pytest.fixture
def page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    yield from _page(browser, live_server, request, viewport=DESKTOP)


@pytest.fixture
def phone_page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    yield from _page(
        browser,
        live_server,
        request,
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )


@pytest.fixture
def snapshot(request: pytest.FixtureRequest) -> Callable[[Page, str], None]:
    """An extra, named screenshot in the middle of a test."""

    def take(page: Page, label: str) -> None:
        page.screenshot(path=artifact_path(request.node, label), full_page=True)

    return take
