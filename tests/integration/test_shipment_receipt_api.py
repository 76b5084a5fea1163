"""The patient's receipt and problem report through the API, as a patient's phone app
would send them: the same rules as the portal's pages (a kit dispensed only on the
patient's word, never while quarantined, never twice, never someone else's), each bad
body a 4xx that says what is wrong and changes nothing."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dct_platform.extensions import db
from logistics.shipments.models import Shipment
from logistics.supply.models import KitStatus
from tests.integration.test_shipment_receipt import make_delivery, quarantine, statuses
from tests.integration.test_shipment_receipt import supply as supply  # the fixture
from tests.support.clients import token_for
from tests.support.supply import Supply, kits_by_number
from tests.support.world import World


def _url(shipment_id: int, what: str) -> str:
    return f"/api/v1/shipments/{shipment_id}/{what}"


def _kit_id(session: Session, number: str) -> int:
    kit_id = kits_by_number(session)[number].id
    # Ends the read: on SQLite an open transaction would lock out the API's writes.
    session.rollback()
    return kit_id


def test_the_patient_confirms_kit_by_kit_and_the_answer_shows_it(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002"])
    damaged = _kit_id(session, "K-002")
    anna = token_for(client, "anna", world.password)

    answer = client.post(
        _url(sid, "receipt"), headers=anna,
        json={"kits": [{"kit_id": damaged, "condition": "damaged"}], "note": "Box dented"},
    )  # fmt: skip

    assert answer.status_code == 200, answer.get_json()
    said = {k["kit_number"]: k["condition"] for k in answer.get_json()["kits"]}
    assert said == {"K-001": "received", "K-002": "damaged"}
    assert statuses(session, ["K-001", "K-002"]) == [KitStatus.DISPENSED, KitStatus.DAMAGED]
    session.rollback()
    again = client.post(_url(sid, "receipt"), headers=anna, json={})
    assert again.status_code == 409 and "already confirmed" in again.get_json()["message"]


def test_a_quarantined_kit_cannot_be_confirmed_and_nothing_changes(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002"])
    quarantine(session, ["K-002"])

    answer = client.post(
        _url(sid, "receipt"), headers=token_for(client, "anna", world.password), json={}
    )

    assert answer.status_code == 409
    assert "Do not use the kits" in answer.get_json()["message"]
    assert statuses(session, ["K-001", "K-002"]) == [KitStatus.DELIVERED, KitStatus.QUARANTINED]


def test_only_the_patient_confirms_her_own_delivery(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])

    kenji = client.post(
        _url(sid, "receipt"), headers=token_for(client, "kenji", world.password), json={}
    )
    staff = client.post(
        _url(sid, "receipt"), headers=token_for(client, "coord_berlin", world.password), json={}
    )

    assert kenji.status_code == 404  # not even told it exists
    assert staff.status_code == 403  # the site sees it, but the patient's word is hers
    assert statuses(session, ["K-001"]) == [KitStatus.DELIVERED]


def test_a_bad_receipt_is_a_422_that_names_the_problem(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    mine, other = _kit_id(session, "K-001"), _kit_id(session, "K-003")
    anna = token_for(client, "anna", world.password)
    bodies = {
        "twice": {"kits": [{"kit_id": mine, "condition": "received"}] * 2},
        "unknown condition": {"kits": [{"kit_id": mine, "condition": "lost"}]},
        "used is for returns": {"kits": [{"kit_id": mine, "condition": "used"}]},
        "not in the parcel": {"kits": [{"kit_id": other, "condition": "received"}]},
        "not a list": {"kits": "all"},
    }
    for why, body in bodies.items():
        answer = client.post(_url(sid, "receipt"), headers=anna, json=body)
        assert answer.status_code == 422, (why, answer.get_json())
        assert answer.get_json()["message"], why
    assert statuses(session, ["K-001"]) == [KitStatus.DELIVERED]


def test_a_problem_report_is_kept_for_the_site_and_an_empty_one_refused(
    app: Flask, client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    anna = token_for(client, "anna", world.password)

    empty = client.post(_url(sid, "problem"), headers=anna, json={"text": ""})
    sent = client.post(_url(sid, "problem"), headers=anna, json={"text": "The box was wet."})

    assert empty.status_code == 422
    assert sent.status_code == 200, sent.get_json()
    with app.app_context():
        shipment = db.session.get(Shipment, sid)
        assert shipment is not None and (shipment.problem_report or "").endswith("The box was wet.")
