"""The tables of home-nurse dispatch.

* `HomeHealthProvider`, `ProviderContract`, `ProviderCoordinator`: the agencies whose
  nurses visit patients at home, the sites (and regions) each serves under a contract, and
  the coordinators who dispatch a provider's nurses.
* `NurseProfile` with `NurseLicence`, `NurseTraining`, `NurseHours`, `NurseAbsence`: who
  a mobile nurse is for the planner (home base, territory, skills, licences, training on
  protocol versions, languages, weekly hours in her zone, absences).
* `HomeVisitRequirement`: what a protocol visit done at home needs (skills, procedures,
  the hours of the day it may take place in the patient's zone).
* `PatientHomeLocation`: where the patient's home is, for routing (personal data).
* `HomeVisit`: a planned visit done at home by a nurse, from planning to check-out, with
  `HomeVisitProcedure`, `HomeVisitSample` (chain of custody) and `HomeVisitDecline`.
* `PlanRun`: a planning run requested by a dispatcher or the nightly job, and its result.
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
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models import Patient, User
from dct_platform.models.mixins import Audited, Timestamped, Versioned, names_by_id
from dct_platform.models.trials import enum_column
from dct_platform.timeutil import UTCDateTime
from dct_platform.visits.models import PlannedVisit


class HomeVisitStatus(enum.StrEnum):
    OPEN = "open"  # needs a nurse (new, declined, or left unassigned by the planner)
    ASSIGNED = "assigned"  # planned for a nurse, who has not accepted yet
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"  # checked in
    COMPLETED = "completed"  # checked out
    CANCELLED = "cancelled"
    MISSED = "missed"  # its window ended without a visit


# A nurse holds these; the planner may move only the first two.
HELD_BY_NURSE = (HomeVisitStatus.ASSIGNED, HomeVisitStatus.ACCEPTED, HomeVisitStatus.IN_PROGRESS)
PLANNABLE = (HomeVisitStatus.OPEN, HomeVisitStatus.ASSIGNED)


class PlanRunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class HomeHealthProvider(Audited, Timestamped, Base):
    __tablename__ = "home_health_providers"
    __audit_noun__ = "Home-health provider"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.name).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    is_active: Mapped[bool] = mapped_column(Boolean(), default=True)


class ProviderContract(Audited, Timestamped, Base):
    """A provider serves a site, in some regions (empty: wherever the site's patients live),
    from one date to another (both local dates of the site, included)."""

    __tablename__ = "home_health_contracts"
    __table_args__ = (UniqueConstraint("provider_id", "site_id"),)
    __audit_noun__ = "Home-health contract of"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("home_health_providers.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    # Region codes as in a patient's address: "DE", "US-NY" (ISO 3166-1 or -2).
    regions: Mapped[list[str]] = mapped_column(JSON(), default=list)
    reference: Mapped[str | None] = mapped_column(String(100))
    valid_from: Mapped[date] = mapped_column(Date())
    valid_to: Mapped[date | None] = mapped_column(Date())

    provider: Mapped[HomeHealthProvider] = relationship()


class ProviderCoordinator(Audited, Base):
    """A provider's coordinator account: dispatches that provider's nurses only."""

    __tablename__ = "home_health_coordinators"
    __audit_noun__ = "Coordinator of"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("home_health_providers.id"), index=True)


class NurseProfile(Audited, Timestamped, Base):
    __tablename__ = "nurse_profiles"
    __table_args__ = (
        CheckConstraint(
            "latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180", name="home_base"
        ),
        CheckConstraint("radius_km IS NULL OR radius_km > 0", name="radius"),
    )
    __audit_noun__ = "Nurse profile of"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(User.id, User.display_name).where(User.id.in_(ids)))

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("home_health_providers.id"), index=True)
    # Home base: where her day starts and ends.
    latitude: Mapped[float] = mapped_column(Float())
    longitude: Mapped[float] = mapped_column(Float())
    # Territory: postal-code prefixes ("10", "104") or a radius around the home base.
    postal_prefixes: Mapped[list[str]] = mapped_column(JSON(), default=list)
    radius_km: Mapped[float | None] = mapped_column(Float())
    skills: Mapped[list[str]] = mapped_column(JSON(), default=list)
    languages: Mapped[list[str]] = mapped_column(JSON(), default=list)
    is_active: Mapped[bool] = mapped_column(Boolean(), default=True)

    user: Mapped[User] = relationship()
    provider: Mapped[HomeHealthProvider] = relationship()


class NurseLicence(Audited, Timestamped, Base):
    __tablename__ = "nurse_licences"
    __audit_noun__ = "Licence of"

    id: Mapped[int] = mapped_column(primary_key=True)
    nurse_id: Mapped[int] = mapped_column(ForeignKey("nurse_profiles.user_id"), index=True)
    # A country ("DE") licenses the whole country; "US-NY" one state.
    region: Mapped[str] = mapped_column(String(10))
    number: Mapped[str] = mapped_column(String(60))
    expires_on: Mapped[date] = mapped_column(Date())


class NurseTraining(Audited, Base):
    """Trained on a protocol version of a trial (needed to run its visits)."""

    __tablename__ = "nurse_trainings"
    __table_args__ = (UniqueConstraint("nurse_id", "trial_id", "protocol_version"),)
    __audit_noun__ = "Protocol training of"

    id: Mapped[int] = mapped_column(primary_key=True)
    nurse_id: Mapped[int] = mapped_column(ForeignKey("nurse_profiles.user_id"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"))
    protocol_version: Mapped[str] = mapped_column(String(20))
    completed_on: Mapped[date] = mapped_column(Date())


class NurseHours(Audited, Base):
    """Weekly working hours in the nurse's zone."""

    __tablename__ = "nurse_hours"
    __table_args__ = (CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),)
    __audit_noun__ = "Working hours of"

    id: Mapped[int] = mapped_column(primary_key=True)
    nurse_id: Mapped[int] = mapped_column(ForeignKey("nurse_profiles.user_id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer())  # 0 Monday .. 6 Sunday
    start_time: Mapped[str] = mapped_column(String(5))  # "HH:MM", local
    end_time: Mapped[str] = mapped_column(String(5))


class NurseAbsence(Audited, Timestamped, Base):
    """Days off in the nurse's zone, both included (leave, sickness)."""

    __tablename__ = "nurse_absences"
    __table_args__ = (CheckConstraint("last_day >= first_day", name="days"),)
    __audit_noun__ = "Absence of"

    id: Mapped[int] = mapped_column(primary_key=True)
    nurse_id: Mapped[int] = mapped_column(ForeignKey("nurse_profiles.user_id"), index=True)
    first_day: Mapped[date] = mapped_column(Date())
    last_day: Mapped[date] = mapped_column(Date())
    reason: Mapped[str | None] = mapped_column(String(200))


class HomeVisitRequirement(Audited, Timestamped, Base):
    """What a protocol visit needs when a nurse does it at home."""

    __tablename__ = "home_visit_requirements"
    __audit_noun__ = "Home-visit requirements of"

    definition_id: Mapped[int] = mapped_column(ForeignKey("visit_definitions.id"), primary_key=True)
    skills: Mapped[list[str]] = mapped_column(JSON(), default=list)
    # The checklist: [{"code": "blood_draw", "label": "Blood draw (2 tubes)"}, ...]
    procedures: Mapped[list[dict[str, str]]] = mapped_column(JSON(), default=list)
    # The hours of the day a home visit may take, in the patient's zone.
    day_start: Mapped[str] = mapped_column(String(5), default="08:00")
    day_end: Mapped[str] = mapped_column(String(5), default="18:00")
    # A second nurse's part of the visit, if the protocol needs one: {"kind":
    # "simultaneous" (two nurses at once) or "sequential" (the second starts min_gap to
    # max_gap minutes after the first), "skills", "procedures", "duration", "min_gap",
    # "max_gap"}.
    companion: Mapped[dict[str, Any] | None] = mapped_column(JSON())


class PatientHomeLocation(Audited, Timestamped, Base):
    """The point the planner routes to: personal data, like the address it stands for."""

    __tablename__ = "patient_home_locations"
    __table_args__ = (
        CheckConstraint(
            "latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180", name="on_earth"
        ),
    )
    __personal_data__ = True
    __audit_noun__ = "Home location of"
    __audit_hidden__ = frozenset({"patient_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return Patient.audit_names(session, ids)

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    latitude: Mapped[float] = mapped_column(Float())
    longitude: Mapped[float] = mapped_column(Float())
    access_notes: Mapped[str | None] = mapped_column(String(500))


class HomeVisit(Audited, Versioned, Timestamped, Base):
    __tablename__ = "home_visits"
    __table_args__ = (
        Index("ix_home_visits_status_window", "status", "window_first"),
        Index("ix_home_visits_nurse_start", "nurse_id", "planned_start"),
        UniqueConstraint("planned_visit_id", "part"),
        CheckConstraint("duration_minutes BETWEEN 5 AND 480", name="duration"),
        CheckConstraint("part IN (1, 2)", name="part"),
    )
    __audit_noun__ = "Home visit of"
    __audit_exclude__ = frozenset({"created_at", "updated_at", "version"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Patient.subject_number + " " + PlannedVisit.name)
            .join(Patient, Patient.id == cls.patient_id)
            .join(PlannedVisit, PlannedVisit.id == cls.planned_visit_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    planned_visit_id: Mapped[int] = mapped_column(ForeignKey("planned_visits.id"))
    # 1; 2 for the second nurse's part of a visit that needs two (`partner_id` the first).
    part: Mapped[int] = mapped_column(Integer(), default=1)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("home_visits.id"))
    link_kind: Mapped[str | None] = mapped_column(String(20))  # simultaneous, sequential
    min_gap_minutes: Mapped[int | None] = mapped_column(Integer())
    max_gap_minutes: Mapped[int | None] = mapped_column(Integer())
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[HomeVisitStatus] = mapped_column(
        enum_column(HomeVisitStatus, "home_visit_status"), default=HomeVisitStatus.OPEN
    )
    # The protocol window, local dates of the patient (from the planned visit), and the
    # hours of the day the visit may take there.
    window_first: Mapped[date] = mapped_column(Date())
    window_last: Mapped[date] = mapped_column(Date())
    day_start: Mapped[str] = mapped_column(String(5))
    day_end: Mapped[str] = mapped_column(String(5))
    duration_minutes: Mapped[int] = mapped_column(Integer())
    skills: Mapped[list[str]] = mapped_column(JSON(), default=list)
    procedures: Mapped[list[dict[str, str]]] = mapped_column(JSON(), default=list)
    # Why the planner could not place it, in words for the dispatcher.
    attention: Mapped[str | None] = mapped_column(String(300))
    pinned_nurse_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    nurse_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    planned_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    planned_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    route_position: Mapped[int | None] = mapped_column(Integer())
    travel_minutes: Mapped[int | None] = mapped_column(Integer())
    plan_run_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_plan_runs.id"))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The visit record, as regulators ask for it: site and investigator at the time, the
    # nurse as the data's originator, where and when.
    investigator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_in_lat: Mapped[float | None] = mapped_column(Float())
    checked_in_lon: Mapped[float | None] = mapped_column(Float())
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_out_lat: Mapped[float | None] = mapped_column(Float())
    checked_out_lon: Mapped[float | None] = mapped_column(Float())
    vitals: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    notes: Mapped[str | None] = mapped_column(Text())
    findings_abnormal: Mapped[bool] = mapped_column(Boolean(), default=False)
    cancel_reason: Mapped[str | None] = mapped_column(String(500))

    planned_visit: Mapped[PlannedVisit] = relationship()
    patient: Mapped[Patient] = relationship()
    nurse: Mapped[User | None] = relationship(foreign_keys=[nurse_id])
    done_procedures: Mapped[list[HomeVisitProcedure]] = relationship(
        order_by="HomeVisitProcedure.id", viewonly=True
    )
    samples: Mapped[list[HomeVisitSample]] = relationship(
        order_by="HomeVisitSample.id", viewonly=True
    )


class HomeVisitProcedure(Audited, Base):
    """A procedure of the checklist, ticked by the nurse."""

    __tablename__ = "home_visit_procedures"
    __table_args__ = (UniqueConstraint("home_visit_id", "code"),)
    __audit_noun__ = "Procedure done at home visit"

    id: Mapped[int] = mapped_column(primary_key=True)
    home_visit_id: Mapped[int] = mapped_column(ForeignKey("home_visits.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    done_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(String(500))


class HomeVisitSample(Audited, Timestamped, Base):
    """A sample collected at the visit and its chain of custody to the courier."""

    __tablename__ = "home_visit_samples"
    __table_args__ = (UniqueConstraint("barcode"),)
    __audit_noun__ = "Sample"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.barcode).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    home_visit_id: Mapped[int] = mapped_column(ForeignKey("home_visits.id"), index=True)
    barcode: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(60))  # "serum tube", "urine"
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    collected_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    courier: Mapped[str | None] = mapped_column(String(100))
    courier_reference: Mapped[str | None] = mapped_column(String(100))


class HomeVisitDecline(Audited, Base):
    """A nurse declined an assignment: the visit went back to the dispatcher, and the
    planner does not offer it to her again."""

    __tablename__ = "home_visit_declines"
    __audit_noun__ = "Declined home visit"

    id: Mapped[int] = mapped_column(primary_key=True)
    home_visit_id: Mapped[int] = mapped_column(ForeignKey("home_visits.id"), index=True)
    nurse_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500))
    declined_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PlanRun(Base):
    """A planning run: queued by a dispatcher ("re-plan now") or the nightly job, run by
    the scheduler outside any open transaction, its plan written in one short one.
    Bookkeeping, not regulated data: the visits it changes carry the audit trail."""

    __tablename__ = "dispatch_plan_runs"
    __table_args__ = (Index("ix_dispatch_plan_runs_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("home_health_providers.id"))
    first_day: Mapped[date] = mapped_column(Date())
    days: Mapped[int] = mapped_column(Integer(), default=1)
    status: Mapped[PlanRunStatus] = mapped_column(
        enum_column(PlanRunStatus, "plan_run_status"), default=PlanRunStatus.QUEUED
    )
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    progress: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    error: Mapped[str | None] = mapped_column(String(500))
