"""Headless Chromium for the browser tests: Debian's package, driven by Playwright.

Playwright's own browser downloads need general internet access, which CI and the
development machines do not have; `make chromium` installs the distribution's Chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Browser, Playwright

FALLBACK_PATH = Path("/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

MISSING_MESSAGE = (
    "Chromium was not found (looked for `chromium` on PATH and {fallback}). "
    "The browser tests need it: run `make chromium` to install Debian's Chromium. "
    "Do not run `playwright install`: its downloads need internet access."
)


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> str:
    """The Chromium executable to drive, or ChromiumMissing with what to do about it."""
    found = shutil.which("chromium")
    if found:
        return found
    if FALLBACK_PATH.is_file() and os.access(FALLBACK_PATH, os.X_OK):
        return str(FALLBACK_PATH)
    raise ChromiumMissing(MISSING_MESSAGE.format(fallback=FALLBACK_PATH))


def launch_chromium(playwright: Playwright, executable_path: str | None = None) -> Browser:
    return playwright.chromium.launch(
        executable_path=executable_path or chromium_path(), headless=True, args=CHROMIUM_ARGS
    )
