"""The site's shipment pages through the Flask test client: the list of its patients'
shipments, the request form, and the release queue where the investigator signs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dct_platform.models import ElectronicSignature
from logistics.shipments.models import Shipment
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Kit, KitStatus
from tests.support.clients import duplicate_ids, login, submit
from tests.support.clock import TestClock
from tests.support.shipments import released_shipment, requested_shipment, stock
from tests.support.supply import Supply
from tests.support.world import PASSWORD, World

LIST = "/site/shipments"
QUEUE = "/site/shipments/release"


@pytest.fixture
def now(clock: TestClock, world: World) -> datetime:
    return clock.freeze()


@pytest.fixture
def supply(app: Flask, world: World, now: datetime) -> Supply:
    return stock(app, world, now)


def _signed_in(client: FlaskClient, username: str) -> FlaskClient:
    assert login(client, username, PASSWORD).status_code == 302
    return client


def test_site_staff_request_a_shipment_through_the_form(
    client: FlaskClient, world: World, supply: Supply, now: datetime, session: Session
) -> None:
    _signed_in(client, "coord_berlin")
    page = client.get(LIST)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Request a shipment" in html and "B1-anna" in html
    assert "B1-kenji" not in html  # Tokyo's patient
    assert "IP-09" not in html  # not fit for home delivery: not offered
    assert not duplicate_ids(html)

    form = {
        "patient_id": str(world.patients["anna"].id),
        "product_id": str(supply.product_id),
        "kit_count": "2",
        "next_resupply": (now.date() + timedelta(days=28)).isoformat(),
        "note": "Before the holidays",
    }
    bad = submit(client, LIST, LIST, {**form, "kit_count": "0", "next_resupply": "tomorrow"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Enter the next resupply date" in text and 'aria-invalid="true"' in text
    assert session.scalar(select(func.count(Shipment.id))) == 0
    session.rollback()  # SQLite: no read held open while the requests write

    unfit = submit(client, LIST, LIST, {**form, "product_id": str(supply.clinic_only_id)})
    assert unfit.status_code == 422
    assert "not suitable for home delivery" in unfit.get_data(as_text=True)

    made = submit(client, LIST, LIST, form)
    assert made.status_code == 302 and made.headers["Location"].endswith(LIST)
    listing = client.get(LIST).get_data(as_text=True)
    assert "requested for B1-anna" in listing  # the flash
    assert "Waiting for release" in listing and "IP-01" in listing
    assert "1 waiting for the investigator" in listing

    again = submit(client, LIST, LIST, form)
    assert again.status_code == 409
    assert "still open" in again.get_data(as_text=True)


def test_the_investigator_releases_with_the_password_on_the_queue(
    app: Flask, client: FlaskClient, world: World, supply: Supply, now: datetime,
    session: Session,
) -> None:  # fmt: skip
    shipment_id = requested_shipment(app, world, supply, now)
    _signed_in(client, "pi_berlin")
    queue = client.get(QUEUE)
    assert queue.status_code == 200
    html = queue.get_data(as_text=True)
    assert f'data-testid="release-form-{shipment_id}"' in html
    assert "You sign as <strong>Pi_Berlin</strong>" in html
    assert "Released for shipment to the patient" in html
    action = f"/site/shipments/{shipment_id}/release"

    wrong = submit(client, QUEUE, action, {"password": "not my password"})
    assert wrong.status_code == 401
    assert "The password is not correct" in wrong.get_data(as_text=True)
    assert "not my password" not in wrong.get_data(as_text=True)
    session.expire_all()
    shipment = session.get(Shipment, shipment_id)
    assert shipment is not None and shipment.status is ShipmentStatus.REQUESTED
    assert session.scalar(select(func.count(ElectronicSignature.id))) == 0
    assert session.scalar(select(func.count(Kit.id)).where(Kit.status == KitStatus.RESERVED)) == 0
    session.rollback()

    done = submit(client, QUEUE, action, {"password": PASSWORD})
    assert done.status_code == 302 and done.headers["Location"].endswith(QUEUE)
    after = client.get(QUEUE).get_data(as_text=True)
    assert "released: its kits are reserved" in after
    assert 'data-testid="queue-empty"' in after
    session.expire_all()
    shipment = session.get(Shipment, shipment_id)
    assert shipment is not None and shipment.status is ShipmentStatus.CREATED
    assert session.scalar(select(func.count(Kit.id)).where(Kit.status == KitStatus.RESERVED)) == 2
    session.rollback()

    listing = client.get(LIST).get_data(as_text=True)
    assert "Signed by Pi_Berlin" in listing
    assert "Released for shipment to the patient" in listing
    assert "invalidated" not in listing


def test_site_staff_see_the_queue_without_a_release_form_and_cannot_release(
    app: Flask, client: FlaskClient, world: World, supply: Supply, now: datetime
) -> None:
    shipment_id = requested_shipment(app, world, supply, now)
    _signed_in(client, "coord_berlin")
    html = client.get(QUEUE).get_data(as_text=True)
    assert f'data-testid="waiting-{shipment_id}"' in html
    assert f'data-testid="release-form-{shipment_id}"' not in html
    answer = submit(client, QUEUE, f"/site/shipments/{shipment_id}/release", {"password": PASSWORD})
    assert answer.status_code == 403
    assert "not allowed" in answer.get_data(as_text=True)


def test_tokyo_staff_neither_see_nor_act_on_berlins_shipments(
    app: Flask, client: FlaskClient, world: World, supply: Supply, now: datetime
) -> None:
    berlin = released_shipment(app, world, supply, now)
    waiting = requested_shipment(app, world, supply, now, next_resupply_days=56)
    _signed_in(client, "coord_tokyo")
    for page in (LIST, QUEUE):
        html = client.get(page).get_data(as_text=True)
        assert "B1-anna" not in html and f"#{berlin}" not in html and f"#{waiting}" not in html
    for action, data in (("release", {"password": PASSWORD}), ("cancel", {"reason": "x"})):
        answer = submit(client, QUEUE, f"/site/shipments/{waiting}/{action}", data)
        assert answer.status_code == 404


def test_a_cancel_needs_a_reason_and_then_takes_the_order_off_the_queue(
    app: Flask, client: FlaskClient, world: World, supply: Supply, now: datetime
) -> None:
    shipment_id = requested_shipment(app, world, supply, now)
    _signed_in(client, "coord_berlin")
    action = f"/site/shipments/{shipment_id}/cancel"
    empty = submit(client, QUEUE, action, {"reason": "  "})
    assert empty.status_code == 422
    assert "Say why the shipment is cancelled" in empty.get_data(as_text=True)
    done = submit(client, QUEUE, action, {"reason": "Switched to the site pharmacy"})
    assert done.status_code == 302
    assert 'data-testid="queue-empty"' in client.get(QUEUE).get_data(as_text=True)
    listing = client.get(LIST).get_data(as_text=True)
    assert "Cancelled" in listing and "Switched to the site pharmacy" in listing


def test_other_roles_are_kept_out_of_the_site_pages(client: FlaskClient, world: World) -> None:
    _signed_in(client, "supply")
    assert client.get(LIST).status_code == 403
    assert client.get(QUEUE).status_code == 403
