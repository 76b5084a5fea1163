from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from dct_platform import policy
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, Trial
from dct_platform.roles import Role
from dct_platform.web import bp
from dct_platform.web.guards import roles_required


@bp.get("/trial")
@roles_required(Role.TRIAL_MANAGER)
def trial_home() -> str:
    trials = list(db.session.scalars(select(Trial).where(policy.visible(current_user, Trial))))
    sites = list(
        db.session.scalars(
            select(Site)
            .where(policy.visible(current_user, Site))
            .order_by(Site.trial_id, Site.site_number)
            .options(joinedload(Site.principal_investigator))
        )
    )
    counts: dict[tuple[int, str], int] = {}
    for site_id, status, n in db.session.execute(
        select(Patient.site_id, Patient.status, func.count())
        .where(policy.visible(current_user, Patient))
        .group_by(Patient.site_id, Patient.status)
    ):
        counts[(site_id, status.value)] = n
    return render_template("trial/home.html", trials=trials, sites=sites, counts=counts)
