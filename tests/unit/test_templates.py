"""Page titles hold text only: markup there is lost from the page and garbles the tab."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(
    p
    for pkg in ("dct_platform", "patient_portal", "logistics", "devices")
    for p in (ROOT / pkg).rglob("templates/**/*.html")
)
TITLE = re.compile(r"{% block title %}(.*?){% endblock %}", re.DOTALL)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_title_block_is_plain_text(template: Path) -> None:
    for title in TITLE.findall(template.read_text()):
        assert "<" not in title and "\n" not in title, f"markup in the title: {title[:80]!r}"
