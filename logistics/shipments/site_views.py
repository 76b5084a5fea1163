"""The site's shipment pages (site staff and investigators), phone width first:

* `/site/shipments` (`site_shipments.shipments`, `?patient=<id>` preselects the patient
  in the request form): the shipments of the reader's sites' patients, newest request
  first, and the form to request one;
* `/site/shipments/release` (`site_shipments.release_queue`): the shipments waiting for
  release; an investigator releases each with their password (the signature's meaning
  and their printed name are shown at the form), the site cancels one.

Each change is one `orders` call. A refused form shows the page again with the messages
at their fields and answers the service's status; the request then rolls back, except a
wrong password, kept as a failed attempt for the sign-in throttle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from werkzeug.wrappers import Response

from dct_platform import policy, signatures
from dct_platform.db_session import keep_despite_error
from dct_platform.errors import DomainError, Unauthorized, ValidationFailed
from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.models import Patient, PatientStatus, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.navigation import add_nav_item
from dct_platform.roles import Role
from dct_platform.timeutil import to_local, utcnow
from dct_platform.web.guards import roles_required
from dct_platform.web.refusal import Refusal, refused
from logistics.shipments import orders
from logistics.shipments.models import Shipment
from logistics.shipments.policy import RELEASE
from logistics.shipments.states import LABELS, ShipmentStatus
from logistics.supply.models import Product

bp = Blueprint("site_shipments", __name__, template_folder="../templates")

LIST_LIMIT = 100
REQUEST_FIELDS = ("patient_id", "product_id", "kit_count", "next_resupply", "note")
DEFAULT_RESUPPLY_DAYS = 28


def _session() -> Session:
    return db.session()


def _local(at: datetime | None) -> str:
    return "" if at is None else str(utc_to_local(at, current_user.timezone))


@dataclass
class Row:
    shipment: Shipment
    status_label: str
    requested: str
    released: str
    released_by: str | None
    signature: str | None  # the release's manifestation, marked if invalidated


def _visible(session: Session, now: datetime) -> Any:
    return (
        select(Shipment)
        .where(policy.visible(current_user, Shipment, session=session, now=now))
        .options(joinedload(Shipment.patient), joinedload(Shipment.product))
    )


def _rows(session: Session, shipments: list[Shipment]) -> list[Row]:
    ids = sorted({s.released_by_id for s in shipments if s.released_by_id})
    names: dict[int, str] = (
        dict(session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())
        if ids
        else {}
    )
    return [
        Row(
            shipment=s,
            status_label=LABELS[s.status],
            requested=_local(s.requested_at),
            released=_local(s.released_at),
            released_by=names.get(s.released_by_id) if s.released_by_id else None,
            signature=_signature(session, s),
        )
        for s in shipments
    ]


def _signature(session: Session, shipment: Shipment) -> str | None:
    if shipment.released_at is None:
        return None
    found = orders.release_signature(session, shipment)
    return found.describe(current_user.timezone) if found else "No release signature found"


def _patients(session: Session) -> list[Patient]:
    return list(
        session.scalars(
            select(Patient)
            .where(
                Patient.site_id.in_(current_user.site_ids),
                Patient.status == PatientStatus.ENROLLED,
            )
            .order_by(Patient.subject_number)
        )
    )


def _products(session: Session, now: datetime) -> list[Product]:
    return list(
        session.scalars(
            select(Product)
            .where(
                policy.visible(current_user, Product, session=session, now=now),
                Product.home_delivery_ok.is_(True),
            )
            .order_by(Product.code)
        )
    )


def _list_page(refusal: Refusal, status: int = 200) -> tuple[str, int]:
    session, now = _session(), utcnow()
    found = list(
        session.scalars(
            _visible(session, now)
            .order_by(Shipment.requested_at.desc(), Shipment.id.desc())
            .limit(LIST_LIMIT)
        ).unique()
    )
    patients = _patients(session)
    default_next = (to_local(now, current_user.timezone).date() + timedelta(days=28)).isoformat()
    return render_template(
        "shipments/site_shipments.html",
        rows=_rows(session, found),
        limit=LIST_LIMIT,
        patients=patients,
        products=_products(session, now),
        chosen_patient=request.args.get("patient", ""),
        default_next=default_next,
        max_kits=orders.MAX_KITS,
        refusal=refusal,
        zone=current_user.timezone,
        waiting=sum(1 for s in found if s.status is ShipmentStatus.REQUESTED),
    ), status


def _queue_page(refusal: Refusal, status: int = 200) -> tuple[str, int]:
    session, now = _session(), utcnow()
    waiting = list(
        session.scalars(
            _visible(session, now)
            .where(Shipment.status == ShipmentStatus.REQUESTED)
            .order_by(Shipment.requested_at, Shipment.id)
        ).unique()
    )
    may_release = {s.id for s in waiting if policy.can(current_user, RELEASE, s, now=now)}
    return render_template(
        "shipments/site_release.html",
        rows=_rows(session, waiting),
        may_release=may_release,
        meaning=signatures.meaning_label(orders.RELEASE_MEANING),
        printed_name=current_user.display_name,
        is_investigator=current_user.role == Role.INVESTIGATOR,
        refusal=refusal,
        zone=current_user.timezone,
    ), status


@bp.get("/site/shipments")
@roles_required(*SITE_ROLES)
def shipments() -> tuple[str, int]:
    return _list_page(Refusal())


def _parse_request(values: dict[str, str]) -> tuple[int, int, int, date]:
    errors: dict[str, list[str]] = {}

    def number(name: str, message: str) -> int:
        raw = values.get(name, "").strip()
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            errors[name] = [message]
            return 0
        return int(raw)

    patient_id = number("patient_id", "Choose the patient.")
    product_id = number("product_id", "Choose the product.")
    kit_count = number("kit_count", f"Enter a number of kits from 1 to {orders.MAX_KITS}.")
    try:
        next_resupply = date.fromisoformat(values.get("next_resupply", "").strip())
    except ValueError:
        errors["next_resupply"] = ["Enter the next resupply date (YYYY-MM-DD)."]
        next_resupply = date.min
    if errors:
        raise ValidationFailed(
            "The shipment could not be requested; see details.", {"fields": errors}
        )
    return patient_id, product_id, kit_count, next_resupply


@bp.post("/site/shipments")
@roles_required(*SITE_ROLES)
def request_shipment() -> Response | tuple[str, int]:
    values = {name: request.form.get(name, "")[:1000] for name in REQUEST_FIELDS}
    session, now = _session(), utcnow()
    try:
        patient_id, product_id, kit_count, next_resupply = _parse_request(values)
        patient = policy.get_visible(session, current_user, Patient, patient_id, now)
        product = policy.get_visible(session, current_user, Product, product_id, now)
        shipment = orders.request_shipment(
            session, current_user, now, patient=patient, product=product,
            kit_count=kit_count, next_resupply=next_resupply, note=values["note"],
        )  # fmt: skip
    except DomainError as exc:
        known = {name: name for name in REQUEST_FIELDS}
        known.update(patient="patient_id", product="product_id")
        return _list_page(refused("request", exc, values, known), exc.status)
    flash(
        f"Shipment #{shipment.id} requested for {shipment.patient.subject_number}: "
        "it waits for the investigator's release."
    )
    return redirect(url_for("site_shipments.shipments"))


@bp.get("/site/shipments/release")
@roles_required(*SITE_ROLES)
def release_queue() -> tuple[str, int]:
    return _queue_page(Refusal())


@bp.post("/site/shipments/<int:shipment_id>/release")
@roles_required(*SITE_ROLES)
def release(shipment_id: int) -> Response | tuple[str, int]:
    session, now = _session(), utcnow()
    form = f"release-{shipment_id}"
    try:
        shipment = policy.get_visible(
            session, current_user, Shipment, shipment_id, now, load=(joinedload(Shipment.patient),)
        )
        orders.release(
            session, current_user, now, shipment, password=request.form.get("password", ""),
            remote_addr=request.remote_addr,
        )  # fmt: skip
    except DomainError as exc:
        if isinstance(exc, Unauthorized):
            keep_despite_error()  # the failed attempt counts; nothing else was changed
        # The password is never sent back into the page.
        return _queue_page(refused(form, exc, {}, {"password": "password"}), exc.status)
    flash(
        f"Shipment #{shipment.id} for {shipment.patient.subject_number} released: "
        "its kits are reserved and the courier is being booked."
    )
    return redirect(url_for("site_shipments.release_queue"))


@bp.post("/site/shipments/<int:shipment_id>/cancel")
@roles_required(*SITE_ROLES)
def cancel(shipment_id: int) -> Response | tuple[str, int]:
    session, now = _session(), utcnow()
    values = {"reason": request.form.get("reason", "")[:1000]}
    try:
        shipment = policy.get_visible(
            session, current_user, Shipment, shipment_id, now, load=(joinedload(Shipment.patient),)
        )
        orders.cancel(session, current_user, now, shipment, reason=values["reason"])
    except DomainError as exc:
        refusal = refused(f"cancel-{shipment_id}", exc, values, {"reason": "reason"})
        return _queue_page(refusal, exc.status)
    flash(f"Shipment #{shipment.id} for {shipment.patient.subject_number} cancelled.")
    return redirect(url_for("site_shipments.release_queue"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, list(SITE_ROLES), "Shipments", "site_shipments.shipments", order=40)
