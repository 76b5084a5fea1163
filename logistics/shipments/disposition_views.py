"""The supply manager's disposition queue: shipments whose kits a temperature excursion put
in quarantine, and the decision on each.

* `/supply/dispositions` (`supply_dispositions.queue`): the open tasks of the reader's
  trials, oldest first: shipment, subject number, site, city, product, what was found, the
  worst reading, minutes out of range and how long the task has waited;
* `/supply/dispositions/<id>` (`supply_dispositions.disposition`): one task with its
  decision form (release or reject, with a reason); POST records the decision.

Pseudonymous like the other supply pages: subject number, site and city, never a name or
street (`PatientIdentity` is not read). A refused decision comes back as the form's errors
with the service's status (403, 409, 422), never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import DomainError
from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.models import Patient, Site
from dct_platform.navigation import add_nav_item
from dct_platform.timeutil import utcnow
from dct_platform.web.guards import roles_required
from dct_platform.web.refusal import Refusal, refused
from logistics.shipments import excursions
from logistics.shipments.models import Decision, ExcursionDisposition, Shipment
from logistics.supply.policy import SUPPLY_ROLES

bp = Blueprint("supply_dispositions", __name__, template_folder="../templates")
QUEUE_LIMIT = 200
FORM = "decide"
DECISIONS = (
    (Decision.RELEASE, "Release the kits: they may be used"),
    (Decision.REJECT, "Reject the kits: order a replacement"),
)


@dataclass(frozen=True)
class Row:
    disposition: ExcursionDisposition
    shipment: Shipment
    subject_number: str
    site: str
    city: str
    product: str
    opened: str  # on the reader's clock
    age: str
    decided: str


def _age(since: datetime, now: datetime) -> str:
    minutes = max(int((now - since).total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"


def _local(at: datetime | None) -> str:
    return "" if at is None else str(utc_to_local(at, current_user.timezone))


Found = Select[ExcursionDisposition, Shipment, str, str, str]


def _query(session: Session, now: datetime) -> Found:
    return (
        select(ExcursionDisposition, Shipment, Patient.subject_number, Site.site_number, Site.name)
        .join(Shipment, Shipment.id == ExcursionDisposition.shipment_id)
        .join(Patient, Patient.id == Shipment.patient_id)
        .join(Site, Site.id == Shipment.site_id)
        .where(policy.visible(current_user, Shipment, session=session, now=now))
        .options(joinedload(Shipment.product))
    )


def _rows(session: Session, now: datetime, query: Found) -> list[Row]:
    return [
        Row(
            disposition=d,
            shipment=s,
            subject_number=subject,
            site=f"{site_number} · {site_name}",
            city=s.destination_city or "",
            product=s.product.code,
            opened=_local(d.opened_at),
            age=_age(d.opened_at, now),
            decided=_local(d.decided_at),
        )
        for d, s, subject, site_number, site_name in session.execute(query)
    ]


@bp.get("/supply/dispositions")
@roles_required(*SUPPLY_ROLES)
def queue() -> str:
    session, now = db.session(), utcnow()
    query = (
        _query(session, now)
        .where(ExcursionDisposition.decision.is_(None))
        .order_by(ExcursionDisposition.opened_at, ExcursionDisposition.id)
        .limit(QUEUE_LIMIT)
    )
    return render_template(
        "shipments/disposition_queue.html",
        rows=_rows(session, now, query),
        limit=QUEUE_LIMIT,
        zone=current_user.timezone,
    )


def _one(session: Session, now: datetime, disposition_id: int) -> Row:
    query = _query(session, now).where(ExcursionDisposition.id == disposition_id)
    rows = _rows(session, now, query)
    if not rows:
        abort(404)
    return rows[0]


def _page(row: Row, refusal: Refusal, status: int = 200) -> tuple[str, int]:
    return render_template(
        "shipments/disposition.html",
        row=row,
        d=row.disposition,
        s=row.shipment,
        refusal=refusal,
        form=FORM,
        decisions=DECISIONS,
        zone=current_user.timezone,
    ), status


@bp.get("/supply/dispositions/<int:disposition_id>")
@roles_required(*SUPPLY_ROLES)
def disposition(disposition_id: int) -> tuple[str, int]:
    session, now = db.session(), utcnow()
    return _page(_one(session, now, disposition_id), Refusal())


@bp.post("/supply/dispositions/<int:disposition_id>")
@roles_required(*SUPPLY_ROLES)
def decide(disposition_id: int) -> Response | tuple[str, int]:
    session, now = db.session(), utcnow()
    row = _one(session, now, disposition_id)
    values = {
        "decision": request.form.get("decision", "")[:20],
        "reason": request.form.get("reason", "")[:1000],
    }
    try:
        excursions.decide(
            session,
            current_user,
            now,
            row.disposition,
            decision=values["decision"],  # type: ignore[arg-type]  # checked by decide
            reason=values["reason"],
        )
    except DomainError as exc:
        session.rollback()
        row = _one(session, now, disposition_id)
        refusal = refused(FORM, exc, values, ("decision", "reason"))
        return _page(row, refusal, exc.status)
    if row.disposition.decision is Decision.RELEASE:
        flash(f"The kits of shipment #{row.shipment.id} are released.")
    else:
        flash(
            f"The kits of shipment #{row.shipment.id} are rejected; replacement shipment "
            f"#{row.disposition.replacement_id} waits for the investigator's release."
        )
    return redirect(url_for("supply_dispositions.queue"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, list(SUPPLY_ROLES), "Excursions", "supply_dispositions.queue", order=15)
