"""Shipments for courier tests: `released_shipment` goes through the orders service
(requested, then released by Berlin's investigator with a signature, which reserves the
kits and emits READY_FOR_COURIER); `unsigned_shipment` writes a CREATED shipment
directly, without the release signature, as a bug or a tampered row would."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask

from dct_platform import audit, events
from dct_platform.extensions import db
from dct_platform.models import Patient
from logistics.shipments import orders
from logistics.shipments.events import READY_FOR_COURIER
from logistics.shipments.models import OrderReason, Shipment, ShipmentKind, ShipmentKit
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Depot, Product
from logistics.supply.selection import reserve_kits
from tests.support.supply import SYSTEM, Supply, build_supply, receive, user_named
from tests.support.world import PASSWORD, World

RESUPPLY_DAYS = 28


def stock(app: Flask, world: World, now: datetime) -> Supply:
    supply = build_supply(app, world, now)
    kits = [(f"K-{n:03d}", "A") for n in range(1, 5)]
    expiry = now.date() + timedelta(days=365)
    receive(app, supply.product_id, supply.depot_id, "LOT-1", expiry, kits, now)
    return supply


def released_shipment(
    app: Flask, world: World, supply: Supply, now: datetime, *, kits: int = 2
) -> int:
    """A delivery to Anna (Berlin), released; committed, its event not yet delivered."""
    with app.app_context():
        s = db.session()
        anna = s.get_one(Patient, world.patients["anna"].id)
        product = s.get_one(Product, supply.product_id)
        shipment = orders.request_shipment(
            s, user_named(s, "coord_berlin"), now, patient=anna, product=product,
            kit_count=kits, next_resupply=now.date() + timedelta(days=RESUPPLY_DAYS),
        )  # fmt: skip
        orders.release(s, user_named(s, "pi_berlin"), now, shipment, password=PASSWORD)
        s.commit()
        return shipment.id


def unsigned_shipment(app: Flask, world: World, supply: Supply, now: datetime) -> int:
    """A CREATED delivery to Anna with reserved kits but no release signature."""
    with app.app_context():
        s = db.session()
        anna = s.get_one(Patient, world.patients["anna"].id)
        product, depot = s.get_one(Product, supply.product_id), s.get_one(Depot, supply.depot_id)
        reserved = reserve_kits(
            s, None, now, patient=anna, product=product, depot=depot, count=1,
            next_resupply=now.date() + timedelta(days=RESUPPLY_DAYS), system=SYSTEM,
        )  # fmt: skip
        with audit.acting(s, None, now, what="Unsigned shipment", system=SYSTEM):
            shipment = Shipment(
                kind=ShipmentKind.DELIVERY, reason=OrderReason.SITE_REQUEST,
                trial_id=anna.trial_id, patient_id=anna.id, site_id=anna.site_id,
                product_id=product.id, depot_id=depot.id, kit_count=1,
                next_resupply_date=now.date() + timedelta(days=RESUPPLY_DAYS),
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
