"""Shipment orders for tests, made through the real services (`logistics.shipments.orders`).

* `stock(app, world, now)`: the test supply (`build_supply`) and 4 kits of arm A (Anna's)
  and 2 of arm B (Kenji's) at the central depot, expiring in a year;
* `requested_shipment(...)`: an order for a patient, requested by their site's staff (the
  Berlin coordinator for Anna; the Tokyo one for Kenji), committed;
* `released_shipment(...)`: the same, released by Berlin's investigator with the world's
  password (kits reserved, READY_FOR_COURIER emitted), committed. Only Berlin has an
  investigator in the world, so only Anna's orders can be released.

All return the shipment's id. `NEXT_RESUPPLY_DAYS` after `now` is the default next
resupply."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask

from dct_platform.extensions import db
from dct_platform.models import Patient, User
from logistics.shipments import orders
from logistics.shipments.models import Shipment
from logistics.supply.models import Product
from tests.support.supply import Supply, build_supply, receive
from tests.support.world import PASSWORD, World

NEXT_RESUPPLY_DAYS = 28
REQUESTER = {"anna": "coord_berlin", "kenji": "coord_tokyo"}


def stock(app: Flask, world: World, now: datetime) -> Supply:
    supply = build_supply(app, world, now)
    expiry = now.date() + timedelta(days=365)
    kits = [(f"K-A{n:02d}", "A") for n in range(1, 5)] + [("K-B01", "B"), ("K-B02", "B")]
    receive(app, supply.product_id, supply.depot_id, "LOT-1", expiry, kits, now)
    return supply


def requested_shipment(
    app: Flask, world: World, supply: Supply, now: datetime, *, patient: str = "anna",
    kits: int = 2, next_resupply_days: int = NEXT_RESUPPLY_DAYS,
) -> int:  # fmt: skip
    with app.app_context():
        s = db.session()
        person = s.get(Patient, world.patients[patient].id)
        product = s.get(Product, supply.product_id)
        actor = s.get(User, world.users[REQUESTER[patient]].id)
        assert person is not None and product is not None and actor is not None
        shipment = orders.request_shipment(
            s, actor, now, patient=person, product=product, kit_count=kits,
            next_resupply=now.date() + timedelta(days=next_resupply_days),
        )  # fmt: skip
        s.commit()
        return shipment.id


def released_shipment(
    app: Flask, world: World, supply: Supply, now: datetime, *, kits: int = 2,
    next_resupply_days: int = NEXT_RESUPPLY_DAYS,
) -> int:  # fmt: skip
    shipment_id = requested_shipment(
        app, world, supply, now, kits=kits, next_resupply_days=next_resupply_days
    )
    with app.app_context():
        s = db.session()
        shipment = s.get(Shipment, shipment_id)
        investigator = s.get(User, world.users["pi_berlin"].id)
        assert shipment is not None and investigator is not None
        orders.release(s, investigator, now, shipment, password=PASSWORD)
        s.commit()
        return shipment_id
