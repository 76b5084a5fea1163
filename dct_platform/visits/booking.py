"""Booking televisits: free slots for a planned visit, book, reschedule, cancel.

Who: the patient for themselves, or staff of the patient's site on their behalf. Every
change is audited (a reschedule or cancellation with its reason) and bumps the booking's
`sequence`, which the calendar invitation carries.

Never two bookings of one staff member's time, never two live bookings of one planned
visit: the database refuses both (an exclusion constraint on the time range on
PostgreSQL; a unique slot start on SQLite, whose transactions start with BEGIN IMMEDIATE so
the overlap check below runs alone), so requests racing from several app processes cannot
beat it. The loser gets a Conflict (409) that says to choose another time. A request
retried with the same idempotency key returns the booking the first one made.

The video room is not created here: `BOOKING_CHANGED` is emitted with the change and its
receiver (visits/notifications.py) calls the provider after commit, never while this
transaction holds locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform import audit, events
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.localtime import parse_clock_time
from dct_platform.models import Patient, SiteMembership, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.roles import Role
from dct_platform.services import activities
from dct_platform.visits import slots as slot_rules
from dct_platform.visits.models import (
    AvailabilityException,
    Booking,
    BookingStatus,
    Modality,
    PlannedStatus,
    PlannedVisit,
    SiteHoliday,
    StaffAvailability,
)

TELEVISIT = activities.register_type("televisit", "Televisit", "dct_platform")
BOOKING_CHANGED = events.declare(
    "visits.booking-changed", "A televisit was booked, moved or cancelled"
)
MAX_REASON = 500
_DAY = timedelta(days=1)
LIVE = (BookingStatus.BOOKED, BookingStatus.STARTED)


@dataclass(frozen=True)
class Booked:
    booking: Booking
    created: bool


def _may_act_for(actor: User, patient: Patient) -> None:
    if actor.role == Role.PATIENT:
        if patient.user_id != actor.id:
            raise Forbidden("You can only book your own visits.")
        return
    if actor.role in SITE_ROLES and patient.site_id in actor.site_ids:
        return
    raise Forbidden("Only the patient or the staff of the patient's site can book this visit.")


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text or len(text) > MAX_REASON:
        raise ValidationFailed.on_field("reason", f"Say why (up to {MAX_REASON} characters).")
    return text


# --- free slots ---------------------------------------------------------------------------


def staff_for(session: Session, visit: PlannedVisit) -> list[User]:
    """The members of the patient's site who may run the visit (its staff role): the
    site responsible for the patient now, which after a transfer is not the one that was
    responsible when the visit was planned."""
    return list(
        session.scalars(
            select(User)
            .join(SiteMembership, SiteMembership.user_id == User.id)
            .where(
                SiteMembership.site_id == visit.patient.site_id,
                User.role == visit.staff_role,
                User.is_enabled,
            )
            .order_by(User.id)
        )
    )


def _calendars(
    session: Session,
    site_zone: str,
    site_id: int,
    staff_ids: list[int],
    start: datetime,
    end: datetime,
    ignore: int | None,
) -> list[slot_rules.StaffCalendar]:
    weekly: dict[int, list[slot_rules.WeeklyHours]] = {i: [] for i in staff_ids}
    for row in session.scalars(
        select(StaffAvailability).where(
            StaffAvailability.site_id == site_id, StaffAvailability.user_id.in_(staff_ids)
        )
    ):
        weekly[row.user_id].append(
            slot_rules.WeeklyHours(
                row.weekday,
                parse_clock_time(row.start_time),
                parse_clock_time(row.end_time, end=True),
            )
        )
    # A week either side: local dates of the site around the UTC range.
    first, last = start.date() - timedelta(days=2), end.date() + timedelta(days=2)
    exceptions: dict[int, list[slot_rules.DateHours]] = {i: [] for i in staff_ids}
    for ex in session.scalars(
        select(AvailabilityException).where(
            AvailabilityException.site_id == site_id,
            AvailabilityException.user_id.in_(staff_ids),
            AvailabilityException.day.between(first, last),
        )
    ):
        exceptions[ex.user_id].append(
            slot_rules.DateHours(
                ex.day,
                ex.available,
                parse_clock_time(ex.start_time) if ex.start_time else None,
                parse_clock_time(ex.end_time, end=True) if ex.end_time else None,
            )
        )
    holidays: frozenset[date] = frozenset(
        session.scalars(
            select(SiteHoliday.day).where(
                SiteHoliday.site_id == site_id, SiteHoliday.day.between(first, last)
            )
        )
    )
    busy: dict[int, list[tuple[datetime, datetime]]] = {i: [] for i in staff_ids}
    for staff_id, starts, ends in session.execute(
        select(Booking.staff_id, Booking.starts_at, Booking.ends_at).where(
            Booking.staff_id.in_(staff_ids),
            Booking.status != BookingStatus.CANCELLED,
            Booking.starts_at < end,
            Booking.ends_at > start,
            Booking.id != (ignore or 0),
        )
    ):
        busy[staff_id].append((starts, ends))
    return [
        slot_rules.StaffCalendar(
            staff_id=i,
            zone=site_zone,
            weekly=tuple(weekly[i]),
            exceptions=tuple(exceptions[i]),
            days_off=holidays,
            busy=tuple(sorted(busy[i])),
        )
        for i in staff_ids
    ]


def free_slots(
    session: Session,
    visit: PlannedVisit,
    now: datetime,
    *,
    min_notice: timedelta = timedelta(0),
    staff_ids: list[int] | None = None,
    ignore: Booking | None = None,
    around: datetime | None = None,
) -> list[slot_rules.Slot]:
    """Bookable slots of the visit: inside its window (the patient's local dates), inside
    the availability of staff who may run it (the site's zone), not overlapping their
    bookings (but `ignore`, the booking being moved), starting `min_notice` after now at
    the earliest. `around`: only those within a day of that instant (checking one slot
    need not compute the whole window; slots keep their place, since each availability
    interval is read whole)."""
    staff = [u.id for u in staff_for(session, visit)]
    if staff_ids is not None:
        staff = [i for i in staff if i in staff_ids]
    return _slots_of(session, visit, now, staff, min_notice, ignore, around)


def _slots_of(
    session: Session,
    visit: PlannedVisit,
    now: datetime,
    staff: list[int],
    min_notice: timedelta,
    ignore: Booking | None,
    around: datetime | None,
) -> list[slot_rules.Slot]:
    """`free_slots` of staff already known to run the visit."""
    if Modality.TELEHEALTH not in visit.modalities or not staff:
        return []
    start, end = slot_rules.visit_window(
        visit.window_first, visit.window_last, visit.patient.timezone
    )
    if around is not None:
        start, end = max(start, around - _DAY), min(end, around + _DAY)
        if start >= end:
            return []
    calendars = _calendars(
        session,
        visit.patient.site.timezone,
        visit.patient.site_id,
        staff,
        start,
        end,
        ignore.id if ignore else None,
    )
    return slot_rules.free_slots(
        calendars,
        start,
        end,
        duration=timedelta(minutes=visit.duration_minutes),
        not_before=now + min_notice,
    )


def _check_slot(
    session: Session, visit: PlannedVisit, staff_id: int, starts_at: datetime, now: datetime,
    min_notice: timedelta, ignore: Booking | None = None,
) -> datetime:  # fmt: skip
    if starts_at.tzinfo is None:
        raise ValidationFailed.on_field("starts_at", "Give the start time with its offset.")
    ends_at = starts_at + timedelta(minutes=visit.duration_minutes)
    runs, held = _runs_and_held(session, visit, staff_id, starts_at, ends_at, ignore)
    if not runs:
        raise ValidationFailed.on_field(
            "staff_id", "This person does not run this visit at the patient's site."
        )
    # The common loser of a race: the time is held already. Answered in the same statement
    # as the staff check, before any slot is computed: under a burst every loser costs
    # one round trip here.
    if held:
        raise Conflict("That time was just taken. Please choose another slot.")
    offered = _slots_of(session, visit, now, [staff_id], min_notice, ignore, starts_at)
    if not any(s.starts_at == starts_at and s.staff_id == staff_id for s in offered):
        raise Conflict("That time is no longer free. Please choose another slot.")
    return ends_at


def _runs_and_held(
    session: Session, visit: PlannedVisit, staff_id: int, starts_at: datetime,
    ends_at: datetime, ignore: Booking | None,
) -> tuple[bool, bool]:  # fmt: skip
    """Whether `staff_id` may run the visit (as in `staff_for`) and whether a live booking
    holds their time already."""
    runs = (
        select(SiteMembership.user_id)
        .join(User, User.id == SiteMembership.user_id)
        .where(
            SiteMembership.user_id == staff_id,
            SiteMembership.site_id == visit.patient.site_id,
            User.role == visit.staff_role,
            User.is_enabled,
        )
        .exists()
    )
    held = (
        select(Booking.id)
        .where(
            Booking.staff_id == staff_id,
            Booking.status != BookingStatus.CANCELLED,
            Booking.starts_at < ends_at,
            Booking.ends_at > starts_at,
            Booking.id != (ignore.id if ignore else 0),
        )
        .exists()
    )
    row = session.execute(select(runs, held)).one()
    return bool(row[0]), bool(row[1])


def _violated(exc: IntegrityError) -> str:
    orig = exc.orig
    name = getattr(getattr(orig, "diag", None), "constraint_name", None) or str(orig)
    if "idempotency_key" in name:
        return "idempotency"
    if "uq_televisit_bookings_visit" in name or "planned_visit_id" in name:
        return "visit"
    return "time"


def _existing(session: Session, actor: User, key: str | None) -> Booking | None:
    if key is None:
        return None
    return session.scalar(
        select(Booking).where(Booking.requested_by_id == actor.id, Booking.idempotency_key == key)
    )


def book(
    session: Session,
    actor: User,
    visit: PlannedVisit,
    staff_id: int,
    starts_at: datetime,
    now: datetime,
    *,
    idempotency_key: str | None = None,
    min_notice: timedelta = timedelta(0),
) -> Booked:
    """Book the visit with `staff_id` at `starts_at` (one of `free_slots`)."""
    _may_act_for(actor, visit.patient)
    if (found := _existing(session, actor, idempotency_key)) is not None:
        return Booked(found, created=False)
    if visit.status != PlannedStatus.PLANNED:
        raise Conflict(f"{visit.name} is {visit.status.value} already; reschedule or cancel it.")
    ends_at = _check_slot(session, visit, staff_id, starts_at, now, min_notice)
    booking = Booking(
        planned_visit_id=visit.id,
        patient_id=visit.patient_id,
        site_id=visit.patient.site_id,
        staff_id=staff_id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=BookingStatus.BOOKED,
        sequence=0,
        requested_by_id=actor.id,
        idempotency_key=idempotency_key,
        room_attempts=0,
        created_at=now,
        updated_at=now,
    )
    what = f"Booked {visit.name} of {visit.patient.subject_number}"
    try:
        with session.begin_nested(), audit.acting(session, actor, now, what=what):
            session.add(booking)
            visit.status = PlannedStatus.BOOKED
            # The site responsible now runs it, also after a transfer since planning.
            visit.site_id = visit.patient.site_id
            visit.updated_at = now
    except IntegrityError as exc:
        kind = _violated(exc)
        if kind == "idempotency" and (found := _existing(session, actor, idempotency_key)):
            return Booked(found, created=False)
        if kind == "visit":
            raise Conflict(f"{visit.name} was just booked. Reload to see the booking.") from None
        raise Conflict("That time was just taken. Please choose another slot.") from None
    _changed(session, booking, now, "booked")
    return Booked(booking, created=True)


def reschedule(
    session: Session,
    actor: User,
    booking: Booking,
    staff_id: int,
    starts_at: datetime,
    reason: str | None,
    now: datetime,
    *,
    min_notice: timedelta = timedelta(0),
) -> Booking:
    visit = booking.planned_visit
    _may_act_for(actor, visit.patient)
    why = _reason(reason)
    if booking.status != BookingStatus.BOOKED:
        raise Conflict(f"A visit that is {booking.status.value.replace('_', ' ')} cannot be moved.")
    ends_at = _check_slot(session, visit, staff_id, starts_at, now, min_notice, ignore=booking)
    previous = booking.staff_id
    what = f"Moved {visit.name} of {visit.patient.subject_number}"
    try:
        with session.begin_nested(), audit.acting(session, actor, now, why, what=what):
            booking.staff_id, booking.starts_at, booking.ends_at = staff_id, starts_at, ends_at
            booking.sequence += 1
            booking.updated_at = now
    except IntegrityError:
        raise Conflict("That time was just taken. Please choose another slot.") from None
    # The colleague who had it gets a cancellation for their calendar.
    _changed(session, booking, now, "moved", previous_staff_id=previous)
    return booking


def cancel(
    session: Session, actor: User, booking: Booking, reason: str | None, now: datetime
) -> Booking:
    visit = booking.planned_visit
    _may_act_for(actor, visit.patient)
    why = _reason(reason)
    if booking.status != BookingStatus.BOOKED:
        raise Conflict(
            f"A visit that is {booking.status.value.replace('_', ' ')} cannot be cancelled."
        )
    what = f"Cancelled {visit.name} of {visit.patient.subject_number}"
    with audit.acting(session, actor, now, why, what=what):
        booking.status = BookingStatus.CANCELLED
        booking.sequence += 1
        booking.updated_at = now
        visit.status = PlannedStatus.PLANNED
        visit.updated_at = now
    _changed(session, booking, now, "cancelled")
    return booking


def _changed(session: Session, booking: Booking, now: datetime, change: str, **extra: int) -> None:
    record_televisit(session, booking, now)
    events.emit(
        session,
        BOOKING_CHANGED,
        now,
        {"booking_id": booking.id, "change": change, "sequence": booking.sequence, **extra},
        subject=f"booking:{booking.id}",
    )


def record_televisit(session: Session, booking: Booking, now: datetime) -> None:
    """The televisit's remote activity, as booked or as it happened: its times once run,
    and whoever ran it (the booked staff member until then)."""
    activities.record_activity(
        session,
        now,
        activity_type=TELEVISIT,
        patient=booking.patient,
        occurred_at=booking.started_at or booking.starts_at,
        ends_at=booking.ended_at or booking.ends_at,
        record_table=Booking.__tablename__,
        record_id=booking.id,
        status=booking.status.value,
        summary=f"{booking.planned_visit.name} by video",
        originator=activities.Originator.STAFF,
        originator_user_id=booking.run_by_id or booking.staff_id,
        modality=Modality.TELEHEALTH.value,
        location_type=booking.location_type or "patient_home",
    )
