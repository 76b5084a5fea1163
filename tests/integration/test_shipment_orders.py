"""Shipment orders: requested by the site or the schedule, released by the investigator's
electronic signature (and only then kits reserved, first expiry first out), cancelled
before release; the shipments API, pseudonymous and scoped to the caller."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import (
    DomainEvent,
    ElectronicSignature,
    Patient,
    PatientIdentity,
    RemoteActivity,
)
from dct_platform.signatures import SignatureRequired
from logistics.shipments import orders, resupply
from logistics.shipments.events import READY_FOR_COURIER
from logistics.shipments.models import OrderReason, Shipment, ShipmentKit, TrackingEvent
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Kit, KitStatus, Product
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.concurrency import all_at_once
from tests.support.shipments import released_shipment, requested_shipment, stock
from tests.support.supply import Supply, build_supply, receive, user_named
from tests.support.world import PASSWORD, World


@pytest.fixture
def now(clock: TestClock, world: World) -> datetime:
    # After the world: its patients were enrolled before the orders.
    return clock.freeze()


@pytest.fixture
def supply(app: Flask, world: World, now: datetime) -> Supply:
    return stock(app, world, now)


def _request(
    session: Session, world: World, supply: Supply, now: datetime, **kw: object
) -> Shipment:
    anna = session.get(Patient, world.patients["anna"].id)
    product = session.get(Product, kw.pop("product_id", supply.product_id))
    assert anna is not None and product is not None
    args: dict[str, object] = {"kit_count": 2, "next_resupply": now.date() + timedelta(days=28)}
    args.update(kw)
    return orders.request_shipment(
        session, user_named(session, "coord_berlin"), now, patient=anna, product=product,
        **args,  # type: ignore[arg-type]
    )  # fmt: skip


def _reserved(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(Kit.kit_number).where(Kit.status == KitStatus.RESERVED).order_by(Kit.kit_number)
        )
    )


def _ready_events(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(select(DomainEvent).where(DomainEvent.name == READY_FOR_COURIER.name))
    return [json.loads(r.payload) for r in rows]


# --- release and its signature --------------------------------------------------------------


def test_release_needs_the_investigators_password_and_only_then_reserves_kits_fefo(
    app: Flask, world: World, now: datetime, session: Session
) -> None:
    supply = build_supply(app, world, now)
    next_resupply = now.date() + timedelta(days=28)
    p, depot = supply.product_id, supply.depot_id
    receive(app, p, depot, "L-LAST-DAY", next_resupply, [("K-001", "A")], now)  # too short
    receive(app, p, depot, "L-LATE", next_resupply + timedelta(days=200), [("K-002", "A")], now)
    receive(app, p, depot, "L-SOON", next_resupply + timedelta(days=1), [("K-003", "A")], now)
    receive(app, p, depot, "L-MID", next_resupply + timedelta(days=60), [("K-004", "A")], now)
    shipment = _request(session, world, supply, now, next_resupply=next_resupply)
    session.commit()
    pi = user_named(session, "pi_berlin")

    # Not released: nothing relies on it, nothing is reserved.
    with pytest.raises(SignatureRequired):
        orders.require_release(session, shipment)
    assert orders.release_signature(session, shipment) is None

    with pytest.raises(Unauthorized):
        orders.release(session, pi, now, shipment, password="wrong password")
    session.commit()  # as the request does: the failed attempt counts
    session.refresh(shipment)
    assert shipment.status is ShipmentStatus.REQUESTED
    assert shipment.released_at is None
    assert _reserved(session) == []
    assert session.scalar(select(func.count(ElectronicSignature.id))) == 0
    assert session.scalar(select(func.count(ShipmentKit.id))) == 0
    assert _ready_events(session) == []

    orders.release(session, pi, now, shipment, password=PASSWORD, remote_addr="127.0.0.1")
    session.commit()

    session.expire_all()
    released = session.get(Shipment, shipment.id)
    assert released is not None and released.status is ShipmentStatus.CREATED
    assert shipment.released_by_id == pi.id and shipment.released_at == now
    # First expiry first out, never the kit whose last day is the next resupply.
    assert _reserved(session) == ["K-003", "K-004"]
    in_parcel = session.scalars(
        select(Kit.kit_number).join(ShipmentKit, ShipmentKit.kit_id == Kit.id)
        .where(ShipmentKit.shipment_id == shipment.id).order_by(Kit.kit_number)
    ).all()  # fmt: skip
    assert in_parcel == ["K-003", "K-004"]
    assert _ready_events(session) == [{"shipment_id": shipment.id}]
    signature = orders.release_signature(session, shipment)
    assert signature is not None and signature.valid
    assert signature.printed_name == "Pi_Berlin"
    assert signature.meaning_label == "Released for shipment to the patient"
    assert signature.signed_at == now
    required = orders.require_release(session, shipment)
    assert required is not None and required.signer_id == pi.id
    timeline = session.scalars(
        select(TrackingEvent.status).where(TrackingEvent.shipment_id == shipment.id)
        .order_by(TrackingEvent.id)
    ).all()  # fmt: skip
    assert timeline == ["requested", "created"]

    # The release covers what is shipped: changing it afterwards voids the signature.
    with audit.acting(session, None, now, what="Change the kit count", system="test"):
        shipment.kit_count = 3
        session.flush()
    with pytest.raises(SignatureRequired, match="changed after its signature"):
        orders.require_release(session, shipment)
    fresh = orders.release_signature(session, shipment)
    assert fresh is not None and not fresh.valid
    session.rollback()


def test_only_an_investigator_of_the_patients_site_releases_and_only_once(
    world: World, supply: Supply, now: datetime, session: Session
) -> None:
    shipment = _request(session, world, supply, now)
    session.commit()
    for who in ("coord_berlin", "supply", "coord_tokyo"):
        with pytest.raises(Forbidden):
            orders.release(session, user_named(session, who), now, shipment, password=PASSWORD)
    assert session.scalar(select(func.count(ElectronicSignature.id))) == 0
    pi = user_named(session, "pi_berlin")
    orders.release(session, pi, now, shipment, password=PASSWORD)
    session.commit()
    with pytest.raises(Conflict, match="only a shipment waiting for release"):
        orders.release(session, pi, now, shipment, password=PASSWORD)


def test_a_short_depot_refuses_the_release_without_telling_the_arms_stock(
    app: Flask, world: World, now: datetime, session: Session
) -> None:
    supply = build_supply(app, world, now)
    expiry = now.date() + timedelta(days=365)
    # One kit of Anna's arm, plenty of the other: counts would tell her arm.
    receive(app, supply.product_id, supply.depot_id, "L1", expiry, [("K-001", "A")], now)
    receive(app, supply.product_id, supply.depot_id, "L2", expiry,
            [(f"K-1{n:02d}", "B") for n in range(5)], now)  # fmt: skip
    shipment = _request(session, world, supply, now, kit_count=2)  # a short depot: no error yet
    session.commit()
    with pytest.raises(Conflict) as refused:
        orders.release(session, user_named(session, "pi_berlin"), now, shipment, password=PASSWORD)
    message = refused.value.message
    # Neither depot has enough: the order stays with the first preferred, the pharmacy.
    assert "not enough usable kits at Berlin site pharmacy" in message
    assert not any(ch.isdigit() for ch in message.replace("EU", ""))
    assert re.search(r"\barms?\b", message) is None and refused.value.details == {
        "depot_id": supply.pharmacy_id
    }
    session.rollback()
    assert _reserved(session) == []


# --- requests -----------------------------------------------------------------------------


def test_a_request_records_the_site_investigator_city_and_remote_activity_never_the_street(
    world: World, supply: Supply, now: datetime, session: Session
) -> None:
    shipment = _request(session, world, supply, now, note="Patient travels next week")
    session.commit()
    assert shipment.status is ShipmentStatus.REQUESTED
    assert shipment.reason is OrderReason.SITE_REQUEST
    assert shipment.site_id == world.berlin.id
    assert shipment.investigator_id == world.users["pi_berlin"].id
    assert (shipment.destination_city, shipment.destination_country) == ("Berlin", "DE")
    assert shipment.depot_id == supply.depot_id  # the site pharmacy holds no kits
    assert shipment.requested_by_id == world.users["coord_berlin"].id
    stored = [str(v) for v in vars(shipment).values()]
    assert not any("Hidden Street" in v or "10115" in v for v in stored)
    activity = session.scalars(
        select(RemoteActivity).where(
            RemoteActivity.activity_type == "shipment",
            RemoteActivity.record_id == str(shipment.id),
        )
    ).one()
    assert activity.site_id == world.berlin.id
    assert activity.investigator_id == world.users["pi_berlin"].id
    assert activity.patient_id == world.patients["anna"].id
    assert activity.status == "requested"


def test_a_product_not_fit_for_home_delivery_is_refused(
    world: World, supply: Supply, now: datetime, session: Session
) -> None:
    with pytest.raises(ValidationFailed, match="not suitable for home delivery") as refused:
        _request(session, world, supply, now, product_id=supply.clinic_only_id)
    assert "product" in refused.value.details["fields"]
    assert session.scalar(select(func.count(Shipment.id))) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kit_count": 0}, "kit_count"),
        ({"kit_count": orders.MAX_KITS + 1}, "kit_count"),
        ({"next_resupply_days": 0}, "next_resupply"),
        ({"next_resupply_days": -3}, "next_resupply"),
        ({"next_resupply_days": orders.MAX_RESUPPLY_DAYS + 2}, "next_resupply"),
    ],
)
def test_a_bad_kit_count_or_resupply_date_is_refused_at_its_field(
    world: World, supply: Supply, now: datetime, session: Session,
    change: dict[str, int], field: str,
) -> None:  # fmt: skip
    days = change.pop("next_resupply_days", 28)
    with pytest.raises(ValidationFailed) as refused:
        _request(session, world, supply, now, next_resupply=now.date() + timedelta(days=days),
                 **change)  # fmt: skip
    assert list(refused.value.details["fields"]) == [field]


def test_a_second_open_order_of_the_product_is_refused_until_the_first_is_cancelled(
    world: World, supply: Supply, now: datetime, session: Session
) -> None:
    first = _request(session, world, supply, now)
    with pytest.raises(Conflict, match=f"#{first.id}"):
        _request(session, world, supply, now)
    with pytest.raises(Forbidden):
        orders.cancel(session, user_named(session, "supply"), now, first, reason="No")
    with pytest.raises(ValidationFailed):
        orders.cancel(session, user_named(session, "coord_berlin"), now, first, reason=" ")
    orders.cancel(session, user_named(session, "coord_berlin"), now, first, reason="Dose changed")
    assert first.status is ShipmentStatus.CANCELLED
    second = _request(session, world, supply, now)
    orders.release(session, user_named(session, "pi_berlin"), now, second, password=PASSWORD)
    with pytest.raises(Conflict):
        orders.cancel(session, user_named(session, "coord_berlin"), now, second, reason="Late")


def test_site_staff_of_another_site_cannot_request_for_the_patient(
    world: World, supply: Supply, now: datetime, session: Session
) -> None:
    anna = session.get(Patient, world.patients["anna"].id)
    product = session.get(Product, supply.product_id)
    assert anna is not None and product is not None
    for who in ("coord_tokyo", "supply"):
        with pytest.raises(Forbidden):
            orders.request_shipment(
                session, user_named(session, who), now, patient=anna, product=product,
                kit_count=1, next_resupply=now.date() + timedelta(days=28),
            )  # fmt: skip


# --- the resupply schedule ---------------------------------------------------------------------


def test_the_schedule_orders_once_per_due_patient(
    app: Flask, world: World, supply: Supply, now: datetime, session: Session
) -> None:
    # Anna's last release names a resupply in 5 days: due within the week's lead time.
    first = released_shipment(app, world, supply, now, next_resupply_days=5)
    # Kenji's order is not released yet: nothing to follow for him.
    requested_shipment(app, world, supply, now, patient="kenji")

    assert resupply.request_due(session, now, lead_days=7, interval_days=28) == 1
    session.commit()
    assert resupply.request_due(session, now, lead_days=7, interval_days=28) == 0
    session.commit()

    anna = world.patients["anna"].id
    orders_of_anna = session.scalars(
        select(Shipment).where(Shipment.patient_id == anna).order_by(Shipment.id)
    ).all()
    assert len(orders_of_anna) == 2 and orders_of_anna[0].id == first
    scheduled = orders_of_anna[1]
    assert scheduled.reason is OrderReason.SCHEDULED
    assert scheduled.status is ShipmentStatus.REQUESTED
    assert scheduled.requested_by_id is None
    assert scheduled.next_resupply_date == orders_of_anna[0].next_resupply_date + timedelta(days=28)
    assert scheduled.kit_count == orders_of_anna[0].kit_count

    # Still once after a release of the scheduled order: its own date is a month away.
    orders.release(session, user_named(session, "pi_berlin"), now, scheduled, password=PASSWORD)
    session.commit()
    assert resupply.request_due(session, now, lead_days=7, interval_days=28) == 0


def test_the_schedule_leaves_a_patient_not_due_yet(
    app: Flask, world: World, supply: Supply, now: datetime, session: Session
) -> None:
    released_shipment(app, world, supply, now, next_resupply_days=20)
    assert resupply.request_due(session, now, lead_days=7, interval_days=28) == 0
    assert resupply.request_due(session, now + timedelta(days=14), lead_days=7) == 1


# --- the API ----------------------------------------------------------------------------------


def _all_strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_all_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _all_strings(v)]
    return [str(value)]


def test_the_api_requests_releases_and_shows_the_signature(
    client: FlaskClient, world: World, supply: Supply, now: datetime, session: Session
) -> None:
    coord = token_for(client, "coord_berlin", PASSWORD)
    body = {
        "patient_id": world.patients["anna"].id,
        "product_id": supply.product_id,
        "kit_count": 2,
        "next_resupply": (now.date() + timedelta(days=28)).isoformat(),
        "note": "Before the holidays",
    }
    made = client.post("/api/v1/shipments", json=body, headers=coord)
    assert made.status_code == 201, made.get_json()
    shipment = made.get_json()
    assert shipment["status"] == "requested" and shipment["subject_number"] == "B1-anna"
    assert shipment["site_name"] == "Berlin" and shipment["destination_city"] == "Berlin"
    sid = shipment["id"]

    again = client.post("/api/v1/shipments", json=body, headers=coord)
    assert again.status_code == 409
    unfit = client.post(
        "/api/v1/shipments", json={**body, "product_id": supply.clinic_only_id}, headers=coord
    )
    assert unfit.status_code == 422
    assert "not suitable for home delivery" in unfit.get_json()["message"]

    # Site staff may not release; the investigator must give the right password.
    refused = client.post(f"/api/v1/shipments/{sid}/release", json={"password": PASSWORD},
                          headers=coord)  # fmt: skip
    assert refused.status_code == 403
    pi = token_for(client, "pi_berlin", PASSWORD)
    wrong = client.post(f"/api/v1/shipments/{sid}/release", json={"password": "nope"}, headers=pi)
    assert wrong.status_code == 401
    empty = client.post(f"/api/v1/shipments/{sid}/release", json={}, headers=pi)
    assert empty.status_code == 422
    still = client.get(f"/api/v1/shipments/{sid}", headers=pi).get_json()
    assert still["status"] == "requested" and still["kits"] == []
    assert still["release_signature"] is None

    done = client.post(f"/api/v1/shipments/{sid}/release", json={"password": PASSWORD},
                       headers=pi)  # fmt: skip
    assert done.status_code == 200, done.get_json()
    detail = done.get_json()
    assert detail["status"] == "created"
    assert sorted(k["kit_number"] for k in detail["kits"]) == ["K-A01", "K-A02"]
    assert all("arm" not in k for k in detail["kits"])
    assert detail["release_signature"]["printed_name"] == "Pi_Berlin"
    assert detail["release_signature"]["meaning_label"] == "Released for shipment to the patient"
    assert detail["release_signature"]["valid"] is True
    assert [t["status"] for t in detail["tracking"]][:2] == ["requested", "created"]

    cancelled = client.post(f"/api/v1/shipments/{sid}/cancel", json={"reason": "x"},
                            headers=coord)  # fmt: skip
    assert cancelled.status_code == 409


def test_site_staff_of_tokyo_cannot_see_or_release_berlins_shipments(
    app: Flask, client: FlaskClient, world: World, supply: Supply, now: datetime
) -> None:
    berlin = requested_shipment(app, world, supply, now)
    tokyo_own = requested_shipment(app, world, supply, now, patient="kenji")
    tokyo = token_for(client, "coord_tokyo", PASSWORD)
    listed = client.get("/api/v1/shipments", headers=tokyo).get_json()
    assert [s["id"] for s in listed] == [tokyo_own]
    assert client.get(f"/api/v1/shipments/{berlin}", headers=tokyo).status_code == 404
    for action, body in (("release", {"password": PASSWORD}), ("cancel", {"reason": "x"})):
        answer = client.post(f"/api/v1/shipments/{berlin}/{action}", json=body, headers=tokyo)
        assert answer.status_code == 404
    request = {
        "patient_id": world.patients["anna"].id, "product_id": supply.product_id,
        "kit_count": 1, "next_resupply": (now.date() + timedelta(days=28)).isoformat(),
    }  # fmt: skip
    assert client.post("/api/v1/shipments", json=request, headers=tokyo).status_code == 404
    berlin_list = client.get(
        "/api/v1/shipments", query_string={"status": "requested"},
        headers=token_for(client, "coord_berlin", PASSWORD),
    ).get_json()  # fmt: skip
    assert [s["id"] for s in berlin_list] == [berlin]


def test_the_supply_managers_json_never_carries_a_name_street_or_postcode(
    app: Flask, client: FlaskClient, world: World, supply: Supply, now: datetime,
    session: Session,
) -> None:  # fmt: skip
    released = released_shipment(app, world, supply, now)
    requested_shipment(app, world, supply, now, patient="kenji")
    secrets: set[str] = set()
    for identity in session.scalars(select(PatientIdentity)):
        secrets |= {
            v for v in (identity.given_name, identity.family_name, identity.address_line1,
                        identity.address_line2, identity.postal_code, identity.email) if v
        }  # fmt: skip
    assert {"Anna", "Secretname", "1 Hidden Street", "10115"} <= secrets
    session.rollback()  # SQLite: no read held open while the requests write

    headers = token_for(client, "supply", PASSWORD)
    listed = client.get("/api/v1/shipments", headers=headers)
    assert listed.status_code == 200 and len(listed.get_json()) == 2
    answers = [listed.get_json()]
    for shipment in listed.get_json():
        one = client.get(f"/api/v1/shipments/{shipment['id']}", headers=headers)
        assert one.status_code == 200
        answers.append(one.get_json())
    strings = [s for a in answers for s in _all_strings(a)]
    leaked = {secret for secret in secrets for s in strings if secret in s}
    assert leaked == set()
    detail = answers[-1] if answers[-1]["id"] == released else answers[-2]
    assert detail["subject_number"] == "B1-anna" and detail["destination_city"] == "Berlin"
    assert detail["kits"] and all("arm" not in k for k in detail["kits"])
    # The supply manager may read but not release.
    refused = client.post(f"/api/v1/shipments/{released}/release", json={"password": PASSWORD},
                          headers=headers)  # fmt: skip
    assert refused.status_code in (403, 409)


def test_the_api_refuses_bad_input_with_4xx(
    client: FlaskClient, world: World, supply: Supply, now: datetime
) -> None:
    coord = token_for(client, "coord_berlin", PASSWORD)
    base = {
        "patient_id": world.patients["anna"].id, "product_id": supply.product_id,
        "kit_count": 1, "next_resupply": (now.date() + timedelta(days=28)).isoformat(),
    }  # fmt: skip
    for bad in (
        {**base, "kit_count": "2"},
        {**base, "kit_count": 0},
        {**base, "next_resupply": "soon"},
        {**base, "patient_id": 2**40},
        {k: v for k, v in base.items() if k != "product_id"},
    ):
        assert client.post("/api/v1/shipments", json=bad, headers=coord).status_code == 422
    missing = client.post("/api/v1/shipments", json={**base, "patient_id": 99999}, headers=coord)
    assert missing.status_code == 404
    assert client.get("/api/v1/shipments/99999", headers=coord).status_code == 404
    assert client.get("/api/v1/shipments?status=nope", headers=coord).status_code == 422


def test_two_releases_of_one_order_at_once_reserve_its_kits_once(
    app: Flask, world: World, supply: Supply, now: datetime
) -> None:
    shipment_id = requested_shipment(app, world, supply, now)

    def release() -> str:
        with app.app_context():
            s = db.session()
            try:
                shipment = s.get(Shipment, shipment_id)
                assert shipment is not None
                pi = user_named(s, "pi_berlin")
                orders.release(s, pi, now, shipment, password=PASSWORD)
                s.commit()
                return "released"
            except (Conflict, StaleDataError):
                s.rollback()
                return "refused"
            finally:
                db.session.remove()

    assert sorted(all_at_once([release, release])) == ["refused", "released"]
    with app.app_context():
        s = db.session()
        assert len(_reserved(s)) == 2
        assert s.scalar(select(func.count(ShipmentKit.id))) == 2
        assert len(_ready_events(s)) == 1
        db.session.remove()
