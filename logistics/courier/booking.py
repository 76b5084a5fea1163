"""Booking the courier for a shipment, after the change that released it has committed.

The receiver runs once per READY_FOR_COURIER delivery, at least once (the core's events
retry), so it is idempotent twice over:
- a shipment that has a tracking number is left alone;
- the booking is claimed under the shipment's row lock (no tracking number, no live
  claim), committed before the courier is called, so two workers never call it for the same
  shipment at once, and no transaction is open during the call. While the claim holds,
  `booked_at` is the claim's time and `courier` the courier being booked; a claim older
  than `CLAIM_TIMEOUT` (a worker that died mid-call) may be taken again, and the
  Idempotency-Key (the shipment's reference) makes the courier answer with the first
  booking instead of making a second.

When the courier cannot be reached, the failure is counted on the shipment for the board
and the receiver raises, so that the core retries the delivery later.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from dct_platform import audit, events
from dct_platform.errors import Conflict
from dct_platform.locking import lock_for_update
from dct_platform.models import PatientIdentity
from logistics.courier import tracking
from logistics.courier.client import Address, CourierClient, CourierError
from logistics.shipments import orders
from logistics.shipments.events import READY_FOR_COURIER
from logistics.shipments.models import Shipment, ShipmentKind
from logistics.shipments.states import ShipmentStatus

log = logging.getLogger(__name__)

CLAIM_TIMEOUT = timedelta(minutes=5)


class BookingFailed(Exception):
    """The courier could not book the shipment now; the event delivery is retried."""


def reference(shipment: Shipment) -> str:
    """Our id for the booking, the courier's idempotency key."""
    return f"SHP-{shipment.id}"


def _claim(session: Session, shipment: Shipment, courier: str, now: datetime) -> bool:
    # The row lock makes a second worker wait here and then see this claim; committed
    # before the courier is called.
    lock_for_update(session, shipment)
    claimable = (
        shipment.status is ShipmentStatus.CREATED
        and shipment.tracking_number is None
        and (shipment.booked_at is None or shipment.booked_at < now - CLAIM_TIMEOUT)
    )
    if claimable:
        with audit.acting(
            session, None, now, what=f"Start courier booking of shipment #{shipment.id}",
            system=f"courier:{courier}",
        ):  # fmt: skip
            shipment.courier = courier
            shipment.booked_at = now
    session.commit()
    return claimable


def _depot_address(shipment: Shipment) -> dict[str, Any]:
    depot = shipment.depot
    # Depots are known to the courier by name; they hold no street here.
    return {"name": depot.name, "line1": depot.name, "line2": None, "postal_code": None,
            "city": None, "country": depot.country}  # fmt: skip


def _patient_address(session: Session, shipment: Shipment) -> Address:
    identity = session.get(PatientIdentity, shipment.patient_id)
    if identity is None or not identity.address_line1:
        raise BookingFailed(f"shipment #{shipment.id}: the patient has no delivery address")
    return Address(
        name=f"{identity.given_name} {identity.family_name}",
        line1=identity.address_line1,
        line2=identity.address_line2,
        postal_code=identity.postal_code,
        city=identity.city,
        country=identity.country,
    )


def _record_failure(session: Session, shipment_id: int, now: datetime, error: str) -> None:
    session.rollback()
    shipment = session.get(Shipment, shipment_id)
    assert shipment is not None
    with audit.acting(
        session, None, now, what=f"Courier booking of shipment #{shipment_id} failed",
        system=f"courier:{shipment.courier or 'unbooked'}",
    ):  # fmt: skip
        shipment.booking_failures += 1
        shipment.booking_error = error[:500]
        shipment.booked_at = None  # releases the claim
        shipment.updated_at = now
    session.commit()


def _waits_for_booking(shipment: Shipment) -> bool:
    # A repeated event, or one for a shipment booked some other way, has nothing to do.
    return not shipment.tracking_number and shipment.status is ShipmentStatus.CREATED


def book_shipment(
    session: Session, now: datetime, shipment_id: int, courier: CourierClient
) -> str | None:
    """Book the courier for one created shipment; its tracking number, or None when there
    was nothing to do (booked already, or another worker is booking it). Commits."""
    shipment = session.get(Shipment, shipment_id)
    if shipment is None or not _waits_for_booking(shipment):
        return None
    if shipment.kind is ShipmentKind.DELIVERY:
        try:
            orders.require_release(session, shipment)
        except Conflict as exc:
            # Nothing leaves without the investigator's valid signature; the board shows why.
            _record_failure(session, shipment_id, now, str(exc))
            raise BookingFailed(f"shipment #{shipment_id}: {exc}") from None
    session.commit()  # ends the read before the claim's own transaction
    if not _claim(session, shipment, courier.name, now):
        return None
    try:
        patient = _patient_address(session, shipment)
        depot = _depot_address(shipment)
        session.commit()  # no transaction is open while the courier is called
        delivery = shipment.kind is ShipmentKind.DELIVERY
        booking = courier.book(
            reference=reference(shipment),
            pickup=depot if delivery else patient,
            deliver_to=patient if delivery else depot,
            parcels=shipment.kit_count,
            pickup_after=now,
        )
    except (CourierError, BookingFailed) as exc:
        _record_failure(session, shipment_id, now, str(exc))
        log.warning("courier booking of shipment %s failed: %s", shipment_id, exc)
        raise BookingFailed(str(exc)) from None
    with audit.acting(
        session, None, now, what=f"Book courier {courier.name} for shipment #{shipment_id}",
        system=f"courier:{courier.name}",
    ):  # fmt: skip
        shipment.courier = courier.name
        shipment.tracking_number = booking.tracking_number
        shipment.booked_at = now
        shipment.expected_delivery_at = booking.expected_delivery_at
        shipment.booking_error = None
        shipment.updated_at = now
    tracking.apply_update(
        session, now, courier=courier.name, message_id=f"booking:{reference(shipment)}",
        tracking_number=booking.tracking_number, status=ShipmentStatus.BOOKED.value,
        occurred_at=now, source="platform",
    )  # fmt: skip
    session.commit()
    return booking.tracking_number


@events.receiver(READY_FOR_COURIER, "logistics.book-courier")
def book_courier(session: Session, event: events.Event, now: datetime) -> None:
    shipment_id = int(event.payload["shipment_id"])
    shipment = session.get(Shipment, shipment_id)
    if shipment is None or not _waits_for_booking(shipment):
        return
    try:
        courier = CourierClient.from_config(current_app.config)
    except CourierError as exc:
        # No courier configured (a demo, a test site): the board shows why it waits.
        _record_failure(session, shipment_id, now, str(exc))
        raise BookingFailed(str(exc)) from None
    with courier:
        book_shipment(session, now, shipment_id, courier)
