"""Local time, done once: a person's local dates and clock times as UTC intervals, and back.

Everything that is scheduled "at 18:00 where the patient lives" (eDiary windows, visits,
reminders) goes through this module, so that every feature reads a local time the same way.
Pure Python on `zoneinfo`; no database, no Flask.

The rules, the same for a window's start and for its end:

* **Half-open**: a window is the UTC interval ``[start, end)``, so back-to-back windows
  never share an instant.
* **Next day**: an end at or before the start (compared as the clock times are written,
  before any daylight-saving adjustment) ends on the next local day: 22:00-02:00 runs
  overnight, an end of 00:00 is the midnight that ends the day (18:00-00:00), and
  00:00-00:00 is the whole local day (23 or 25 hours on a change day).
* **Gap** (spring forward, a local time that does not exist): the time is read with the UTC
  offset in force *before* the change, which moves it forward by the length of the gap.
  02:30 on 2026-03-29 in Europe/Berlin is 03:30 CEST, 01:30 UTC; 02:30 on 2026-03-08 in
  America/New_York is 03:30 EDT, 07:30 UTC.
* **Repeated hour** (fall back, a local time that happens twice): the first occurrence,
  still in summer time (``fold=0``). 02:30 on 2026-10-25 in Europe/Berlin is 02:30 CEST,
  00:30 UTC, not 02:30 CET an hour later.
* **Empty**: a start moved forward by the gap can land after an end just beyond the gap
  (02:30-03:15 in Berlin on the spring-forward day). No instant of that window exists that
  day, so the interval is empty (``end == start``) rather than reversed.

Why the gap and repeated-hour rules: they are RFC 5545's (iCalendar, section 3.3.5), which
calendar apps apply to an event in a named zone, so a visit a patient or nurse puts in their
phone's calendar falls at the same instant as in our records. They are also exactly what
`zoneinfo` gives for ``fold=0``, so there is one reading of a wall-clock time throughout the
code. Moving a gap time forward (rather than clipping it to the change) keeps a window whose
start *or* end falls in the gap as long, in elapsed time, as its clock times say; a window
that contains the whole gap is an hour shorter, as a wall clock shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ZoneLike = str | ZoneInfo

_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def _zone(zone: ZoneLike) -> ZoneInfo:
    if isinstance(zone, ZoneInfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone!r}") from exc


def _zone_name(zone: ZoneInfo) -> str:
    return zone.key or str(zone)


def _wall_clock(clock: time) -> time:
    if clock.tzinfo is not None:
        # A clock time with its own offset is an instant already, not a local time.
        raise ValueError(f"give a local clock time without a time zone, not {clock!r}")
    # The caller's fold is dropped: the repeated-hour rule is the module's, not theirs.
    return clock.replace(fold=0)


def _aware_utc(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} {instant!r} has no offset; its instant is unknown")
    return instant.astimezone(UTC)


@dataclass(frozen=True)
class UtcInterval:
    """A half-open interval ``[start, end)`` of aware UTC instants, for one local date."""

    start: datetime
    end: datetime
    local_date: date
    zone: str

    def __post_init__(self) -> None:
        _aware_utc(self.start, "start")
        _aware_utc(self.end, "end")
        if self.end < self.start:
            raise ValueError(f"interval ends ({self.end}) before it starts ({self.start})")

    def __contains__(self, instant: object) -> bool:
        if not isinstance(instant, datetime):
            return False
        return self.start <= _aware_utc(instant, "instant") < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def is_empty(self) -> bool:
        return self.end == self.start


@dataclass(frozen=True)
class LocalTime:
    """An instant as a person in `zone` reads it on their clock."""

    instant: datetime
    date: date
    time: time
    zone: str
    abbreviation: str
    utc_offset: timedelta

    @property
    def local(self) -> datetime:
        """The aware local datetime; its ``fold`` tells the two readings of a repeated hour
        apart, as the abbreviation does for people."""
        return self.instant.astimezone(_zone(self.zone))

    def __str__(self) -> str:
        return f"{self.date.isoformat()} {self.time.strftime('%H:%M')} {self.abbreviation}"


def parse_clock_time(text: str, *, end: bool = False) -> time:
    """Read "HH:MM" (24-hour). "24:00" is accepted for an end only and means the midnight
    that ends the day, which is what an end of 00:00 means under the next-day rule."""
    match = _CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day such as 08:30")
    hours, minutes = int(match[1]), int(match[2])
    if hours == 24:
        if minutes or not end:
            raise ValueError("24:00 is only an end of day")
        return time(0, 0)
    return time(hours, minutes)


def local_to_utc(day: date, clock: time, zone: ZoneLike) -> datetime:
    """The UTC instant of `clock` on local date `day` in `zone`.

    A time in a gap moves forward by the gap; a time in a repeated hour is its first
    occurrence (see the module's rules).
    """
    tz = _zone(zone)
    # fold=0 on a non-existent time uses the offset before the change, i.e. forward by the gap.
    local = datetime.combine(day, _wall_clock(clock)).replace(tzinfo=tz, fold=0)
    return local.astimezone(UTC)


def local_window(day: date, start: time, end: time, zone: ZoneLike) -> UtcInterval:
    """The UTC interval ``[start, end)`` of a window of local clock times on local date `day`.

    An end at or before the start ends on the next local day; gap times move forward,
    repeated-hour times are the first occurrence; a window made empty by the gap is
    returned empty, never reversed (see the module's rules).
    """
    tz = _zone(zone)
    start, end = _wall_clock(start), _wall_clock(end)
    end_day = day + timedelta(days=1) if end <= start else day
    utc_start = local_to_utc(day, start, tz)
    # Only a gap can reverse the order (a start moved past an end just after the gap):
    # nothing of that window exists that day.
    utc_end = max(local_to_utc(end_day, end, tz), utc_start)
    return UtcInterval(utc_start, utc_end, day, _zone_name(tz))


def daily_windows(
    first_day: date, last_day: date, start: time, end: time, zone: ZoneLike
) -> list[UtcInterval]:
    """The window from `start` to `end` on every local date from `first_day` to `last_day`
    (both included), each computed on its own date, so that an 18:00 window stays at 18:00
    local across a daylight-saving change while its UTC time moves by the hour."""
    if last_day < first_day:
        raise ValueError(f"the range ends ({last_day}) before it starts ({first_day})")
    tz = _zone(zone)
    return [
        local_window(first_day + timedelta(days=n), start, end, tz)
        for n in range((last_day - first_day).days + 1)
    ]


def utc_to_local(instant: datetime, zone: ZoneLike) -> LocalTime:
    """How `instant` (aware; any offset) reads on a clock in `zone`, with the zone's
    abbreviation ("CEST", "EST", or a numeric one such as "+14" where the tz database has
    no letters), which also tells the two occurrences of a repeated hour apart."""
    tz = _zone(zone)
    local = _aware_utc(instant, "instant").astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    return LocalTime(
        instant=instant.astimezone(UTC),
        date=local.date(),
        time=local.time().replace(fold=0),
        zone=_zone_name(tz),
        abbreviation=local.tzname() or _zone_name(tz),
        utc_offset=offset,
    )
