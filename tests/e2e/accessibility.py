"""axe-core in the browser tests: run it on the page as the person sees it, report what fails.

axe-core comes from the npm registry, at the version pinned in tests/e2e/axe/package.json,
installed by scripts/install-chromium.sh (`make chromium`, which `make test` runs) into the
git-ignored tests/e2e/axe/node_modules/.

It is injected with `page.evaluate`, which the DevTools protocol runs outside the page's
Content-Security-Policy. So the page keeps the policy its users get, and a test still fails
if the page itself breaks the policy; `add_script_tag` would be refused by it, and a
context with `bypass_csp=True` would test a page no user ever sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"

# The impacts that fail a test. axe's "moderate" and "minor" are left to review.
FAILING_IMPACTS = ("serious", "critical")

MISSING_MESSAGE = (
    f"axe-core is not installed (looked for {AXE_SCRIPT}). The accessibility checks need it: "
    "run `make chromium` (scripts/install-chromium.sh installs it from the npm registry)."
)


class AxeMissing(RuntimeError):
    pass


@cache
def axe_source() -> str:
    try:
        return AXE_SCRIPT.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AxeMissing(MISSING_MESSAGE) from None


@dataclass(frozen=True)
class Violation:
    """One failing rule on one element of one page."""

    page: str  # the path, as visited
    rule: str
    impact: str
    target: str  # axe's CSS selector of the element
    help: str
    html: str

    def __str__(self) -> str:
        return f"{self.page}: [{self.impact}] {self.rule} at {self.target}: {self.help}\n    {self.html}"


@dataclass(frozen=True)
class KnownException:
    """A violation that cannot be fixed in the files the test's owner may change, named
    precisely so that it hides nothing else: the rule, a pattern of the page's path and
    the element's selector. `fix` says what has to change, and where."""

    rule: str
    page: str  # a regular expression matching the whole path
    target: str
    fix: str

    def covers(self, violation: Violation) -> bool:
        return (
            violation.rule == self.rule
            and violation.target == self.target
            and re.fullmatch(self.page, violation.page) is not None
        )


def run_axe(page: Page) -> list[Violation]:
    """axe-core's violations of the page in its current state, at every impact."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # A function, so that `window.axe` is defined in the page's own world, where axe
        # reads the document; the source ends with `}(window)`, nothing returns from it.
        page.evaluate(f"() => {{\n{axe_source()}\n}}")
    results: dict[str, Any] = page.evaluate(
        """async () => await window.axe.run(document, {
            resultTypes: ['violations'],
            // WCAG 2.0, 2.1 and 2.2 A and AA, and Deque's best practices: axe's default set.
            runOnly: {type: 'tag', values: [
                'wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
        })"""
    )
    path = page.evaluate("() => location.pathname")
    return [
        Violation(
            page=path,
            rule=rule["id"],
            impact=node.get("impact") or rule.get("impact") or "unknown",
            target=" ".join(str(t) for t in node["target"]),
            help=rule["help"],
            html=node["html"][:200],
        )
        for rule in results["violations"]
        for node in rule["nodes"]
    ]


def failing(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.impact in FAILING_IMPACTS]
