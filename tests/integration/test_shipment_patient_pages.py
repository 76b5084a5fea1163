"""The patient's delivery pages, as a phone shows them: the next delivery in plain words
with its day in her zone and the courier's timeline, confirming kit by kit (with CSRF and
form errors), reporting a problem, the warning on quarantined kits; another patient's
delivery is not found; the treatment arm never shows."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dct_platform import audit
from logistics.shipments.models import MessageOutcome, Shipment, TrackingEvent
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import KitStatus
from tests.integration.test_shipment_receipt import NOW, make_delivery, quarantine, statuses
from tests.integration.test_shipment_receipt import supply as supply  # the fixture
from tests.support.clients import csrf_token, duplicate_ids, login
from tests.support.supply import Supply, kits_by_number
from tests.support.world import World

PHONE = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"}


def seen(session: Session, numbers: list[str]) -> list[KitStatus]:
    """The kits' statuses, then the read ends: on SQLite an open transaction here would
    lock out the request's write."""
    found = statuses(session, numbers)
    session.rollback()
    return found


def kit_id(session: Session, number: str) -> int:
    found = kits_by_number(session)[number].id
    session.rollback()
    return found


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def track(session: Session, shipment_id: int, steps: list[tuple[str, int, str | None]]) -> None:
    """Courier scans (status, hours after the order, place), as the courier adapter stores them."""
    shipment = session.get(Shipment, shipment_id)
    assert shipment is not None
    for status, hours, where in steps:
        at = NOW - timedelta(days=3) + timedelta(hours=hours)
        session.add(
            TrackingEvent(
                shipment_id=shipment_id, status=status, occurred_at=at, recorded_at=at,
                source="webhook", location=where, outcome=MessageOutcome.APPLIED,
            )
        )  # fmt: skip
    # A refused (out-of-order) update is the supply team's business, not the patient's.
    session.add(
        TrackingEvent(
            shipment_id=shipment_id, status="picked_up", occurred_at=NOW, recorded_at=NOW,
            source="webhook", location="Nowhere-Refused", outcome=MessageOutcome.REFUSED,
        )
    )  # fmt: skip
    session.commit()


def test_the_patient_follows_her_delivery_and_confirms_it_kit_by_kit(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(
        session, world, supply, "anna", ["K-001", "K-002"], status=ShipmentStatus.IN_TRANSIT
    )
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    with audit.acting(session, None, NOW, what="Courier promise", system="test-shipments"):
        # 23:30 UTC is already the next day in Berlin.
        shipment.expected_delivery_at = NOW.replace(hour=23, minute=30)
    session.commit()
    track(
        session,
        sid,
        [("booked", 1, None), ("picked_up", 5, "Frankfurt"), ("in_transit", 9, "Berlin hub")],
    )
    login(client, "anna", world.password)

    page = client.get("/portal/deliveries/", headers=PHONE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="viewport" content="width=device-width' in html
    body = text_of(html)
    assert "On its way" in body
    berlin_day = NOW.date() + timedelta(days=1)  # 23:30 UTC is after midnight in Berlin
    assert f"Expected on {berlin_day:%A, %B} {berlin_day.day}, {berlin_day.year}" in body
    assert "K-001" in body and "K-002" in body
    assert "My deliveries" in body  # the nav item
    assert "Confirm what arrived" not in body  # not delivered yet

    detail = text_of(client.get(f"/portal/deliveries/{sid}", headers=PHONE).get_data(as_text=True))
    assert "Packed, waiting for the courier" in detail and "Frankfurt" in detail
    assert detail.index("Frankfurt") < detail.index("Berlin hub")
    assert "Nowhere-Refused" not in detail
    assert "What arrived?" not in detail

    # It arrives.
    with audit.acting(session, None, NOW, what="Courier delivered", system="test-shipments"):
        shipment = session.get(Shipment, sid)
        assert shipment is not None
        shipment.status = ShipmentStatus.DELIVERED
        shipment.delivered_at = NOW
        for kit in (sk.kit for sk in shipment.kits):
            kit.status = KitStatus.DELIVERED
    session.commit()
    form_page = f"/portal/deliveries/{sid}"
    html = client.get(form_page, headers=PHONE).get_data(as_text=True)
    assert "What arrived?" in html and not duplicate_ids(html)
    k1, k2 = kit_id(session, "K-001"), kit_id(session, "K-002")

    # Without the CSRF token: refused, nothing changes.
    no_token = client.post(f"{form_page}/confirm", data={f"kit-{k1}": "received"})
    assert no_token.status_code == 400
    # A kit left unanswered: the form again, saying which.
    token = csrf_token(client, form_page)
    half = client.post(f"{form_page}/confirm", data={"csrf_token": token, f"kit-{k1}": "received"})
    assert half.status_code == 422
    assert "Please say whether you have kit K-002." in text_of(half.get_data(as_text=True))
    assert seen(session, ["K-001", "K-002"]) == [KitStatus.DELIVERED, KitStatus.DELIVERED]

    done = client.post(
        f"{form_page}/confirm",
        data={"csrf_token": token, f"kit-{k1}": "received", f"kit-{k2}": "damaged"},
    )
    assert done.status_code == 302
    after = text_of(client.get(form_page).get_data(as_text=True))
    assert "We have noted what you received" in after
    assert "K-001 (Received)" in after and "K-002 (Damaged)" in after
    assert seen(session, ["K-001", "K-002"]) == [KitStatus.DISPENSED, KitStatus.DAMAGED]

    again = client.post(f"{form_page}/confirm", data={"csrf_token": token, f"kit-{k1}": "missing"})
    assert again.status_code == 409
    assert "You already confirmed this delivery" in text_of(again.get_data(as_text=True))
    assert seen(session, ["K-001"]) == [KitStatus.DISPENSED]


def test_quarantined_kits_show_the_warning_and_cannot_be_confirmed(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002"])
    quarantine(session, ["K-001"])
    login(client, "anna", world.password)

    listing = text_of(client.get("/portal/deliveries/", headers=PHONE).get_data(as_text=True))
    assert "Do not use the kits in this delivery" in listing and "Kits: K-001" in listing
    assert "Kits: K-001, K-002" not in listing  # only the quarantined kit is named
    page = f"/portal/deliveries/{sid}"
    detail = text_of(client.get(page, headers=PHONE).get_data(as_text=True))
    assert "Do not use the kits in this delivery" in detail
    assert "your study site will contact you" in detail
    assert "What arrived?" not in detail

    k1 = kit_id(session, "K-001")
    tried = client.post(
        f"{page}/confirm", data={"csrf_token": csrf_token(client, page), f"kit-{k1}": "received"}
    )
    assert tried.status_code == 409
    assert "Do not use the kits" in text_of(tried.get_data(as_text=True))
    assert seen(session, ["K-001", "K-002"]) == [KitStatus.QUARANTINED, KitStatus.DELIVERED]


def test_a_problem_report_is_kept_and_an_empty_one_gets_a_form_error(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    login(client, "anna", world.password)
    page = f"/portal/deliveries/{sid}"
    token = csrf_token(client, page)

    empty = client.post(f"{page}/problem", data={"csrf_token": token, "text": "  "})
    assert empty.status_code == 422
    assert "Please tell us what the problem is." in text_of(empty.get_data(as_text=True))

    sent = client.post(f"{page}/problem", data={"csrf_token": token, "text": "The box was wet."})
    assert sent.status_code == 302
    session.expire_all()
    shipment = session.get(Shipment, sid)
    assert shipment is not None and shipment.problem_report is not None
    assert shipment.problem_report.endswith("The box was wet.")


def test_another_patient_cannot_see_or_confirm_her_delivery(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    make_delivery(session, world, supply, "kenji", ["K-101"])
    login(client, "kenji", world.password)
    mine = text_of(client.get("/portal/deliveries/").get_data(as_text=True))
    assert "K-101" in mine and "K-001" not in mine

    assert client.get(f"/portal/deliveries/{sid}").status_code == 404
    k1 = kit_id(session, "K-001")
    token = csrf_token(client, "/portal/deliveries/")
    confirm = client.post(
        f"/portal/deliveries/{sid}/confirm", data={"csrf_token": token, f"kit-{k1}": "received"}
    )
    assert confirm.status_code == 404
    report = client.post(
        f"/portal/deliveries/{sid}/problem", data={"csrf_token": token, "text": "Not mine"}
    )
    assert report.status_code == 404
    assert seen(session, ["K-001"]) == [KitStatus.DELIVERED]
    session.expire_all()
    shipment = session.get(Shipment, sid)
    assert shipment is not None and shipment.problem_report is None


def test_staff_do_not_get_the_patients_pages_and_the_arm_never_shows(
    app: Flask, client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "kenji", ["K-101", "K-102"])  # arm B kits
    login(client, "kenji", world.password)
    for path in ("/portal/deliveries/", f"/portal/deliveries/{sid}"):
        body = text_of(client.get(path, headers=PHONE).get_data(as_text=True))
        assert "K-101" in body
        assert not re.search(r"\b(arm|Arm)\b", body)
        assert not re.search(r"\bB\b", body), "a lone arm letter on the page"
    staff = app.test_client()
    login(staff, "coord_tokyo", world.password)
    assert staff.get("/portal/deliveries/").status_code == 403
