"""iCalendar (RFC 5545) invitations for booked visits, sent by email as iTIP (RFC 5546).

An invitation, its updates and its cancellation share one UID and carry a growing SEQUENCE:
that is how calendar apps know to replace the event they already have rather than add a
second one. Times are written in the recipient's own zone (with the VTIMEZONE that defines
it), so the visit shows at the right wall-clock time even in apps that ignore UTC offsets,
and moves with the zone's daylight-saving rules exactly as our records do (see localtime.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import STATUS, Calendar, Event, vCalAddress

from dct_platform.timeutil import is_valid_timezone

PRODID = "-//DCT Platform//Visits//EN"

Method = Literal["REQUEST", "CANCEL", "PUBLISH"]
METHODS: frozenset[str] = frozenset({"REQUEST", "CANCEL", "PUBLISH"})

# RFC 5545 forbids control characters in TEXT values except HTAB (and line breaks, which
# icalendar escapes as \n); one stray character from pasted text would make strict parsers
# reject the whole invitation.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Addresses, UIDs and URLs are written unescaped: a line break in one would start a new,
# attacker-chosen property, so they are refused rather than cleaned.
_UNSAFE_RAW = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class CalendarVisit:
    uid: str  # stable per booking, e.g. "booking-42@<host>": the same for invite, update, cancel
    sequence: int  # bumped on every change (reschedule, cancel) so calendar apps replace it
    title: str
    description: str  # plain text, with the join instruction
    starts_at: datetime  # timezone-aware
    ends_at: datetime
    zone: str  # IANA zone of the recipient; DTSTART/DTEND are written in it, with TZID
    organizer_email: str
    organizer_name: str
    attendees: tuple[tuple[str, str], ...]  # (name, email)
    location: str = ""
    url: str | None = None
    status: Literal["CONFIRMED", "CANCELLED"] = "CONFIRMED"


def invitation(visit: CalendarVisit, *, method: Method = "REQUEST", now: datetime) -> bytes:
    """The .ics file for `visit`: a VCALENDAR with METHOD, the VTIMEZONE of `visit.zone`
    (covering the years of the visit) and one VEVENT; DTSTAMP is `now` in UTC.

    CANCEL always writes STATUS:CANCELLED. PUBLISH (an "add to my calendar" file, not a
    meeting request) carries no ATTENDEE, as RFC 5546 section 3.2.1 requires. A zone of
    "UTC" is written as UTC times ("Z"), which need no VTIMEZONE.

    Raises ValueError for input a calendar app would misread or reject.
    """
    _check(visit, method, now)
    tz = ZoneInfo(visit.zone)
    start = visit.starts_at.astimezone(tz)
    end = visit.ends_at.astimezone(tz)
    status = STATUS.CANCELLED if method == "CANCEL" else STATUS(visit.status)

    attendees = [
        vCalAddress.new(email, cn=_name(name), role="REQ-PARTICIPANT", rsvp=False)
        for name, email in visit.attendees
    ]
    event = Event.new(
        uid=visit.uid,
        sequence=visit.sequence,
        stamp=now.astimezone(UTC),
        start=start,
        end=end,
        summary=_text(visit.title),
        description=_text(visit.description),
        location=_text(visit.location) or None,
        url=visit.url,
        organizer=vCalAddress.new(visit.organizer_email, cn=_name(visit.organizer_name)),
        # RFC 5546 3.2.1: "Attendees" MUST NOT be present in a PUBLISH.
        attendees=None if method == "PUBLISH" else attendees,
        status=status,
    )

    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", method)
    calendar.add_component(event)
    # icalendar's default range (1970-2038) would make every file several kilobytes of
    # transitions nobody needs; the visit's own years are enough to place it.
    calendar.add_missing_timezones(
        first_date=date(start.year, 1, 1), last_date=date(end.year + 1, 1, 1)
    )
    return cast(bytes, calendar.to_ical())


def _check(visit: CalendarVisit, method: str, now: datetime) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, not {method!r}")
    for label, value in (("starts_at", visit.starts_at), ("ends_at", visit.ends_at), ("now", now)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{label} must be timezone-aware, got {value!r}")
    if visit.ends_at <= visit.starts_at:
        raise ValueError("a visit must end after it starts")
    if not is_valid_timezone(visit.zone):
        raise ValueError(f"unknown time zone {visit.zone!r}")
    if visit.sequence < 0:
        raise ValueError("sequence cannot be negative")
    if not visit.uid or _UNSAFE_RAW.search(visit.uid):
        raise ValueError(
            f"uid must be non-empty without spaces or control characters: {visit.uid!r}"
        )
    if method == "REQUEST" and visit.status == "CANCELLED":
        # Only a CANCEL reliably takes the event out of attendees' calendars (RFC 5546 3.2.5);
        # a REQUEST marked CANCELLED is a contradiction that apps resolve differently.
        raise ValueError("send a cancelled visit with method='CANCEL'")
    if method != "PUBLISH" and not visit.attendees:
        raise ValueError(f"a {method} needs at least one attendee")
    for email in (visit.organizer_email, *(email for _name, email in visit.attendees)):
        _check_email(email)
    if visit.url is not None:
        parts = urlsplit(visit.url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or _UNSAFE_RAW.search(visit.url)
        ):
            raise ValueError(f"url must be an absolute http(s) URL, got {visit.url!r}")


def _check_email(email: str) -> None:
    local, at, domain = email.rpartition("@")
    if not (local and at and domain) or _UNSAFE_RAW.search(email):
        raise ValueError(f"not a usable email address: {email!r}")


def _text(value: str) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_CHARS.sub("", value)


def _name(value: str) -> str:
    # A display name is one line; CN would otherwise carry an RFC 6868 "^n" many apps show raw.
    return " ".join(_text(value).split())
