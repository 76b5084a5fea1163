"""A delivery to Anna ready for the browser test of issue 12, made through the services and
the real HTTP interfaces, never by writing rows:

* `booked_delivery(app, world, start)`: stock (`tests.support.shipments.stock`), an order
  requested by Berlin's coordinator and released with Berlin's investigator's signature,
  the courier booked by delivering the pending events (the booking receiver calls the
  courier configured in the app: start the simulator and set COURIER_* first), and a
  cold logger attached by the supply manager before pickup. Everything at `start` and a
  few minutes after it; returns what the test needs to follow the delivery.
* `send_readings(app, base_url, trip, celsius, first=, every=)`: the logger's readings
  through the device ingestion API of the live server, with the logger's own credential;
  the request itself runs the temperature check (its after-commit event), and nothing is
  left pending for the event job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from flask import Flask
from sqlalchemy import select

from dct_platform import events
from dct_platform.extensions import db
from dct_platform.timeutil import utcnow
from devices import registry
from devices.models import DeviceKind
from logistics.shipments import excursions
from logistics.shipments.models import Shipment
from logistics.shipments.states import ShipmentStatus
from tests.support.shipments import released_shipment, stock
from tests.support.supply import user_named
from tests.support.world import World

READINGS_URL = "/api/v1/devices/readings"
WORKER = "e2e-worker"
SYSTEM = "test-shipment-e2e"


@dataclass(frozen=True)
class Trip:
    shipment_id: int
    tracking_number: str
    subject_number: str
    kit_numbers: list[str]
    logger_token: str


def deliver_events(app: Flask, now: datetime | None = None) -> events.DeliveryReport:
    """What the event job would do at `now` (the app's clock by default): every due
    delivery."""
    with app.app_context():
        try:
            return events.deliver_due(db.session(), now or utcnow(), WORKER)
        finally:
            db.session.remove()


def booked_delivery(app: Flask, world: World, start: datetime) -> Trip:
    supply = stock(app, world, start)
    shipment_id = released_shipment(app, world, supply, start)
    report = deliver_events(app, start + timedelta(minutes=1))
    assert report.delivered == 1, f"the courier booking did not run: {report}"
    attached = start + timedelta(minutes=2)
    with app.app_context():
        s = db.session()
        shipment = s.get_one(Shipment, shipment_id)
        assert shipment.status is ShipmentStatus.BOOKED, shipment.booking_error
        assert shipment.tracking_number is not None
        model = registry.register_model(
            s, None, attached, manufacturer="Acme", model_name="Cold logger",
            kind=DeviceKind.LOGGER, metrics=["ambient_temperature"], system=SYSTEM,
        )  # fmt: skip
        unit = registry.register_unit(s, None, attached, model, "LOG-E2E-1", system=SYSTEM)
        token = registry.provision_token(s, None, attached, unit, system=SYSTEM)
        excursions.attach_logger(s, user_named(s, "supply"), attached, shipment, unit)
        trip = Trip(
            shipment_id=shipment.id,
            tracking_number=shipment.tracking_number,
            subject_number=shipment.patient.subject_number,
            kit_numbers=sorted(sk.kit.kit_number for sk in shipment.kits),
            logger_token=token,
        )
        s.commit()
        db.session.remove()
    return trip


def send_readings(
    app: Flask, base_url: str, trip: Trip, celsius: Sequence[float], *, first: datetime,
    every: timedelta = timedelta(minutes=10),
) -> None:  # fmt: skip
    """One reading every `every` from `first`, sent over HTTP as the logger does."""
    readings: list[dict[str, str | float]] = [
        {"metric": "ambient_temperature", "value": value, "unit": "°C",
         "time": (first + n * every).isoformat()}
        for n, value in enumerate(celsius)
    ]  # fmt: skip
    response = requests.post(
        base_url + READINGS_URL, json={"readings": readings}, timeout=10,
        headers={"Authorization": f"Bearer {trip.logger_token}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["rejected"] == [] and answer["stored"] == len(celsius), answer
    # The request delivered its own events after its commit: the check has run, nothing
    # is left for the job.
    report = deliver_events(app)
    assert report == events.DeliveryReport(), report


def shipment_status(app: Flask, shipment_id: int) -> ShipmentStatus:
    with app.app_context():
        status = db.session.scalar(select(Shipment.status).where(Shipment.id == shipment_id))
        db.session.remove()
        assert status is not None
        return status
