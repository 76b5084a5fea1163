"""Bookable telehealth slots: staff availability, read in the site's zone, cut into slots
that fit a visit window read in the patient's zone.

Pure Python on `dct_platform.localtime`: no database, no Flask. Every local clock time is
turned into an instant by `localtime.local_window` / `local_to_utc`, so the half-open,
next-day, gap and repeated-hour rules are that module's, and all instants here are aware
UTC datetimes.

Availability (`available_intervals`)
------------------------------------

Availability is read on each *local date of the site's zone* (`StaffCalendar.zone`):

* **Weekly hours**: on every local date, the `WeeklyHours` of that date's weekday, each
  read with `local_window` on that date. So 09:00-17:00 stays 09:00-17:00 on the wall clock
  across a daylight-saving change while its UTC instants move by the hour (Berlin: 08:00 UTC
  in winter, 07:00 UTC in summer).
* **Overnight**: an end at or before the start ends on the next local date (22:00-02:00),
  and the hours belong to the date they *start* on: Monday 22:00-02:00 is Monday's weekly
  hours, and a holiday on Tuesday does not cut it.
* **Daylight saving**: hours that contain a spring-forward gap are shorter by the gap
  (01:00-05:00 in Berlin on 29 March 2026 is three hours); a start or end in the gap moves
  forward by the gap; hours wholly in the gap do not exist that day. Hours that contain a
  repeated hour are longer by it (01:00-05:00 in Berlin on 25 October 2026 is five hours);
  a start or end in the repeated hour is its first occurrence.
* **Days off**: a site holiday (`days_off`) or a whole-day-off exception
  (``DateHours(day, available=False)`` without hours) removes that date's weekly hours, and
  only those: hours of the day before that run past midnight into it are kept.
* **Partial days off**: ``DateHours(day, available=False, start, end)`` removes the instants
  of that local window (read on `day`, with the next-day rule) from whatever weekly hours
  cover them, whichever date those hours belong to.
* **Extra hours**: ``DateHours(day, available=True, start, end)`` adds that window. Extra
  hours are added *after* the removals, so explicit extra hours on a holiday or a day off
  are worked.
* An exception replaces nothing else: the weekly hours of its date remain, less what it
  removes, plus what it adds. Several exceptions on one date all apply.

The result is merged (touching or overlapping intervals become one), sorted, and holds
every interval that overlaps the range asked for, whole (not clipped to the range). Busy
time is not removed there.

Slots (`free_slots`)
--------------------

* A slot lasts `duration`, lies wholly inside one availability interval of one staff member
  and wholly inside ``[start, end)``: a slot starting exactly at `start` or ending exactly at
  `end` is in; one crossing either edge is out.
* Slots are on a grid anchored at the *start of the availability interval*: its start, then
  every `step` (default: `duration`; a smaller step gives overlapping choices). The grid
  does not move with the window, `not_before` or bookings, so the same instant is offered
  whoever asks and with whatever window. (A merged interval has one grid: extra hours that
  continue the weekly hours without a break continue their grid.)
* A slot must not overlap the staff member's `busy` intervals, each widened by `buffer` on
  both sides (half-open: a slot ending exactly where the widened busy time starts is free).
* A slot starts at or after `not_before` (for instance now plus the minimum notice).
* The result is sorted by ``(starts_at, staff_id)``.

Zones: the staff member's hours are read in the site's zone, the visit window
(`visit_window`) in the patient's zone, which may be another one. A site in Asia/Tokyo
working 09:00-17:00 is 19:00-03:00 (EST) or 20:00-04:00 (EDT) the evening before for a
patient in America/New_York: the patient's last local day of the window can include the
next Tokyo morning, and a Tokyo slot belongs to a different local date for each of them.
Across a US change Tokyo's clock times stay the same and the New York ones move by the hour
(`local_label` shows a slot on a reader's clock).

Naive datetimes are refused with ValueError (their instant is unknown); a range with
``start >= end`` has no slots. Cost: each calendar's dates are read once, and each busy
check is a bisection over the merged busy list (a conflicting slot jumps the grid past the
busy time), so twenty staff over two weeks take a few milliseconds.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dct_platform.localtime import local_to_utc, local_window, utc_to_local

Interval = tuple[datetime, datetime]

_DAY = timedelta(days=1)
_NO_TIME = timedelta(0)
_MIDNIGHT = time(0, 0)


def _aware_utc(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} {instant!r} has no offset; its instant is unknown")
    return instant.astimezone(UTC)


@cache
def _zoneinfo(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _local_clock(clock: time, what: str) -> None:
    if clock.tzinfo is not None:
        raise ValueError(f"{what} is a local clock time of the site, not {clock!r}")


# --- Calendars -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WeeklyHours:
    """Recurring hours on one weekday (0 = Monday .. 6 = Sunday), local to the site's zone;
    an end at or before the start runs past midnight into the next local date."""

    weekday: int
    start: time
    end: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday is 0 (Monday) to 6 (Sunday), not {self.weekday}")
        _local_clock(self.start, "start")
        _local_clock(self.end, "end")


@dataclass(frozen=True)
class DateHours:
    """An exception on one local date of the site's zone.

    ``available=False`` without hours: the date's weekly hours are off (as on a holiday);
    with hours: those hours are off. ``available=True``: extra hours, which need both a
    start and an end. A start without an end (or the reverse) is refused rather than guessed.
    """

    day: date
    available: bool
    start: time | None = None
    end: time | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError(f"the exception on {self.day} needs both a start and an end")
        if self.available and self.start is None:
            raise ValueError(f"the extra hours on {self.day} need a start and an end")
        if self.start is not None and self.end is not None:
            _local_clock(self.start, "start")
            _local_clock(self.end, "end")

    @property
    def whole_day(self) -> bool:
        return not self.available and self.start is None


@dataclass(frozen=True)
class StaffCalendar:
    """One staff member's availability at a site (`zone`: the site's IANA zone) and their
    existing bookings (`busy`: aware instants, half-open, kept sorted in UTC)."""

    staff_id: int
    zone: str
    weekly: tuple[WeeklyHours, ...]
    exceptions: tuple[DateHours, ...] = ()
    days_off: frozenset[date] = frozenset()
    busy: tuple[tuple[datetime, datetime], ...] = ()

    def __post_init__(self) -> None:
        _zoneinfo(self.zone)
        busy = []
        for starts, ends in self.busy:
            interval = (_aware_utc(starts, "busy start"), _aware_utc(ends, "busy end"))
            if interval[1] < interval[0]:
                raise ValueError(f"busy time ends ({ends}) before it starts ({starts})")
            busy.append(interval)
        object.__setattr__(self, "busy", tuple(sorted(busy)))


@dataclass(frozen=True, order=True)
class Slot:
    starts_at: datetime  # aware UTC
    ends_at: datetime
    staff_id: int


@dataclass(frozen=True)
class SlotLabel:
    """A slot as a reader in `zone` sees it: the local date it starts on and its clock
    times, with the zone's abbreviations (they differ when the slot spans a change)."""

    day: date
    starts: time
    ends: time
    zone: str
    abbreviation: str
    end_abbreviation: str

    def __str__(self) -> str:
        day, starts, ends = self.day.isoformat(), f"{self.starts:%H:%M}", f"{self.ends:%H:%M}"
        if self.end_abbreviation != self.abbreviation:
            # Across a change, each clock time with its own offset: 01:00 CET-03:00 CEST.
            return f"{day} {starts} {self.abbreviation}-{ends} {self.end_abbreviation}"
        return f"{day} {starts}-{ends} {self.abbreviation}"


# --- Windows -------------------------------------------------------------------------------


def visit_window(first_day: date, last_day: date, zone: str) -> tuple[datetime, datetime]:
    """The UTC instants of a visit window given as local dates in the PATIENT's zone: from
    first_day 00:00 to the midnight after last_day, local (half-open).

    A midnight in a gap (zones that change at 00:00) moves forward by the gap, as
    localtime reads every gap time.
    """
    if last_day < first_day:
        raise ValueError(f"the window ends ({last_day}) before it starts ({first_day})")
    tz = _zoneinfo(zone)
    return local_to_utc(first_day, _MIDNIGHT, tz), local_to_utc(last_day + _DAY, _MIDNIGHT, tz)


def local_label(slot: Slot, zone: str) -> SlotLabel:
    """How `slot` reads on a clock in `zone` (the patient's or the staff member's)."""
    starts, ends = utc_to_local(slot.starts_at, zone), utc_to_local(slot.ends_at, zone)
    return SlotLabel(
        starts.date, starts.time, ends.time, starts.zone, starts.abbreviation, ends.abbreviation
    )


@lru_cache(maxsize=1 << 14)
def _window(day: date, start: time, end: time, zone: str) -> Interval:
    # Staff of one site mostly share their hours: the same hours on the same date in the
    # same zone are read once for all of them.
    w = local_window(day, start, end, _zoneinfo(zone))
    return w.start, w.end


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for starts, ends in sorted(intervals):
        if ends <= starts:
            continue
        if merged and starts <= merged[-1][1]:
            if ends > merged[-1][1]:
                merged[-1] = (merged[-1][0], ends)
        else:
            merged.append((starts, ends))
    return merged


def _without(keep: list[Interval], remove: list[Interval]) -> list[Interval]:
    """`keep` less `remove`, both merged and sorted (one pass over each)."""
    if not remove:
        return keep
    left: list[Interval] = []
    j = 0
    for starts, ends in keep:
        while j < len(remove) and remove[j][1] <= starts:
            j += 1
        k = j
        while k < len(remove) and remove[k][0] < ends:
            if remove[k][0] > starts:
                left.append((starts, remove[k][0]))
            starts = max(starts, remove[k][1])
            k += 1
        if starts < ends:
            left.append((starts, ends))
    return left


def available_intervals(
    calendar: StaffCalendar, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The staff member's working intervals (UTC, merged, sorted) overlapping [start, end):
    weekly hours on each local date of the site zone, minus days off and 'available=False'
    exceptions, plus 'available=True' exceptions; busy time is NOT removed here.

    Intervals are whole, not clipped to the range (slots are anchored at their start).
    """
    start, end = _aware_utc(start, "start"), _aware_utc(end, "end")
    if start >= end:
        return []
    zone = calendar.zone
    # Hours belong to the date they start on and end on the next date at the latest; an
    # end moved forward by a gap at midnight can reach one date further.
    first = utc_to_local(start, zone).date - 2 * _DAY
    last = utc_to_local(end, zone).date
    by_weekday: dict[int, list[WeeklyHours]] = {}
    for hours in calendar.weekly:
        by_weekday.setdefault(hours.weekday, []).append(hours)
    by_day: dict[date, list[DateHours]] = {}
    for ex in calendar.exceptions:
        if first <= ex.day <= last:
            by_day.setdefault(ex.day, []).append(ex)

    work: list[Interval] = []
    off: list[Interval] = []
    extra: list[Interval] = []
    day = first
    while day <= last:
        todays = by_day.get(day, ())
        if day not in calendar.days_off and not any(ex.whole_day for ex in todays):
            work.extend(
                _window(day, h.start, h.end, zone) for h in by_weekday.get(day.weekday(), ())
            )
        for ex in todays:
            if ex.start is not None and ex.end is not None:
                (extra if ex.available else off).append(_window(day, ex.start, ex.end, zone))
        day += _DAY
    worked = _merged(_without(_merged(work), _merged(off)) + extra)
    return [(s, e) for s, e in worked if s < end and e > start]


# --- Slots ---------------------------------------------------------------------------------


def _ceil_steps(span: timedelta, step: timedelta) -> int:
    """The number of steps needed to cover `span` (0 for a span of zero or less)."""
    return 0 if span <= _NO_TIME else -(-span // step)


def _calendar_slots(
    calendar: StaffCalendar,
    start: datetime,
    end: datetime,
    lower: datetime,
    duration: timedelta,
    step: timedelta,
    buffer: timedelta,
) -> list[Slot]:
    busy = _merged((s - buffer, e + buffer) for s, e in calendar.busy)
    busy_starts = [s for s, _ in busy]
    # Merged, so the ends are sorted too: the first busy interval ending after an instant
    # is found by bisection.
    busy_ends = [e for _, e in busy]
    staff_id = calendar.staff_id
    found: list[Slot] = []
    for opens, closes in available_intervals(calendar, start, end):
        latest_end = min(closes, end)
        k = _ceil_steps(lower - opens, step)
        while True:
            slot_start = opens + k * step
            slot_end = slot_start + duration
            if slot_end > latest_end:
                break
            i = bisect_right(busy_ends, slot_start)
            if i < len(busy) and busy_starts[i] < slot_end:
                # Skip every grid point inside this busy time at once.
                k = max(k + 1, _ceil_steps(busy_ends[i] - opens, step))
                continue
            found.append(Slot(slot_start, slot_end, staff_id))
            k += 1
    return found


def free_slots(
    calendars: Sequence[StaffCalendar],
    start: datetime,
    end: datetime,
    *,
    duration: timedelta,
    step: timedelta | None = None,
    not_before: datetime | None = None,
    buffer: timedelta = timedelta(0),
) -> list[Slot]:
    """Slots of `duration` wholly inside the availability of one staff member and inside
    [start, end), starting at the beginning of each availability interval and every `step`
    (default: duration) after it, not overlapping that member's busy intervals (widened by
    `buffer` on each side), starting at or after `not_before` (e.g. now + minimum notice).
    Sorted by (starts_at, staff_id)."""
    start, end = _aware_utc(start, "start"), _aware_utc(end, "end")
    lower = start if not_before is None else max(start, _aware_utc(not_before, "not_before"))
    if duration <= _NO_TIME:
        raise ValueError(f"a slot must last some time, not {duration}")
    step = duration if step is None else step
    if step <= _NO_TIME:
        raise ValueError(f"the step between slots must be positive, not {step}")
    if buffer < _NO_TIME:
        raise ValueError(f"the buffer around bookings cannot be negative, not {buffer}")
    if lower >= end:
        return []
    found: list[Slot] = []
    for calendar in calendars:
        found.extend(_calendar_slots(calendar, start, end, lower, duration, step, buffer))
    found.sort(key=lambda s: (s.starts_at, s.staff_id))
    return found
