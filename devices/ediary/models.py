"""eDiary tables: instruments and their immutable versions, schedules, the occurrences a
schedule gives each patient, the entries patients submit, and staff corrections.

Definitions and entries are regulated records (Audited); occurrences are the schedule's
arithmetic kept in the database so that "missed", reminders and compliance have one row
to point at, and their outcome is set once by the service that decides it.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models import Patient
from dct_platform.models.mixins import Audited, Timestamped, names_by_id
from dct_platform.models.trials import enum_column
from dct_platform.timeutil import UTCDateTime


class ScheduleKind(enum.StrEnum):
    DAILY = "daily"
    EVERY_N_DAYS = "every_n_days"
    PROTOCOL_DAYS = "protocol_days"
    ONCE = "once"


class Outcome(enum.StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    MISSED = "missed"


class Instrument(Audited, Timestamped, Base):
    """A questionnaire, by its stable code; its content is in its versions."""

    __tablename__ = "ediary_instruments"
    __audit_noun__ = "Questionnaire"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.code).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200))


class InstrumentVersion(Audited, Base):
    """One version of a questionnaire's content (devices/ediary/instruments.py format).
    Immutable once published: entries point at the exact version the patient answered."""

    __tablename__ = "ediary_instrument_versions"
    __table_args__ = (UniqueConstraint("instrument_id", "version"),)
    __audit_noun__ = "Questionnaire version"
    __audit_hidden__ = frozenset({"id", "definition"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Instrument.code + " v" + cls.version.cast(String))
            .join(Instrument, Instrument.id == cls.instrument_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("ediary_instruments.id"), index=True)
    version: Mapped[int] = mapped_column(Integer())
    definition: Mapped[dict[str, Any]] = mapped_column(JSON())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    instrument: Mapped[Instrument] = relationship()


class Schedule(Audited, Timestamped, Base):
    """When a questionnaire is due: for every patient of a trial, or for one patient."""

    __tablename__ = "ediary_schedules"
    __table_args__ = (
        CheckConstraint("every_n IS NULL OR every_n >= 1", name="every_n_positive"),
        CheckConstraint("late_allowed_minutes >= 0", name="late_not_negative"),
    )
    __audit_noun__ = "Diary schedule"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Instrument.code + " " + cls.kind)
            .join(InstrumentVersion, InstrumentVersion.id == cls.instrument_version_id)
            .join(Instrument, Instrument.id == InstrumentVersion.instrument_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    # Set for a schedule of one patient; None: every patient of the trial.
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    # Set for a schedule of one treatment arm (Patient.arm) of the trial.
    arm: Mapped[str | None] = mapped_column(String(40))
    instrument_version_id: Mapped[int] = mapped_column(ForeignKey("ediary_instrument_versions.id"))
    kind: Mapped[ScheduleKind] = mapped_column(enum_column(ScheduleKind, "ediary_schedule_kind"))
    # Local clock times "HH:MM" in the patient's zone (dct_platform.localtime rules).
    window_start: Mapped[str] = mapped_column(String(5))
    window_end: Mapped[str] = mapped_column(String(5))
    first_date: Mapped[date | None] = mapped_column(Date())
    last_date: Mapped[date | None] = mapped_column(Date())
    every_n: Mapped[int | None] = mapped_column()
    # Study days relative to the patient's baseline (day 1 = baseline), for protocol_days.
    study_days: Mapped[list[int] | None] = mapped_column(JSON())
    window_days: Mapped[int] = mapped_column(default=0)
    late_allowed_minutes: Mapped[int] = mapped_column(default=0)
    remind_before_close_minutes: Mapped[int | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean(), default=True)

    instrument_version: Mapped[InstrumentVersion] = relationship()


class Occurrence(Base):
    """One due questionnaire of one patient: its window in UTC, computed in the zone the
    patient lived by when it opened. Unique per schedule, patient and key (the local date,
    or the study day), so recomputing after a move neither loses nor doubles one."""

    __tablename__ = "ediary_occurrences"
    __table_args__ = (
        UniqueConstraint("schedule_id", "patient_id", "key"),
        Index("ix_ediary_occurrences_patient_opens", "patient_id", "opens_at"),
        Index("ix_ediary_occurrences_site_opens", "site_id", "opens_at"),
        Index("ix_ediary_occurrences_remind", "remind_at"),
        Index("ix_ediary_occurrences_opens", "opens_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("ediary_schedules.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    # The site responsible when the window opens: compliance per site stays right after a
    # transfer.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    key: Mapped[str] = mapped_column(String(20))
    local_date: Mapped[date] = mapped_column(Date())
    zone: Mapped[str] = mapped_column(String(64))
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    late_until: Mapped[datetime] = mapped_column(UTCDateTime())
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[Outcome | None] = mapped_column(enum_column(Outcome, "ediary_outcome"))

    schedule: Mapped[Schedule] = relationship()
    patient: Mapped[Patient] = relationship()


class Entry(Audited, Base):
    """A submitted questionnaire: exactly one per occurrence (the database's key, so a
    double submit stores once). Patients cannot change it; staff correct it through a
    ChangeRequest, which the audit trail records with the old and new value."""

    __tablename__ = "ediary_entries"
    __table_args__ = (UniqueConstraint("patient_id", "client_id"),)
    __audit_noun__ = "Diary entry of"
    __audit_hidden__ = frozenset({"id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Patient.subject_number)
            .join(Patient, Patient.id == cls.patient_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("ediary_occurrences.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    instrument_version_id: Mapped[int] = mapped_column(ForeignKey("ediary_instrument_versions.id"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON())
    score: Mapped[float | None] = mapped_column(Float())
    # Server time (UTC) decides on time or late; the device's clock is kept as reported.
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    device_time: Mapped[str | None] = mapped_column(String(40))
    late: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(10))
    # The client's id for this submission (a form's hidden field, an API Idempotency-Key).
    client_id: Mapped[str] = mapped_column(String(64))

    occurrence: Mapped[Occurrence] = relationship()


class ChangeRequest(Audited, Base):
    """A correction of one answer, raised by site staff with a reason."""

    __tablename__ = "ediary_change_requests"
    __audit_noun__ = "Diary correction of"
    __audit_hidden__ = frozenset({"id"})

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ediary_entries.id"), index=True)
    link_id: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[Any] = mapped_column(JSON(), nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON(), nullable=True)
    reason: Mapped[str] = mapped_column(String(500))
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
