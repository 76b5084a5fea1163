"""A shipment's statuses and the moves between them. Plain Python, no database.

Before the courier: an order is `requested` by a site or the resupply schedule, then
`created` once the investigator releases it with a signature and its kits are reserved
(or `cancelled` instead). From `created` on, the statuses are the courier's, and the
courier's updates may only move a shipment along `COURIER_MOVES`: an update that would
move it elsewhere (a "picked up" after "delivered", say, arriving late or out of order)
is refused and logged, never applied.

Couriers do not scan every step, so a move may skip statuses forward (booked straight to
in transit); it never goes back, except out for delivery again after a failed attempt.
"""

from __future__ import annotations

import enum


class ShipmentStatus(enum.StrEnum):
    REQUESTED = "requested"  # waiting for the investigator's release
    CANCELLED = "cancelled"  # before release only
    CREATED = "created"  # released, kits reserved; the courier is being booked
    BOOKED = "booked"  # the courier has a pickup and gave a tracking number
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    FAILED_ATTEMPT = "failed_attempt"
    RETURNED_TO_SENDER = "returned_to_sender"
    LOST = "lost"


LABELS: dict[ShipmentStatus, str] = {
    ShipmentStatus.REQUESTED: "Waiting for release",
    ShipmentStatus.CANCELLED: "Cancelled",
    ShipmentStatus.CREATED: "Released, booking the courier",
    ShipmentStatus.BOOKED: "Courier booked",
    ShipmentStatus.PICKED_UP: "Picked up",
    ShipmentStatus.IN_TRANSIT: "In transit",
    ShipmentStatus.OUT_FOR_DELIVERY: "Out for delivery",
    ShipmentStatus.DELIVERED: "Delivered",
    ShipmentStatus.FAILED_ATTEMPT: "Delivery attempt failed",
    ShipmentStatus.RETURNED_TO_SENDER: "Returned to sender",
    ShipmentStatus.LOST: "Lost",
}

S = ShipmentStatus

# Where the platform itself moves an order.
ORDER_MOVES: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    S.REQUESTED: frozenset({S.CREATED, S.CANCELLED}),
}

# Where a courier's update may move a shipment.
COURIER_MOVES: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    S.CREATED: frozenset({S.BOOKED}),
    S.BOOKED: frozenset({S.PICKED_UP, S.IN_TRANSIT, S.LOST}),
    S.PICKED_UP: frozenset({S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.LOST}),
    S.IN_TRANSIT: frozenset({S.OUT_FOR_DELIVERY, S.DELIVERED, S.RETURNED_TO_SENDER, S.LOST}),
    S.OUT_FOR_DELIVERY: frozenset({S.DELIVERED, S.FAILED_ATTEMPT, S.LOST}),
    S.FAILED_ATTEMPT: frozenset(
        {S.OUT_FOR_DELIVERY, S.IN_TRANSIT, S.DELIVERED, S.RETURNED_TO_SENDER, S.LOST}
    ),
}

FINISHED = frozenset({S.CANCELLED, S.DELIVERED, S.RETURNED_TO_SENDER, S.LOST})
# With the courier: the kits have left the depot and not arrived.
ON_THE_WAY = frozenset({S.PICKED_UP, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.FAILED_ATTEMPT})
# Statuses a courier reports (the platform's own are requested, cancelled, created).
COURIER_STATUSES = frozenset(COURIER_MOVES) | frozenset().union(*COURIER_MOVES.values())


def can_move(current: ShipmentStatus, new: ShipmentStatus) -> bool:
    """Whether a courier's update may move a shipment from `current` to `new`."""
    return new in COURIER_MOVES.get(current, frozenset())


def label(status: ShipmentStatus | str) -> str:
    return LABELS[ShipmentStatus(status)]
