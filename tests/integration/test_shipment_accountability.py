"""Returns and accountability: a full cycle (delivered, confirmed, returned, reconciled,
destroyed) adds up per kit and per patient; what does not add up is listed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from dct_platform.models import Patient
from dct_platform.models.events import DomainEvent
from logistics.shipments import accountability, receipt, returns
from logistics.shipments.accountability import (
    KitRow,
    MovementRow,
    Problem,
    ShipmentRow,
    patient_account,
)
from logistics.shipments.models import KitCondition, Shipment, ShipmentKind
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import KitStatus
from tests.integration.test_shipment_receipt import NOW, make_delivery, statuses
from tests.integration.test_shipment_receipt import supply as supply  # the fixture
from tests.support.supply import Supply, kits_by_number, user_named
from tests.support.world import World

LATER = NOW + timedelta(days=20)


def arrive(session: Session, shipment_id: int, at: datetime) -> None:
    """The courier brought the return to the depot (the courier is not under test here)."""
    shipment = session.get(Shipment, shipment_id)
    assert shipment is not None
    with audit.acting(session, None, at, what="Test arrival", system="test-shipments"):
        shipment.status = ShipmentStatus.DELIVERED
        shipment.delivered_at = at
    session.commit()


def test_a_full_cycle_with_a_return_balances_and_a_missing_kit_is_listed(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002", "K-003", "K-004"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    kits = kits_by_number(session)
    anna = user_named(session, "anna")
    receipt.confirm_receipt(
        session, anna, NOW + timedelta(hours=2), shipment,
        kits={kits["K-003"].id: KitCondition.DAMAGED, kits["K-004"].id: KitCondition.MISSING},
    )  # fmt: skip
    session.commit()
    assert statuses(session, ["K-001", "K-002", "K-003", "K-004"]) == [
        KitStatus.DISPENSED, KitStatus.DISPENSED, KitStatus.DAMAGED, KitStatus.DELIVERED,
    ]  # fmt: skip

    # Her site asks for the used kit and the damaged one back.
    patient = session.get(Patient, world.patients["anna"].id)
    assert patient is not None
    kits = kits_by_number(session)
    ret = returns.request_return(
        session, user_named(session, "coord_berlin"), LATER, patient=patient,
        kits=[kits["K-001"], kits["K-003"]], note="End of cycle",
    )  # fmt: skip
    session.commit()
    assert ret.kind is ShipmentKind.RETURN and ret.status is ShipmentStatus.CREATED
    assert ret.depot_id == supply.depot_id and ret.patient_id == patient.id
    assert {sk.kit.kit_number for sk in ret.kits} == {"K-001", "K-003"}
    # The courier's pickup is booked after commit, by the event's receiver.
    emitted = session.scalars(
        select(DomainEvent.payload).where(
            DomainEvent.name == "logistics.shipment-ready-for-courier"
        )
    ).all()
    assert emitted == [f'{{"shipment_id": {ret.id}}}']

    with pytest.raises(Conflict, match="not arrived"):
        returns.reconcile_return(session, user_named(session, "supply"), LATER, ret, kits={})
    session.rollback()
    arrive(session, ret.id, LATER + timedelta(days=2))
    ret = session.get(Shipment, ret.id)
    assert ret is not None
    returns.reconcile_return(
        session, user_named(session, "supply"), LATER + timedelta(days=3), ret,
        kits={kits["K-001"].id: KitCondition.USED, kits["K-003"].id: KitCondition.DAMAGED},
    )  # fmt: skip
    session.commit()
    assert statuses(session, ["K-001", "K-003"]) == [KitStatus.RETURNED, KitStatus.RETURNED]

    kits = kits_by_number(session)
    returns.destroy(
        session, user_named(session, "supply"), LATER + timedelta(days=4),
        [kits["K-001"], kits["K-003"]], "Used and damaged kits",
    )  # fmt: skip
    session.commit()
    assert statuses(session, ["K-001", "K-003"]) == [KitStatus.DESTROYED, KitStatus.DESTROYED]

    account = accountability.load_patient_account(
        session, user_named(session, "supply"), LATER + timedelta(days=5), patient
    )
    assert account.balanced, [(b.name, b.left, b.right) for b in account.balances]
    c = account.counts
    assert (c["shipped"], c["received"], c["damaged"], c["missing"]) == (4, 2, 1, 1)
    assert (c["dispensed"], c["returned"], c["destroyed"], c["still_out"]) == (2, 2, 2, 2)
    listed = {(d.problem, d.kit_number) for d in account.discrepancies}
    assert listed == {(Problem.MISSING_ON_DELIVERY, "K-004")}

    ledger = accountability.load_kit_ledger(
        session, user_named(session, "supply"), LATER, kits["K-001"]
    )
    assert (ledger.shipped, ledger.dispensed, ledger.returned, ledger.destroyed) == (
        True, True, True, True,
    )  # fmt: skip
    assert [h.text for h in ledger.history] == [
        "Shipped to the patient",
        "Delivered",
        "Confirmed received by the patient (dispensed)",
        "Return requested",
        "Back at the depot (used)",
        "Destroyed",
    ]


def test_a_return_takes_only_the_patients_kits_once_and_only_from_her_or_her_site(
    world: World, supply: Supply, session: Session
) -> None:
    make_delivery(session, world, supply, "anna", ["K-001", "K-002"])
    make_delivery(session, world, supply, "kenji", ["K-101"])
    anna = session.get(Patient, world.patients["anna"].id)
    assert anna is not None
    kits = kits_by_number(session)

    with pytest.raises(ValidationFailed, match="see details") as wrong:
        returns.request_return(
            session, user_named(session, "anna"), NOW, patient=anna,
            kits=[kits["K-001"], kits["K-101"], kits["K-005"]],
        )  # fmt: skip
    assert "K-005, K-101" in str(wrong.value.details["fields"]["kits"][0])
    for stranger in ("kenji", "coord_tokyo", "supply"):
        with pytest.raises(Forbidden):
            returns.request_return(
                session, user_named(session, stranger), NOW, patient=anna, kits=[kits["K-001"]]
            )
    session.rollback()

    # The patient may ask herself; a second request for the same kit is refused.
    returns.request_return(
        session, user_named(session, "anna"), NOW, patient=anna, kits=[kits["K-001"]]
    )
    session.commit()
    with pytest.raises(Conflict, match="already under way for K-001"):
        returns.request_return(
            session, user_named(session, "coord_berlin"), NOW, patient=anna,
            kits=[kits["K-001"], kits["K-002"]],
        )  # fmt: skip
    session.rollback()
    assert (
        session.scalar(
            select(Shipment.id)
            .where(Shipment.kind == ShipmentKind.RETURN)
            .where(Shipment.kit_count == 2)
        )
        is None
    )


def test_reconciling_names_every_kit_and_destroying_takes_returned_kits_only(
    world: World, supply: Supply, session: Session
) -> None:
    sid = make_delivery(session, world, supply, "anna", ["K-001", "K-002"])
    shipment = session.get(Shipment, sid)
    assert shipment is not None
    receipt.confirm_receipt(session, user_named(session, "anna"), NOW, shipment)
    session.commit()
    anna = session.get(Patient, world.patients["anna"].id)
    assert anna is not None
    kits = kits_by_number(session)
    ret = returns.request_return(
        session, user_named(session, "anna"), NOW, patient=anna,
        kits=[kits["K-001"], kits["K-002"]],
    )  # fmt: skip
    session.commit()
    arrive(session, ret.id, LATER)
    supply_manager = user_named(session, "supply")
    with pytest.raises(ValidationFailed) as half:
        returns.reconcile_return(
            session, supply_manager, LATER, ret, kits={kits["K-001"].id: KitCondition.RECEIVED}
        )
    assert f"kit-{kits['K-002'].id}" in half.value.details["fields"]
    with pytest.raises(Forbidden):
        returns.reconcile_return(
            session, user_named(session, "coord_berlin"), LATER, ret,
            kits={kits["K-001"].id: KitCondition.RECEIVED, kits["K-002"].id: KitCondition.RECEIVED},
        )  # fmt: skip
    session.rollback()
    returns.reconcile_return(
        session, supply_manager, LATER, ret,
        kits={kits["K-001"].id: KitCondition.RECEIVED, kits["K-002"].id: KitCondition.MISSING},
    )  # fmt: skip
    session.commit()
    assert statuses(session, ["K-001", "K-002"]) == [KitStatus.RETURNED, KitStatus.DISPENSED]
    kits = kits_by_number(session)
    with pytest.raises(Conflict, match="not K-002"):
        returns.destroy(session, supply_manager, LATER, [kits["K-001"], kits["K-002"]], "Expired")
    with pytest.raises(ValidationFailed):
        returns.destroy(session, supply_manager, LATER, [kits["K-001"]], "  ")
    session.rollback()
    assert statuses(session, ["K-001"]) == [KitStatus.RETURNED]

    account = accountability.load_patient_account(session, supply_manager, LATER, anna)
    assert account.balanced
    listed = {(d.problem, d.kit_number) for d in account.discrepancies}
    assert listed == {(Problem.MISSING_FROM_RETURN, "K-002")}
    assert account.counts["awaiting_destruction"] == 1


def test_another_patient_cannot_read_the_account(
    world: World, supply: Supply, session: Session
) -> None:
    make_delivery(session, world, supply, "anna", ["K-001"])
    anna = session.get(Patient, world.patients["anna"].id)
    assert anna is not None
    with pytest.raises(NotFound):
        accountability.load_patient_account(session, user_named(session, "kenji"), NOW, anna)


# --- the arithmetic alone --------------------------------------------------------------------

T0 = datetime.fromisoformat("2026-01-01T08:00:00+00:00")


def delivery(sid: int, status: ShipmentStatus, kit_count: int, **kw: datetime) -> ShipmentRow:
    return ShipmentRow(sid, ShipmentKind.DELIVERY, status, 1, kit_count, T0, **kw)


def test_a_kit_left_unconfirmed_past_the_allowed_days_is_listed_and_not_before() -> None:
    kits = [KitRow(1, "K-1", KitStatus.DELIVERED, 1)]
    ships = [delivery(10, ShipmentStatus.DELIVERED, 1, delivered_at=T0)]
    moves = [MovementRow(10, 1, None)]
    early = patient_account(1, kits, ships, moves, T0 + timedelta(days=6))
    late = patient_account(1, kits, ships, moves, T0 + timedelta(days=8))
    assert early.discrepancies == [] and early.balanced
    assert [d.problem for d in late.discrepancies] == [Problem.UNCONFIRMED]
    assert late.counts["awaiting_confirmation"] == 1


def test_a_kit_returned_but_never_shipped_and_a_damaged_kit_kept_are_discrepancies() -> None:
    kits = [
        KitRow(1, "K-1", KitStatus.DAMAGED, 1),
        KitRow(2, "K-2", KitStatus.RETURNED, 1),
    ]
    ret = ShipmentRow(11, ShipmentKind.RETURN, ShipmentStatus.DELIVERED, 1, 1, T0, T0, T0)
    ships = [delivery(10, ShipmentStatus.DELIVERED, 1, delivered_at=T0, received_at=T0), ret]
    moves = [MovementRow(10, 1, KitCondition.DAMAGED), MovementRow(11, 2, KitCondition.RECEIVED)]
    account = patient_account(1, kits, ships, moves, T0)
    problems = {(d.problem, d.kit_number) for d in account.discrepancies}
    assert (Problem.RETURNED_NOT_SHIPPED, "K-2") in problems
    assert (Problem.DAMAGED_NOT_SETTLED, "K-1") in problems
    # Shipped 1, but 1 returned and 1 still out: the kit records do not add up.
    assert not account.balanced
    assert Problem.UNBALANCED in {d.problem for d in account.discrepancies}


def test_a_dispensed_kit_returned_unused_is_no_discrepancy() -> None:
    kits = [KitRow(1, "K-1", KitStatus.RETURNED, 1)]
    ret = ShipmentRow(11, ShipmentKind.RETURN, ShipmentStatus.DELIVERED, 1, 1, T0, T0, T0)
    ships = [delivery(10, ShipmentStatus.DELIVERED, 1, delivered_at=T0, received_at=T0), ret]
    moves = [MovementRow(10, 1, KitCondition.RECEIVED), MovementRow(11, 1, KitCondition.RECEIVED)]
    account = patient_account(1, kits, ships, moves, T0 + timedelta(days=30))
    assert account.discrepancies == [] and account.balanced
    assert account.counts["dispensed"] == 1 and account.counts["returned"] == 1


def test_kits_in_transit_count_as_shipped_and_a_status_that_disagrees_unbalances() -> None:
    ships = [delivery(10, ShipmentStatus.IN_TRANSIT, 2)]
    moves = [MovementRow(10, 1, None), MovementRow(10, 2, None)]
    fine = [KitRow(1, "K-1", KitStatus.SHIPPED, 1), KitRow(2, "K-2", KitStatus.SHIPPED, 1)]
    assert patient_account(1, fine, ships, moves, T0).balanced
    # A kit put back on the shelf while the records say it is on the way.
    wrong = [fine[0], KitRow(2, "K-2", KitStatus.AVAILABLE, None)]
    account = patient_account(1, wrong, ships, moves, T0)
    assert not account.balanced
    assert account.counts["in_transit"] == 2 and account.counts["still_out"] == 1
