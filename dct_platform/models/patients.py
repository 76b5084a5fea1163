from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models.mixins import (
    Audited,
    Timestamped,
    Versioned,
    names_by_id,
    period_constraints,
)
from dct_platform.models.trials import Site, Trial, enum_column
from dct_platform.timeutil import UTCDateTime


class PatientStatus(enum.StrEnum):
    SCREENING = "screening"
    ENROLLED = "enrolled"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    SCREEN_FAILED = "screen_failed"


class Patient(Audited, Versioned, Timestamped, Base):
    """The pseudonymous subject record. Names and addresses live in PatientIdentity."""

    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("trial_id", "subject_number"),)
    __audit_noun__ = "Patient"
    # Blinding: the trail shows that the arm was set, by whom and when, never which (as for
    # kits).
    __audit_redact__ = frozenset({"arm"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.subject_number).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    subject_number: Mapped[str] = mapped_column(String(32))
    # The current owning site; its history is in PatientSiteAssignment.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    enrolling_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    status: Mapped[PatientStatus] = mapped_column(enum_column(PatientStatus, "patient_status"))
    timezone: Mapped[str] = mapped_column(String(64), info={"label": "Time zone"})
    preferred_language: Mapped[str] = mapped_column(
        String(16), default="en", info={"label": "Language"}
    )
    baseline_date: Mapped[date | None] = mapped_column(Date())
    # The treatment arm the patient was randomised to, as the trial names it (e.g. "A");
    # schedules of a feature (diaries) may apply to one arm only.
    arm: Mapped[str | None] = mapped_column(String(40), info={"label": "Arm"})
    # Informed consent as signed before any study procedure: recorded at enrolment.
    consent_date: Mapped[date | None] = mapped_column(Date())
    consent_version: Mapped[str | None] = mapped_column(
        String(40), info={"label": "Consent form version"}
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), unique=True, info={"label": "Portal account"}
    )

    trial: Mapped[Trial] = relationship()
    site: Mapped[Site] = relationship(foreign_keys=[site_id])
    enrolling_site: Mapped[Site] = relationship(foreign_keys=[enrolling_site_id])
    # lazy="raise": personal data is only ever loaded on purpose, through the policy layer.
    identity: Mapped[PatientIdentity | None] = relationship(
        back_populates="patient", lazy="raise", uselist=False
    )

    def __repr__(self) -> str:
        return f"<Patient {self.id} {self.subject_number}>"


class PatientIdentity(Audited, Versioned, Timestamped, Base):
    """Directly identifying personal data, kept apart from the subject record."""

    __tablename__ = "patient_identities"
    __personal_data__ = True
    __audit_noun__ = "Personal data of"
    __audit_hidden__ = frozenset({"patient_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return Patient.audit_names(session, ids)

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    date_of_birth: Mapped[date | None] = mapped_column(Date())
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    address_line1: Mapped[str | None] = mapped_column(String(200), info={"label": "Address"})
    address_line2: Mapped[str | None] = mapped_column(
        String(200), info={"label": "Address (second line)"}
    )
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))

    patient: Mapped[Patient] = relationship(back_populates="identity", lazy="raise")

    def __repr__(self) -> str:
        return f"<PatientIdentity patient={self.patient_id}>"


class PatientSiteAssignment(Audited, Base):
    """Which site owned the patient over which period (half-open: [valid_from, valid_to)).

    Periods of one patient never overlap: one open period per patient (a unique partial
    index), periods that end after they start, and on PostgreSQL an exclusion constraint
    over the time ranges (migration 0004), so no race can leave two owners at once.
    """

    __tablename__ = "patient_site_assignments"
    __table_args__ = period_constraints("patient_site_assignments", "patient_id")
    __audit_noun__ = "Site assignment of"
    __audit_hidden__ = frozenset({"id", "patient_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Patient.subject_number)
            .join(Patient, Patient.id == cls.patient_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(500))

    site: Mapped[Site] = relationship()

    def __repr__(self) -> str:
        return f"<PatientSiteAssignment patient={self.patient_id} site={self.site_id}>"


class PatientTimezonePeriod(Audited, Base):
    """Which IANA zone the patient lived by over which period (half-open, like the site
    assignments), so that every past occurrence keeps the zone it was scheduled in.

    `Patient.timezone` is the zone of the open period. One open period per patient (a
    unique partial index), periods that end after they start, and on PostgreSQL no two
    periods of a patient overlap (an exclusion constraint, migration 0006).
    """

    __tablename__ = "patient_timezone_periods"
    __table_args__ = period_constraints("patient_timezone_periods", "patient_id")
    __audit_noun__ = "Time zone of"
    __audit_hidden__ = frozenset({"id", "patient_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Patient.subject_number)
            .join(Patient, Patient.id == cls.patient_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    timezone: Mapped[str] = mapped_column(String(64), info={"label": "Time zone"})
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(500))

    def __repr__(self) -> str:
        return f"<PatientTimezonePeriod patient={self.patient_id} {self.timezone}>"


class PatientStatusChange(Audited, Base):
    """A change of the patient's study status, with the day it took effect (which the
    site enters; it may precede the day it was recorded) and why."""

    __tablename__ = "patient_status_changes"
    __audit_noun__ = "Status change of"
    __audit_hidden__ = frozenset({"id", "patient_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Patient.subject_number)
            .join(Patient, Patient.id == cls.patient_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    from_status: Mapped[PatientStatus] = mapped_column(
        enum_column(PatientStatus, "patient_status_from"), info={"label": "From"}
    )
    to_status: Mapped[PatientStatus] = mapped_column(
        enum_column(PatientStatus, "patient_status_to"), info={"label": "To"}
    )
    effective_on: Mapped[date] = mapped_column(Date(), info={"label": "Effective on"})
    reason: Mapped[str] = mapped_column(String(500))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), info={"label": "Recorded at"})

    def __repr__(self) -> str:
        return f"<PatientStatusChange {self.patient_id} {self.from_status}->{self.to_status}>"
