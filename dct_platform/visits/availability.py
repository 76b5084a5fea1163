"""Who can be booked when: staff members' weekly hours at a site, their exceptions (a day
off, hours off, extra hours) and the site's holidays, all read in the site's zone by
`booking.free_slots`.

Who manages them: the staff of the site. A site coordinator (site staff) manages the hours
and exceptions of every member of their sites and the sites' holidays; an investigator
manages their own hours and exceptions only. Every change is audited, attributed to the
person who made it.

Clock times are "HH:MM" local times of the site (`localtime.parse_clock_time`); "24:00"
is accepted as an end only, and an end at or before the start runs past midnight
(22:00-02:00), as `slots.py` reads it.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.localtime import parse_clock_time
from dct_platform.models import Site, SiteMembership, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.roles import Role
from dct_platform.visits.models import AvailabilityException, SiteHoliday, StaffAvailability

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_NOTE = 200
MAX_HOLIDAY_NAME = 120
_DAY_MINUTES = 24 * 60
_WEEK_MINUTES = 7 * _DAY_MINUTES


# --- who may -------------------------------------------------------------------------------


def may_manage_hours(actor: User, site_id: int, user_id: int) -> bool:
    """Coordinators: anyone's hours at their sites; investigators: their own there."""
    if actor.role not in SITE_ROLES or site_id not in actor.site_ids:
        return False
    return actor.role == Role.SITE_STAFF or actor.id == user_id


def _require_hours(actor: User, site_id: int, user_id: int) -> None:
    if may_manage_hours(actor, site_id, user_id):
        return
    if actor.role == Role.INVESTIGATOR and site_id in actor.site_ids:
        raise Forbidden(
            "Investigators manage their own hours; ask a coordinator of the site for others'."
        )
    raise Forbidden("Only the staff of the site manage its staff's hours.")


def _require_holidays(actor: User, site: Site) -> None:
    if actor.role != Role.SITE_STAFF or site.id not in actor.site_ids:
        raise Forbidden("Only the coordinators of the site manage its holidays.")


def _member(session: Session, site: Site, user_id: int) -> User:
    user: User | None = session.scalar(
        select(User)
        .join(SiteMembership, SiteMembership.user_id == User.id)
        .where(SiteMembership.site_id == site.id, User.id == user_id)
    )
    if user is None:
        raise ValidationFailed.on_field(
            "user_id", f"User {user_id} is not a member of site {site.site_number}."
        )
    if not user.is_enabled:
        raise ValidationFailed.on_field(
            "user_id", f"The account of {user.display_name} is disabled."
        )
    return user


# --- clock times ---------------------------------------------------------------------------


def clock_time(field: str, text: str | None, *, end: bool = False) -> time:
    """A local clock time "HH:MM", or a 422 naming the field."""
    try:
        return parse_clock_time(text or "", end=end)
    except ValueError:
        also = ", or 24:00 for the end of the day" if end else ""
        raise ValidationFailed.on_field(
            field, f"{text!r} is not a time of day: write HH:MM, 00:00 to 23:59{also}."
        ) from None


def _normalised(text: str) -> str:
    return text.strip()


def _minutes(clock: time) -> int:
    return clock.hour * 60 + clock.minute


def _week_span(weekday: int, starts: time, ends: time) -> tuple[int, int]:
    """Minutes from Monday 00:00 (local) of the hours, an end at or before the start on
    the next day."""
    first = weekday * _DAY_MINUTES + _minutes(starts)
    last = weekday * _DAY_MINUTES + _minutes(ends)
    if last <= first:
        last += _DAY_MINUTES
    return first, last


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    # Sunday night's hours can run into Monday: compare a week either side too.
    return any(
        a[0] < b[1] + shift and b[0] + shift < a[1] for shift in (-_WEEK_MINUTES, 0, _WEEK_MINUTES)
    )


# --- weekly hours --------------------------------------------------------------------------


def add_weekly_hours(
    session: Session,
    actor: User,
    now: datetime,
    *,
    site: Site,
    user_id: int,
    weekday: int,
    start_time: str,
    end_time: str,
) -> StaffAvailability:
    """Recurring hours of `user_id` at `site` on `weekday` (0 Monday .. 6 Sunday)."""
    _require_hours(actor, site.id, user_id)
    if not 0 <= weekday <= 6:
        raise ValidationFailed.on_field("weekday", "The weekday is 0 (Monday) to 6 (Sunday).")
    starts = clock_time("start_time", start_time)
    ends = clock_time("end_time", end_time, end=True)
    if starts == ends and _normalised(end_time) != "24:00":
        raise ValidationFailed.on_field(
            "end_time", "The hours end when they start; give a different end time."
        )
    user = _member(session, site, user_id)
    span = _week_span(weekday, starts, ends)
    for row in session.scalars(
        select(StaffAvailability).where(
            StaffAvailability.site_id == site.id, StaffAvailability.user_id == user_id
        )
    ):
        other = _week_span(
            row.weekday,
            parse_clock_time(row.start_time),
            parse_clock_time(row.end_time, end=True),
        )
        if _overlap(span, other):
            raise Conflict(
                f"{user.display_name} already works {WEEKDAYS[row.weekday]} "
                f"{row.start_time}-{row.end_time} at this site, which overlaps; "
                "remove those hours first."
            )
    row = StaffAvailability(
        user_id=user_id,
        site_id=site.id,
        weekday=weekday,
        start_time=_normalised(start_time),
        end_time=_normalised(end_time),
        created_at=now,
        updated_at=now,
    )
    what = (
        f"Weekly hours of {user.username} at site {site.site_number}: "
        f"{WEEKDAYS[weekday]} {row.start_time}-{row.end_time}"
    )
    with audit.acting(session, actor, now, what=what):
        session.add(row)
    return row


def remove_weekly_hours(
    session: Session, actor: User, now: datetime, row: StaffAvailability
) -> None:
    _require_hours(actor, row.site_id, row.user_id)
    what = (
        f"Removed weekly hours of {row.user.username}: "
        f"{WEEKDAYS[row.weekday]} {row.start_time}-{row.end_time}"
    )
    with audit.acting(session, actor, now, what=what):
        session.delete(row)


# --- exceptions ----------------------------------------------------------------------------


def add_exception(
    session: Session,
    actor: User,
    now: datetime,
    *,
    site: Site,
    user_id: int,
    day: date,
    available: bool,
    start_time: str | None = None,
    end_time: str | None = None,
    note: str | None = None,
) -> AvailabilityException:
    """One local date of the site: off (`available` false, without hours), hours off
    (false, with hours) or extra hours (true, with hours)."""
    _require_hours(actor, site.id, user_id)
    has_start, has_end = bool((start_time or "").strip()), bool((end_time or "").strip())
    if has_start != has_end:
        field = "end_time" if has_start else "start_time"
        raise ValidationFailed.on_field(
            field, "Give both a start and an end time, or neither for the whole day."
        )
    if available and not has_start:
        raise ValidationFailed.on_field("start_time", "Extra hours need a start and an end time.")
    if has_start:
        starts = clock_time("start_time", start_time)
        ends = clock_time("end_time", end_time, end=True)
        if starts == ends and _normalised(end_time or "") != "24:00":
            raise ValidationFailed.on_field(
                "end_time", "The hours end when they start; give a different end time."
            )
    text = (note or "").strip()
    if len(text) > MAX_NOTE:
        raise ValidationFailed.on_field("note", f"Keep the note under {MAX_NOTE} characters.")
    user = _member(session, site, user_id)
    row = AvailabilityException(
        user_id=user_id,
        site_id=site.id,
        day=day,
        available=available,
        start_time=_normalised(start_time or "") or None,
        end_time=_normalised(end_time or "") or None,
        note=text or None,
        created_at=now,
        updated_at=now,
    )
    kind = "extra hours" if available else ("hours off" if has_start else "day off")
    what = f"Availability of {user.username} at site {site.site_number}: {kind} on {day}"
    with audit.acting(session, actor, now, what=what):
        session.add(row)
    return row


def remove_exception(
    session: Session, actor: User, now: datetime, row: AvailabilityException
) -> None:
    _require_hours(actor, row.site_id, row.user_id)
    with audit.acting(session, actor, now, what=f"Removed an availability exception on {row.day}"):
        session.delete(row)


# --- site holidays -------------------------------------------------------------------------


def add_holiday(
    session: Session, actor: User, now: datetime, *, site: Site, day: date, name: str
) -> SiteHoliday:
    """A local date on which nobody at the site works their weekly hours."""
    _require_holidays(actor, site)
    text = (name or "").strip()
    if not text or len(text) > MAX_HOLIDAY_NAME:
        raise ValidationFailed.on_field(
            "name", f"Name the holiday (up to {MAX_HOLIDAY_NAME} characters)."
        )
    taken = session.scalar(
        select(SiteHoliday).where(SiteHoliday.site_id == site.id, SiteHoliday.day == day)
    )
    if taken is not None:
        raise Conflict(f"{day.isoformat()} is a holiday of this site already ({taken.name}).")
    row = SiteHoliday(site_id=site.id, day=day, name=text, created_at=now, updated_at=now)
    what = f"Holiday of site {site.site_number} on {day.isoformat()}"
    with audit.acting(session, actor, now, what=what):
        session.add(row)
    return row


def remove_holiday(session: Session, actor: User, now: datetime, row: SiteHoliday) -> None:
    site = session.get(Site, row.site_id)
    assert site is not None
    _require_holidays(actor, site)
    what = f"Removed the holiday of site {site.site_number} on {row.day.isoformat()}"
    with audit.acting(session, actor, now, what=what):
        session.delete(row)
