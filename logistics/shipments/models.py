"""The tables of direct-to-patient shipments.

* `Shipment`: kits of one product going from a depot to a patient's home (a delivery),
  or from the patient back to a depot (a return). It records the site and investigator
  responsible for the patient when it was ordered, and the city it goes to: the street
  address is never copied here; the courier gets it in the booking call only.
* `ShipmentKit`: which kits travel in a shipment, and what the patient (or the depot, for
  a return) said of each on arrival.
* `TrackingEvent`: the tracking timeline: every status update, from the courier's
  webhook, from polling, or from the platform, with what was done with it (applied, or
  refused as an impossible move). Nothing is deleted.
* `CourierMessage`: the courier's update ids already seen, under a unique key, so that a
  repeated webhook, or the same update seen by polling, is applied once.
* `ExcursionDisposition`: the supply manager's task after a temperature excursion put the
  shipment's kits in quarantine: release them with a reason, or reject them (which orders
  a replacement).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models import Patient
from dct_platform.models.mixins import Audited, Timestamped, Versioned, names_by_id
from dct_platform.models.trials import enum_column
from dct_platform.timeutil import UTCDateTime
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Depot, Kit, Product


class ShipmentKind(enum.StrEnum):
    DELIVERY = "delivery"  # depot to the patient's home
    RETURN = "return"  # the patient's home back to a depot


class OrderReason(enum.StrEnum):
    SITE_REQUEST = "site_request"
    SCHEDULED = "scheduled"  # the resupply schedule ordered it
    REPLACEMENT = "replacement"  # for kits rejected after an excursion, or damaged
    RETURN = "return"


class KitCondition(enum.StrEnum):
    """What was said of a kit on arrival: by the patient for a delivery, by the depot
    for a return."""

    RECEIVED = "received"  # intact (a return: unused)
    USED = "used"  # a return: opened or partly used
    DAMAGED = "damaged"
    MISSING = "missing"  # not in the parcel


class Decision(enum.StrEnum):
    RELEASE = "release"  # the kits may be used after all
    REJECT = "reject"  # the kits are destroyed; a replacement is ordered


class MessageOutcome(enum.StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"  # an impossible move: logged, never applied
    UNCHANGED = "unchanged"  # the status it reports is the one the shipment is in


class Shipment(Audited, Versioned, Timestamped, Base):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("courier", "tracking_number"),
        CheckConstraint("kit_count > 0", name="kit_count"),
        Index("ix_shipments_board", "trial_id", "status", "requested_at"),
    )
    __audit_noun__ = "Shipment"
    # The investigator's release covers what is shipped, to whom and from where; the status
    # and the courier's bookkeeping move on afterwards without voiding it.
    __signed_fields__ = (
        "id",
        "kind",
        "patient_id",
        "product_id",
        "depot_id",
        "kit_count",
        "next_resupply_date",
        "replaces_id",
    )

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return {i: f"#{i}" for i in ids}

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ShipmentKind] = mapped_column(
        enum_column(ShipmentKind, "shipment_kind"), default=ShipmentKind.DELIVERY
    )
    reason: Mapped[OrderReason] = mapped_column(enum_column(OrderReason, "order_reason"))
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # Responsible for the patient when the shipment was ordered; a later transfer does not
    # move it.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    investigator_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), info={"label": "Investigator"}
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("investigational_products.id"))
    # From where (a delivery) or to where (a return).
    depot_id: Mapped[int] = mapped_column(ForeignKey("depots.id"), index=True)
    kit_count: Mapped[int] = mapped_column(Integer(), info={"label": "Kits"})
    # The kits must last until then (first expiry, first out, never past it).
    next_resupply_date: Mapped[date] = mapped_column(Date(), info={"label": "Next resupply"})
    replaces_id: Mapped[int | None] = mapped_column(
        ForeignKey("shipments.id"), info={"label": "Replaces shipment"}
    )
    status: Mapped[ShipmentStatus] = mapped_column(
        enum_column(ShipmentStatus, "shipment_status"), default=ShipmentStatus.REQUESTED
    )
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), info={"label": "Requested by"}
    )
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), info={"label": "Requested"})
    request_note: Mapped[str | None] = mapped_column(String(500), info={"label": "Note"})
    released_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), info={"label": "Released by"}
    )
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), info={"label": "Released"})
    cancelled_reason: Mapped[str | None] = mapped_column(String(500))
    # What the supply manager may know of the destination: the city, never the street.
    destination_city: Mapped[str | None] = mapped_column(String(100), info={"label": "City"})
    destination_country: Mapped[str | None] = mapped_column(String(2))
    courier: Mapped[str | None] = mapped_column(String(40))
    tracking_number: Mapped[str | None] = mapped_column(
        String(80), info={"label": "Tracking number"}
    )
    booking_failures: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    booking_error: Mapped[str | None] = mapped_column(String(500))
    booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The courier's promise, and when polling last asked it.
    expected_delivery_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), info={"label": "Expected delivery"}
    )
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), info={"label": "Delivered"}
    )
    # The patient's confirmation (a delivery) or the depot's reconciliation (a return).
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), info={"label": "Received"})
    received_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), info={"label": "Received by"}
    )
    problem_report: Mapped[str | None] = mapped_column(
        String(1000), info={"label": "Problem reported"}
    )
    # A temperature excursion was found on the logger travelling with it.
    excursion_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), info={"label": "Temperature excursion"}
    )

    patient: Mapped[Patient] = relationship()
    product: Mapped[Product] = relationship()
    depot: Mapped[Depot] = relationship()
    kits: Mapped[list[ShipmentKit]] = relationship(
        back_populates="shipment", order_by="ShipmentKit.id"
    )


class ShipmentKit(Audited, Base):
    __tablename__ = "shipment_kits"
    __table_args__ = (UniqueConstraint("shipment_id", "kit_id"),)
    __audit_noun__ = "Kit in shipment"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Kit.kit_number).join(Kit, Kit.id == cls.kit_id).where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    kit_id: Mapped[int] = mapped_column(ForeignKey("kits.id"), index=True)
    condition: Mapped[KitCondition | None] = mapped_column(
        enum_column(KitCondition, "kit_condition"), info={"label": "Condition on arrival"}
    )
    condition_note: Mapped[str | None] = mapped_column(String(500))
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    shipment: Mapped[Shipment] = relationship(back_populates="kits")
    kit: Mapped[Kit] = relationship()


class TrackingEvent(Base):
    """One status update of a shipment, as it came. Append-only, like the audit trail it
    complements: a refused update stays here with the reason."""

    __tablename__ = "shipment_tracking_events"
    __table_args__ = (Index("ix_tracking_events_shipment", "shipment_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    status: Mapped[str] = mapped_column(String(32))
    # The courier's time for the scan; the platform's for its own moves.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))  # webhook, poll, platform
    message_id: Mapped[str | None] = mapped_column(String(120))
    location: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[MessageOutcome] = mapped_column(enum_column(MessageOutcome, "message_outcome"))
    detail: Mapped[str | None] = mapped_column(String(500))


class CourierMessage(Base):
    """A courier update already taken in, by the courier's own id for it."""

    __tablename__ = "courier_messages"
    __table_args__ = (UniqueConstraint("courier", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    courier: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(120))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExcursionDisposition(Audited, Versioned, Base):
    __tablename__ = "excursion_dispositions"
    __table_args__ = (
        # One open task per shipment, however many readings show the excursion.
        Index(
            "uq_excursion_dispositions_open",
            "shipment_id",
            unique=True,
            sqlite_where=text("decision IS NULL"),
            postgresql_where=text("decision IS NULL"),
        ),
        CheckConstraint("(decision IS NULL) = (decided_at IS NULL)", name="decided_together"),
    )
    __audit_noun__ = "Excursion disposition of shipment"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.shipment_id).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), info={"label": "Opened"})
    # What was found: the rule broken, the worst reading and the time out of range.
    finding: Mapped[str] = mapped_column(String(500))
    worst_c: Mapped[float] = mapped_column(Float(), info={"label": "Worst reading (°C)"})
    minutes_out_of_range: Mapped[int] = mapped_column(
        Integer(), info={"label": "Minutes out of range"}
    )
    decision: Mapped[Decision | None] = mapped_column(enum_column(Decision, "decision"))
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), info={"label": "Decided by"}
    )
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), info={"label": "Decided"})
    decision_reason: Mapped[str | None] = mapped_column(String(500), info={"label": "Reason"})
    replacement_id: Mapped[int | None] = mapped_column(
        ForeignKey("shipments.id"), info={"label": "Replacement shipment"}
    )

    shipment: Mapped[Shipment] = relationship(foreign_keys=[shipment_id])
