"""Shipment orders: requested for a patient, released by the investigator with an
electronic signature, or cancelled before that.

* `request_shipment`: a site (site staff or investigator of the patient's site), the
  resupply schedule (`resupply`, a system actor) or a replacement after an excursion asks
  for kits of a product for an enrolled patient. Nothing is reserved yet: the order waits
  for the investigator's release. It records the site and investigator responsible for
  the patient at that time, and the destination's city and country only (the street
  reaches the courier in the booking call alone).
* `release`: an investigator of the patient's site re-enters their password and signs the
  order (meaning `RELEASE_MEANING`); then, and only then, kits are reserved first expiry
  first out, the order becomes `created`, and `READY_FOR_COURIER` is emitted so that the
  courier is booked after commit. The signature covers `Shipment.__signed_fields__` (what
  is shipped, to whom, from where): whatever relies on the release calls `require_release`,
  which refuses an order changed since it was signed.
* `cancel`: before release only, by those who may request for the patient (the patient's
  site). The supply manager does not cancel: the site decides on its patient's treatment;
  once released, kits are reserved and the courier is on the way, which is a return's or
  a disposition's business, not a cancellation's.

The right depot (`choose_depot`), among the active depots that may ship to the patient, in
this order of preference: the pharmacy of the patient's site, a central depot in the
destination's country, any central depot (lowest id first within each). The first that
holds enough usable kits for the order now is taken; when none does, the first preferred:
a short depot is not an error at request time (stock may arrive before the release), but
the release refuses if it is still short then.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dct_platform import audit, events, policy, signatures
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.locking import lock_for_update
from dct_platform.models import ElectronicSignature, Patient, PatientIdentity, PatientStatus, User
from dct_platform.services import activities
from dct_platform.services.ownership import responsibility_at
from dct_platform.signatures import SignatureView
from dct_platform.timeutil import to_local
from logistics.shipments.events import READY_FOR_COURIER
from logistics.shipments.models import (
    MessageOutcome,
    OrderReason,
    Shipment,
    ShipmentKind,
    ShipmentKit,
    TrackingEvent,
)
from logistics.shipments.policy import RELEASE, REQUEST
from logistics.shipments.states import FINISHED, ShipmentStatus
from logistics.supply.models import Depot, DepotKind, Kit, KitStatus, Product
from logistics.supply.selection import NotEnoughKits, reserve_kits

SHIPMENT_ACTIVITY = activities.register_type("shipment", "Direct-to-patient shipment", "logistics")
RELEASE_MEANING = signatures.declare_meaning(
    "logistics.release", "Released for shipment to the patient"
)

MAX_KITS = 12  # more than a patient keeps at home between two resupplies is a mistake
MAX_RESUPPLY_DAYS = 180  # the next resupply further away than this is a typo
MAX_NOTE = 500
# An order not finished still covers the patient's supply: a second one would double it.
OPEN_STATUSES = frozenset(ShipmentStatus) - FINISHED


def _today_of(patient: Patient, now: datetime) -> date:
    return to_local(now, patient.timezone).date()


def track(session: Session, shipment: Shipment, now: datetime, detail: str) -> None:
    """The platform's own move of `shipment` (to its current status) on its timeline."""
    session.add(
        TrackingEvent(
            shipment_id=shipment.id, status=shipment.status.value, occurred_at=now,
            recorded_at=now, source="platform", outcome=MessageOutcome.APPLIED, detail=detail,
        )
    )  # fmt: skip


def record_activity(session: Session, shipment: Shipment, now: datetime) -> None:
    """The shipment's remote activity, at the time it was requested (so with the site and
    investigator responsible then), with its current status. Call again on a status
    change: the same record is updated."""
    activities.record_activity(
        session,
        now,
        activity_type=SHIPMENT_ACTIVITY,
        patient=shipment.patient,
        occurred_at=shipment.requested_at,
        record_table=Shipment.__tablename__,
        record_id=shipment.id,
        status=shipment.status.value,
        summary=(
            f"{shipment.kit_count} kits of {shipment.product.code} shipped home"
            if shipment.kind is ShipmentKind.DELIVERY
            else f"{shipment.kit_count} kits of {shipment.product.code} returned"
        ),
        originator=(
            activities.Originator.STAFF
            if shipment.requested_by_id
            else activities.Originator.SYSTEM
        ),
        originator_user_id=shipment.requested_by_id,
        location_type="patient_home",
    )


def open_order(
    session: Session, patient_id: int, product_id: int, next_resupply: date | None = None
) -> Shipment | None:
    """The patient's unfinished delivery of the product that a new order (lasting until
    `next_resupply`) would duplicate: one still waiting for release, or one that already
    covers that period (its own next resupply is not earlier). A delivery on its way that
    covers an earlier period is not a duplicate: the next cycle may be ordered before the
    previous parcel arrives."""
    covers = Shipment.status == ShipmentStatus.REQUESTED
    if next_resupply is not None:
        covers = covers | (Shipment.next_resupply_date >= next_resupply)
    query = select(Shipment).where(
        Shipment.patient_id == patient_id,
        Shipment.product_id == product_id,
        Shipment.kind == ShipmentKind.DELIVERY,
        Shipment.status.in_(list(OPEN_STATUSES)),
        covers,
    )
    return session.scalars(query.order_by(Shipment.id).limit(1)).first()


def _usable_count(
    session: Session, depot: Depot, product: Product, patient: Patient, next_resupply: date
) -> int:
    # The arm only filters, in SQL: it is never read into Python or shown.
    return (
        session.scalar(
            select(func.count(Kit.id)).where(
                Kit.depot_id == depot.id,
                Kit.product_id == product.id,
                Kit.arm == patient.arm,
                Kit.status == KitStatus.AVAILABLE,
                Kit.expiry_date > next_resupply,
            )
        )
        or 0
    )


def choose_depot(
    session: Session,
    patient: Patient,
    product: Product,
    kit_count: int,
    next_resupply: date,
    country: str | None,
) -> Depot:
    """The depot an order ships from (see the module's rule); ValidationFailed when no
    active depot may ship to the patient at all."""
    candidates = list(
        session.scalars(select(Depot).where(Depot.is_active.is_(True)).order_by(Depot.id))
    )

    def rank(depot: Depot) -> int | None:
        if depot.kind is DepotKind.SITE_PHARMACY:
            return 0 if depot.site_id == patient.site_id else None
        return 1 if country and depot.country == country else 2

    ranked = sorted(
        ((r, d.id, d) for d in candidates if (r := rank(d)) is not None),
        key=lambda item: (item[0], item[1]),
    )
    if not ranked:
        raise ValidationFailed.on_field(
            "product", "No active depot can ship to this patient; ask the supply manager."
        )
    for _rank, _id, depot in ranked:
        if _usable_count(session, depot, product, patient, next_resupply) >= kit_count:
            return depot
    return ranked[0][2]


def _check_request(
    session: Session,
    patient: Patient,
    product: Product,
    kit_count: int,
    next_resupply: date,
    note: str | None,
    now: datetime,
) -> None:
    errors: dict[str, list[str]] = {}
    if patient.status != PatientStatus.ENROLLED:
        errors["patient"] = [
            f"Patient {patient.subject_number} is {patient.status.value}: only enrolled "
            "patients are shipped kits."
        ]
    elif patient.arm is None:
        errors["patient"] = [
            f"Patient {patient.subject_number} has no treatment arm yet: kits are packed per arm."
        ]
    if product.trial_id != patient.trial_id:
        errors["product"] = [f"{product.code} is not a product of the patient's trial."]
    elif not product.home_delivery_ok:
        errors["product"] = [
            f"{product.code} ({product.name}) is not suitable for home delivery: it cannot "
            "be shipped to a patient."
        ]
    if not 1 <= kit_count <= MAX_KITS:
        errors["kit_count"] = [f"Ask for 1 to {MAX_KITS} kits."]
    today = _today_of(patient, now)
    if next_resupply <= today:
        errors["next_resupply"] = [
            f"The next resupply must be after today ({today.isoformat()}, the patient's "
            "calendar): the kits must last until then."
        ]
    elif next_resupply > today + timedelta(days=MAX_RESUPPLY_DAYS):
        errors["next_resupply"] = [f"The next resupply must be within {MAX_RESUPPLY_DAYS} days."]
    if note is not None and len(note) > MAX_NOTE:
        errors["note"] = [f"Keep the note under {MAX_NOTE} characters."]
    if errors:
        first = next(iter(errors.values()))[0]
        message = first if len(errors) == 1 else "The shipment cannot be requested; see details."
        raise ValidationFailed(message, {"fields": errors})


def request_shipment(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    patient: Patient,
    product: Product,
    kit_count: int,
    next_resupply: date,
    note: str | None = None,
    reason: OrderReason = OrderReason.SITE_REQUEST,
    replaces: Shipment | None = None,
    system: str | None = None,
) -> Shipment:
    """A delivery of `kit_count` kits of `product` to `patient`, waiting for release.

    Forbidden (403) unless `actor` may request for the patient (or `system` names a job);
    ValidationFailed (422) for a patient not enrolled or without an arm, a product of
    another trial or unfit for home delivery, a kit count out of 1..MAX_KITS, a next
    resupply not after today on the patient's calendar; Conflict (409) when the patient
    already has an open order of the product (a replacement excepted).
    """
    if system is None and not policy.can(actor, REQUEST, patient, session=session, now=now):
        raise Forbidden("You are not allowed to request a shipment for this patient.")
    if actor is None and system is None:
        raise ValueError("request_shipment needs an actor or a system name")
    note = (note or "").strip() or None
    _check_request(session, patient, product, kit_count, next_resupply, note, now)
    if replaces is not None:
        if replaces.patient_id != patient.id or replaces.product_id != product.id:
            raise ValidationFailed.on_field(
                "replaces", "A replacement goes to the same patient with the same product."
            )
        if reason is not OrderReason.REPLACEMENT:
            raise ValidationFailed.on_field(
                "reason", "An order that replaces another has the reason 'replacement'."
            )
    elif reason is OrderReason.REPLACEMENT:
        raise ValidationFailed.on_field("replaces", "Name the shipment this one replaces.")
    if reason is not OrderReason.REPLACEMENT:
        existing = open_order(session, patient.id, product.id, next_resupply)
        if existing is not None:
            raise Conflict(
                f"Shipment #{existing.id} of {product.code} for {patient.subject_number} "
                f"is still open ({existing.status.value}, lasting until "
                f"{existing.next_resupply_date.isoformat()}); cancel it or wait for it.",
                {"shipment_id": existing.id},
            )
    identity = session.get(PatientIdentity, patient.id)
    country = (identity.country if identity else None) or patient.site.country
    city = identity.city if identity else None
    depot = choose_depot(session, patient, product, kit_count, next_resupply, country)
    responsible = responsibility_at(session, patient.id, now)
    shipment = Shipment(
        kind=ShipmentKind.DELIVERY, reason=reason, trial_id=patient.trial_id,
        patient_id=patient.id, site_id=responsible.site_id,
        investigator_id=responsible.investigator_id, product_id=product.id,
        depot_id=depot.id, kit_count=kit_count, next_resupply_date=next_resupply,
        replaces_id=replaces.id if replaces is not None else None,
        status=ShipmentStatus.REQUESTED, requested_by_id=actor.id if actor else None,
        requested_at=now, request_note=note, destination_city=city,
        destination_country=country, status_changed_at=now, created_at=now, updated_at=now,
    )  # fmt: skip
    shipment.patient, shipment.product, shipment.depot = patient, product, depot
    what = f"Request {kit_count} kits of {product.code} for patient {patient.subject_number}"
    with audit.acting(session, actor, now, what=what, system=None if actor else system):
        session.add(shipment)
        session.flush()
    track(session, shipment, now, f"Requested ({reason.value})")
    record_activity(session, shipment, now)
    return shipment


def _check_state(shipment: Shipment, doing: str) -> None:
    if shipment.kind is not ShipmentKind.DELIVERY:
        raise Conflict(f"Shipment #{shipment.id} is a return: it is not {doing}.")
    if shipment.status is not ShipmentStatus.REQUESTED:
        raise Conflict(
            f"Shipment #{shipment.id} is {shipment.status.value}: only a shipment waiting "
            f"for release can be {doing}.",
            {"status": shipment.status.value},
        )


def release(
    session: Session,
    actor: User,
    now: datetime,
    shipment: Shipment,
    *,
    password: str,
    remote_addr: str | None = None,
) -> Shipment:
    """The investigator's signed release: sign, then reserve the kits (FEFO) and hand the
    shipment to the courier's booking (after commit).

    Forbidden (403) for anyone but an investigator of the patient's site; Conflict (409)
    unless the order waits for release, or when the depot lacks usable kits; from the
    signature: Unauthorized (401) for a wrong password (the caller commits so that the
    attempt counts: nothing else is changed before it), TooManyAttempts (429), ...
    """
    policy.authorize(actor, RELEASE, shipment, now=now)
    # Two releases (or a release and a cancel) at once: the second waits here, then reads
    # the status the first left.
    lock_for_update(session, shipment)
    _check_state(shipment, "released")
    if not password:
        raise ValidationFailed.on_field("password", "Enter your password to sign the release.")
    # First, before any change: a wrong password is committed as a failed attempt alone.
    signatures.sign(
        session, actor, password, RELEASE_MEANING, shipment, now,
        remote_addr=remote_addr or "-",
    )  # fmt: skip
    try:
        kits = reserve_kits(
            session, actor, now, patient=shipment.patient, product=shipment.product,
            depot=shipment.depot, count=shipment.kit_count,
            next_resupply=shipment.next_resupply_date,
        )  # fmt: skip
    except NotEnoughKits:
        # reserve_kits says how many kits of the patient's arm there are: to a blinded
        # reader, which arm is short could tell the patient's arm. Say only that it is.
        raise NotEnoughKits(
            f"There are not enough usable kits at {shipment.depot.name} for this shipment "
            "(kits must expire after the next resupply). Nothing was released; the supply "
            "manager can restock the depot.",
            {"depot_id": shipment.depot_id},
        ) from None
    what = f"Release shipment #{shipment.id} for patient {shipment.patient.subject_number}"
    with audit.acting(session, actor, now, what=what):
        for kit in kits:
            session.add(ShipmentKit(shipment_id=shipment.id, kit_id=kit.id))
        shipment.released_by_id = actor.id
        shipment.released_at = now
        shipment.status = ShipmentStatus.CREATED
        shipment.status_changed_at = now
        shipment.updated_at = now
        session.flush()
    track(session, shipment, now, f"Released by {actor.display_name}")
    record_activity(session, shipment, now)
    events.emit(session, READY_FOR_COURIER, now, {"shipment_id": shipment.id})
    return shipment


def cancel(
    session: Session, actor: User, now: datetime, shipment: Shipment, *, reason: str
) -> Shipment:
    """Cancel an order before its release (see the module for who may). Forbidden (403),
    Conflict (409) once released, ValidationFailed (422) without a reason."""
    if not policy.can(actor, REQUEST, shipment.patient, session=session, now=now):
        raise Forbidden("Only the patient's site can cancel this shipment.")
    lock_for_update(session, shipment)
    _check_state(shipment, "cancelled")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed.on_field("reason", "Say why the shipment is cancelled.")
    if len(reason) > MAX_NOTE:
        raise ValidationFailed.on_field("reason", f"Keep the reason under {MAX_NOTE} characters.")
    what = f"Cancel shipment #{shipment.id} for patient {shipment.patient.subject_number}"
    with audit.acting(session, actor, now, reason, what=what):
        shipment.status = ShipmentStatus.CANCELLED
        shipment.cancelled_reason = reason
        shipment.status_changed_at = now
        shipment.updated_at = now
        session.flush()
    track(session, shipment, now, "Cancelled before release")
    record_activity(session, shipment, now)
    return shipment


def release_signature(session: Session, shipment: Shipment) -> SignatureView | None:
    """The newest release signature of the shipment, valid or invalidated, for display;
    None when it was never released. Callers decide first whether the reader may see it."""
    found = [s for s in signatures.signatures_of(session, shipment) if s.meaning == RELEASE_MEANING]
    return found[-1] if found else None


def require_release(session: Session, shipment: Shipment) -> ElectronicSignature | None:
    """The delivery's valid release signature; SignatureRequired (409) when it has none or
    the shipment changed since. Call it wherever the platform relies on the release. A
    return ships no product to anyone and needs none: None."""
    if shipment.kind is not ShipmentKind.DELIVERY:
        return None
    return signatures.require(session, shipment, RELEASE_MEANING)
