"""eDiary schedule occurrences: when each questionnaire of a schedule is due for a patient.

Pure Python on `dct_platform.localtime`: no database, no Flask. A schedule `Rule` gives a
sequence of *slots*, each a local date (or study day) with a window of local clock times;
`occurrences` turns the slots into `Occurrence`s, each with its window as aware UTC
instants, in the IANA zone the patient lived by (their `ZonePeriod`s, the half-open history
stored as `PatientTimezonePeriod`). Every local time is read by `localtime.local_window`,
so the half-open, next-day, gap and repeated-hour rules are that module's: an 18:00-23:59
window stays at 18:00 local across a daylight-saving change while its UTC time moves by
the hour, a 22:00-02:00 window runs overnight and belongs to the date it starts on, and a
window wholly inside a spring-forward gap is empty (``opens_at == closes_at``).

The rules
---------

* ``Daily``: every local date from `first_date` through `last_date` (open-ended if None).
* ``EveryNDays``: `first_date`, then every `every_n` days through `last_date`.
* ``ProtocolDays``: study days relative to the patient's baseline date, day 1 being the
  baseline date itself (days are 1 or later; there is no day 0). With `window_days` K the
  window opens at `start` on day D-K and closes at `end` on day D+K (``end`` of D+K read
  with the next-day rule, so a 22:00-02:00 window closes at 02:00 after day D+K). Without a
  baseline (``baseline=None``) a protocol schedule has no occurrences yet: an empty list,
  not an error, since a patient is scheduled before their baseline visit is known.
* ``Once``: one local date.

An occurrence's `key` is stable and unique per schedule and patient: the local date in ISO
form ("2026-03-08") for the date-based rules, ``day-<N>`` for a study day. Its
`local_date` is that date (the target day D for a study day, whatever K).

Late entries and reminders: an entry submitted in ``[opens_at, closes_at)`` is on time; in
``[closes_at, late_until)`` late, where ``late_until = closes_at + late_allowed`` (equal to
`closes_at` when late entries are not allowed); anything else is refused. A window ending
at 23:59 closes at 23:59:00: "until the end of the day" is an end of 00:00 (or "24:00"),
under which 23:59:59 is on time and 00:00:00 the next day is not. ``remind_at`` is
``closes_at - remind_before_close``, never before `opens_at`; None without a reminder or
for an empty window. An empty window (wholly in a gap) is kept, so that its key exists and
nothing is lost on the calendar, but nobody could have submitted on time: compliance
should not count it as expected (`Occurrence.is_empty`).

Which zone, when the patient moves
----------------------------------

In short: an occurrence is computed in the zone the patient had when it opened (the period
`dct_platform.services.ownership.timezone_at` finds at `opens_at`), with one exception so
that a move east loses nothing it need not: a window the patient arrives into, already
open on their new clock, is the new zone's. Precisely:

The periods are taken in time order. Period P = ``[valid_from, valid_to)`` in zone Z takes,
among the slots after the last slot taken by an earlier period, every slot whose window
*computed in Z*

1. opens before ``valid_to`` (a slot opening later belongs to a later period), and
2. has not closed at ``valid_from`` (an empty window: does not open before it).

Slots are ordered and their windows, in one zone, open and close in the same order, so
each period takes a run of consecutive slots and the runs follow each other: no key is ever
given twice. (In one zone consecutive daily windows never overlap either, unless a window's
end and the next one's start are closer on the clock than a daylight-saving gap, such as
03:00-02:30: localtime moves a gap end forward past the next start.)

What this means for a move at instant M from zone A to zone B:

* **An occurrence that has opened keeps its zone.** A's window opened before M, so it is
  A's, even if it is still open at M (a move mid-window changes nothing about that window).
* **A move west** (Berlin -> Los Angeles): the date of the move comes round again in B
  (the patient sees 18:00 on that date in Berlin, then nine hours later in Los Angeles).
  If A's window for it opened before M, the key is A's and B starts with the next date;
  otherwise B takes it. One occurrence per date either way.
* **A move east** (Los Angeles -> Tokyo, across the date line forward): B's window for the
  next date can have opened before M while A's opens after it. If B's window is still open
  at M, B takes it (the patient arrives with the window open on their new clock): the date
  is neither lost nor doubled, though that occurrence opened shortly before the move.
* **The one case without an occurrence**: B's window for a date had already *closed* at M
  while A's had not yet opened. The patient's local clock jumped over the whole window (from
  before `start` in A to after `end` in B, as travelling east skips local hours, or a whole
  date across the date line); no instant of it happened to them, as for a window in a
  spring-forward gap, so the date has no occurrence rather than one that was missed before
  it could be seen. This only happens on a move east, to a zone ahead of the old one by
  more than the window lasts (Los Angeles -> Tokyo, 16 hours, with a 6-hour window: a move
  between 14:59 and 01:00 UTC skips that date's window).
* Two periods' windows can overlap in time after a move east with long windows (A's last
  window still open when B's first opens); both stay as their own zone reads them.
* Windows that open and close while no period is in force (before the first period, or in
  a gap between periods) have no occurrence; a window open when a period begins is that
  period's if no earlier period took its slot.

Periods must not overlap (as the database guarantees); naive datetimes are refused.

`occurrences` returns every occurrence whose window overlaps ``[start, end)`` (an empty
window: whose instant lies in it), ordered by `opens_at`. Only the slots near the period
boundaries and inside the requested range are computed (bisection over the slots), so a
long or open-ended schedule costs about as much as the range asked for.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from itertools import pairwise
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dct_platform.localtime import local_window

State = Literal["upcoming", "open", "late_window", "missed", "done"]
Verdict = Literal["on_time", "late", "refused"]

_NO_TIME = timedelta(0)
_DAY = timedelta(days=1)


def _aware(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} {instant!r} has no offset; its instant is unknown")
    return instant


@cache
def _zoneinfo(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


# --- Rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _WindowRule:
    """What every rule has: the window of local clock times, late entries, the reminder."""

    start: time
    end: time
    late_allowed: timedelta = _NO_TIME
    remind_before_close: timedelta | None = None

    def __post_init__(self) -> None:
        for what, clock in (("start", self.start), ("end", self.end)):
            if clock.tzinfo is not None:
                raise ValueError(f"the window {what} is a local clock time, not {clock!r}")
        if self.late_allowed < _NO_TIME:
            raise ValueError("late_allowed cannot be negative")
        if self.remind_before_close is not None and self.remind_before_close <= _NO_TIME:
            raise ValueError("remind_before_close must be positive (or None)")


def _check_dates(first_date: date, last_date: date | None) -> None:
    if last_date is not None and last_date < first_date:
        raise ValueError(f"the schedule ends ({last_date}) before it starts ({first_date})")


@dataclass(frozen=True, kw_only=True)
class Daily(_WindowRule):
    kind: ClassVar[str] = "daily"
    first_date: date
    last_date: date | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_dates(self.first_date, self.last_date)


@dataclass(frozen=True, kw_only=True)
class EveryNDays(_WindowRule):
    kind: ClassVar[str] = "every_n_days"
    first_date: date
    every_n: int
    last_date: date | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_dates(self.first_date, self.last_date)
        if self.every_n < 1:
            raise ValueError("every_n must be 1 or more")


@dataclass(frozen=True, kw_only=True)
class ProtocolDays(_WindowRule):
    """Study days (day 1 = the baseline date), kept sorted and without repeats."""

    kind: ClassVar[str] = "protocol_days"
    study_days: tuple[int, ...]
    window_days: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        days = tuple(sorted(set(self.study_days)))
        if not days:
            raise ValueError("a protocol schedule needs at least one study day")
        if days[0] < 1:
            raise ValueError("study days start at day 1, the baseline date")
        if self.window_days < 0:
            raise ValueError("window_days cannot be negative")
        object.__setattr__(self, "study_days", days)


@dataclass(frozen=True, kw_only=True)
class Once(_WindowRule):
    kind: ClassVar[str] = "once"
    on: date


Rule = Daily | EveryNDays | ProtocolDays | Once


# --- Occurrences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ZonePeriod:
    """The patient lived by `zone` over ``[valid_from, valid_to)`` (open-ended if None)."""

    valid_from: datetime
    valid_to: datetime | None
    zone: str

    def __post_init__(self) -> None:
        _aware(self.valid_from, "valid_from")
        if self.valid_to is not None and _aware(self.valid_to, "valid_to") <= self.valid_from:
            raise ValueError(f"the period of {self.zone} ends before it starts")


@dataclass(frozen=True, slots=True)
class Occurrence:
    key: str
    local_date: date
    zone: str
    opens_at: datetime
    closes_at: datetime
    late_until: datetime
    remind_at: datetime | None

    @property
    def is_empty(self) -> bool:
        """The window did not exist that day (wholly in a spring-forward gap)."""
        return self.opens_at == self.closes_at


class _Slots:
    """The rule's slots 0..count-1 in order: their keys, dates and windows in a zone."""

    def __init__(self, rule: Rule, baseline: date | None, limit: date) -> None:
        # Slots opening on a local date after `limit` cannot matter (see `occurrences`).
        self.rule = rule
        self.margin = 0
        self.study_days: tuple[int, ...] = ()
        self.first: date
        self.step = 1
        last: date | None
        if isinstance(rule, ProtocolDays):
            if baseline is None:
                self.first, self.count = limit, 0
                return
            self.first, self.margin = baseline, rule.window_days
            self.study_days = rule.study_days
            # Day N opens on baseline + (N - 1) - K.
            latest = (limit - baseline).days + 1 + self.margin
            self.count = bisect_right(self.study_days, latest)
            return
        if isinstance(rule, Once):
            self.first, last = rule.on, rule.on
        else:
            self.first, last = rule.first_date, rule.last_date
            if isinstance(rule, EveryNDays):
                self.step = rule.every_n
        last = limit if last is None else min(last, limit)
        self.count = max(0, (last - self.first).days // self.step + 1)

    def day(self, k: int) -> date:
        if self.study_days:
            return self.first + timedelta(days=self.study_days[k] - 1)
        return self.first + timedelta(days=k * self.step)

    def key(self, k: int, day: date) -> str:
        return f"day-{self.study_days[k]}" if self.study_days else day.isoformat()

    def window(self, day: date, zone: str) -> tuple[datetime, datetime]:
        """The window of the slot on `day` (its local date, or its study day's date)."""
        start, end = self.rule.start, self.rule.end
        if not self.margin:
            return _day_window(day, start, end, zone)
        margin = timedelta(days=self.margin)
        opens = _day_window(day - margin, start, end, zone)[0]
        return opens, _day_window(day + margin, start, end, zone)[1]


@lru_cache(maxsize=1 << 15)
def _day_window(day: date, start: time, end: time, zone: str) -> tuple[datetime, datetime]:
    # The same window on the same date in the same zone is the same for every patient and
    # schedule: computed once (a trial's patients live in a handful of zones). 32768
    # windows (about 13 MB) hold a quarter-year of one window in some 350 zones.
    w = local_window(day, start, end, _zoneinfo(zone))
    return w.start, w.end


class _InZone:
    """The slots' windows in one zone, searched by bisection (the windows of one zone are
    in order, so each search is over a monotone predicate)."""

    def __init__(self, slots: _Slots, zone: str) -> None:
        self.slots, self.zone = slots, zone

    def window(self, k: int) -> tuple[datetime, datetime]:
        return self.slots.window(self.slots.day(k), self.zone)

    def first_not_over(self, at: datetime, lo: int, hi: int) -> int:
        """The first slot in [lo, hi) whose window has not closed at `at` (an empty one:
        does not lie before it); `hi` if none."""

        def not_over(k: int) -> bool:
            opens, closes = self.window(k)
            return closes > at if closes > opens else opens >= at

        return bisect_left(range(hi), True, lo, hi, key=not_over)

    def last_opening_before(self, at: datetime | None, lo: int, hi: int) -> int:
        """The last slot in [lo, hi) whose window opens before `at` (None: the end of
        time); lo - 1 if none."""
        if at is None:
            return hi - 1
        return bisect_left(range(hi), True, lo, hi, key=lambda k: self.window(k)[0] >= at) - 1


def _in_order(zones: Sequence[ZonePeriod]) -> list[ZonePeriod]:
    periods = sorted(zones, key=lambda p: p.valid_from)
    for before, after in pairwise(periods):
        if before.valid_to is None or before.valid_to > after.valid_from:
            raise ValueError(
                f"the zone periods overlap: {before.zone} from {before.valid_from} and "
                f"{after.zone} from {after.valid_from}"
            )
    return periods


def occurrences(
    rule: Rule,
    zones: Sequence[ZonePeriod],
    *,
    baseline: date | None,
    start: datetime,
    end: datetime,
) -> list[Occurrence]:
    """Every occurrence of `rule` whose window overlaps ``[start, end)``, each computed in
    the zone of the period that takes its slot (the module's rules), ordered by opens_at.

    `baseline` is the patient's baseline date, used by `ProtocolDays` only (None: no
    occurrences for such a rule)."""
    _aware(start, "start")
    _aware(end, "end")
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    periods = _in_order(zones)
    # A local date is at most 14 hours ahead of UTC, so a window opening on a local date
    # two days (three, to spare) after `end`'s UTC date opens after `end`; later slots
    # change nothing here (a period's run only depends on the slots before it).
    slots = _Slots(rule, baseline, end.astimezone(UTC).date() + 3 * _DAY)
    if end == start or not periods or not slots.count:
        return []
    late, remind = rule.late_allowed, rule.remind_before_close
    found: list[Occurrence] = []
    taken = -1  # the last slot a period has taken
    for period in periods:
        _zoneinfo(period.zone)  # an unknown zone is refused even if no slot is computed
        in_zone = _InZone(slots, period.zone)
        first = in_zone.first_not_over(period.valid_from, taken + 1, slots.count)
        last = in_zone.last_opening_before(period.valid_to, first, slots.count)
        if last < first:
            continue
        taken = last
        # Within the period's run, the slots overlapping [start, end).
        lo = in_zone.first_not_over(start, first, last + 1)
        hi = in_zone.last_opening_before(end, lo, last + 1)
        for k in range(lo, hi + 1):
            day = slots.day(k)
            opens, closes = slots.window(day, period.zone)
            reminder = None
            if remind is not None and closes > opens:
                reminder = max(opens, closes - remind)
            found.append(
                Occurrence(
                    slots.key(k, day), day, period.zone, opens, closes, closes + late, reminder
                )
            )
    found.sort(key=lambda o: (o.opens_at, o.local_date))
    return found


def state_at(occ: Occurrence, now: datetime, submitted: bool) -> State:
    """Where the occurrence stands at `now`: "done" once submitted; otherwise "upcoming"
    before it opens, "open" in its window, "late_window" after it closes while late entries
    are still accepted, then "missed"."""
    _aware(now, "now")
    if submitted:
        return "done"
    if now < occ.opens_at:
        return "upcoming"
    if now < occ.closes_at:
        return "open"
    if now < occ.late_until:
        return "late_window"
    return "missed"


def submission_verdict(occ: Occurrence, at: datetime) -> Verdict:
    """An entry submitted `at` (server time): "on_time" in ``[opens_at, closes_at)``,
    "late" in ``[closes_at, late_until)``, otherwise "refused" (too early or too late)."""
    _aware(at, "at")
    if at < occ.opens_at:
        return "refused"
    if at < occ.closes_at:
        return "on_time"
    if at < occ.late_until:
        return "late"
    return "refused"
