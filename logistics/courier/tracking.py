"""Taking in a courier's status update, once, and only along the state machine.

Every update, from the webhook, from polling or from the platform's own booking, goes
through `apply_update`:

1. The courier's id for the update is inserted into `courier_messages` first, inside a
   savepoint: its unique key is what makes a repeated webhook, or the same update seen
   again by polling, a duplicate. Concurrent senders of one message queue on that key
   (PostgreSQL) or on the write lock (SQLite); all but the first get an IntegrityError,
   roll back only their savepoint and answer "duplicate", leaving the caller's
   transaction usable.
2. The shipment row is locked and re-read, so the decision is taken on the latest status.
3. An impossible move (`states.can_move`) is refused: recorded as a REFUSED tracking event
   with the reason and logged, never applied. The same status again is recorded as
   UNCHANGED.
4. Applied: the status moves, and the kits follow (reserved to shipped when the courier
   has them, shipped to delivered on delivery). A return that is delivered has arrived at
   the depot: its kits are left for the depot's reconciliation. A lost shipment keeps its
   kits as they are; the board shows the status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.locking import lock_for_update
from logistics.shipments import orders, states
from logistics.shipments.models import (
    CourierMessage,
    MessageOutcome,
    Shipment,
    ShipmentKind,
    TrackingEvent,
)
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Kit, KitStatus

log = logging.getLogger(__name__)

DUPLICATE = "duplicate"
UNKNOWN = "unknown"
SOURCES = frozenset({"webhook", "poll", "platform"})


@dataclass(frozen=True)
class UpdateResult:
    """What became of an update: "applied", "refused", "unchanged" (a `MessageOutcome`),
    "duplicate" (seen before: nothing done) or "unknown" (no shipment has that tracking
    number: nothing stored, so the same message can be taken in once the booking is)."""

    outcome: str
    shipment_id: int | None = None
    status: str | None = None  # the shipment's status afterwards
    detail: str | None = None


def find_shipment(session: Session, courier: str, tracking_number: str) -> Shipment | None:
    return session.scalars(
        select(Shipment).where(
            Shipment.courier == courier, Shipment.tracking_number == tracking_number
        )
    ).one_or_none()


def _seen_before(session: Session, courier: str, message_id: str, now: datetime) -> bool:
    try:
        with session.begin_nested():
            session.add(CourierMessage(courier=courier, message_id=message_id, received_at=now))
    except IntegrityError:
        return True
    return False


def _move_kits(session: Session, shipment: Shipment, new: ShipmentStatus, now: datetime) -> None:
    if shipment.kind is not ShipmentKind.DELIVERY:
        return  # a return's kits are the depot's to reconcile on arrival
    if new in states.ON_THE_WAY:
        moves = {KitStatus.RESERVED: KitStatus.SHIPPED}
    elif new is ShipmentStatus.DELIVERED:
        moves = {KitStatus.RESERVED: KitStatus.DELIVERED, KitStatus.SHIPPED: KitStatus.DELIVERED}
    else:
        return
    kit_ids = [sk.kit_id for sk in shipment.kits]
    if not kit_ids:
        return
    # A quarantined kit stays quarantined whatever the courier says.
    for kit in session.scalars(select(Kit).where(Kit.id.in_(kit_ids))):
        if kit.status in moves:
            kit.status = moves[kit.status]
            kit.updated_at = now


def apply_update(
    session: Session,
    now: datetime,
    *,
    courier: str,
    message_id: str,
    tracking_number: str,
    status: str,
    occurred_at: datetime,
    location: str | None = None,
    source: str,
) -> UpdateResult:
    """Take in one courier update in the caller's transaction (flushes, never commits)."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    shipment = find_shipment(session, courier, tracking_number)
    if shipment is None:
        return UpdateResult(UNKNOWN, detail=f"no shipment has tracking number {tracking_number}")
    if _seen_before(session, courier, message_id, now):
        return UpdateResult(DUPLICATE, shipment.id, shipment.status.value)
    lock_for_update(session, shipment)
    current = shipment.status

    def record(outcome: MessageOutcome, detail: str | None = None) -> UpdateResult:
        session.add(
            TrackingEvent(
                shipment_id=shipment.id, status=status[:32], occurred_at=occurred_at,
                recorded_at=now, source=source, message_id=message_id, location=location,
                outcome=outcome, detail=detail,
            )
        )  # fmt: skip
        session.flush()
        return UpdateResult(outcome.value, shipment.id, shipment.status.value, detail)

    try:
        new = ShipmentStatus(status)
    except ValueError:
        new = None
    if new is None or new not in states.COURIER_STATUSES:
        reason = f"{status!r} is not a courier status"
    elif new is current:
        return record(MessageOutcome.UNCHANGED)
    elif not states.can_move(current, new):
        reason = (
            f"a shipment cannot move from {states.label(current).lower()} "
            f"to {states.label(new).lower()}"
        )
    else:
        what = f"Courier update of shipment #{shipment.id}: {states.label(new).lower()}"
        with audit.acting(session, None, now, what=what, system=f"courier:{courier}"):
            shipment.status = new
            shipment.status_changed_at = now
            shipment.updated_at = now
            if new is ShipmentStatus.DELIVERED:
                shipment.delivered_at = occurred_at
            _move_kits(session, shipment, new, now)
            # Site oversight reads the shipment's progress on the patient's timeline.
            orders.record_activity(session, shipment, now)
        return record(MessageOutcome.APPLIED)
    log.warning(
        "courier %s update %s for shipment %s refused (%s): %s",
        courier, message_id, shipment.id, source, reason,
    )  # fmt: skip
    return record(MessageOutcome.REFUSED, reason)
