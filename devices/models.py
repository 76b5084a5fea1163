"""The device registry: models of devices, the units in circulation, who holds each unit
when, the credentials a unit sends its data with, and the versions it reported."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models import Patient
from dct_platform.models.mixins import Audited, Timestamped, names_by_id
from dct_platform.models.trials import enum_column
from dct_platform.timeutil import UTCDateTime


class DeviceKind(enum.StrEnum):
    WEARABLE = "wearable"  # worn or used by a patient at home
    LOGGER = "logger"  # a temperature logger travelling with a shipment


class DeviceModel(Audited, Timestamped, Base):
    """A make of device: what it measures and the oldest firmware the study accepts."""

    __tablename__ = "device_models"
    __table_args__ = (UniqueConstraint("manufacturer", "model_name"),)
    __audit_noun__ = "Device model"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, cls.manufacturer + " " + cls.model_name).where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(100), info={"label": "Model"})
    kind: Mapped[DeviceKind] = mapped_column(enum_column(DeviceKind, "device_kind"))
    # Metric codes of devices/metrics.py that the model reports.
    metrics: Mapped[list[str]] = mapped_column(JSON())
    min_firmware: Mapped[str | None] = mapped_column(String(40), info={"label": "Minimum firmware"})


class DeviceUnit(Audited, Timestamped, Base):
    """One physical device, known by its serial number."""

    __tablename__ = "device_units"
    __table_args__ = (UniqueConstraint("model_id", "serial_number"),)
    __audit_noun__ = "Device"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.serial_number).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("device_models.id"), index=True)
    serial_number: Mapped[str] = mapped_column(String(80))
    # Set when the unit leaves the study for good (lost, broken, disposed of).
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Not joined: a row lock on the unit must not lock its model (FOR UPDATE of a join).
    model: Mapped[DeviceModel] = relationship()


def _unit_serials(session: Any, model: Any, ids: list[int]) -> dict[int, str]:
    """A record of a unit (its holder, credential, alert) named by the unit's serial."""
    return names_by_id(
        session,
        select(model.id, DeviceUnit.serial_number)
        .join(DeviceUnit, DeviceUnit.id == model.unit_id)
        .where(model.id.in_(ids)),
    )


class DeviceAssignment(Audited, Base):
    """Who held a unit over which period (half-open, like site assignments): a patient
    wearing it, or a shipment a logger travels with. One holder at a time per unit."""

    __tablename__ = "device_assignments"
    __table_args__ = (
        Index(
            "uq_device_assignments_open",
            "unit_id",
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="period_order"),
        # Exactly one holder: a patient or a shipment.
        CheckConstraint("(patient_id IS NULL) <> (shipment_id IS NULL)", name="one_holder"),
    )
    __audit_noun__ = "Device assignment of"
    __audit_hidden__ = frozenset({"id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return _unit_serials(session, cls, ids)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("device_units.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    # The shipments capability adds its table and this column's foreign key.
    shipment_id: Mapped[int | None] = mapped_column(index=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(500))

    unit: Mapped[DeviceUnit] = relationship()
    patient: Mapped[Patient | None] = relationship()


class DeviceToken(Audited, Base):
    """A unit's credential for the ingestion API. Only its SHA-256 is kept; the token is
    shown once, at provisioning."""

    __tablename__ = "device_tokens"
    __audit_redact__ = frozenset({"token_hash"})
    __audit_noun__ = "Device credential of"
    __audit_hidden__ = frozenset({"id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return _unit_serials(session, cls, ids)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("device_units.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    unit: Mapped[DeviceUnit] = relationship()


class DeviceVersionReport(Base):
    """A firmware and app version a unit reported, and when it was first and last seen:
    the unit's version timeline. Device data, not an edit of a record: not audited."""

    __tablename__ = "device_version_reports"
    __table_args__ = (UniqueConstraint("unit_id", "firmware_version", "app_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("device_units.id"), index=True)
    firmware_version: Mapped[str] = mapped_column(String(40))
    # Empty when the unit has no companion app.
    app_version: Mapped[str] = mapped_column(String(40), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeviceBatch(Base):
    """Provenance of one accepted upload: which unit and credential sent it, when, a
    SHA-256 of the raw body, and what became of its readings. The answer is kept, so a
    batch resent with the same Idempotency-Key gets the same answer."""

    __tablename__ = "device_batches"
    __table_args__ = (
        UniqueConstraint("unit_id", "idempotency_key"),
        Index("ix_device_batches_unit_received", "unit_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("device_units.id"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("device_tokens.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    body_sha256: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    data_format: Mapped[str] = mapped_column(String(16))
    stored: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    # The latest time any of the batch's readings covers: "no data since" is about when the
    # patient wore the unit, not when it last synced.
    newest_reading_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the unit said about itself when sending (optional `status` of the batch).
    battery_percent: Mapped[int | None] = mapped_column()
    signal: Mapped[str | None] = mapped_column(String(8))
    # The unit's clock minus the server's at arrival: positive when the unit runs ahead.
    clock_offset_seconds: Mapped[float | None] = mapped_column(Float())


class DeviceReading(Base):
    """One measurement, stored once: its key is the unit, the reading's own key and its
    effective time (which on PostgreSQL also picks the monthly partition). Linked to the
    patient wearing the unit and the site responsible for that patient at the reading's
    time, not at its arrival. Data, not an edit of a record: not on the per-field trail;
    each batch has its provenance record instead."""

    __tablename__ = "device_readings"
    __table_args__ = (
        Index("ix_device_readings_patient_metric_time", "patient_id", "metric", "effective_start"),
        Index("ix_device_readings_site_time", "site_id", "effective_start"),
        {"postgresql_partition_by": "RANGE (effective_start)", "info": {"partitioned": True}},
    )

    unit_id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    effective_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    effective_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    metric: Mapped[str] = mapped_column(String(40))
    value: Mapped[float] = mapped_column(Float())
    patient_id: Mapped[int] = mapped_column()
    site_id: Mapped[int] = mapped_column()
    device_reading_id: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    batch_id: Mapped[int] = mapped_column()
    # Arrived more than DEVICE_LATE_AFTER_SECONDS after it was measured.
    late: Mapped[bool] = mapped_column(default=False)


class AlertKind(enum.StrEnum):
    SILENT = "silent"
    LOW_BATTERY = "low_battery"
    POOR_SIGNAL = "poor_signal"
    CLOCK_DRIFT = "clock_drift"


class DeviceAlert(Audited, Base):
    """A problem with a patient's device that site staff should act on. Raised and cleared
    by the device-health job; staff acknowledge it. One open alert per unit and kind."""

    __tablename__ = "device_alerts"
    __table_args__ = (
        Index(
            "uq_device_alerts_open",
            "unit_id",
            "kind",
            unique=True,
            sqlite_where=text("cleared_at IS NULL"),
            postgresql_where=text("cleared_at IS NULL"),
        ),
        Index("ix_device_alerts_patient_open", "patient_id", "cleared_at"),
    )
    __audit_noun__ = "Device alert for"
    __audit_hidden__ = frozenset({"id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return _unit_serials(session, cls, ids)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("device_units.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    # The site responsible when the alert was raised; lists follow the patient's site now.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    kind: Mapped[AlertKind] = mapped_column(enum_column(AlertKind, "device_alert_kind"))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[str] = mapped_column(String(500))
    # The time the problem dates from (last data, the report) and its figure (battery
    # percent, clock offset in seconds), so pages can word it in the reader's zone.
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    value: Mapped[float | None] = mapped_column(Float())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(String(1000))
    # Set by the job when the problem is gone (data again, battery charged, unit returned).
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cleared_because: Mapped[str | None] = mapped_column(String(200))

    unit: Mapped[DeviceUnit] = relationship()
    patient: Mapped[Patient] = relationship()
