"""Which kits a patient's shipment takes: first expiry, first out.

A kit qualifies when it is available at the chosen depot, of the product ordered, packed
for the patient's arm, and still usable on the day the next resupply is due. Expiring
*on* that day is not enough: the patient doses from this shipment on that day until the
next one arrives, which may be late in the day or late altogether, and labels differ on
whether the expiry day itself is usable. So a kit must expire strictly after the next
resupply date. Of those, the earliest expiry goes first; ties by lot, then kit number
(both compared by code point, in Python and in the database alike), so that the same
stock always gives the same pick.

`pick_kits` is the rule, without a database. `reserve_kits` applies it to the depot's
stock in the caller's transaction and marks the picked kits reserved for the patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.models import Patient, PatientStatus, User
from dct_platform.timeutil import to_local
from logistics.supply.models import Depot, DepotKind, Kit, KitStatus, Product


class NotEnoughKits(Conflict):
    code = "not_enough_kits"


@dataclass(frozen=True)
class KitFacts:
    """What selection needs to know of a kit."""

    id: int
    kit_number: str
    product_id: int
    lot: str
    expiry_date: date
    depot_id: int
    status: KitStatus
    arm: str


def usable_for(expiry_date: date, next_resupply: date) -> bool:
    """Whether a kit expiring on `expiry_date` lasts until the next resupply (see above
    why expiring on that very day does not)."""
    return expiry_date > next_resupply


def fefo_key(kit: KitFacts) -> tuple[date, str, str]:
    return (kit.expiry_date, kit.lot, kit.kit_number)


def check_request(needed: int, ship_date: date, next_resupply: date) -> None:
    if needed < 1:
        raise ValidationFailed.on_field("count", "Ask for at least one kit.")
    if next_resupply < ship_date:
        raise ValidationFailed.on_field(
            "next_resupply", "The next resupply cannot be due before this shipment leaves."
        )


def pick_kits(
    kits: Sequence[KitFacts], needed: int, ship_date: date, next_resupply: date, *,
    product_id: int, arm: str, depot_id: int,
) -> list[KitFacts]:  # fmt: skip
    """The `needed` kits to ship, first expiry first out, from those that qualify; a
    `NotEnoughKits` conflict (with `found` and `needed`) when too few do."""
    check_request(needed, ship_date, next_resupply)
    # By id: a kit listed twice is still one kit, never shipped twice.
    unique = {kit.id: kit for kit in kits}.values()
    eligible = sorted(
        (
            kit
            for kit in unique
            if kit.status is KitStatus.AVAILABLE
            and kit.product_id == product_id
            and kit.arm == arm
            and kit.depot_id == depot_id
            and usable_for(kit.expiry_date, next_resupply)
        ),
        key=fefo_key,
    )
    if len(eligible) < needed:
        raise NotEnoughKits(
            f"Found {len(eligible)} usable kits, {needed} needed: a kit must be available "
            f"at the depot, of the product and the patient's arm, and expire after the "
            f"next resupply on {next_resupply.isoformat()}.",
            {"found": len(eligible), "needed": needed},
        )
    return eligible[:needed]


def reserve_kits(
    session: Session, actor: User | None, now: datetime, *, patient: Patient,
    product: Product, depot: Depot, count: int, next_resupply: date,
    ship_date: date | None = None, system: str | None = None,
) -> list[Kit]:  # fmt: skip
    """Reserve `count` kits of `product` at `depot` for a direct-to-patient shipment to
    `patient`, in the caller's transaction. `ship_date` is the depot's local today unless
    given. The caller (the shipment order) has checked that the actor may order them."""
    _check_order(patient, product, depot)
    assert patient.arm is not None  # checked above
    ship_date = ship_date or to_local(now, depot.timezone).date()
    check_request(count, ship_date, next_resupply)
    query = (
        select(Kit, Kit.arm)
        .where(
            Kit.depot_id == depot.id,
            Kit.product_id == product.id,
            Kit.arm == patient.arm,
            Kit.status == KitStatus.AVAILABLE,
            Kit.expiry_date > next_resupply,  # usable_for(), in SQL
        )
        .order_by(*_fefo_order(session))
        # The lock's read is the truth to decide on: refresh kits the session holds.
        .execution_options(populate_existing=True)
    )
    rows = _lock_candidates(session, query, count)
    by_id = {kit.id: kit for kit, _arm in rows}
    try:
        picked = pick_kits(
            [_facts(kit, arm) for kit, arm in rows], count, ship_date, next_resupply,
            product_id=product.id, arm=patient.arm, depot_id=depot.id,
        )  # fmt: skip
    except NotEnoughKits as short:
        raise NotEnoughKits(
            f"Only {short.details['found']} of the {count} kits needed are available at "
            f"{depot.name}: kits of {product.code} for the patient's arm that expire after "
            f"the next resupply on {next_resupply.isoformat()}.",
            short.details,
        ) from None
    kits = [by_id[facts.id] for facts in picked]
    what = (
        f"Reserve {len(kits)} kits of {product.code} at {depot.name} "
        f"for patient {patient.subject_number}"
    )
    with audit.acting(session, actor, now, what=what, system=system):
        for kit in kits:
            kit.status = KitStatus.RESERVED
            kit.patient_id = patient.id
            kit.updated_at = now
    return kits


def _check_order(patient: Patient, product: Product, depot: Depot) -> None:
    refusal: tuple[str, str] | None = None
    if not product.home_delivery_ok:
        why = "it cannot be shipped to a patient"
        refusal = ("product", f"{product.code} is not suitable for home delivery: {why}.")
    elif product.trial_id != patient.trial_id:
        refusal = ("product", f"{product.code} is not of this trial.")
    elif patient.status != PatientStatus.ENROLLED:
        refusal = ("patient", f"Patient {patient.subject_number} is {patient.status.value}.")
    elif patient.arm is None:
        why = "kits are packed per arm"
        refusal = ("patient", f"Patient {patient.subject_number} has no arm yet: {why}.")
    elif not depot.is_active:
        refusal = ("depot", f"Depot {depot.name} is closed.")
    elif depot.kind is DepotKind.SITE_PHARMACY and depot.site_id != patient.site_id:
        refusal = ("depot", f"{depot.name} is the pharmacy of another site than the patient's.")
    if refusal is not None:
        raise ValidationFailed.on_field(*refusal)


def _fefo_order(session: Session) -> list[Any]:
    # PostgreSQL sorts text by the database's locale (which may skip punctuation); "C" is
    # code point order, as Python and SQLite compare, so the pick is the same everywhere.
    if session.get_bind().dialect.name == "postgresql":
        return [Kit.expiry_date, Kit.lot.collate("C"), Kit.kit_number.collate("C")]
    return [Kit.expiry_date, Kit.lot, Kit.kit_number]


def _lock_candidates(
    session: Session, query: Select[Kit, str], count: int
) -> list[tuple[Kit, str]]:
    """The candidates in FEFO order, locked until the caller's transaction ends so that
    two orders never take the same kit: the first `count`, or every one when there are
    too few. (SQLite has no row locks and needs none: its writers run one at a time.)"""
    # First skip the kits other orders hold at this moment: concurrent orders at one depot
    # then take different kits without waiting for each other.
    savepoint = session.begin_nested()
    rows = session.execute(query.limit(count).with_for_update(skip_locked=True)).all()
    if len(rows) == count:
        savepoint.commit()
        return [(kit, arm) for kit, arm in rows]
    # Too few. The kits skipped may come back if the orders holding them fail, so rather
    # than refuse because of them, give back what this order holds (a savepoint rollback
    # releases its row locks) and wait for them: every order that gets here locks all
    # candidates in the same order, so none waits for a lock another waiting order holds.
    savepoint.rollback()
    return [(kit, arm) for kit, arm in session.execute(query.with_for_update())]


def _facts(kit: Kit, arm: str) -> KitFacts:
    return KitFacts(
        id=kit.id, kit_number=kit.kit_number, product_id=kit.product_id, lot=kit.lot,
        expiry_date=kit.expiry_date, depot_id=kit.depot_id, status=kit.status, arm=arm,
    )  # fmt: skip
