"""The patient confirms receipt of a delivery, kit by kit: only then is a kit dispensed.
Never for a kit in quarantine, never before delivery, never twice, never someone else's
delivery; and a problem the patient reports is kept for the site and supply manager."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, policy
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import AuditAction, Patient
from logistics.shipments import receipt
from logistics.shipments.models import (
    KitCondition,
    OrderReason,
    Shipment,
    ShipmentKind,
    ShipmentKit,
)
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Kit, KitStatus
from tests.support.clock import TestClock
from tests.support.concurrency import all_at_once
from tests.support.supply import Supply, build_supply, kits_by_number, receive, user_named
from tests.support.world import World

# A day after the world is made (it is made at the real time): its patients are enrolled.
NOW = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
EXPIRY = NOW.date() + timedelta(days=300)


@pytest.fixture
def supply(app: Flask, world: World, clock: TestClock) -> Supply:
    clock.freeze(NOW)
    supply = build_supply(app, world, NOW)
    numbers = [(f"K-{n:03d}", "A") for n in range(1, 7)] + [("K-101", "B"), ("K-102", "B")]
    receive(app, supply.product_id, supply.depot_id, "L1", EXPIRY, numbers, NOW)
    return supply


def make_delivery(
    session: Session,
    world: World,
    supply: Supply,
    patient_key: str,
    numbers: list[str],
    *,
    status: ShipmentStatus = ShipmentStatus.DELIVERED,
    at: datetime = NOW,
) -> int:
    """A released delivery of `numbers` to the patient, moved to `status` as the courier
    would have; made directly through the models (the order and courier are not under
    test here). Committed; returns its id."""
    patient = session.get(Patient, world.patients[patient_key].id)
    assert patient is not None
    kits = [kits_by_number(session)[n] for n in numbers]
    delivered = status is ShipmentStatus.DELIVERED
    with audit.acting(session, None, at, what="Test delivery", system="test-shipments"):
        shipment = Shipment(
            kind=ShipmentKind.DELIVERY, reason=OrderReason.SITE_REQUEST,
            trial_id=patient.trial_id, patient_id=patient.id, site_id=patient.site_id,
            product_id=supply.product_id, depot_id=supply.depot_id, kit_count=len(kits),
            next_resupply_date=(at + timedelta(days=28)).date(), status=status,
            requested_at=at - timedelta(days=3), released_at=at - timedelta(days=3),
            destination_city=patient.site.name, courier="sim",
            tracking_number=f"T-{patient_key}-{numbers[0]}",
            delivered_at=at if delivered else None, status_changed_at=at,
            created_at=at, updated_at=at,
        )  # fmt: skip
        session.add(shipment)
        session.flush()
        for kit in kits:
            kit.status = KitStatus.DELIVERED if delivered else KitStatus.SHIPPED
            kit.patient_id = patient.id
            kit.updated_at = at
            session.add(ShipmentKit(shipment_id=shipment.id, kit_id=kit.id))
    shipment_id = shipment.id
    # Read before the commit: reading after it would open a transaction that, on SQLite,
    # locks out the pages' writes.
    session.commit()
    return shipment_id


def quarantine(session: Session, numbers: list[str]) -> None:
    """As a temperature excursion does (excursions.py's business, not under test here)."""
    with audit.acting(session, None, NOW, what="Test excursion", system="test-shipments"):
        for n in numbers:
            kits_by_number(session)[n].status = KitStatus.QUARANTINED
    session.commit()


def statuses(session: Session, numbers: list[str]) -> list[KitStatus]:
    session.expire_all()
    found = kits_by_number(session)
    return [found[n].status for n in numbers]


def test_confirming_dispenses_received_kits_marks_damaged_and_leaves_missing_accountable(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002", "K-003"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    kits = kits_by_number(session)
    anna = user_named(session, "anna")
    later = NOW + timedelta(hours=5)

    receipt.confirm_receipt(
        session, anna, later, shipment,
        kits={kits["K-002"].id: KitCondition.DAMAGED, kits["K-003"].id: KitCondition.MISSING},
        note="Box was crushed",
    )  # fmt: skip
    session.commit()

    assert statuses(session, ["K-001", "K-002", "K-003"]) == [
        KitStatus.DISPENSED,
        KitStatus.DAMAGED,
        KitStatus.DELIVERED,  # missing: still on Anna's account
    ]
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    assert shipment.received_at == later and shipment.received_by_id == anna.id
    said = {sk.kit.kit_number: sk.condition for sk in shipment.kits}
    assert said == {
        "K-001": KitCondition.RECEIVED,
        "K-002": KitCondition.DAMAGED,
        "K-003": KitCondition.MISSING,
    }
    trail = session.scalars(
        select(AuditAction.summary).where(AuditAction.summary.like(f"%receipt of shipment #{sid}%"))
    ).all()
    assert trail, "the confirmation is in the audit trail"


def test_a_second_confirmation_is_refused_and_changes_nothing(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    anna = user_named(session, "anna")
    receipt.confirm_receipt(session, anna, NOW, shipment)
    session.commit()
    kit_id = kits_by_number(session)["K-001"].id
    with pytest.raises(Conflict, match="already confirmed"):
        receipt.confirm_receipt(session, anna, NOW, shipment, kits={kit_id: KitCondition.MISSING})
    session.rollback()
    assert statuses(session, ["K-001"]) == [KitStatus.DISPENSED]


def test_a_patient_cannot_confirm_receipt_of_a_quarantined_kit(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002"])
    quarantine(session, ["K-002"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None

    with pytest.raises(Conflict) as refused:
        receipt.confirm_receipt(session, user_named(session, "anna"), NOW, shipment)
    session.rollback()

    assert "Do not use the kits" in str(refused.value.message)
    assert "site will contact you" in str(refused.value.message)
    assert statuses(session, ["K-001", "K-002"]) == [KitStatus.DELIVERED, KitStatus.QUARANTINED]
    shipment = session.get(Shipment, sid)
    assert shipment is not None and shipment.received_at is None
    assert all(sk.condition is None for sk in shipment.kits)


def test_receipt_is_refused_before_delivery(world: World, supply: Supply, session: Session) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"], status=ShipmentStatus.IN_TRANSIT)
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    with pytest.raises(Conflict, match="not arrived yet"):
        receipt.confirm_receipt(session, user_named(session, "anna"), NOW, shipment)
    session.rollback()
    assert statuses(session, ["K-001"]) == [KitStatus.SHIPPED]


def test_only_the_shipments_patient_confirms_and_only_kits_of_the_parcel(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    make_delivery(session, world, supply, "kenji", ["K-101"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    kenji = user_named(session, "kenji")
    # Kenji cannot even find Anna's delivery...
    assert (
        session.scalar(
            select(Shipment.id).where(Shipment.id == sid, policy.visible(kenji, Shipment))
        )
        is None
    )
    # ...nor confirm it, nor can her site's staff in her stead.
    for who in ("kenji", "coord_berlin"):
        with pytest.raises(Forbidden):
            receipt.confirm_receipt(session, user_named(session, who), NOW, shipment)
    other = kits_by_number(session)["K-101"].id
    with pytest.raises(ValidationFailed) as wrong:
        receipt.confirm_receipt(
            session, user_named(session, "anna"), NOW, shipment,
            kits={other: KitCondition.RECEIVED},
        )  # fmt: skip
    session.rollback()
    assert f"kit-{other}" in wrong.value.details["fields"]
    assert statuses(session, ["K-001", "K-101"]) == [KitStatus.DELIVERED, KitStatus.DELIVERED]


def test_a_reported_problem_is_kept_with_earlier_ones_and_audited(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    anna = user_named(session, "anna")
    receipt.report_problem(session, anna, NOW, shipment, text="The cool pack was warm.")
    receipt.report_problem(
        session, anna, NOW + timedelta(hours=1), shipment, text="  One   box is dented. "
    )
    session.commit()
    session.expire_all()
    shipment = session.get(Shipment, sid)
    assert shipment is not None and shipment.problem_report is not None
    assert shipment.problem_report.splitlines() == [
        f"{NOW:%Y-%m-%d} 09:30 UTC: The cool pack was warm.",
        f"{NOW:%Y-%m-%d} 10:30 UTC: One box is dented.",
    ]
    with pytest.raises(ValidationFailed):
        receipt.report_problem(session, anna, NOW, shipment, text="   ")
    with pytest.raises(Forbidden):
        receipt.report_problem(
            session, user_named(session, "kenji"), NOW, shipment, text="Not mine"
        )
    session.rollback()
    trail = session.scalars(
        select(AuditAction.summary).where(AuditAction.summary.like("%problem with shipment%"))
    ).all()
    assert len(trail) >= 2


def test_kit_rows_are_not_touched_by_a_refused_confirmation_of_an_unknown_condition(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    kit = session.scalars(select(Kit).where(Kit.kit_number == "K-001")).one()
    with pytest.raises(ValidationFailed):
        receipt.confirm_receipt(
            session, user_named(session, "anna"), NOW, shipment,
            kits={kit.id: KitCondition.USED},
        )  # fmt: skip
    session.rollback()
    assert statuses(session, ["K-001"]) == [KitStatus.DELIVERED]


def test_twenty_taps_on_confirm_record_the_receipt_once(
    app: Flask, world: World, supply: Supply, session: Session
) -> None:
    """A phone on a slow line sends the confirmation again and again: one receipt, one
    trail entry, and every other tap told it is already confirmed (no stale-record
    error, nothing half-done)."""
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002"])
    session.remove()  # type: ignore[attr-defined]

    def tap() -> str:
        with app.app_context():
            s = db.session()
            shipment = s.get(Shipment, sid)
            assert shipment is not None
            try:
                receipt.confirm_receipt(s, user_named(s, "anna"), NOW, shipment)
                s.commit()
                return "confirmed"
            except Conflict as refused:
                s.rollback()
                return "already" if "already confirmed" in str(refused) else str(refused)
            finally:
                db.session.remove()

    answers = Counter(all_at_once([tap] * 20))
    assert answers == {"confirmed": 1, "already": 19}
    with app.app_context():
        s = db.session()
        assert statuses(s, ["K-001", "K-002"]) == [KitStatus.DISPENSED] * 2
        receipts = s.scalars(
            select(AuditAction.summary).where(
                AuditAction.summary.like(f"%receipt of shipment #{sid}%")
            )
        ).all()
        assert len(receipts) == 1
