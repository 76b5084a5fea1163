"""A shipment's logger reports through the device ingestion API; an excursion quarantines
the shipment's kits, tells the patient not to use them and opens one disposition task; the
supply manager releases the kits with a reason or rejects them, which orders a
replacement. Everything audited; the supply manager's pages stay pseudonymous."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import AuditAction, Patient, PatientIdentity
from devices import registry
from devices.models import DeviceAssignment, DeviceKind, DeviceModel, DeviceReading
from logistics.shipments import excursions
from logistics.shipments.models import (
    Decision,
    ExcursionDisposition,
    OrderReason,
    Shipment,
    ShipmentKind,
    ShipmentKit,
)
from logistics.shipments.states import ShipmentStatus
from logistics.shipments.temperature_chart import shipment_chart_svg
from logistics.supply.models import Depot, KitStatus, Product
from logistics.supply.selection import reserve_kits
from tests.support.clients import login, submit
from tests.support.clock import TestClock
from tests.support.supply import Supply, build_supply, receive, user_named
from tests.support.world import PASSWORD, World

# Today: the test world enrols its patients 20 days before the real clock's now.
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
EXPIRY = (NOW + timedelta(days=365)).date()
URL = "/api/v1/devices/readings"
# The test product (tests/support/supply.py): 2 to 8 °C, 60 minutes outside tolerated,
# never beyond 0 to 25 °C.


@dataclass(frozen=True)
class Trip:
    shipment_id: int
    kit_ids: list[int]
    headers: dict[str, str]  # the logger's credential
    unit_id: int


@pytest.fixture
def supply(app: Flask, world: World, clock: TestClock) -> Supply:
    clock.freeze(NOW)
    supply = build_supply(app, world, NOW)
    numbers = [(f"K-{n:03d}", "A") for n in range(1, 9)]
    receive(app, supply.product_id, supply.depot_id, "L1", EXPIRY, numbers, NOW)
    return supply


def start_trip(
    session: Session, world: World, supply: Supply, *, count: int = 2, serial: str = "LOG-1"
) -> Trip:
    """A delivery to Anna made directly with the models (orders and the courier are not
    under test): kits reserved, a logger attached by the supply manager while the courier
    is booked, then picked up and in transit. Committed."""
    start = NOW - timedelta(hours=6)
    anna = session.get(Patient, world.patients["anna"].id)
    product, depot = session.get(Product, supply.product_id), session.get(Depot, supply.depot_id)
    assert anna is not None and product is not None and depot is not None
    kits = reserve_kits(
        session, None, start, patient=anna, product=product, depot=depot, count=count,
        next_resupply=(NOW + timedelta(days=28)).date(), system="test-shipments",
    )  # fmt: skip
    with audit.acting(session, None, start, what="Test delivery", system="test-shipments"):
        shipment = Shipment(
            kind=ShipmentKind.DELIVERY, reason=OrderReason.SITE_REQUEST,
            trial_id=anna.trial_id, patient_id=anna.id, site_id=anna.site_id,
            product_id=product.id, depot_id=depot.id, kit_count=count,
            next_resupply_date=(NOW + timedelta(days=28)).date(), status=ShipmentStatus.BOOKED,
            requested_at=start, released_at=start, destination_city="Berlin", courier="sim",
            tracking_number=f"T-{serial}", status_changed_at=start, created_at=start,
            updated_at=start,
        )  # fmt: skip
        session.add(shipment)
        session.flush()
        for kit in kits:
            session.add(ShipmentKit(shipment_id=shipment.id, kit_id=kit.id))
    model = session.scalars(
        select(DeviceModel).where(DeviceModel.model_name == "Cold logger")
    ).one_or_none()
    if model is None:
        model = registry.register_model(
            session, None, start, manufacturer="Acme", model_name="Cold logger",
            kind=DeviceKind.LOGGER, metrics=["ambient_temperature"], system="test",
        )  # fmt: skip
    unit = registry.register_unit(session, None, start, model, serial, system="test")
    token = registry.provision_token(session, None, start, unit, system="test")
    supply_manager = user_named(session, "supply")
    excursions.attach_logger(session, supply_manager, start, shipment, unit)
    with audit.acting(session, None, start, what="Test pickup", system="test-shipments"):
        shipment.status = ShipmentStatus.IN_TRANSIT
        for kit in kits:
            kit.status = KitStatus.SHIPPED
    session.commit()
    return Trip(shipment.id, [k.id for k in kits], {"Authorization": f"Bearer {token}"}, unit.id)


def send(
    session: Session, client: FlaskClient, trip: Trip, celsius: list[float], *, first: float = 300
) -> None:
    """Readings every 10 minutes from `first` minutes before now, through the device API."""
    session.rollback()  # on SQLite an open transaction holds the write lock
    readings = [
        {
            "metric": "ambient_temperature",
            "value": value,
            "unit": "°C",
            "time": (NOW - timedelta(minutes=first - 10 * i)).isoformat(),
        }
        for i, value in enumerate(celsius)
    ]
    response = client.post(URL, json={"readings": readings}, headers=trip.headers)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["rejected"] == [], answer


def kit_statuses(session: Session, trip: Trip) -> list[KitStatus]:
    session.rollback()
    shipment = session.get(Shipment, trip.shipment_id)
    assert shipment is not None
    found = [sk.kit.status for sk in shipment.kits]
    session.rollback()
    return found


@dataclass(frozen=True)
class Task:
    id: int
    decision: Decision | None
    decision_reason: str | None
    finding: str
    worst_c: float
    minutes_out_of_range: int
    replacement_id: int | None


def tasks(session: Session, trip: Trip) -> list[Task]:
    """The shipment's disposition tasks as they are committed (the session's transaction
    ended, so that the app's requests may write)."""
    session.rollback()
    found = [
        Task(d.id, d.decision, d.decision_reason, d.finding, d.worst_c,
             d.minutes_out_of_range, d.replacement_id)
        for d in session.scalars(
            select(ExcursionDisposition).where(ExcursionDisposition.shipment_id == trip.shipment_id)
        )
    ]  # fmt: skip
    session.rollback()
    return found


def task_row(session: Session, task: Task) -> ExcursionDisposition:
    row = session.get(ExcursionDisposition, task.id)
    assert row is not None
    return row


def anna(session: Session, world: World) -> Patient:
    patient = session.get(Patient, world.patients["anna"].id)
    assert patient is not None
    return patient


WARM_80_MINUTES = [5.0, 5.0] + [9.5] * 7 + [5.0]  # 8 intervals touch 9.5: 80 minutes


def test_logger_readings_are_stored_for_the_shipment_and_in_range_changes_nothing(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, [4.0, 5.0, 6.5, 8.0, 2.0])
    stored = session.scalars(
        select(DeviceReading.value).where(DeviceReading.unit_id == trip.unit_id)
    ).all()
    assert sorted(stored) == [2.0, 4.0, 5.0, 6.5, 8.0]
    assert kit_statuses(session, trip) == [KitStatus.SHIPPED, KitStatus.SHIPPED]
    assert tasks(session, trip) == []
    assert excursions.quarantine_notice(session, anna(session, world)) == []


def test_time_out_of_range_quarantines_once_and_tells_the_patient(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, WARM_80_MINUTES)

    assert kit_statuses(session, trip) == [KitStatus.QUARANTINED, KitStatus.QUARANTINED]
    [task] = tasks(session, trip)
    assert task.decision is None
    assert (task.worst_c, task.minutes_out_of_range) == (9.5, 80)
    assert "80 minutes outside 2 to 8 °C" in task.finding
    shipment = session.get(Shipment, trip.shipment_id)
    assert shipment is not None
    assert shipment.excursion_at == NOW - timedelta(minutes=280)  # the first warm reading

    # Another batch showing the same excursion, and the same batch again: still one task.
    send(session, client, trip, [9.0, 9.0, 9.0], first=180)
    send(session, client, trip, WARM_80_MINUTES)
    assert len(tasks(session, trip)) == 1

    [notice] = excursions.quarantine_notice(session, anna(session, world))
    assert notice.shipment_id == trip.shipment_id and not notice.rejected
    assert notice.message.startswith("Do not use the kits")
    assert len(notice.kit_numbers) == 2

    # The patient's delivery page warns her and offers no confirmation of the kits.
    session.rollback()
    login(client, "anna", PASSWORD)
    page = client.get(f"/portal/deliveries/{trip.shipment_id}").get_data(as_text=True)
    assert 'data-testid="quarantine-warning"' in page
    assert "Do not use" in page

    actions = session.scalars(
        select(AuditAction.summary).where(AuditAction.actor_name == "system:temperature-check")
    ).all()
    assert actions == [f"Quarantine the kits of shipment #{trip.shipment_id} after a "
                       "temperature excursion"]  # fmt: skip


def test_a_spike_beyond_the_hard_limit_is_an_excursion_at_once(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, [5.0, 26.0, 5.0])  # 20 minutes out: well within the hour allowed
    assert kit_statuses(session, trip) == [KitStatus.QUARANTINED, KitStatus.QUARANTINED]
    [task] = tasks(session, trip)
    assert task.worst_c == 26.0
    assert "beyond the hard limits (0 to 25 °C)" in task.finding


def test_release_with_a_reason_restores_the_kits_and_removes_the_notice(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, WARM_80_MINUTES)
    [task] = tasks(session, trip)
    login(client, "supply", PASSWORD)
    page = f"/supply/dispositions/{task.id}"

    queue = client.get("/supply/dispositions").get_data(as_text=True)
    assert f'data-testid="disposition-{task.id}"' in queue and "B1-anna" in queue

    # No reason: the form again, with the error at the reason, nothing decided.
    refused = submit(client, page, page, {"decision": "release", "reason": "  "})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="reason-error"' in html and "Give the reason" in html
    assert kit_statuses(session, trip) == [KitStatus.QUARANTINED, KitStatus.QUARANTINED]

    reason = "Stability data allow 2 h at up to 15 °C"
    done = submit(client, page, page, {"decision": "release", "reason": reason})
    assert done.status_code == 302
    assert kit_statuses(session, trip) == [KitStatus.SHIPPED, KitStatus.SHIPPED]  # in transit
    [task] = tasks(session, trip)
    assert task.decision is Decision.RELEASE and task.decision_reason == reason
    assert excursions.quarantine_notice(session, anna(session, world)) == []
    session.rollback()
    assert f'data-testid="disposition-{task.id}"' not in client.get(
        "/supply/dispositions"
    ).get_data(as_text=True)

    action = session.scalars(
        select(AuditAction).where(AuditAction.summary.like("Release the quarantined kits%"))
    ).one()
    assert (action.actor_name, action.reason) == ("supply", reason)
    session.rollback()

    # A second decision is refused: on the page (409) and in the service.
    again = submit(client, page, page, {"decision": "reject", "reason": "Changed my mind"})
    assert again.status_code == 409 and "decided already" in again.get_data(as_text=True)
    with pytest.raises(Conflict):
        excursions.decide(
            session, user_named(session, "supply"), NOW, task_row(session, task),
            decision=Decision.REJECT, reason="Changed my mind",
        )  # fmt: skip


def test_reject_orders_a_replacement_and_keeps_the_kits_out_of_use(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, [5.0, 30.0, 5.0])
    [task] = tasks(session, trip)
    manager = user_named(session, "supply")
    excursions.decide(
        session, manager, NOW, task_row(session, task), decision=Decision.REJECT,
        reason="Frozen product is lost",
    )  # fmt: skip
    session.commit()

    [task] = tasks(session, trip)
    assert task.decision is Decision.REJECT and task.replacement_id is not None
    replacement = session.get(Shipment, task.replacement_id)
    assert replacement is not None
    assert (replacement.reason, replacement.replaces_id) == (
        OrderReason.REPLACEMENT,
        trip.shipment_id,
    )
    assert (replacement.status, replacement.kit_count) == (ShipmentStatus.REQUESTED, 2)
    # Rejected kits wait for their return or destruction: never usable, never "destroyed"
    # before anyone has destroyed them.
    assert kit_statuses(session, trip) == [KitStatus.QUARANTINED, KitStatus.QUARANTINED]
    [notice] = excursions.quarantine_notice(session, anna(session, world))
    assert notice.rejected and "replacement kits are being sent" in notice.message
    # New readings of the same trip open nothing more.
    send(session, client, trip, [30.0, 30.0], first=100)
    assert len(tasks(session, trip)) == 1


def test_who_may_decide_and_bad_decisions(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, [5.0, 30.0, 5.0])
    [task] = tasks(session, trip)
    with pytest.raises(Forbidden):
        excursions.decide(
            session, user_named(session, "coord_berlin"), NOW, task_row(session, task),
            decision=Decision.RELEASE, reason="Looks fine",
        )  # fmt: skip
    with pytest.raises(ValidationFailed) as bad:
        excursions.decide(
            session, user_named(session, "supply"), NOW, task_row(session, task),
            decision="keep", reason="",  # type: ignore[arg-type]
        )  # fmt: skip
    assert set(bad.value.details["fields"]) == {"decision", "reason"}
    session.rollback()
    login(client, "supply", PASSWORD)
    page = f"/supply/dispositions/{task.id}"
    html = submit(client, page, page, {"decision": "", "reason": "x"})
    assert html.status_code == 422 and 'id="decision-error"' in html.get_data(as_text=True)
    assert client.get("/supply/dispositions/999999").status_code == 404


def test_two_supply_managers_deciding_at_once_one_wins(
    app: Flask, client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, [5.0, 30.0, 5.0])
    [task] = tasks(session, trip)
    # Both loaded the open task; the first commits, the second decides on its stale copy.
    with (
        Session(bind=db.engine, expire_on_commit=False) as first,
        Session(bind=db.engine, expire_on_commit=False) as second,
    ):
        theirs = second.get(ExcursionDisposition, task.id)
        assert theirs is not None and theirs.decision is None
        second.commit()  # ends the read (on SQLite a reader blocks the writer); keeps the copy
        mine = first.get(ExcursionDisposition, task.id)
        assert mine is not None
        excursions.decide(
            first, user_named(first, "supply"), NOW, mine,
            decision=Decision.RELEASE, reason="Within stability data",
        )  # fmt: skip
        first.commit()
        assert theirs.decision is None  # stale
        with pytest.raises(Conflict):
            excursions.decide(
                second, user_named(second, "supply"), NOW, theirs,
                decision=Decision.REJECT, reason="Lost",
            )  # fmt: skip
        second.rollback()
    [task] = tasks(session, trip)
    assert task.decision is Decision.RELEASE
    assert (
        session.scalars(select(Shipment).where(Shipment.replaces_id == trip.shipment_id)).all()
        == []
    )


def test_supply_pages_never_show_the_patients_name_or_street(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, WARM_80_MINUTES)
    [task] = tasks(session, trip)
    identity = session.get(PatientIdentity, world.patients["anna"].id)
    assert identity is not None
    secrets = [v for v in (identity.given_name, identity.family_name, identity.address_line1) if v]
    assert secrets
    session.rollback()
    login(client, "supply", PASSWORD)
    for path in ("/supply/dispositions", f"/supply/dispositions/{task.id}",
                 f"/supply/shipments/{trip.shipment_id}"):  # fmt: skip
        html = client.get(path).get_data(as_text=True)
        assert "B1-anna" in html
        for secret in secrets:
            assert secret not in html, (path, secret)


def test_the_chart_shows_the_readings_and_the_allowed_range(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    send(session, client, trip, [5.0, 9.5, 26.0, 5.0])
    svg = shipment_chart_svg(session, trip.shipment_id, "Europe/Berlin")
    assert svg is not None
    assert svg.startswith("<svg") and 'role="img"' in svg
    assert 'class="allowed-range"' in svg and svg.count('class="hard-limit"') == 2
    assert svg.count('class="out-of-range"') == 2  # 9.5 and 26 °C
    assert "4 readings" in svg and "Allowed 2 to 8 °C" in svg and "highest 26 °C" in svg
    # On the supply manager's shipment page.
    session.rollback()
    login(client, "supply", PASSWORD)
    page = client.get(f"/supply/shipments/{trip.shipment_id}").get_data(as_text=True)
    assert 'data-testid="temperature-svg"' in page


def test_the_logger_goes_with_the_shipment_before_pickup_and_comes_back_after(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    trip = start_trip(session, world, supply)
    shipment = session.get(Shipment, trip.shipment_id)
    assert shipment is not None
    manager = user_named(session, "supply")
    with pytest.raises(Conflict):
        excursions.release_logger(session, manager, NOW, shipment)  # still on its way
    later = NOW + timedelta(hours=2)
    with audit.acting(session, None, later, what="Test delivery", system="test-shipments"):
        shipment.status = ShipmentStatus.DELIVERED
        shipment.delivered_at = later
    assert excursions.release_logger(session, manager, later, shipment)
    session.commit()
    assert excursions.logger_of(session, shipment) is None
    period = session.scalars(
        select(DeviceAssignment).where(DeviceAssignment.shipment_id == shipment.id)
    ).one()
    assert period.valid_to == later
    session.rollback()
    # Readings from after the trip are refused: the logger is nobody's now.
    response = client.post(
        URL,
        json={"readings": [{"metric": "ambient_temperature", "value": 5, "unit": "°C",
                            "time": (later + timedelta(minutes=1)).isoformat()}]},
        headers=trip.headers,
    )  # fmt: skip
    assert response.status_code == 401  # its credential was revoked with the return
