"""The resupply schedule: the next delivery is ordered before the patient runs out.

A patient is due when their last released delivery of a product (delivered or on its way)
names a next resupply date within `lead_days` of today on the patient's calendar. The
order (reason SCHEDULED, by the system) repeats the last kit count, with the next resupply
`interval_days` after the previous one (further, if cycles were missed, so that it is
after today). It still needs the investigator's release, like any order.

Idempotent: a patient with any other order of the product requested after their last released one
(open, or cancelled by the site, which then took this cycle into its own hands) is not
ordered for again; once the new order is released, its own next resupply date is the one
watched.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dct_platform.errors import DomainError
from dct_platform.models import Patient, PatientStatus
from dct_platform.timeutil import to_local
from logistics.shipments import orders
from logistics.shipments.models import OrderReason, Shipment, ShipmentKind
from logistics.supply.models import Product

log = logging.getLogger(__name__)

SYSTEM = "resupply-schedule"
LEAD_DAYS = 7
INTERVAL_DAYS = 28


def request_due(
    session: Session,
    now: datetime,
    *,
    lead_days: int = LEAD_DAYS,
    interval_days: int = INTERVAL_DAYS,
) -> int:
    """Order the next delivery for every enrolled patient who is due (see the module);
    returns how many orders were made. Only flushes: the caller commits."""
    if interval_days < 1 or lead_days < 0:
        raise ValueError("interval_days >= 1 and lead_days >= 0")
    latest = (
        select(
            Shipment.patient_id,
            Shipment.product_id,
            func.max(Shipment.released_at).label("released_at"),
        )
        .where(
            Shipment.kind == ShipmentKind.DELIVERY,
            Shipment.released_at.is_not(None),
        )
        .group_by(Shipment.patient_id, Shipment.product_id)
        .subquery()
    )
    last = list(
        session.scalars(
            select(Shipment)
            .join(
                latest,
                (Shipment.patient_id == latest.c.patient_id)
                & (Shipment.product_id == latest.c.product_id)
                & (Shipment.released_at == latest.c.released_at),
            )
            .join(Patient, Patient.id == Shipment.patient_id)
            .where(Shipment.kind == ShipmentKind.DELIVERY, Patient.status == PatientStatus.ENROLLED)
            .order_by(Shipment.patient_id, Shipment.product_id, Shipment.id.desc())
        )
    )
    made = 0
    seen: set[tuple[int, int]] = set()
    for previous in last:
        key = (previous.patient_id, previous.product_id)
        if key in seen:  # two released at the same instant: the newest id counts
            continue
        seen.add(key)
        patient = previous.patient
        today = to_local(now, patient.timezone).date()
        if previous.next_resupply_date > today + timedelta(days=lead_days):
            continue
        assert previous.released_at is not None
        next_resupply = previous.next_resupply_date + timedelta(days=interval_days)
        while next_resupply <= today:
            next_resupply += timedelta(days=interval_days)
        since = session.scalar(
            select(func.count(Shipment.id)).where(
                Shipment.patient_id == previous.patient_id,
                Shipment.product_id == previous.product_id,
                Shipment.kind == ShipmentKind.DELIVERY,
                Shipment.requested_at > previous.requested_at,
                Shipment.id != previous.id,
            )
        )
        if since or orders.open_order(session, patient.id, previous.product_id, next_resupply):
            continue
        product = session.get(Product, previous.product_id)
        assert product is not None
        savepoint = session.begin_nested()
        try:
            orders.request_shipment(
                session, None, now, patient=patient, product=product,
                kit_count=previous.kit_count, next_resupply=next_resupply,
                reason=OrderReason.SCHEDULED, system=SYSTEM,
                note=f"Scheduled resupply after shipment #{previous.id}",
            )  # fmt: skip
        except DomainError as refused:
            # One patient's refusal (a product no longer fit for home delivery, say) must
            # not stop the others' orders; the site orders by hand after fixing it.
            savepoint.rollback()
            log.warning(
                "resupply for patient %s, product %s refused: %s",
                patient.subject_number, product.code, refused.message,
            )  # fmt: skip
            continue
        savepoint.commit()
        made += 1
    return made
