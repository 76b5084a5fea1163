from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import func, select

from dct_platform import policy
from dct_platform.extensions import db
from dct_platform.models import Patient, Site
from dct_platform.roles import Role
from dct_platform.web.guards import roles_required

bp = Blueprint("logistics", __name__, template_folder="templates")


@bp.get("/supply")
@roles_required(Role.SUPPLY_MANAGER)
def supply_home() -> str:
    sites = list(
        db.session.scalars(
            select(Site).where(policy.visible(current_user, Site)).order_by(Site.site_number)
        )
    )
    # Counts of pseudonymous subject records only: this role never loads personal data.
    counts: dict[int, int] = {
        site_id: n
        for site_id, n in db.session.execute(
            select(Patient.site_id, func.count())
            .where(policy.visible(current_user, Patient))
            .group_by(Patient.site_id)
        )
    }
    return render_template("logistics/supply_home.html", sites=sites, counts=counts)
