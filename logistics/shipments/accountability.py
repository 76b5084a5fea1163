"""Drug accountability: where each kit went, and whether a patient's kits add up.

The arithmetic is pure (`kit_ledger`, `patient_account` over plain rows) so that it is
tested without a database; `load_patient_account` and `load_kit_ledger` read the rows.

Per kit, from the shipment records: *shipped* (in a delivery that left the depot: picked
up or later), then what the patient said on arrival (*received*, i.e. dispensed;
*damaged*; *missing*) or nothing yet (*awaiting confirmation* once delivered, *in transit*
before, *lost* when the courier lost it or sent it back), then *returned* (a reconciled
return said it came back, unused, used or damaged) or *lost in return*, and *destroyed*
(its status).

Per patient, the balances (each side counted from a different source, so that a kit whose
status and records disagree shows):

1. shipped = received + damaged + missing + awaiting confirmation + in transit + lost
   (shipped counted from the deliveries' kit counts, the rest from the kits' rows in them);
2. shipped = returned + still out (still out counted from the kits' statuses: shipped,
   delivered, dispensed, damaged or quarantined, and held for the patient);
3. dispensed = dispensed and returned + still dispensed (status DISPENSED);
4. returned = destroyed + awaiting destruction (statuses DESTROYED and RETURNED).

Discrepancies listed per kit: delivered but not confirmed after `overdue` (7 days by
default); reported missing on delivery; missing from a return; returned but never shipped
to the patient; damaged and neither returned nor destroyed; and any balance that fails.
A kit confirmed dispensed and returned unused is normal (the patient did not need it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import policy
from dct_platform.models import Patient, User
from logistics.shipments.models import KitCondition, Shipment, ShipmentKind, ShipmentKit
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Kit, KitStatus

OVERDUE = timedelta(days=7)
NOT_SHIPPED = frozenset(
    {
        ShipmentStatus.REQUESTED,
        ShipmentStatus.CANCELLED,
        ShipmentStatus.CREATED,
        ShipmentStatus.BOOKED,
    }
)
LOST = frozenset({ShipmentStatus.LOST, ShipmentStatus.RETURNED_TO_SENDER})
STILL_OUT = frozenset(
    {
        KitStatus.SHIPPED,
        KitStatus.DELIVERED,
        KitStatus.DISPENSED,
        KitStatus.DAMAGED,
        KitStatus.QUARANTINED,
    }
)
RETURNED_AS = frozenset({KitCondition.RECEIVED, KitCondition.USED, KitCondition.DAMAGED})


@dataclass(frozen=True)
class KitRow:
    id: int
    kit_number: str
    status: KitStatus
    patient_id: int | None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ShipmentRow:
    id: int
    kind: ShipmentKind
    status: ShipmentStatus
    patient_id: int
    kit_count: int
    requested_at: datetime
    delivered_at: datetime | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class MovementRow:
    """A kit in a shipment, and what was said of it on arrival."""

    shipment_id: int
    kit_id: int
    condition: KitCondition | None


class Problem(enum.StrEnum):
    UNCONFIRMED = "unconfirmed"
    MISSING_ON_DELIVERY = "missing_on_delivery"
    MISSING_FROM_RETURN = "missing_from_return"
    RETURNED_NOT_SHIPPED = "returned_not_shipped"
    DAMAGED_NOT_SETTLED = "damaged_not_settled"
    UNBALANCED = "unbalanced"


@dataclass(frozen=True)
class Discrepancy:
    problem: Problem
    text: str
    kit_number: str | None = None
    shipment_id: int | None = None


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    text: str
    shipment_id: int | None = None


@dataclass
class KitLedger:
    kit_id: int
    kit_number: str
    status: KitStatus
    shipped: bool = False
    received: bool = False  # intact: dispensed
    damaged: bool = False
    missing: bool = False
    awaiting_confirmation: bool = False
    in_transit: bool = False
    lost: bool = False
    returned: bool = False
    lost_in_return: bool = False
    destroyed: bool = False
    history: list[HistoryLine] = field(default_factory=list)

    @property
    def dispensed(self) -> bool:
        return self.received


@dataclass
class Balance:
    name: str
    left: int
    right: int

    @property
    def holds(self) -> bool:
        return self.left == self.right


@dataclass
class PatientAccount:
    patient_id: int
    counts: dict[str, int]
    balances: list[Balance]
    discrepancies: list[Discrepancy]
    kits: list[KitLedger]

    @property
    def balanced(self) -> bool:
        return all(b.holds for b in self.balances)


def kit_ledger(
    kit: KitRow, shipments: dict[int, ShipmentRow], movements: Iterable[MovementRow]
) -> KitLedger:
    """One kit's journey, from the shipments it travelled in (oldest first)."""
    ledger = KitLedger(kit.id, kit.kit_number, kit.status)
    mine = sorted(
        (m for m in movements if m.kit_id == kit.id and m.shipment_id in shipments),
        key=lambda m: (shipments[m.shipment_id].requested_at, m.shipment_id),
    )
    for m in mine:
        s = shipments[m.shipment_id]
        if s.kind is ShipmentKind.DELIVERY:
            if s.status in NOT_SHIPPED:
                continue
            ledger.shipped = True
            ledger.history.append(HistoryLine(s.requested_at, "Shipped to the patient", s.id))
            if m.condition is KitCondition.RECEIVED:
                ledger.received = True
            elif m.condition is KitCondition.DAMAGED:
                ledger.damaged = True
            elif m.condition is KitCondition.MISSING:
                ledger.missing = True
            elif s.status is ShipmentStatus.DELIVERED:
                ledger.awaiting_confirmation = True
            elif s.status in LOST:
                ledger.lost = True
            else:
                ledger.in_transit = True
            if s.delivered_at:
                ledger.history.append(HistoryLine(s.delivered_at, "Delivered", s.id))
            if s.received_at and m.condition:
                said = {
                    KitCondition.RECEIVED: "Confirmed received by the patient (dispensed)",
                    KitCondition.DAMAGED: "Reported damaged by the patient",
                    KitCondition.MISSING: "Reported missing by the patient",
                }.get(m.condition, str(m.condition))
                ledger.history.append(HistoryLine(s.received_at, said, s.id))
        else:
            ledger.history.append(HistoryLine(s.requested_at, "Return requested", s.id))
            if s.received_at is None or m.condition is None:
                continue
            if m.condition in RETURNED_AS:
                ledger.returned = True
                ledger.history.append(
                    HistoryLine(s.received_at, f"Back at the depot ({m.condition})", s.id)
                )
            else:
                ledger.lost_in_return = True
                ledger.history.append(HistoryLine(s.received_at, "Missing from the return", s.id))
    if kit.status is KitStatus.DESTROYED:
        ledger.destroyed = True
        if kit.updated_at:
            ledger.history.append(HistoryLine(kit.updated_at, "Destroyed"))
    ledger.history.sort(key=lambda h: h.at)
    return ledger


def patient_account(
    patient_id: int,
    kits: Sequence[KitRow],
    shipments: Sequence[ShipmentRow],
    movements: Sequence[MovementRow],
    now: datetime,
    overdue: timedelta = OVERDUE,
) -> PatientAccount:
    """The patient's kits added up. `kits`: every kit that is held for the patient or was
    ever in one of their shipments; `shipments`: the patient's."""
    by_id = {s.id: s for s in shipments if s.patient_id == patient_id}
    ledgers = [kit_ledger(k, by_id, movements) for k in sorted(kits, key=lambda k: k.kit_number)]
    status = {k.id: k for k in kits}

    def count(attr: str) -> int:
        return sum(1 for ledger in ledgers if getattr(ledger, attr))

    counts = {
        name: count(name)
        for name in (
            "shipped", "received", "damaged", "missing", "awaiting_confirmation", "in_transit",
            "lost", "returned", "lost_in_return", "destroyed",
        )
    }  # fmt: skip
    counts["dispensed"] = counts["received"]
    shipped_by_order = sum(
        s.kit_count
        for s in by_id.values()
        if s.kind is ShipmentKind.DELIVERY and s.status not in NOT_SHIPPED
    )
    still_out = sum(1 for k in kits if k.status in STILL_OUT and k.patient_id == patient_id)
    counts["still_out"] = still_out
    dispensed_returned = sum(1 for ledger in ledgers if ledger.received and ledger.returned)
    still_dispensed = sum(1 for k in kits if k.status is KitStatus.DISPENSED)
    returned_ids = {ledger.kit_id for ledger in ledgers if ledger.returned}
    destroyed = sum(1 for i in returned_ids if status[i].status is KitStatus.DESTROYED)
    awaiting_destruction = sum(1 for i in returned_ids if status[i].status is KitStatus.RETURNED)
    counts["awaiting_destruction"] = awaiting_destruction
    balances = [
        Balance(
            "shipped = received + damaged + missing + awaiting confirmation + in transit + lost",
            shipped_by_order,
            sum(
                counts[n]
                for n in (
                    "received",
                    "damaged",
                    "missing",
                    "awaiting_confirmation",
                    "in_transit",
                    "lost",
                )
            ),
        ),
        Balance(
            "shipped = returned + still out", counts["shipped"], counts["returned"] + still_out
        ),
        Balance(
            "dispensed = dispensed and returned + still dispensed",
            counts["dispensed"],
            dispensed_returned + still_dispensed,
        ),
        Balance(
            "returned = destroyed + awaiting destruction",
            counts["returned"],
            destroyed + awaiting_destruction,
        ),
    ]
    problems: list[Discrepancy] = []
    for ledger in ledgers:
        for m in movements:
            s = by_id.get(m.shipment_id)
            if m.kit_id != ledger.kit_id or s is None or s.kind is not ShipmentKind.DELIVERY:
                continue
            if (
                s.status is ShipmentStatus.DELIVERED
                and m.condition is None
                and s.delivered_at is not None
                and now - s.delivered_at > overdue
            ):
                problems.append(
                    Discrepancy(
                        Problem.UNCONFIRMED,
                        f"Delivered {s.delivered_at:%Y-%m-%d}, receipt not confirmed after "
                        f"{overdue.days} days",
                        ledger.kit_number,
                        s.id,
                    )
                )
            if m.condition is KitCondition.MISSING and not ledger.returned:
                problems.append(
                    Discrepancy(
                        Problem.MISSING_ON_DELIVERY,
                        "Delivered but reported missing by the patient",
                        ledger.kit_number,
                        s.id,
                    )
                )
        if ledger.lost_in_return and not ledger.returned:
            problems.append(
                Discrepancy(
                    Problem.MISSING_FROM_RETURN, "Missing from the return", ledger.kit_number
                )
            )
        if ledger.returned and not ledger.shipped:
            problems.append(
                Discrepancy(
                    Problem.RETURNED_NOT_SHIPPED,
                    "Returned but never shipped to this patient",
                    ledger.kit_number,
                )
            )
        if ledger.damaged and not (ledger.returned or ledger.destroyed):
            problems.append(
                Discrepancy(
                    Problem.DAMAGED_NOT_SETTLED,
                    "Damaged and neither returned nor destroyed",
                    ledger.kit_number,
                )
            )
    for b in balances:
        if not b.holds:
            problems.append(Discrepancy(Problem.UNBALANCED, f"{b.name}: {b.left} ≠ {b.right}"))
    return PatientAccount(patient_id, counts, balances, problems, ledgers)


# --- reading the rows ---------------------------------------------------------------------


def _rows(
    session: Session, shipments: Sequence[Shipment], extra_kit_ids: Iterable[int]
) -> tuple[list[KitRow], list[ShipmentRow], list[MovementRow]]:
    shipment_rows = [
        ShipmentRow(
            s.id,
            s.kind,
            s.status,
            s.patient_id,
            s.kit_count,
            s.requested_at,
            s.delivered_at,
            s.received_at,
        )
        for s in shipments
    ]
    moves = session.scalars(
        select(ShipmentKit).where(ShipmentKit.shipment_id.in_([s.id for s in shipments]))
    ).all()
    movements = [MovementRow(m.shipment_id, m.kit_id, m.condition) for m in moves]
    kit_ids = {m.kit_id for m in movements} | set(extra_kit_ids)
    kits = [
        KitRow(k.id, k.kit_number, k.status, k.patient_id, k.updated_at)
        for k in session.scalars(select(Kit).where(Kit.id.in_(kit_ids)))
    ]
    return kits, shipment_rows, movements


def load_patient_account(
    session: Session, actor: User, now: datetime, patient: Patient, overdue: timedelta = OVERDUE
) -> PatientAccount:
    """The account of a patient the actor may see (else `NotFound`)."""
    policy.get_visible(session, actor, Patient, patient.id, now)
    shipments = session.scalars(
        select(Shipment).where(
            Shipment.patient_id == patient.id, policy.visible(actor, Shipment, session=session)
        )
    ).all()
    held = session.scalars(select(Kit.id).where(Kit.patient_id == patient.id)).all()
    kits, rows, movements = _rows(session, shipments, held)
    return patient_account(patient.id, kits, rows, movements, now, overdue)


def load_kit_ledger(session: Session, actor: User, now: datetime, kit: Kit) -> KitLedger:
    """One kit's journey, for those who may see the kit (else `NotFound`)."""
    policy.get_visible(session, actor, Kit, kit.id, now)
    shipments = session.scalars(
        select(Shipment)
        .join(ShipmentKit, ShipmentKit.shipment_id == Shipment.id)
        .where(ShipmentKit.kit_id == kit.id)
    ).all()
    kits, rows, movements = _rows(session, shipments, [kit.id])
    row = next(k for k in kits if k.id == kit.id)
    return kit_ledger(row, {s.id: s for s in rows}, movements)
