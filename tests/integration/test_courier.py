"""The courier integration against a real courier simulator on loopback: booking after
release, webhooks (signed, repeated, out of order, concurrent), the courier down and the
platform down, polling as the fallback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from dct_platform import events
from dct_platform.extensions import db
from dct_platform.models import DeliveryStatus, EventDelivery
from logistics.courier import polling
from logistics.courier.client import CourierClient
from logistics.courier.simulator import CourierSimulator
from logistics.courier.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from logistics.shipments.models import Shipment, TrackingEvent
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Kit, KitStatus
from tests.support.clock import TestClock
from tests.support.concurrency import all_at_once
from tests.support.courier import unsigned_shipment
from tests.support.live_server import LiveServer
from tests.support.shipments import released_shipment, stock
from tests.support.world import World

SECRET = "webhook-secret-for-tests"
API_KEY = "courier-api-key-for-tests"
STREET = "1 Hidden Street"
FAST = (0.05, 0.1, 0.2)
ORDER = ("requested", "created")


@pytest.fixture
def now(clock: TestClock) -> datetime:
    return clock.freeze()


@pytest.fixture
def platform(app: Flask, live_server: LiveServer) -> str:
    return f"{live_server.url}/api/v1/courier/webhook"


@pytest.fixture
def sim(app: Flask, platform: str) -> Iterator[CourierSimulator]:
    with CourierSimulator(
        api_key=API_KEY, webhook_url=platform, webhook_secret=SECRET, retry_delays=FAST
    ) as simulator:
        app.config.update(
            COURIER_NAME="simcourier", COURIER_URL=simulator.url, COURIER_API_KEY=API_KEY,
            COURIER_WEBHOOK_SECRET=SECRET,
        )  # fmt: skip
        yield simulator


def deliver(app: Flask, now: datetime) -> events.DeliveryReport:
    with app.app_context():
        return events.deliver_due(db.session(), now, "test-worker")


def shipment_row(app: Flask, shipment_id: int) -> Shipment:
    with app.app_context():
        s = db.session()
        shipment = s.get(Shipment, shipment_id)
        assert shipment is not None
        s.expunge(shipment)
        return shipment


def timeline(app: Flask, shipment_id: int) -> list[tuple[str, str, str]]:
    """(status, outcome, source) of each tracking event from the booking on, in order
    (the order's own "requested" and "created" events are the orders service's)."""
    with app.app_context():
        rows = db.session.execute(
            select(TrackingEvent.status, TrackingEvent.outcome, TrackingEvent.source)
            .where(TrackingEvent.shipment_id == shipment_id, TrackingEvent.status.not_in(ORDER))
            .order_by(TrackingEvent.id)
        ).all()
        return [(status, outcome.value, source) for status, outcome, source in rows]


def kit_statuses(app: Flask, shipment_id: int) -> list[KitStatus]:
    with app.app_context():
        shipment = db.session.get(Shipment, shipment_id)
        assert shipment is not None
        return [db.session.get_one(Kit, sk.kit_id).status for sk in shipment.kits]


def signed_post(url: str, update: Mapping[str, Any], secret: str = SECRET) -> requests.Response:
    body = json.dumps(update).encode()
    stamp = str(int(time.time()))
    return requests.post(
        url, data=body, timeout=10,
        headers={"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                 SIGNATURE_HEADER: signature(secret, stamp, body)},
    )  # fmt: skip


def booked(app: Flask, world: World, now: datetime) -> tuple[int, str]:
    supply = stock(app, world, now)
    shipment_id = released_shipment(app, world, supply, now)
    assert deliver(app, now).delivered == 1
    tracking = shipment_row(app, shipment_id).tracking_number
    assert tracking is not None
    return shipment_id, tracking


def test_booking_after_release_sends_the_address_to_the_courier_only(
    app: Flask, world: World, sim: CourierSimulator, now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    shipment_id, tracking = booked(app, world, now)

    shipment = shipment_row(app, shipment_id)
    assert shipment.status is ShipmentStatus.BOOKED
    assert shipment.courier == "simcourier" and shipment.booked_at == now
    assert shipment.expected_delivery_at is not None and shipment.expected_delivery_at > now
    assert timeline(app, shipment_id) == [("booked", "applied", "platform")]
    assert kit_statuses(app, shipment_id) == [KitStatus.RESERVED, KitStatus.RESERVED]

    for status in ("picked_up", "in_transit", "out_for_delivery", "delivered"):
        sim.advance(tracking, status, location="Berlin")
        sim.wait_webhooks()  # one at a time: each webhook is sent from its own thread
    assert shipment_row(app, shipment_id).status is ShipmentStatus.DELIVERED
    with app.app_context(), CourierClient.from_config(app.config) as courier:
        # Delivered shipments are not polled: ask about it directly, as polling would.
        assert len(courier.updates(tracking)) == 4
    received = sim.requests_received()
    bookings = [r for r in received if r.method == "POST" and r.path == "/v1/shipments"]
    assert len(bookings) == 1
    booking = json.loads(bookings[0].body)
    assert booking["deliver_to"]["line1"] == STREET
    assert booking["deliver_to"]["postal_code"] == "10115"
    assert booking["pickup"]["name"] == "Central depot EU"
    others = [r for r in received if r is not bookings[0]]
    assert [r.method for r in others] == ["GET"]
    assert all(STREET not in r.body.decode() for r in others)
    assert all(STREET not in body.decode() for body, _status in sim.webhooks_sent)
    assert STREET not in caplog.text and "Secretname" not in caplog.text


def test_a_shipment_without_a_valid_release_signature_is_never_booked(
    app: Flask, world: World, sim: CourierSimulator, now: datetime
) -> None:
    supply = stock(app, world, now)
    shipment_id = unsigned_shipment(app, world, supply, now)

    assert deliver(app, now).retrying == 1

    assert sim.requests_received() == []
    shipment = shipment_row(app, shipment_id)
    assert shipment.status is ShipmentStatus.CREATED and shipment.tracking_number is None
    assert shipment.booking_failures == 1 and "signature" in (shipment.booking_error or "")


def test_with_no_courier_configured_the_release_waits_and_says_why(
    app: Flask, world: World, now: datetime
) -> None:
    supply = stock(app, world, now)
    shipment_id = released_shipment(app, world, supply, now)

    assert deliver(app, now).retrying == 1

    shipment = shipment_row(app, shipment_id)
    assert shipment.status is ShipmentStatus.CREATED and shipment.tracking_number is None
    assert shipment.booking_failures == 1
    assert shipment.booking_error == "COURIER_URL is not configured"


def test_a_full_delivery_moves_the_kits(
    app: Flask, world: World, sim: CourierSimulator, now: datetime
) -> None:
    shipment_id, tracking = booked(app, world, now)
    sim.advance(tracking, "picked_up")
    sim.wait_webhooks()
    assert shipment_row(app, shipment_id).status is ShipmentStatus.PICKED_UP
    assert kit_statuses(app, shipment_id) == [KitStatus.SHIPPED, KitStatus.SHIPPED]
    for status in ("in_transit", "out_for_delivery", "delivered"):
        sim.advance(tracking, status)
        sim.wait_webhooks()
    shipment = shipment_row(app, shipment_id)
    assert shipment.status is ShipmentStatus.DELIVERED and shipment.delivered_at is not None
    assert kit_statuses(app, shipment_id) == [KitStatus.DELIVERED, KitStatus.DELIVERED]
    assert [outcome for _s, outcome, _src in timeline(app, shipment_id)] == ["applied"] * 5


def test_a_webhook_with_a_bad_signature_is_refused_and_changes_nothing(
    app: Flask, world: World, sim: CourierSimulator, platform: str, now: datetime
) -> None:
    shipment_id, tracking = booked(app, world, now)
    update = {"message_id": "M-1", "tracking_number": tracking, "status": "picked_up",
              "occurred_at": now.isoformat()}  # fmt: skip

    wrong = signed_post(platform, update, secret="not-the-secret")
    unsigned = requests.post(platform, json=update, timeout=10)
    stamp = str(int(time.time()) - 600)
    body = json.dumps(update).encode()
    stale = requests.post(
        platform, data=body, timeout=10,
        headers={"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                 SIGNATURE_HEADER: signature(SECRET, stamp, body)},
    )  # fmt: skip

    for response in (wrong, unsigned, stale):
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
    assert shipment_row(app, shipment_id).status is ShipmentStatus.BOOKED
    assert timeline(app, shipment_id) == [("booked", "applied", "platform")]
    # The same update, signed, is taken: nothing of the refused ones was stored.
    assert signed_post(platform, update).json()["outcome"] == "applied"


def test_a_malformed_or_unknown_update_is_answered_4xx(
    app: Flask, world: World, sim: CourierSimulator, platform: str, now: datetime
) -> None:
    _shipment_id, tracking = booked(app, world, now)
    bad = signed_post(platform, {"message_id": "M-1", "tracking_number": tracking,
                                 "status": "teleported", "occurred_at": "yesterday"})  # fmt: skip
    assert bad.status_code == 422
    assert set(bad.json()["details"]["fields"]) >= {"status", "occurred_at"}
    unknown = signed_post(platform, {"message_id": "M-2", "tracking_number": "NOPE",
                                     "status": "picked_up", "occurred_at": now.isoformat()})  # fmt: skip
    assert unknown.status_code == 404


def test_a_repeated_webhook_is_applied_once(
    app: Flask, world: World, sim: CourierSimulator, platform: str, now: datetime
) -> None:
    shipment_id, tracking = booked(app, world, now)
    update = sim.advance(tracking, "picked_up")
    sim.wait_webhooks()
    again = signed_post(platform, update)

    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert timeline(app, shipment_id) == [
        ("booked", "applied", "platform"),
        ("picked_up", "applied", "webhook"),
    ]


def test_an_out_of_order_status_is_refused_and_logged(
    app: Flask, world: World, sim: CourierSimulator, platform: str, now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    shipment_id, tracking = booked(app, world, now)
    for status in ("in_transit", "delivered"):
        sim.advance(tracking, status)
        sim.wait_webhooks()
    late = sim.advance(tracking, "picked_up")
    sim.wait_webhooks()

    assert sim.webhooks_sent[-1][1] == 200  # not the courier's error: no retry
    assert json.loads(sim.webhooks_sent[-1][0])["message_id"] == late["message_id"]
    assert shipment_row(app, shipment_id).status is ShipmentStatus.DELIVERED
    assert timeline(app, shipment_id)[-1] == ("picked_up", "refused", "webhook")
    with app.app_context():
        detail = db.session.scalars(
            select(TrackingEvent.detail).order_by(TrackingEvent.id.desc()).limit(1)
        ).one()
    assert detail == "a shipment cannot move from delivered to picked up"
    assert any("refused" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert kit_statuses(app, shipment_id) == [KitStatus.DELIVERED, KitStatus.DELIVERED]


def test_courier_down_then_up_loses_no_update_and_applies_none_twice(
    app: Flask, world: World, sim: CourierSimulator, platform: str, now: datetime,
    clock: TestClock,
) -> None:  # fmt: skip
    supply = stock(app, world, now)
    shipment_id = released_shipment(app, world, supply, now)
    sim.down(retry_after=0)
    report = deliver(app, now)
    assert report.retrying == 1
    shipment = shipment_row(app, shipment_id)
    assert shipment.status is ShipmentStatus.CREATED and shipment.tracking_number is None
    assert shipment.booking_failures == 1 and "503" in (shipment.booking_error or "")
    # The adapter retried with backoff before giving up: 1 + 3 attempts.
    assert len([r for r in sim.requests_received() if r.path == "/v1/shipments"]) == 4

    sim.up()
    assert deliver(app, now + timedelta(minutes=1)).delivered == 1
    shipment = shipment_row(app, shipment_id)
    assert shipment.status is ShipmentStatus.BOOKED and shipment.booking_error is None
    assert shipment.tracking_number is not None
    tracking = shipment.tracking_number

    # The platform goes down: the courier's webhooks are retried, then given up.
    sim.webhook_url = "http://127.0.0.1:9/api/v1/courier/webhook"
    missed = [sim.advance(tracking, "picked_up"), sim.advance(tracking, "in_transit")]
    sim.wait_webhooks()
    assert all(status is None for _body, status in sim.webhooks_sent)
    assert shipment_row(app, shipment_id).status is ShipmentStatus.BOOKED

    later = now + timedelta(hours=2)
    clock.freeze(later)
    with app.app_context(), CourierClient.from_config(app.config) as courier:
        summary = polling.poll(db.session(), later, timedelta(minutes=30), courier)
        db.session.commit()
    assert summary.startswith("2 applied")
    shipment = shipment_row(app, shipment_id)
    assert shipment.status is ShipmentStatus.IN_TRANSIT and shipment.last_polled_at == later

    # A missed webhook that finally arrives, and the next poll, apply nothing again.
    assert signed_post(platform, missed[0]).json()["outcome"] == "duplicate"
    with app.app_context(), CourierClient.from_config(app.config) as courier:
        summary = polling.poll(db.session(), later + timedelta(hours=1), timedelta(0), courier)
        db.session.commit()
    assert summary.startswith("2 duplicate")
    assert timeline(app, shipment_id) == [
        ("booked", "applied", "platform"),
        ("picked_up", "applied", "poll"),
        ("in_transit", "applied", "poll"),
    ]
    with app.app_context():
        deliveries = db.session.scalars(select(EventDelivery.status)).all()
    assert deliveries == [DeliveryStatus.DELIVERED]


def test_twenty_threads_sending_the_same_webhook_apply_it_once(
    app: Flask, world: World, sim: CourierSimulator, platform: str, now: datetime
) -> None:
    shipment_id, tracking = booked(app, world, now)
    update = {"message_id": "M-RACE", "tracking_number": tracking, "status": "picked_up",
              "occurred_at": now.isoformat()}  # fmt: skip

    answers = all_at_once([lambda: signed_post(platform, update) for _ in range(20)])

    assert [a.status_code for a in answers] == [200] * 20
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["applied"] + ["duplicate"] * 19
    assert timeline(app, shipment_id) == [
        ("booked", "applied", "platform"),
        ("picked_up", "applied", "webhook"),
    ]


def test_the_webhook_is_in_the_openapi_document(app: Flask) -> None:
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = doc["paths"]["/api/v1/courier/webhook"]["post"]
    assert operation["security"] == [{"courierSignature": []}]
    assert "404" in operation["responses"] and "401" in operation["responses"]
