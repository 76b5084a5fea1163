"""The tables of protocol visits and telehealth.

* `VisitDefinition`: one visit of a trial's protocol schedule (day 28, -3/+3 days, which
  modalities, how long, which staff role runs it).
* `PlannedVisit`: that visit for one patient, its window as local dates in the patient's
  zone, or an unscheduled visit the site agreed to.
* `StaffAvailability`, `AvailabilityException`, `SiteHoliday`: when site staff can be
  booked, in the site's zone.
* `Booking`: a televisit holding a staff member's time; the database refuses two bookings
  of the same staff member's time (an exclusion constraint on PostgreSQL, a unique slot
  start on SQLite) and two live bookings of one planned visit (a partial unique key).
* `UnscheduledRequest`: a patient asking for a visit outside the schedule.
* `ProtocolDeviation`: a visit done outside its window, for the site to see.
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
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models import Patient, Site, User
from dct_platform.models.mixins import Audited, Timestamped, names_by_id
from dct_platform.models.trials import enum_column
from dct_platform.timeutil import UTCDateTime


class Modality(enum.StrEnum):
    TELEHEALTH = "telehealth"
    HOME_NURSE = "home_nurse"
    LOCAL_PROVIDER = "local_provider"
    ON_SITE = "on_site"


class PlannedStatus(enum.StrEnum):
    PLANNED = "planned"  # nothing booked yet
    BOOKED = "booked"
    COMPLETED = "completed"
    MISSED = "missed"  # its window is over without a visit
    CANCELLED = "cancelled"  # no longer planned (withdrawn, schedule changed)


class BookingStatus(enum.StrEnum):
    BOOKED = "booked"
    STARTED = "started"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class RoomStatus(enum.StrEnum):
    PENDING = "pending"  # created after commit; still trying
    READY = "ready"
    FAILED = "failed"  # gave up retrying: staff see "room pending" and can retry


class RequestStatus(enum.StrEnum):
    OPEN = "open"
    SCHEDULED = "scheduled"
    CLOSED = "closed"


# Statuses in which a booking holds its staff member's time, and those in which it holds
# its planned visit (a no-show frees the visit for a new booking, not the time it took).
HOLDS_TIME = "status <> 'cancelled'"
HOLDS_VISIT = "status IN ('booked', 'started', 'completed')"


class VisitDefinition(Audited, Timestamped, Base):
    __tablename__ = "visit_definitions"
    __table_args__ = (
        UniqueConstraint("trial_id", "code"),
        CheckConstraint("window_before_days >= 0 AND window_after_days >= 0", name="window"),
        CheckConstraint("duration_minutes BETWEEN 5 AND 480", name="duration"),
    )
    __audit_noun__ = "Protocol visit"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.code).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))
    # Day 1 is the baseline date, as for diary study days.
    target_day: Mapped[int] = mapped_column(Integer())
    window_before_days: Mapped[int] = mapped_column(Integer(), default=0)
    window_after_days: Mapped[int] = mapped_column(Integer(), default=0)
    modalities: Mapped[list[str]] = mapped_column(JSON())
    duration_minutes: Mapped[int] = mapped_column(Integer())
    staff_role: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean(), default=True)


class PlannedVisit(Audited, Timestamped, Base):
    __tablename__ = "planned_visits"
    __table_args__ = (
        # One planned visit per protocol visit and patient; unscheduled ones have none.
        Index(
            "uq_planned_visits_patient_definition",
            "patient_id",
            "definition_id",
            unique=True,
            postgresql_where=text("definition_id IS NOT NULL"),
            sqlite_where=text("definition_id IS NOT NULL"),
        ),
        Index("ix_planned_visits_site_window", "site_id", "window_first"),
    )
    __audit_noun__ = "Planned visit of"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Patient.subject_number + " " + cls.name)
            .join(Patient, Patient.id == cls.patient_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    definition_id: Mapped[int | None] = mapped_column(ForeignKey("visit_definitions.id"))
    # The site responsible now; the activity record keeps the one at the time of the visit.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(120))
    target_date: Mapped[date] = mapped_column(Date())
    # Local dates in the patient's zone, both included.
    window_first: Mapped[date] = mapped_column(Date())
    window_last: Mapped[date] = mapped_column(Date())
    duration_minutes: Mapped[int] = mapped_column(Integer())
    modalities: Mapped[list[str]] = mapped_column(JSON())
    staff_role: Mapped[str] = mapped_column(String(40))
    status: Mapped[PlannedStatus] = mapped_column(
        enum_column(PlannedStatus, "planned_visit_status"), default=PlannedStatus.PLANNED
    )
    modality: Mapped[Modality | None] = mapped_column(enum_column(Modality, "visit_modality"))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    out_of_window: Mapped[bool] = mapped_column(Boolean(), default=False)
    # A visit with the patient's local healthcare provider: who and where, and the results
    # the site enters from the provider's report.
    provider_name: Mapped[str | None] = mapped_column(String(200))
    provider_address: Mapped[str | None] = mapped_column(String(500))
    provider_results: Mapped[str | None] = mapped_column(Text())
    unscheduled_reason: Mapped[str | None] = mapped_column(String(500))

    patient: Mapped[Patient] = relationship()
    definition: Mapped[VisitDefinition | None] = relationship()
    site: Mapped[Site] = relationship()


class StaffAvailability(Audited, Timestamped, Base):
    """Recurring weekly hours of a staff member at a site, in the site's zone."""

    __tablename__ = "staff_availability"
    __table_args__ = (CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),)
    __audit_noun__ = "Weekly hours of"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer())  # 0 Monday .. 6 Sunday
    start_time: Mapped[str] = mapped_column(String(5))  # "HH:MM", local
    end_time: Mapped[str] = mapped_column(String(5))

    user: Mapped[User] = relationship()


class AvailabilityException(Audited, Timestamped, Base):
    """One local date (site zone) off, partly off, or with extra hours."""

    __tablename__ = "availability_exceptions"
    __audit_noun__ = "Availability exception of"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    day: Mapped[date] = mapped_column(Date())
    available: Mapped[bool] = mapped_column(Boolean())
    start_time: Mapped[str | None] = mapped_column(String(5))
    end_time: Mapped[str | None] = mapped_column(String(5))
    note: Mapped[str | None] = mapped_column(String(200))


class SiteHoliday(Audited, Timestamped, Base):
    __tablename__ = "site_holidays"
    __table_args__ = (UniqueConstraint("site_id", "day"),)
    __audit_noun__ = "Holiday of"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    day: Mapped[date] = mapped_column(Date())
    name: Mapped[str] = mapped_column(String(120))


class Booking(Audited, Timestamped, Base):
    """A televisit: a staff member's time held for one planned visit of one patient."""

    __tablename__ = "televisit_bookings"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        # The portable half of "never two bookings of one person's time": PostgreSQL adds an
        # exclusion constraint on overlapping ranges (migration 0014); SQLite has this, and
        # the booking service checks overlaps inside BEGIN IMMEDIATE.
        Index(
            "uq_televisit_bookings_staff_start",
            "staff_id",
            "starts_at",
            unique=True,
            postgresql_where=text(HOLDS_TIME),
            sqlite_where=text(HOLDS_TIME),
        ),
        Index(
            "uq_televisit_bookings_visit",
            "planned_visit_id",
            unique=True,
            postgresql_where=text(HOLDS_VISIT),
            sqlite_where=text(HOLDS_VISIT),
        ),
        UniqueConstraint("requested_by_id", "idempotency_key"),
        Index("ix_televisit_bookings_site_starts", "site_id", "starts_at"),
        Index("ix_televisit_bookings_starts", "starts_at"),
    )
    __audit_noun__ = "Televisit of"
    __audit_exclude__ = frozenset({"created_at", "updated_at", "room_attempts", "room_error"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Patient.subject_number)
            .join(Patient, Patient.id == cls.patient_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    planned_visit_id: Mapped[int] = mapped_column(ForeignKey("planned_visits.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[BookingStatus] = mapped_column(
        enum_column(BookingStatus, "booking_status"), default=BookingStatus.BOOKED
    )
    # Bumped on every change, so calendar apps replace the invitation they have.
    sequence: Mapped[int] = mapped_column(Integer(), default=0)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(80))
    room_status: Mapped[RoomStatus] = mapped_column(
        enum_column(RoomStatus, "room_status"), default=RoomStatus.PENDING
    )
    room_url: Mapped[str | None] = mapped_column(String(500))
    room_provider: Mapped[str | None] = mapped_column(String(20))
    room_attempts: Mapped[int] = mapped_column(Integer(), default=0)
    room_error: Mapped[str | None] = mapped_column(String(300))
    # The visit record, as regulators ask for it.
    investigator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    run_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    location_type: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notes: Mapped[str | None] = mapped_column(Text())

    planned_visit: Mapped[PlannedVisit] = relationship()
    patient: Mapped[Patient] = relationship()
    staff: Mapped[User] = relationship(foreign_keys=[staff_id])


class UnscheduledRequest(Audited, Timestamped, Base):
    __tablename__ = "unscheduled_visit_requests"
    __table_args__ = (Index("ix_unscheduled_requests_site_status", "site_id", "status"),)
    __audit_noun__ = "Visit request of"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    category: Mapped[str] = mapped_column(String(20))  # "side_effect", "other"
    details: Mapped[str | None] = mapped_column(String(1000))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[RequestStatus] = mapped_column(
        enum_column(RequestStatus, "visit_request_status"), default=RequestStatus.OPEN
    )
    planned_visit_id: Mapped[int | None] = mapped_column(ForeignKey("planned_visits.id"))
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    patient: Mapped[Patient] = relationship()


class ProtocolDeviation(Audited, Base):
    __tablename__ = "protocol_deviations"
    __table_args__ = (UniqueConstraint("planned_visit_id", "kind"),)
    __audit_noun__ = "Protocol deviation of"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    planned_visit_id: Mapped[int] = mapped_column(ForeignKey("planned_visits.id"))
    kind: Mapped[str] = mapped_column(String(40))  # "visit_out_of_window"
    detail: Mapped[str] = mapped_column(String(500))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
