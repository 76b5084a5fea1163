"""Panels: a feature package's section on a core page (the patient page, the site's home,
the trial overview), without the core knowing the package.

A package calls `add_panel(app, "site.patient", "devices/_patient_panel.html", loader)` from
its `init_app`. When the page renders, each loader gets the session, the signed-in user,
`now` and the page's subject (the patient; None on home pages) and returns the template's
context, or None to show nothing (nothing to say, or nothing this user may see). Loaders
decide visibility through `policy`, like any other read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy.orm import Session

from dct_platform.models import User

PLACES = ("site.home", "site.patient", "trial.home")

Loader = Callable[[Session, User, datetime, Any], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Panel:
    template: str
    loader: Loader
    order: int


@dataclass(frozen=True)
class RenderedPanel:
    template: str
    context: dict[str, Any]


def add_panel(app: Flask, place: str, template: str, loader: Loader, order: int = 50) -> None:
    if place not in PLACES:
        raise ValueError(f"unknown panel place {place!r}; one of {', '.join(PLACES)}")
    panels: dict[str, list[Panel]] = app.extensions.setdefault("dct_panels", {})
    panels.setdefault(place, []).append(Panel(template, loader, order))
    panels[place].sort(key=lambda p: p.order)


def panels_for(
    place: str, session: Session, viewer: User, now: datetime, subject: Any = None
) -> list[RenderedPanel]:
    found: list[RenderedPanel] = []
    for panel in current_app.extensions.get("dct_panels", {}).get(place, []):
        context = panel.loader(session, viewer, now, subject)
        if context is not None:
            found.append(RenderedPanel(panel.template, context))
    return found
