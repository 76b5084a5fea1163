"""Kits reserved for a patient's shipment on the database: first expiry first out from the
depot's stock, never one kit for two orders however many arrive at once, refusals that
say why, and the treatment arm shown to the unblinded supply manager only."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from dct_platform import policy
from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import AuditAction, AuditEntry, Patient
from logistics.supply.models import Depot, Kit, KitStatus, Product
from logistics.supply.policy import kit_view
from logistics.supply.selection import NotEnoughKits, reserve_kits
from tests.support.clock import TestClock
from tests.support.concurrency import all_at_once
from tests.support.database import is_postgres
from tests.support.supply import (
    Supply,
    build_supply,
    kits_by_number,
    patients_in_arm,
    receive,
    unblinded_user,
    user_named,
)
from tests.support.world import World

NOW = datetime.fromisoformat("2026-03-10T09:30:00+00:00")  # 10:30 in Berlin
TODAY = date(2026, 3, 10)
NEXT = TODAY + timedelta(days=28)  # the next resupply


@pytest.fixture
def supply(app: Flask, world: World, clock: TestClock) -> Supply:
    clock.freeze(NOW)
    return build_supply(app, world, NOW)


def reserve(
    session: Session, patient_id: int, product_id: int, depot_id: int, count: int,
    actor: str | None = "pi_berlin",
) -> list[str]:  # fmt: skip
    patient = session.get(Patient, patient_id)
    product, depot = session.get(Product, product_id), session.get(Depot, depot_id)
    assert patient is not None and product is not None and depot is not None
    kits = reserve_kits(
        session, user_named(session, actor) if actor else None, NOW, patient=patient,
        product=product, depot=depot, count=count, next_resupply=NEXT,
        system=None if actor else "test-supply",
    )  # fmt: skip
    return [k.kit_number for k in kits]


def test_a_reservation_takes_the_first_expiring_usable_kits_and_holds_them_for_the_patient(
    app: Flask, world: World, supply: Supply, session: Session
) -> None:
    p, depot = supply.product_id, supply.depot_id
    receive(app, p, depot, "L1", NEXT, [("K-001", "A")], NOW)  # its last day is the resupply's
    receive(app, p, depot, "L2", NEXT + timedelta(days=1), [("K-002", "B")], NOW)  # Kenji's arm
    receive(app, p, depot, "L3", NEXT + timedelta(days=90), [("K-004", "A"), ("K-003", "A")], NOW)
    receive(app, p, depot, "L4", NEXT + timedelta(days=30), [("K-005", "A")], NOW)
    receive(app, p, supply.pharmacy_id, "L5", NEXT + timedelta(days=2), [("K-006", "A")], NOW)

    anna = world.patients["anna"].id
    assert reserve(session, anna, p, depot, 2) == ["K-005", "K-003"]
    session.commit()

    stock = kits_by_number(session)
    held = {n: (k.status, k.patient_id) for n, k in stock.items()}
    assert held == {
        "K-001": (KitStatus.AVAILABLE, None),
        "K-002": (KitStatus.AVAILABLE, None),
        "K-003": (KitStatus.RESERVED, anna),
        "K-004": (KitStatus.AVAILABLE, None),
        "K-005": (KitStatus.RESERVED, anna),
        "K-006": (KitStatus.AVAILABLE, None),
    }
    assert stock["K-003"].version == 2  # changed once, by this reservation
    action = session.scalars(select(AuditAction).where(AuditAction.summary.like("Reserve %"))).one()
    assert action.summary == "Reserve 2 kits of IP-01 at Central depot EU for patient B1-anna"
    assert action.actor_name == "pi_berlin"


def test_too_few_usable_kits_is_refused_saying_how_many_and_reserves_nothing(
    app: Flask, world: World, supply: Supply, session: Session
) -> None:
    p, depot = supply.product_id, supply.depot_id
    receive(app, p, depot, "L1", NEXT + timedelta(days=40), [("K-001", "A")], NOW)
    receive(app, p, depot, "L2", NEXT, [("K-002", "A")], NOW)
    with pytest.raises(NotEnoughKits) as refused:
        reserve(session, world.patients["anna"].id, p, depot, 3)
    assert refused.value.status == 409
    assert refused.value.details == {"found": 1, "needed": 3}
    assert refused.value.message.startswith("Only 1 of the 3 kits needed are available at ")
    assert "IP-01" in refused.value.message and NEXT.isoformat() in refused.value.message
    # Blind: the message names the patient's arm, never which arm it is.
    assert " A " not in refused.value.message
    session.rollback()
    assert {k.status for k in kits_by_number(session).values()} == {KitStatus.AVAILABLE}


def test_a_product_not_suitable_for_home_delivery_is_refused(
    app: Flask, world: World, supply: Supply, session: Session
) -> None:
    receive(app, supply.clinic_only_id, supply.depot_id, "F1", date(2027, 1, 1),
            [("F-001", "A")], NOW)  # fmt: skip
    with pytest.raises(ValidationFailed) as refused:
        reserve(session, world.patients["anna"].id, supply.clinic_only_id, supply.depot_id, 1)
    assert refused.value.status == 422
    assert refused.value.message == (
        "IP-09 is not suitable for home delivery: it cannot be shipped to a patient."
    )
    assert "product" in refused.value.details["fields"]
    session.rollback()
    assert kits_by_number(session)["F-001"].status is KitStatus.AVAILABLE


def test_a_site_pharmacy_ships_to_its_own_sites_patients_only(
    app: Flask, world: World, supply: Supply, session: Session
) -> None:
    receive(app, supply.product_id, supply.pharmacy_id, "L1", date(2027, 1, 1),
            [("K-001", "A"), ("K-002", "B")], NOW)  # fmt: skip
    with pytest.raises(ValidationFailed, match="pharmacy of another site"):
        reserve(session, world.patients["kenji"].id, supply.product_id, supply.pharmacy_id, 1)
    session.rollback()
    anna = world.patients["anna"].id
    assert reserve(session, anna, supply.product_id, supply.pharmacy_id, 1) == ["K-001"]


def test_twenty_orders_at_once_never_take_the_same_kit(
    app: Flask, world: World, supply: Supply
) -> None:
    # Thirty kits for twenty orders of two: fifteen are served, five refused, none twice.
    stock = [(f"K-{n:03d}", "A") for n in range(30)]
    receive(app, supply.product_id, supply.depot_id, "L1", date(2027, 1, 1), stock, NOW)
    patients = patients_in_arm(app, world, 20, "A", NOW)

    def order(patient_id: int) -> list[str] | dict[str, int]:
        with app.app_context():
            s = db.session()
            try:
                taken = reserve(s, patient_id, supply.product_id, supply.depot_id, 2, actor=None)
                s.commit()
                return taken
            except NotEnoughKits as refused:
                s.rollback()
                return refused.details
            finally:
                db.session.remove()

    answers = all_at_once([lambda pid=pid: order(pid) for pid in patients])
    served = [a for a in answers if isinstance(a, list)]
    refused = [a for a in answers if isinstance(a, dict)]
    assert len(served) == 15 and all(len(kits) == 2 for kits in served)
    assert refused == [{"found": 0, "needed": 2}] * 5
    handed_out = Counter(n for kits in served for n in kits)
    assert len(handed_out) == 30 and set(handed_out.values()) == {1}
    with app.app_context():
        stored = kits_by_number(db.session)
        assert {k.status for k in stored.values()} == {KitStatus.RESERVED}
        per_patient = Counter(k.patient_id for k in stored.values())
        assert set(per_patient.values()) == {2} and len(per_patient) == 15
        db.session.remove()


@pytest.mark.skipif(not is_postgres(), reason="SQLite has no row locks: its writers queue")
def test_an_order_waits_for_kits_another_order_holds_rather_than_refuse(
    app: Flask, world: World, supply: Supply
) -> None:
    """An order skips kits others hold; when that leaves too few, it waits for them, and
    takes them if the order holding them fails."""
    receive(app, supply.product_id, supply.depot_id, "L1", date(2027, 1, 1),
            [("K-001", "A"), ("K-002", "A")], NOW)  # fmt: skip
    started = threading.Event()

    def order() -> list[str]:
        with app.app_context():
            s = db.session()
            started.set()
            try:
                taken = reserve(s, world.patients["anna"].id, supply.product_id,
                                supply.depot_id, 2)  # fmt: skip
                s.commit()
                return taken
            finally:
                db.session.remove()

    # The holder's connection closes before the pool waits for the order: if the test
    # fails, closing it rolls back and releases the order, instead of hanging.
    with app.app_context(), ThreadPoolExecutor(1) as pool, db.engine.connect() as holder:
        # Another order's transaction holds K-001.
        holding = holder.begin()
        holder.execute(select(Kit.id).where(Kit.kit_number == "K-001").with_for_update())
        answer = pool.submit(order)
        started.wait(10)
        with pytest.raises(TimeoutError):
            answer.result(timeout=1.5)  # waiting for K-001, not refused
        holding.rollback()  # that order failed: K-001 is free again
        assert answer.result(timeout=30) == ["K-001", "K-002"]


def test_the_arm_is_shown_only_to_the_unblinded_supply_manager(
    app: Flask, world: World, supply: Supply
) -> None:
    p, depot = supply.product_id, supply.depot_id
    receive(app, p, depot, "L1", date(2027, 1, 1),
            [("K-001", "A"), ("K-002", "A"), ("K-003", "B"), ("K-004", "A")], NOW)  # fmt: skip
    unblinded_user(app, world, NOW)
    with app.app_context():
        s = db.session()
        reserve(s, world.patients["anna"].id, p, depot, 2)
        reserve(s, world.patients["kenji"].id, p, depot, 1, actor="coord_tokyo")
        s.commit()

        def seen(username: str) -> dict[str, dict[str, object]]:
            actor = user_named(s, username)
            kits = s.scalars(
                select(Kit)
                .where(policy.visible(actor, Kit, session=s, now=NOW))
                .order_by(Kit.kit_number)
            )
            return {k.kit_number: dict(kit_view(actor, k, NOW)) for k in kits}

        everything = ["K-001", "K-002", "K-003", "K-004"]
        supply_sees = seen("supply")
        assert list(supply_sees) == everything
        assert supply_sees["K-001"]["status"] == "reserved"
        assert supply_sees["K-001"]["patient_id"] == world.patients["anna"].id
        # Site staff and investigators: their patients' kits, by number; no arm anywhere.
        assert list(seen("coord_berlin")) == ["K-001", "K-002"]
        assert list(seen("pi_berlin")) == ["K-001", "K-002"]
        assert list(seen("coord_tokyo")) == ["K-003"]
        for username in ("supply", "coord_berlin", "pi_berlin", "coord_tokyo"):
            assert all("arm" not in view for view in seen(username).values()), username
        assert seen("manager") == {} and seen("nurse") == {}

        unblinded = seen("unblinded")
        assert {n: v["arm"] for n, v in unblinded.items()} == {
            "K-001": "A", "K-002": "A", "K-003": "B", "K-004": "A",
        }  # fmt: skip
        db.session.remove()


def test_the_arm_is_neither_loaded_by_accident_nor_written_to_the_audit_trail(
    app: Flask, supply: Supply, session: Session
) -> None:
    receive(app, supply.product_id, supply.depot_id, "L1", date(2027, 1, 1),
            [("K-001", "A"), ("K-002", "B")], NOW)  # fmt: skip
    kit = kits_by_number(session)["K-001"]
    with pytest.raises(InvalidRequestError):
        _ = kit.arm
    arms = session.scalars(
        select(AuditEntry.new_value).where(
            AuditEntry.table_name == "kits", AuditEntry.field == "arm"
        )
    ).all()
    assert arms == ["[redacted]", "[redacted]"]
    written = session.scalar(
        select(func.count()).where(
            AuditEntry.table_name == "kits", AuditEntry.new_value.in_(["A", "B"])
        )
    )
    assert written == 0
