"""The shipments API under /api/v1/shipments: list and read the shipments the caller may
see, request one for a patient, release it with a signature, cancel it before release.

Thin handlers over `orders`; the request commits once at its end, so a refusal leaves
nothing written, except a wrong password at the release, which is kept as a failed
attempt (the sign-in throttle counts it) and nothing else. A shipment outside the caller's
scope answers 404; a visible one the caller may not act on, 403.

Pseudonymous for everyone: subject number, site and city, never a name or street. The
request's free-text note goes to the patient's site only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from dct_platform import policy
from dct_platform.auth import api_actor
from dct_platform.db_session import keep_despite_error
from dct_platform.errors import NotFound, Unauthorized
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.timeutil import utcnow
from logistics.shipments import excursions, orders, receipt
from logistics.shipments import schemas as s
from logistics.shipments.models import (
    ExcursionDisposition,
    Shipment,
    ShipmentKit,
    TrackingEvent,
)
from logistics.shipments.states import label
from logistics.supply.models import Kit, Product
from logistics.supply.policy import kit_view

blp = Blueprint(
    "shipments_api",
    __name__,
    url_prefix="/api/v1/shipments",
    description="Direct-to-patient shipments: orders, the investigator's signed release, "
    "cancellation, kits and the tracking timeline",
)

_WITH = (
    joinedload(Shipment.patient),
    joinedload(Shipment.product),
    joinedload(Shipment.depot),
)
NOT_FOUND = "No such shipment for the caller"


def _session() -> Session:
    return db.session()


def _shipment(shipment_id: int, now: datetime) -> Shipment:
    return policy.get_visible(_session(), api_actor(), Shipment, shipment_id, now, load=_WITH)


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(
        session.execute(select(User.id, User.display_name).where(User.id.in_(sorted(ids)))).all()
    )


def _summary(
    actor: User, shipment: Shipment, names: dict[int, str], sites: dict[int, Site]
) -> dict[str, Any]:
    site = sites.get(shipment.site_id)
    of_the_site = actor.role in SITE_ROLES and shipment.patient.site_id in actor.site_ids
    return {
        "id": shipment.id,
        "kind": shipment.kind,
        "reason": shipment.reason,
        "status": shipment.status,
        "status_label": label(shipment.status),
        "patient_id": shipment.patient_id,
        "subject_number": shipment.patient.subject_number,
        "site_id": shipment.site_id,
        "site_number": site.site_number if site else None,
        "site_name": site.name if site else None,
        "investigator_id": shipment.investigator_id,
        "product_id": shipment.product_id,
        "product_code": shipment.product.code,
        "depot_id": shipment.depot_id,
        "depot_name": shipment.depot.name,
        "kit_count": shipment.kit_count,
        "next_resupply_date": shipment.next_resupply_date,
        "destination_city": shipment.destination_city,
        "destination_country": shipment.destination_country,
        "requested_at": shipment.requested_at,
        "requested_by_id": shipment.requested_by_id,
        # Free text a site typed: it may name the patient.
        "request_note": shipment.request_note if of_the_site else None,
        "released_at": shipment.released_at,
        "released_by_id": shipment.released_by_id,
        "released_by_name": names.get(shipment.released_by_id or 0),
        "cancelled_reason": shipment.cancelled_reason if of_the_site else None,
        "replaces_id": shipment.replaces_id,
        "courier": shipment.courier,
        "tracking_number": shipment.tracking_number,
        "expected_delivery_at": shipment.expected_delivery_at,
        "delivered_at": shipment.delivered_at,
        "received_at": shipment.received_at,
        "excursion_at": shipment.excursion_at,
    }


def _summaries(session: Session, actor: User, found: list[Shipment]) -> list[dict[str, Any]]:
    names = _names(session, {x.released_by_id for x in found if x.released_by_id})
    site_ids = sorted({x.site_id for x in found})
    sites = {site.id: site for site in session.scalars(select(Site).where(Site.id.in_(site_ids)))}
    return [_summary(actor, x, names, sites) for x in found]


def _detail(session: Session, actor: User, shipment: Shipment, now: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(ShipmentKit, Kit)
        .join(Kit, Kit.id == ShipmentKit.kit_id)
        .where(ShipmentKit.shipment_id == shipment.id)
        .options(joinedload(Kit.product))
        .order_by(ShipmentKit.id)
    ).all()
    kits = [
        {**kit_view(actor, kit, now), "condition": sk.condition.value if sk.condition else None}
        for sk, kit in rows
    ]
    tracking = session.scalars(
        select(TrackingEvent)
        .where(TrackingEvent.shipment_id == shipment.id)
        .order_by(TrackingEvent.id)
    ).all()
    signature = orders.release_signature(session, shipment)
    return {
        **_summaries(session, actor, [shipment])[0],
        "kits": kits,
        "tracking": [
            {
                "status": t.status,
                "occurred_at": t.occurred_at,
                "recorded_at": t.recorded_at,
                "source": t.source,
                "location": t.location,
                "outcome": t.outcome.value,
                "detail": t.detail,
            }
            for t in tracking
        ],
        "release_signature": None
        if signature is None
        else {
            "printed_name": signature.printed_name,
            "meaning": signature.meaning,
            "meaning_label": signature.meaning_label,
            "signed_at": signature.signed_at,
            "valid": signature.valid,
        },
    }


@blp.route("")
class Shipments(MethodView):
    @blp.arguments(s.ShipmentQuerySchema, location="query")
    @blp.response(200, s.ShipmentSchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[dict[str, Any]]:
        """The shipments the caller may see, newest request first: supply managers and trial
        managers their trials', site staff and investigators their sites' patients', a
        patient their own."""
        actor, session, now = api_actor(), _session(), utcnow()
        query = select(Shipment).where(policy.visible(actor, Shipment, session=session, now=now))
        if args.get("status"):
            query = query.where(Shipment.status.in_(args["status"]))
        if args.get("site_id") is not None:
            query = query.where(Shipment.site_id == args["site_id"])
        if args.get("patient_id") is not None:
            query = query.where(Shipment.patient_id == args["patient_id"])
        pagination_parameters.item_count = (
            session.scalar(select(func.count()).select_from(query.subquery())) or 0
        )
        page, size = pagination_parameters.page, pagination_parameters.page_size
        found = session.scalars(
            query.options(*_WITH)
            .order_by(Shipment.requested_at.desc(), Shipment.id.desc())
            .offset((page - 1) * size)
            .limit(size)
        )
        return _summaries(session, actor, list(found.unique()))

    @blp.arguments(s.ShipmentRequestSchema)
    @blp.response(201, s.ShipmentDetailSchema)
    @blp.alt_response(403, description="Only the patient's site requests (`forbidden`)")
    @blp.alt_response(404, description="No such patient or product for the caller")
    @blp.alt_response(409, description="The patient has an open order of the product")
    @blp.alt_response(
        422,
        description="A patient not enrolled, a product unfit for home delivery or of "
        "another trial, a kit count or next resupply out of range",
    )
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Request a delivery for a patient; it waits for the investigator's release."""
        actor, session, now = api_actor(), _session(), utcnow()
        patient = policy.get_visible(session, actor, Patient, body["patient_id"], now)
        product = policy.get_visible(session, actor, Product, body["product_id"], now)
        shipment = orders.request_shipment(
            session, actor, now, patient=patient, product=product,
            kit_count=body["kit_count"], next_resupply=body["next_resupply"],
            note=body.get("note"),
        )  # fmt: skip
        return _detail(session, actor, shipment, now)


@blp.route("/<int:shipment_id>")
class OneShipment(MethodView):
    @blp.response(200, s.ShipmentDetailSchema)
    @blp.alt_response(404, description=NOT_FOUND)
    def get(self, shipment_id: int) -> dict[str, Any]:
        """One shipment with its kits (blinded unless the caller is unblinded), its tracking
        timeline and the investigator's release signature."""
        actor, session, now = api_actor(), _session(), utcnow()
        return _detail(session, actor, _shipment(shipment_id, now), now)


@blp.route("/<int:shipment_id>/release")
class Release(MethodView):
    @blp.arguments(s.ReleaseSchema)
    @blp.response(200, s.ShipmentDetailSchema)
    @blp.alt_response(401, description="Wrong password: nothing is signed or released")
    @blp.alt_response(403, description="Only an investigator of the patient's site releases")
    @blp.alt_response(404, description=NOT_FOUND)
    @blp.alt_response(
        409, description="Not waiting for release, or not enough usable kits at the depot"
    )
    @blp.alt_response(429, description="Too many wrong passwords: try again later")
    def post(self, body: dict[str, Any], shipment_id: int) -> dict[str, Any]:
        """Release the shipment with the investigator's electronic signature (meaning
        "Released for shipment to the patient"): its kits are reserved, first expiry first
        out, and the courier is booked."""
        actor, session, now = api_actor(), _session(), utcnow()
        shipment = _shipment(shipment_id, now)
        try:
            orders.release(
                session, actor, now, shipment, password=body["password"],
                remote_addr=request.remote_addr,
            )  # fmt: skip
        except Unauthorized:
            keep_despite_error()  # the failed attempt counts; nothing else was changed
            raise
        return _detail(session, actor, shipment, now)


@blp.route("/<int:shipment_id>/cancel")
class Cancel(MethodView):
    @blp.arguments(s.CancelSchema)
    @blp.response(200, s.ShipmentDetailSchema)
    @blp.alt_response(403, description="Only the patient's site cancels")
    @blp.alt_response(404, description=NOT_FOUND)
    @blp.alt_response(409, description="Already released or finished")
    def post(self, body: dict[str, Any], shipment_id: int) -> dict[str, Any]:
        """Cancel a shipment that waits for release."""
        actor, session, now = api_actor(), _session(), utcnow()
        shipment = orders.cancel(
            session, actor, now, _shipment(shipment_id, now), reason=body["reason"]
        )
        return _detail(session, actor, shipment, now)


@blp.route("/<int:shipment_id>/receipt")
class Receipt(MethodView):
    @blp.arguments(s.ReceiptSchema)
    @blp.response(200, s.ShipmentDetailSchema)
    @blp.alt_response(403, description="Only the shipment's patient confirms its receipt")
    @blp.alt_response(404, description=NOT_FOUND)
    @blp.alt_response(
        409,
        description="Not delivered yet, confirmed already, or a kit is in quarantine after a "
        "temperature excursion (do not use the kits)",
    )
    def post(self, body: dict[str, Any], shipment_id: int) -> dict[str, Any]:
        """The patient confirms what arrived, kit by kit: a kit counts as dispensed only
        now. A damaged or missing kit is for the site to follow up."""
        actor, session, now = api_actor(), _session(), utcnow()
        shipment = _shipment(shipment_id, now)
        said = {k["kit_id"]: k["condition"] for k in body["kits"]}
        receipt.confirm_receipt(session, actor, now, shipment, kits=said or None, note=body["note"])
        return _detail(session, actor, shipment, now)


@blp.route("/<int:shipment_id>/problem")
class Problem(MethodView):
    @blp.arguments(s.ProblemSchema)
    @blp.response(200, s.ShipmentDetailSchema)
    @blp.alt_response(403, description="Only the shipment's patient reports on it here")
    @blp.alt_response(404, description=NOT_FOUND)
    def post(self, body: dict[str, Any], shipment_id: int) -> dict[str, Any]:
        """The patient reports damage or another problem; the site and the supply manager
        see it with the shipment."""
        actor, session, now = api_actor(), _session(), utcnow()
        shipment = receipt.report_problem(
            session, actor, now, _shipment(shipment_id, now), text=body["text"]
        )
        return _detail(session, actor, shipment, now)


@blp.route("/<int:shipment_id>/disposition")
class Disposition(MethodView):
    @blp.response(200, s.DispositionSchema)
    @blp.alt_response(404, description="No such shipment for the caller, or no excursion")
    def get(self, shipment_id: int) -> ExcursionDisposition:
        """The shipment's temperature excursion: the open one, else the last decided."""
        return _disposition(_shipment(shipment_id, utcnow()))

    @blp.arguments(s.DecisionSchema)
    @blp.response(200, s.DispositionSchema)
    @blp.alt_response(403, description="Only a supply manager of the trial decides")
    @blp.alt_response(404, description="No such shipment for the caller, or no excursion")
    @blp.alt_response(409, description="Decided already")
    def post(self, body: dict[str, Any], shipment_id: int) -> ExcursionDisposition:
        """Release the quarantined kits with a reason, or reject them: a replacement is
        ordered for the investigator's release."""
        actor, session, now = api_actor(), _session(), utcnow()
        disposition = _disposition(_shipment(shipment_id, now))
        return excursions.decide(
            session, actor, now, disposition, decision=body["decision"], reason=body["reason"]
        )


def _disposition(shipment: Shipment) -> ExcursionDisposition:
    found = _session().scalar(
        select(ExcursionDisposition)
        .where(ExcursionDisposition.shipment_id == shipment.id)
        .order_by(ExcursionDisposition.decided_at.is_(None).desc(), ExcursionDisposition.id.desc())
        .limit(1)
    )
    if found is None:
        raise NotFound(f"Shipment #{shipment.id} has had no temperature excursion.")
    return found
