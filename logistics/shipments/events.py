"""The events shipments emit, for work that must happen after the change commits."""

from __future__ import annotations

from dct_platform import events

# A shipment waits for the courier to be booked: a delivery the investigator released, or
# a return the patient or site asked for. Payload: {"shipment_id": int}. The courier is
# called by the receiver, after commit, never inside the transaction that decided it.
READY_FOR_COURIER = events.declare(
    "logistics.shipment-ready-for-courier", "A shipment is ready to be booked with the courier"
)
