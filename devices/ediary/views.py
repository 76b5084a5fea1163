"""The eDiary pages of site staff, investigators and trial managers: compliance per
patient and per site over a chosen period, with a chart and a flag below the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Blueprint, Flask, current_app, render_template, request
from flask_login import current_user
from sqlalchemy import select

from dct_platform import policy
from dct_platform.extensions import db
from dct_platform.models import Patient, Site
from dct_platform.models.users import SITE_ROLES
from dct_platform.navigation import add_nav_item
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from dct_platform.web.guards import roles_required
from devices import charts
from devices.ediary import compliance
from devices.ediary.compliance import Compliance
from devices.ediary.models import Occurrence
from devices.policy import DATA_READERS

bp = Blueprint("ediary", __name__, template_folder="templates")

PERIODS = (7, 14, 30, 90)
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Row:
    label: str
    patient_id: int | None
    figures: Compliance


def _threshold() -> float:
    return float(current_app.config["EDIARY_COMPLIANCE_PERCENT"]) / 100


def _sorted(rows: list[Row]) -> list[Row]:
    # Lowest first: the page is for finding who needs a call; none expected yet go last.
    return sorted(rows, key=lambda r: (r.figures.rate is None, r.figures.rate or 0, r.label))


@bp.get("/diary/compliance")
@roles_required(*DATA_READERS)
def compliance_page() -> tuple[str, int]:
    raw = request.args.get("days", str(DEFAULT_DAYS))
    days = int(raw) if raw.isdigit() and int(raw) in PERIODS else DEFAULT_DAYS
    errors = (
        [] if raw == str(days) else [f"Choose a period of {', '.join(map(str, PERIODS))} days."]
    )
    now = utcnow()
    start, session = now - timedelta(days=days), db.session()
    if current_user.role in SITE_ROLES:
        report = compliance.by_patient(
            session, policy.visible(current_user, Occurrence, session=session), start, now
        )
        numbers = dict(
            session.execute(
                select(Patient.id, Patient.subject_number).where(Patient.id.in_(report.rows))
            ).all()
        )
        rows = [Row(numbers[pid], pid, c) for pid, c in report.rows.items()]
        what = "patient"
    else:
        sites = {
            s.id: s
            for s in session.scalars(
                select(Site).where(policy.visible(current_user, Site, session=session))
            )
        }
        report = compliance.by_site(session, sites, start, now)
        rows = [Row(f"{sites[sid].site_number} · {sites[sid].name}", None, c)
                for sid, c in report.rows.items()]  # fmt: skip
        what = "site"
    rows = _sorted(rows)
    shown = [r for r in rows if r.figures.rate is not None][:40]
    chart = charts.bars(
        [r.label.split(" · ")[0] for r in shown],
        [round(100 * (r.figures.rate or 0), 1) for r in shown],
        "% on time",
        100,
    )
    return render_template(
        "ediary/compliance.html",
        rows=rows,
        total=report.total(),
        chart=chart,
        charted=len(shown),
        threshold=_threshold(),
        days=days,
        periods=PERIODS,
        what=what,
        errors=errors,
    ), (422 if errors else 200)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(
        app, [*SITE_ROLES, Role.TRIAL_MANAGER], "Diary compliance", "ediary.compliance_page", 45
    )
