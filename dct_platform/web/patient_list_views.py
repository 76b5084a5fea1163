"""The patient list of site staff and investigators, and the investigator's home."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_login import current_user
from sqlalchemy import select

from dct_platform import policy
from dct_platform.extensions import db
from dct_platform.models import PatientIdentity, Site
from dct_platform.models.patients import PatientStatus
from dct_platform.models.users import SITE_ROLES
from dct_platform.panels import panels_for
from dct_platform.roles import Role
from dct_platform.services.patient_lists import (
    DEFAULT_SORT,
    MAX_PAGE_SIZE,
    SORTS,
    PatientCriteria,
    PatientPage,
    find_patients,
)
from dct_platform.services.patient_status import LABELS
from dct_platform.timeutil import utcnow
from dct_platform.web import bp
from dct_platform.web.guards import roles_required

PAGE_SIZE = 25
SORT_LABELS = {
    "subject": "Subject number (A-Z)",
    "-subject": "Subject number (Z-A)",
    "status": "Status",
    "-enrolled": "Newest first",
    "enrolled": "Oldest first",
}


def _criteria(args: Any) -> tuple[PatientCriteria, list[str]]:
    """The list's search from the query string; a bad value is named, never a 500."""
    errors = []
    status = None
    if raw := args.get("status", "").strip():
        try:
            status = PatientStatus(raw)
        except ValueError:
            errors.append(f"Status: no status is called {raw[:40]!r}.")
    sort = args.get("sort", DEFAULT_SORT)
    if sort not in SORTS:
        errors.append(f"Sort: choose one of the listed orders, not {sort[:40]!r}.")
        sort = DEFAULT_SORT
    page = args.get("page", "1")
    if not (page.isascii() and page.isdigit() and 0 < int(page) <= 100_000):
        errors.append("Page: give a page number from 1.")
        page = "1"
    return (
        PatientCriteria(
            q=args.get("q", "")[:100],
            status=status,
            sort=sort,
            page=int(page),
            page_size=min(PAGE_SIZE, MAX_PAGE_SIZE),
        ),
        errors,
    )


def _names(found: PatientPage) -> dict[int, str]:
    ids = [p.id for p in found.patients]
    if not ids:
        return {}
    rows = db.session.execute(
        select(
            PatientIdentity.patient_id, PatientIdentity.given_name, PatientIdentity.family_name
        ).where(PatientIdentity.patient_id.in_(ids), policy.visible(current_user, PatientIdentity))
    )
    return {pid: f"{given} {family}" for pid, given, family in rows}


def _list_context() -> tuple[dict[str, Any], int]:
    criteria, errors = _criteria(request.args)
    found = find_patients(db.session(), current_user, criteria)
    sites = list(
        db.session.scalars(
            select(Site).where(policy.visible(current_user, Site)).order_by(Site.site_number)
        )
    )
    context = {
        "found": found,
        "names": _names(found),
        "sites": sites,
        "errors": errors,
        "statuses": LABELS,
        "sorts": SORT_LABELS,
        # A column that would repeat one value on every row says nothing: shown only when
        # the reader works at several sites.
        "show_site": len(sites) > 1,
        "args": {k: v for k, v in request.args.items() if k != "page" and v},
    }
    return context, (422 if errors else 200)


@bp.get("/site")
@roles_required(*SITE_ROLES)
def site_home() -> tuple[str, int]:
    context, status = _list_context()
    panels = panels_for("site.home", db.session(), current_user, utcnow())
    return render_template("site/home.html", panels=panels, **context), status


@bp.get("/investigator")
@roles_required(Role.INVESTIGATOR)
def investigator_home() -> tuple[str, int]:
    context, status = _list_context()
    panels = panels_for("site.home", db.session(), current_user, utcnow())
    return render_template("site/investigator_home.html", panels=panels, **context), status
