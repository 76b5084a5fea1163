"""Remote-activity pages: the per-site list and each patient's timeline.

Site staff and investigators see what happened at their sites (attributed to the site
responsible at the time); trial and supply managers see their trials pseudonymously.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from flask import render_template, request
from flask_login import current_user
from sqlalchemy import select

from dct_platform import policy
from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Patient, RemoteActivity, Site, User
from dct_platform.models.users import SITE_ROLES, TRIAL_ROLES
from dct_platform.services.activities import (
    ActivityFilter,
    activity_query,
    activity_types,
    type_label,
)
from dct_platform.timeutil import zone
from dct_platform.web import bp
from dct_platform.web.guards import roles_required

PAGE_SIZE = 50
OVERSIGHT_ROLES = (*SITE_ROLES, *TRIAL_ROLES)


def _local_day_start(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            f"{field} must be a date such as 2026-03-10.", {"fields": {field: ["not a date"]}}
        ) from None
    return datetime.combine(day, time(0), zone(current_user.timezone))


def _filters(patient_id: int | None = None) -> ActivityFilter:
    site = request.args.get("site", type=int)
    until = _local_day_start(request.args.get("to", ""), "to")
    return ActivityFilter(
        patient_id=patient_id,
        site_id=site if site and 0 < site < 2**31 else None,
        activity_type=request.args.get("type") or None,
        since=_local_day_start(request.args.get("from", ""), "from"),
        until=until + timedelta(days=1) if until else None,
    )


def _render(template: str, filters: ActivityFilter, **context: Any) -> str:
    page = max(1, min(request.args.get("page", 1, type=int), 10_000))
    visible = policy.visible(current_user, RemoteActivity, session=db.session())
    rows = list(
        db.session.scalars(
            activity_query(visible, filters).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
        )
    )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    sites = {
        s.id: s for s in db.session.scalars(select(Site).where(policy.visible(current_user, Site)))
    }
    # Where an activity happened is shown even for a site the viewer does not belong to.
    site_numbers = dict(
        db.session.execute(
            select(Site.id, Site.site_number).where(
                Site.id.in_({r.site_id for r in rows} | {r.related_site_id for r in rows})
            )
        ).all()
    )
    patient_ids = {r.patient_id for r in rows}
    subjects = dict(
        db.session.execute(
            select(Patient.id, Patient.subject_number).where(Patient.id.in_(patient_ids))
        ).all()
    )
    investigator_ids = {r.investigator_id for r in rows if r.investigator_id}
    investigators = dict(
        db.session.execute(
            select(User.id, User.display_name).where(User.id.in_(investigator_ids))
        ).all()
    )
    return render_template(
        template,
        rows=rows,
        sites=sites,
        site_numbers=site_numbers,
        subjects=subjects,
        investigators=investigators,
        types=activity_types(),
        type_label=type_label,
        filters=filters,
        args=request.args,
        page=page,
        more=more,
        **context,
    )


@bp.get("/activity")
@roles_required(*OVERSIGHT_ROLES)
def activity_list() -> str:
    return _render("activity/list.html", _filters())


@bp.get("/patients/<int:patient_id>/activity")
@roles_required(*OVERSIGHT_ROLES)
def patient_activity(patient_id: int) -> str:
    patient = policy.get_visible(db.session(), current_user, Patient, patient_id)
    return _render("activity/timeline.html", _filters(patient.id), patient=patient)
