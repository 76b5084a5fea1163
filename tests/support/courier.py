"""A shipment for courier tests that the orders service would never make:
`unsigned_shipment` writes a CREATED shipment directly, without the release signature, as
a bug or a tampered row would. Released ones come from `tests.support.shipments`."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask

from dct_platform import audit, events
from dct_platform.extensions import db
from dct_platform.models import Patient
from logistics.shipments.events import READY_FOR_COURIER
from logistics.shipments.models import OrderReason, Shipment, ShipmentKind, ShipmentKit
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Depot, Product
from logistics.supply.selection import reserve_kits
from tests.support.shipments import NEXT_RESUPPLY_DAYS
from tests.support.supply import SYSTEM, Supply
from tests.support.world import World


def unsigned_shipment(app: Flask, world: World, supply: Supply, now: datetime) -> int:
    """A CREATED delivery to Anna with reserved kits but no release signature."""
    with app.app_context():
        s = db.session()
        anna = s.get_one(Patient, world.patients["anna"].id)
        product, depot = s.get_one(Product, supply.product_id), s.get_one(Depot, supply.depot_id)
        reserved = reserve_kits(
            s, None, now, patient=anna, product=product, depot=depot, count=1,
            next_resupply=now.date() + timedelta(days=NEXT_RESUPPLY_DAYS), system=SYSTEM,
        )  # fmt: skip
        with audit.acting(s, None, now, what="Unsigned shipment", system=SYSTEM):
            shipment = Shipment(
                kind=ShipmentKind.DELIVERY, reason=OrderReason.SITE_REQUEST,
                trial_id=anna.trial_id, patient_id=anna.id, site_id=anna.site_id,
                product_id=product.id, depot_id=depot.id, kit_count=1,
                next_resupply_date=now.date() + timedelta(days=NEXT_RESUPPLY_DAYS),
                status=ShipmentStatus.CREATED, requested_at=now, released_at=now,
                destination_city="Berlin", destination_country="DE", created_at=now,
                updated_at=now,
            )  # fmt: skip
            s.add(shipment)
            s.flush()
            s.add_all(ShipmentKit(shipment_id=shipment.id, kit_id=k.id) for k in reserved)
        events.emit(s, READY_FOR_COURIER, now, {"shipment_id": shipment.id})
        s.commit()
        return shipment.id
