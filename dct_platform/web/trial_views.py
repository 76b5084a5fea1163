"""The trial manager's overview: every site of their trials, patients per status and
enrolment against each site's target."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from flask import render_template
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from dct_platform import policy
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, Trial
from dct_platform.models.patients import PatientStatus
from dct_platform.panels import panels_for
from dct_platform.roles import Role
from dct_platform.services.patient_status import LABELS
from dct_platform.timeutil import utcnow
from dct_platform.web import bp
from dct_platform.web.guards import roles_required

# Enrolled, completed and withdrawn patients were enrolled once: they count toward the
# target; screening and screen failures did not enrol.
ENROLLED_ONCE = (PatientStatus.ENROLLED, PatientStatus.COMPLETED, PatientStatus.WITHDRAWN)


@dataclass
class SiteRow:
    site: Site
    counts: Counter[PatientStatus] = field(default_factory=Counter)

    @property
    def enrolled(self) -> int:
        return sum(self.counts[s] for s in ENROLLED_ONCE)

    @property
    def percent(self) -> int | None:
        target = self.site.enrolment_target
        return round(100 * self.enrolled / target) if target else None


@dataclass
class TrialOverview:
    trial: Trial
    sites: list[SiteRow] = field(default_factory=list)

    @property
    def totals(self) -> Counter[PatientStatus]:
        total: Counter[PatientStatus] = Counter()
        for row in self.sites:
            total.update(row.counts)
        return total

    @property
    def enrolled(self) -> int:
        return sum(row.enrolled for row in self.sites)

    @property
    def target(self) -> int | None:
        targets = [row.site.enrolment_target for row in self.sites]
        return sum(t for t in targets if t) if any(targets) else None


@bp.get("/trial")
@roles_required(Role.TRIAL_MANAGER)
def trial_home() -> str:
    overviews = {
        t.id: TrialOverview(t)
        for t in db.session.scalars(
            select(Trial).where(policy.visible(current_user, Trial)).order_by(Trial.protocol_number)
        )
    }
    rows: dict[int, SiteRow] = {}
    for site in db.session.scalars(
        select(Site)
        .where(policy.visible(current_user, Site))
        .order_by(Site.site_number)
        .options(joinedload(Site.principal_investigator))
    ):
        rows[site.id] = SiteRow(site)
        if site.trial_id in overviews:
            overviews[site.trial_id].sites.append(rows[site.id])
    for site_id, status, n in db.session.execute(
        select(Patient.site_id, Patient.status, func.count())
        .where(policy.visible(current_user, Patient))
        .group_by(Patient.site_id, Patient.status)
    ):
        if site_id in rows:
            rows[site_id].counts[status] = n
    panels = panels_for("trial.home", db.session(), current_user, utcnow())
    return render_template(
        "trial/home.html", overviews=list(overviews.values()), statuses=LABELS, panels=panels
    )
