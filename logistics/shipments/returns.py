"""Kits going back from the patient's home to the depot they came from, and what the
depot finds on arrival.

* `request_return`: the patient's site asks for it (site staff or investigator), or the
  patient does themselves. It is a `Shipment` of kind RETURN that needs no release (no
  product goes to anyone): it starts `created` and waits for the courier's pickup at the
  patient's home, booked after commit by the receiver of `READY_FOR_COURIER`.
* `reconcile_return`: the supply manager, once the return is delivered at the depot, says
  of each kit whether it came back unused, used, damaged, or not at all. Kits that came
  back become RETURNED and are back in the depot; a missing one keeps its status, on the
  patient's account, where accountability lists it.
* `destroy`: returned kits are destroyed, with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, events, policy
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.locking import lock_for_update
from dct_platform.models import Patient, User
from dct_platform.roles import Role
from dct_platform.services.ownership import responsibility_at
from logistics.shipments import orders
from logistics.shipments.events import READY_FOR_COURIER
from logistics.shipments.models import (
    KitCondition,
    OrderReason,
    Shipment,
    ShipmentKind,
    ShipmentKit,
)
from logistics.shipments.policy import RECONCILE, REQUEST
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Kit, KitStatus
from logistics.supply.policy import SUPPLY_ROLES

# Kits a patient may send back: with them, whether used, damaged or in quarantine.
RETURNABLE = frozenset(
    {KitStatus.DELIVERED, KitStatus.DISPENSED, KitStatus.DAMAGED, KitStatus.QUARANTINED}
)
CAME_BACK = frozenset({KitCondition.RECEIVED, KitCondition.USED, KitCondition.DAMAGED})
MAX_NOTE = 500


def _may_ask(actor: User, patient: Patient, now: datetime) -> bool:
    if actor.role == Role.PATIENT:
        return patient.user_id == actor.id
    return policy.can(actor, REQUEST, patient, now=now)


def request_return(
    session: Session,
    actor: User,
    now: datetime,
    *,
    patient: Patient,
    kits: Sequence[Kit],
    note: str | None = None,
) -> Shipment:
    """A return of `kits` (the patient's, of one product, from one depot) to that depot,
    ready for the courier's pickup. Raises `Forbidden` for anyone but the patient and their
    site's staff, `ValidationFailed` for kits that are not the patient's to send back,
    `Conflict` for a kit already in a return under way."""
    if not _may_ask(actor, patient, now):
        raise Forbidden(_l("You are not allowed to ask for a return for this patient."))
    note = (note or "").strip() or None
    errors: dict[str, list[str]] = {}
    if not kits:
        errors["kits"] = [_l("Choose at least one kit to send back.")]
    if note is not None and len(note) > MAX_NOTE:
        errors["note"] = [_l("Please keep the note under %(n)d characters.", n=MAX_NOTE)]
    wrong = [k.kit_number for k in kits if k.patient_id != patient.id or k.status not in RETURNABLE]
    if wrong:
        errors["kits"] = [
            _l("These kits are not with this patient: %(kits)s.", kits=", ".join(sorted(wrong)))
        ]
    elif kits and len({(k.product_id, k.depot_id) for k in kits}) > 1:
        errors["kits"] = [_l("Send back kits of one product from one depot together.")]
    if len({k.id for k in kits}) != len(kits):
        errors["kits"] = [_l("A kit is named twice.")]
    if errors:
        raise ValidationFailed(
            _l("The return could not be requested; see details."), {"fields": errors}
        )
    under_way = session.scalars(
        select(Kit.kit_number)
        .join(ShipmentKit, ShipmentKit.kit_id == Kit.id)
        .join(Shipment, Shipment.id == ShipmentKit.shipment_id)
        .where(
            Kit.id.in_([k.id for k in kits]),
            Shipment.kind == ShipmentKind.RETURN,
            Shipment.received_at.is_(None),
            Shipment.status.not_in([ShipmentStatus.LOST, ShipmentStatus.CANCELLED]),
        )
    ).all()
    if under_way:
        raise Conflict(
            _l("A return is already under way for %(kits)s.", kits=", ".join(sorted(under_way)))
        )
    first = kits[0]
    # Responsible now, as for a delivery (`orders.request_shipment`).
    responsible = responsibility_at(session, patient.id, now)
    shipment = Shipment(
        kind=ShipmentKind.RETURN, reason=OrderReason.RETURN, trial_id=patient.trial_id,
        patient_id=patient.id, site_id=responsible.site_id,
        investigator_id=responsible.investigator_id, product_id=first.product_id,
        depot_id=first.depot_id, kit_count=len(kits), next_resupply_date=now.date(),
        status=ShipmentStatus.CREATED, requested_by_id=actor.id, requested_at=now,
        request_note=note, status_changed_at=now, created_at=now, updated_at=now,
    )  # fmt: skip
    numbers = ", ".join(sorted(k.kit_number for k in kits))
    with audit.acting(
        session,
        actor,
        now,
        what=f"Request the return of kits {numbers} of {patient.subject_number}",
    ):
        session.add(shipment)
        session.flush()
        for kit in kits:
            session.add(ShipmentKit(shipment_id=shipment.id, kit_id=kit.id))
    shipment.patient, shipment.product = patient, first.product
    orders.track(session, shipment, now, "Return requested")
    orders.record_activity(session, shipment, now)
    events.emit(session, READY_FOR_COURIER, now, {"shipment_id": shipment.id})
    return shipment


def reconcile_return(
    session: Session,
    actor: User,
    now: datetime,
    shipment: Shipment,
    *,
    kits: dict[int, KitCondition],
    note: str | None = None,
) -> Shipment:
    """The depot's count of a return that arrived: each of its kits came back unused
    (`RECEIVED`), `USED`, `DAMAGED`, or is `MISSING`. Every kit must be named."""
    policy.authorize(actor, RECONCILE, shipment, now=now)
    # A second tap (or a second person) waits here and finds the first one's answer.
    lock_for_update(session, shipment)
    if shipment.kind is not ShipmentKind.RETURN:
        raise Conflict("Only a return is reconciled; a delivery is confirmed by the patient.")
    if shipment.received_at is not None:
        raise Conflict(f"Return #{shipment.id} was already reconciled.")
    if shipment.status is not ShipmentStatus.DELIVERED:
        raise Conflict(f"Return #{shipment.id} has not arrived at the depot yet.")
    in_parcel = {sk.kit_id: sk for sk in shipment.kits}
    errors: dict[str, list[str]] = {}
    for kit_id in set(kits) - set(in_parcel):
        errors[f"kit-{kit_id}"] = ["This kit is not part of the return."]
    for kit_id, sk in in_parcel.items():
        if kit_id not in kits:
            errors[f"kit-{kit_id}"] = [f"Say what came back of kit {sk.kit.kit_number}."]
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        errors["note"] = [f"Keep the note under {MAX_NOTE} characters."]
    if errors:
        raise ValidationFailed(
            "The return could not be reconciled; see details.", {"fields": errors}
        )
    with audit.acting(session, actor, now, what=f"Reconcile return #{shipment.id}"):
        for kit_id, sk in in_parcel.items():
            condition = KitCondition(kits[kit_id])
            sk.condition = condition
            sk.condition_note = note
            sk.recorded_at = now
            if condition in CAME_BACK:
                sk.kit.status = KitStatus.RETURNED
                sk.kit.depot_id = shipment.depot_id
                sk.kit.updated_at = now
        shipment.received_at = now
        shipment.received_by_id = actor.id
        shipment.updated_at = now
    return shipment


def destroy(
    session: Session, actor: User, now: datetime, kits: Sequence[Kit], reason: str
) -> list[Kit]:
    """Returned kits destroyed at the depot, by a supply manager of their trial."""
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed.on_field("reason", "Give the reason for the destruction.")
    if len(reason) > MAX_NOTE:
        raise ValidationFailed.on_field("reason", f"Keep the reason under {MAX_NOTE} characters.")
    if not kits:
        raise ValidationFailed.on_field("kits", "Choose the kits to destroy.")
    if actor.role not in SUPPLY_ROLES or any(k.trial_id not in actor.trial_ids for k in kits):
        raise Forbidden("Only a supply manager of the kits' trial destroys them.")
    not_back = sorted(k.kit_number for k in kits if k.status is not KitStatus.RETURNED)
    if not_back:
        raise Conflict(f"Only returned kits are destroyed; not {', '.join(not_back)}.")
    numbers = ", ".join(sorted(k.kit_number for k in kits))
    with audit.acting(session, actor, now, reason, what=f"Destroy kits {numbers}"):
        for kit in kits:
            kit.status = KitStatus.DESTROYED
            kit.updated_at = now
    return list(kits)
