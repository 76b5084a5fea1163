"""Temperature excursions of shipments: the logger that travels with a shipment, the check
of its readings, the quarantine, and the supply manager's disposition.

* `attach_logger` puts a logger unit with a shipment before pickup; `release_logger` takes
  it back when the shipment is finished. The logger sends its readings through the device
  ingestion API with its own credential, metric `ambient_temperature`.
* After readings of a shipment's logger are stored, device ingestion emits
  `devices.shipment-readings-stored`; `check_shipment` (its receiver, after commit) reads
  all of the shipment's readings and applies `temperature.find_excursion`. On an
  excursion the shipment's kits go to quarantine, `Shipment.excursion_at` is set and one
  `ExcursionDisposition` is opened. The check runs under the shipment's row lock and does
  nothing while a disposition is open, so repeated or concurrent batches open one task.
* `decide`: the supply manager releases the kits with a reason (they go back to the status
  the shipment's progress gives them) or rejects them, which orders a replacement.
  Rejected kits stay QUARANTINED, not DESTROYED: they are at the patient's home or on the
  way, and accountability must not count them destroyed until the depot reconciles their
  return (or the site records their destruction). The rejected disposition is what says
  they are never to be used.
* `quarantine_notice`: what the patient's pages show while kits of theirs are quarantined.

Shipments use the devices package for their loggers (`devices` never imports `logistics`:
the import-linter contract). `init_app` hands ingestion the resolver of a shipment's
patient and site and subscribes to its event when the devices package is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, events, policy
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.locking import lock_for_update
from dct_platform.models import Patient, User
from dct_platform.timeutil import to_local
from devices import ingestion, registry
from devices.models import DeviceAssignment, DeviceReading
from logistics.shipments.models import (
    Decision,
    ExcursionDisposition,
    KitCondition,
    OrderReason,
    Shipment,
    ShipmentKind,
    ShipmentKit,
)
from logistics.shipments.policy import DISPOSE
from logistics.shipments.states import FINISHED, ShipmentStatus
from logistics.shipments.temperature import Finding, Range, find_excursion
from logistics.supply.models import HELD_FOR_PATIENT, Kit, KitStatus

SYSTEM = "temperature-check"
DISPOSITION_SYSTEM = "excursion-disposition"
METRIC = "ambient_temperature"
MAX_REASON = 500
RECEIVER_ID = "logistics.temperature-check"
# A logger goes with the kits before the courier takes them.
BEFORE_PICKUP = frozenset({ShipmentStatus.REQUESTED, ShipmentStatus.CREATED, ShipmentStatus.BOOKED})

NOTICE_MESSAGE = _l(
    "Do not use the kits in this delivery. They may have become too warm or too cold on the "
    "way. Keep them in their box; your study site will contact you about what to do."
)
REJECTED_MESSAGE = _l(
    "Do not use the kits in this delivery: they cannot be used after a temperature problem "
    "on the way. Keep them in their box to be returned; replacement kits are being sent."
)


# --- the logger --------------------------------------------------------------------------


def _require_supply_manager(actor: User | None, shipment: Shipment, now: datetime) -> None:
    # Whoever may decide on the shipment's excursions is who looks after its logger.
    policy.authorize(actor, DISPOSE, shipment, now=now)


def attach_logger(
    session: Session, actor: User | None, now: datetime, shipment: Shipment, unit: Any,
    *, system: str | None = None,
) -> Any:  # fmt: skip
    """Put logger `unit` (a `devices` unit) with a delivery before pickup; returns the
    unit's assignment. The supply manager of the shipment's trial does it."""
    if system is None:
        _require_supply_manager(actor, shipment, now)
    if shipment.kind is not ShipmentKind.DELIVERY:
        raise Conflict(f"Shipment #{shipment.id} is a return; loggers travel with deliveries.")
    if shipment.status not in BEFORE_PICKUP:
        raise Conflict(
            f"Shipment #{shipment.id} has left the depot; a logger goes with it before pickup."
        )
    if logger_of(session, shipment) is not None:
        raise Conflict(f"Shipment #{shipment.id} has a logger already.")
    return registry.issue_to_shipment(
        session, actor, now, unit, shipment.id, f"Travels with shipment #{shipment.id}",
        system=system,
    )  # fmt: skip


def logger_of(session: Session, shipment: Shipment) -> DeviceAssignment | None:
    """The shipment's current logger assignment, if any."""
    return session.scalar(
        select(DeviceAssignment).where(
            DeviceAssignment.shipment_id == shipment.id, DeviceAssignment.valid_to.is_(None)
        )
    )


def release_logger(
    session: Session, actor: User | None, now: datetime, shipment: Shipment,
    *, system: str | None = None,
) -> bool:  # fmt: skip
    """Take the logger back from a finished shipment (its credential is revoked: a logger
    is provisioned anew for its next trip). False when it had none."""
    if system is None:
        _require_supply_manager(actor, shipment, now)
    if shipment.status not in FINISHED:
        raise Conflict(f"Shipment #{shipment.id} is not finished; its logger stays with it.")
    held = logger_of(session, shipment)
    if held is None:
        return False
    registry.take_back(
        session, actor, now, held.unit, f"Shipment #{shipment.id} finished", system=system
    )
    return True


# --- the check ---------------------------------------------------------------------------


def limits_of(shipment: Shipment) -> Range:
    p = shipment.product
    return Range(p.min_c, p.max_c, p.hard_min_c, p.hard_max_c, p.excursion_minutes)


def readings_of(
    session: Session, shipment_id: int, since: datetime | None = None
) -> list[tuple[datetime, float]]:
    """(time, °C) of the loggers that travelled with the shipment, while they did, oldest
    first."""
    reading, assignment = DeviceReading, DeviceAssignment
    query = (
        select(reading.effective_start, reading.value)
        .join(assignment, assignment.unit_id == reading.unit_id)
        .where(
            assignment.shipment_id == shipment_id,
            reading.metric == METRIC,
            reading.effective_start >= assignment.valid_from,
            (assignment.valid_to.is_(None)) | (reading.effective_start < assignment.valid_to),
        )
        .order_by(reading.effective_start)
    )
    if since is not None:
        query = query.where(reading.effective_start >= since)
    return [(at, value) for at, value in session.execute(query)]


def open_disposition(session: Session, shipment_id: int) -> ExcursionDisposition | None:
    return session.scalar(
        select(ExcursionDisposition).where(
            ExcursionDisposition.shipment_id == shipment_id,
            ExcursionDisposition.decision.is_(None),
        )
    )


def check_shipment(
    session: Session, now: datetime, shipment_id: int
) -> ExcursionDisposition | None:
    """Check the shipment's readings; on an excursion quarantine its kits and open the
    disposition task. Idempotent: returns the task it opened, else None.

    After a release, only readings from the decision on count (the supply manager judged
    everything before it); after a rejection there is nothing left to protect."""
    shipment = session.get(Shipment, shipment_id)
    if shipment is None or shipment.kind is not ShipmentKind.DELIVERY:
        return None
    lock_for_update(session, shipment)  # concurrent batches queue here
    decided = list(
        session.scalars(
            select(ExcursionDisposition)
            .where(ExcursionDisposition.shipment_id == shipment.id)
            .order_by(ExcursionDisposition.id)
        )
    )
    if any(d.decision is None or d.decision is Decision.REJECT for d in decided):
        return None
    since = max((d.decided_at for d in decided if d.decided_at is not None), default=None)
    limits = limits_of(shipment)
    finding = find_excursion(readings_of(session, shipment.id, since), limits)
    if finding is None:
        return None
    return _quarantine(session, now, shipment, finding, limits)


def _quarantine(
    session: Session, now: datetime, shipment: Shipment, finding: Finding, limits: Range
) -> ExcursionDisposition:
    what = f"Quarantine the kits of shipment #{shipment.id} after a temperature excursion"
    with audit.acting(session, None, now, finding.describe(limits), system=SYSTEM, what=what):
        for shipped in shipment.kits:
            if shipped.kit.status in HELD_FOR_PATIENT:
                shipped.kit.status = KitStatus.QUARANTINED
                shipped.kit.updated_at = now
        shipment.excursion_at = shipment.excursion_at or finding.first_at
        disposition = ExcursionDisposition(
            shipment_id=shipment.id,
            opened_at=now,
            finding=finding.describe(limits),
            worst_c=finding.worst_c,
            minutes_out_of_range=finding.minutes_out_of_range,
        )
        session.add(disposition)
    return disposition


def _on_readings(session: Session, event: events.Event, now: datetime) -> None:
    for shipment_id in event.payload.get("shipment_ids", []):
        check_shipment(session, now, int(shipment_id))


def _holders(session: Session, shipment_ids: Any) -> dict[int, tuple[int, int]]:
    """The patient and site a shipment's logger readings are filed under."""
    rows = session.execute(
        select(Shipment.id, Shipment.patient_id, Shipment.site_id).where(
            Shipment.id.in_(list(shipment_ids))
        )
    )
    return {sid: (patient_id, site_id) for sid, patient_id, site_id in rows}


def init_app(app: Flask) -> None:
    """Link to device ingestion when the devices package is loaded too."""
    if "devices" not in app.config.get("FEATURE_PACKAGES", ()):
        return
    ingestion.register_shipment_holders(_holders)
    if RECEIVER_ID not in events.registry.receivers:
        events.registry.add_receiver(ingestion.SHIPMENT_READINGS_STORED, RECEIVER_ID, _on_readings)


# --- the disposition ---------------------------------------------------------------------


def _status_without_quarantine(shipment: Shipment, condition: KitCondition | None) -> KitStatus:
    """Where a kit of the shipment would be had it not been quarantined."""
    if shipment.received_at is not None and condition is KitCondition.RECEIVED:
        return KitStatus.DISPENSED
    if shipment.status is ShipmentStatus.DELIVERED:
        return KitStatus.DELIVERED
    if shipment.status in BEFORE_PICKUP:
        return KitStatus.RESERVED
    # On the way, or returned to the sender or lost: the kits left the depot.
    return KitStatus.SHIPPED


def decide(
    session: Session,
    actor: User | None,
    now: datetime,
    disposition: ExcursionDisposition,
    *,
    decision: Decision,
    reason: str,
) -> ExcursionDisposition:
    """Release (the kits may be used) or reject (a replacement is ordered) the quarantined
    kits of `disposition`'s shipment. The supply manager of the trial decides, once, with a
    reason: a second decision is a Conflict (409), also when two decide at the same time."""
    shipment = disposition.shipment
    policy.authorize(actor, DISPOSE, shipment, now=now)
    text = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if not text:
        errors["reason"] = ["Give the reason for the decision."]
    elif len(text) > MAX_REASON:
        errors["reason"] = [f"At most {MAX_REASON} characters."]
    try:
        decision = Decision(decision)
    except ValueError:
        errors["decision"] = ["Choose release or reject."]
    if errors:
        raise ValidationFailed("The decision was not recorded; see details.", {"fields": errors})
    # The lock and re-read make the second of two concurrent decisions see the first.
    lock_for_update(session, disposition)
    if disposition.decision is not None:
        raise Conflict(
            f"The excursion of shipment #{shipment.id} was decided already "
            f"({disposition.decision.value})."
        )
    what = f"{decision.value.capitalize()} the quarantined kits of shipment #{shipment.id}"
    with audit.acting(session, actor, now, text, what=what):
        disposition.decision = decision
        disposition.decided_by_id = actor.id if actor is not None else None
        disposition.decided_at = now
        disposition.decision_reason = text
        if decision is Decision.RELEASE:
            for shipped in shipment.kits:
                if shipped.kit.status is KitStatus.QUARANTINED:
                    shipped.kit.status = _status_without_quarantine(shipment, shipped.condition)
                    shipped.kit.updated_at = now
        else:
            # In the same transaction: a replacement that cannot be ordered (no kits left)
            # leaves the task open rather than rejected with nothing on its way.
            replacement = _order_replacement(session, actor, now, shipment, text)
            disposition.replacement_id = replacement.id
    return disposition


def _order_replacement(
    session: Session, actor: User | None, now: datetime, shipment: Shipment, reason: str
) -> Shipment:
    from logistics.shipments import orders  # written alongside; imported when needed

    # The replacement must last as long as the kits it replaces were to; a decision taken
    # after that day still orders one, lasting at least until tomorrow (the next scheduled
    # resupply is then already due and follows on its own).
    tomorrow = to_local(now, shipment.patient.timezone).date() + timedelta(days=1)
    replacement: Shipment = orders.request_shipment(
        session,
        actor,
        now,
        patient=shipment.patient,
        product=shipment.product,
        kit_count=shipment.kit_count,
        next_resupply=max(shipment.next_resupply_date, tomorrow),
        note=f"Replaces shipment #{shipment.id} after a temperature excursion: {reason}"[:500],
        reason=OrderReason.REPLACEMENT,
        replaces=shipment,
        # Ordering is the sites' right; the supply manager's DISPOSE right (checked by
        # `decide`) covers this one order. The trail still names the supply manager.
        system=DISPOSITION_SYSTEM,
    )
    return replacement


# --- what the patient is told ------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineNotice:
    shipment_id: int
    kit_numbers: tuple[str, ...]
    since: datetime | None  # when the excursion began (UTC); show in the patient's zone
    rejected: bool  # the kits are to be returned; replacements are on their way
    message: str


def quarantine_notice(session: Session, patient: Patient) -> list[QuarantineNotice]:
    """One notice per delivery of `patient` with kits in quarantine: do not use them. Gone
    once the kits are released. Says nothing of where the kits are or go."""
    rows = session.execute(
        select(Shipment, Kit.kit_number)
        .join(ShipmentKit, ShipmentKit.shipment_id == Shipment.id)
        .join(Kit, Kit.id == ShipmentKit.kit_id)
        .where(
            Shipment.patient_id == patient.id,
            Shipment.kind == ShipmentKind.DELIVERY,
            Kit.status == KitStatus.QUARANTINED,
        )
        .order_by(Shipment.id, Kit.kit_number)
    ).all()
    kits: dict[int, list[str]] = {}
    shipments: dict[int, Shipment] = {}
    for shipment, number in rows:
        shipments[shipment.id] = shipment
        kits.setdefault(shipment.id, []).append(number)
    notices = []
    for shipment_id, numbers in kits.items():
        shipment = shipments[shipment_id]
        rejected = session.scalar(
            select(ExcursionDisposition.id).where(
                ExcursionDisposition.shipment_id == shipment_id,
                ExcursionDisposition.decision == Decision.REJECT,
            )
        )
        notices.append(
            QuarantineNotice(
                shipment_id=shipment_id,
                kit_numbers=tuple(numbers),
                since=shipment.excursion_at,
                rejected=rejected is not None,
                message=str(REJECTED_MESSAGE if rejected is not None else NOTICE_MESSAGE),
            )
        )
    return notices
