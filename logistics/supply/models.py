"""The tables of investigational-product supply.

* `Depot`: where kits are kept, a central depot or a site's pharmacy.
* `Product`: an investigational product of a trial, with its storage condition, the
  temperature range it must stay in (and the hard limits no reading may pass), and
  whether it may be shipped to a patient's home.
* `Kit`: one numbered pack of a product, of one lot and expiry, packed for one treatment
  arm. The arm is blinded: it is never loaded unless asked for (`undefer(Kit.arm)`), and
  the audit trail records that it was set but never its value (see `policy.kit_view`).
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models.mixins import Audited, Timestamped, Versioned, names_by_id
from dct_platform.models.trials import enum_column


class DepotKind(enum.StrEnum):
    CENTRAL = "central"
    SITE_PHARMACY = "site_pharmacy"


class StorageCondition(enum.StrEnum):
    REFRIGERATED = "2-8C"
    ROOM_TEMPERATURE = "15-25C"
    FROZEN = "frozen"


class KitStatus(enum.StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"  # picked for a patient's shipment, still at the depot
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    DISPENSED = "dispensed"  # the patient confirmed receipt
    RETURNED = "returned"
    DESTROYED = "destroyed"
    QUARANTINED = "quarantined"  # after a temperature excursion, until its disposition
    DAMAGED = "damaged"


# A kit in one of these is on its way to, or with, one patient.
HELD_FOR_PATIENT = (
    KitStatus.RESERVED,
    KitStatus.SHIPPED,
    KitStatus.DELIVERED,
    KitStatus.DISPENSED,
)


def _quoted(statuses: tuple[KitStatus, ...]) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


class Depot(Audited, Versioned, Timestamped, Base):
    __tablename__ = "depots"
    __table_args__ = (
        # A site pharmacy is the pharmacy of one site; a central depot belongs to none.
        CheckConstraint(
            "(kind = 'site_pharmacy' AND site_id IS NOT NULL)"
            " OR (kind = 'central' AND site_id IS NULL)",
            name="site_pharmacy_site",
        ),
    )
    __audit_noun__ = "Depot"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.name).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[DepotKind] = mapped_column(enum_column(DepotKind, "depot_kind"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64), info={"label": "Time zone"})
    is_active: Mapped[bool] = mapped_column(Boolean(), default=True, info={"label": "Active"})


class Product(Audited, Versioned, Timestamped, Base):
    """An investigational product. Temperatures in °C: inside [min_c, max_c] is fine; a
    reading outside it for longer than `excursion_minutes` is an excursion, and a reading
    outside [hard_min_c, hard_max_c] is one at once."""

    __tablename__ = "investigational_products"
    __table_args__ = (
        UniqueConstraint("trial_id", "code"),
        # The target of the kits' (product, trial) key: a kit's trial is its product's.
        UniqueConstraint("id", "trial_id"),
        CheckConstraint("min_c < max_c", name="range"),
        CheckConstraint("hard_min_c <= min_c AND max_c <= hard_max_c", name="hard_limits"),
        CheckConstraint("excursion_minutes >= 0", name="excursion_minutes"),
    )
    __audit_noun__ = "Investigational product"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.code).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    storage_condition: Mapped[StorageCondition] = mapped_column(
        enum_column(StorageCondition, "storage_condition"), info={"label": "Storage condition"}
    )
    min_c: Mapped[float] = mapped_column(Float(), info={"label": "Lowest temperature (°C)"})
    max_c: Mapped[float] = mapped_column(Float(), info={"label": "Highest temperature (°C)"})
    excursion_minutes: Mapped[int] = mapped_column(
        Integer(), info={"label": "Allowed time out of range (minutes)"}
    )
    hard_min_c: Mapped[float] = mapped_column(Float(), info={"label": "Hard lower limit (°C)"})
    hard_max_c: Mapped[float] = mapped_column(Float(), info={"label": "Hard upper limit (°C)"})
    home_delivery_ok: Mapped[bool] = mapped_column(
        Boolean(), default=False, info={"label": "Suitable for home delivery"}
    )


class Kit(Audited, Versioned, Timestamped, Base):
    __tablename__ = "kits"
    __table_args__ = (
        UniqueConstraint("trial_id", "kit_number"),
        ForeignKeyConstraint(
            ["product_id", "trial_id"],
            ["investigational_products.id", "investigational_products.trial_id"],
        ),
        # What kit selection asks: this depot's available kits of a product, by expiry.
        Index("ix_kits_pick", "depot_id", "product_id", "status", "expiry_date"),
        CheckConstraint(
            f"status NOT IN ({_quoted(HELD_FOR_PATIENT)}) OR patient_id IS NOT NULL",
            name="held_for_a_patient",
        ),
        CheckConstraint("status <> 'available' OR patient_id IS NULL", name="available_free"),
    )
    __audit_noun__ = "Kit"
    # The trail is read by administrators and, per patient, by site staff: all blinded. It
    # shows that the arm was set, by whom and when, never which arm.
    __audit_redact__ = frozenset({"arm"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.kit_number).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    # Its product's trial (the composite key above): kit numbers are unique per trial.
    trial_id: Mapped[int] = mapped_column()
    kit_number: Mapped[str] = mapped_column(String(40), info={"label": "Kit number"})
    product_id: Mapped[int] = mapped_column()
    lot: Mapped[str] = mapped_column(String(40))
    expiry_date: Mapped[date] = mapped_column(Date(), info={"label": "Expiry date"})
    depot_id: Mapped[int] = mapped_column(ForeignKey("depots.id"))
    status: Mapped[KitStatus] = mapped_column(
        enum_column(KitStatus, "kit_status"), default=KitStatus.AVAILABLE
    )
    # Blinded. Raises if read without `undefer(Kit.arm)`, so that no page or list shows it
    # by accident; `policy.kit_view` reads it for those allowed to see it.
    arm: Mapped[str] = mapped_column(
        String(40), deferred=True, deferred_raiseload=True, info={"label": "Arm"}
    )
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)

    product: Mapped[Product] = relationship()
    depot: Mapped[Depot] = relationship()
