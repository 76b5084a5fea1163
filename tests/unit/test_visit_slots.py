"""Bookable telehealth slots: staff hours in the site's zone, the visit window in the
patient's zone, across daylight-saving changes, with days off, exceptions and bookings.

2026's changes: America/New_York springs forward on 8 March (02:00 EST -> 03:00 EDT) and
falls back on 1 November (02:00 EDT -> 01:00 EST); Europe/Berlin springs forward on
29 March (02:00 CET -> 03:00 CEST) and falls back on 25 October (03:00 CEST -> 02:00 CET).
Asia/Tokyo is UTC+9 all year. In June, Berlin is UTC+2; 1 June 2026 is a Monday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dct_platform.visits.slots import (
    DateHours,
    Slot,
    StaffCalendar,
    WeeklyHours,
    available_intervals,
    free_slots,
    local_label,
    visit_window,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"

HOUR = timedelta(hours=1)
HALF_HOUR = timedelta(minutes=30)
JUNE_MONDAY = date(2026, 6, 1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(BERLIN))


def weekdays(
    start: time, end: time, days: range | tuple[int, ...] = range(5)
) -> tuple[WeeklyHours, ...]:
    return tuple(WeeklyHours(d, start, end) for d in days)


def calendar(
    staff_id: int = 1,
    zone: str = BERLIN,
    weekly: tuple[WeeklyHours, ...] | None = None,
    *,
    exceptions: tuple[DateHours, ...] = (),
    days_off: frozenset[date] = frozenset(),
    busy: tuple[tuple[datetime, datetime], ...] = (),
) -> StaffCalendar:
    """Monday to Friday 09:00-17:00 unless `weekly` says otherwise."""
    hours = weekly if weekly is not None else weekdays(time(9), time(17))
    return StaffCalendar(staff_id, zone, hours, exceptions, days_off, busy)


def labels(slots: list[Slot], zone: str) -> list[str]:
    return [str(local_label(s, zone)) for s in slots]


def june_week() -> tuple[datetime, datetime]:
    return visit_window(JUNE_MONDAY, JUNE_MONDAY + timedelta(days=6), BERLIN)


# --- a plain week ---------------------------------------------------------------------------


def test_weekly_hours_give_slots_on_each_working_day_of_a_plain_week() -> None:
    cal = calendar(weekly=weekdays(time(9), time(12)))
    start, end = june_week()
    assert (start, end) == (utc(2026, 5, 31, 22), utc(2026, 6, 7, 22))
    slots = free_slots([cal], start, end, duration=HOUR)
    assert len(slots) == 15  # Monday to Friday, 09:00, 10:00 and 11:00
    assert slots[0] == Slot(utc(2026, 6, 1, 7), utc(2026, 6, 1, 8), 1)
    assert slots[-1] == Slot(utc(2026, 6, 5, 9), utc(2026, 6, 5, 10), 1)
    assert labels(slots, BERLIN)[:4] == [
        "2026-06-01 09:00-10:00 CEST",
        "2026-06-01 10:00-11:00 CEST",
        "2026-06-01 11:00-12:00 CEST",
        "2026-06-02 09:00-10:00 CEST",
    ]
    assert {local_label(s, BERLIN).day.weekday() for s in slots} == {0, 1, 2, 3, 4}


def test_available_intervals_are_merged_sorted_and_whole() -> None:
    cal = calendar(
        weekly=(
            WeeklyHours(0, time(13), time(17)),
            WeeklyHours(0, time(9), time(12)),
            WeeklyHours(0, time(11), time(13)),
        ),
    )
    # Asked from 10:00 to 11:00 local: the whole merged interval is returned, not clipped.
    assert available_intervals(cal, berlin(2026, 6, 1, 10), berlin(2026, 6, 1, 11)) == [
        (utc(2026, 6, 1, 7), utc(2026, 6, 1, 15)),
    ]
    # An interval that only touches the range does not overlap it.
    assert available_intervals(cal, berlin(2026, 6, 1, 17), berlin(2026, 6, 1, 18)) == []


# --- a Tokyo site and a New York patient ------------------------------------------------------


def test_tokyo_site_new_york_patient_across_the_us_spring_change() -> None:
    cal = calendar(zone=TOKYO, weekly=weekdays(time(9), time(12)))
    # The patient's window is Thursday 5 March to Monday 9 March, New York dates.
    start, end = visit_window(date(2026, 3, 5), date(2026, 3, 9), NEW_YORK)
    assert (start, end) == (utc(2026, 3, 5, 5), utc(2026, 3, 10, 4))  # EST, then EDT
    slots = free_slots([cal], start, end, duration=HOUR)
    # Tokyo Thursday 5 March 09:00 is New York Wednesday 19:00: before the window. Tokyo
    # Tuesday 10 March is New York Monday evening: inside. Tokyo Wednesday is not.
    assert [s.starts_at for s in slots] == [
        utc(2026, 3, 6, 0), utc(2026, 3, 6, 1), utc(2026, 3, 6, 2),
        utc(2026, 3, 9, 0), utc(2026, 3, 9, 1), utc(2026, 3, 9, 2),
        utc(2026, 3, 10, 0), utc(2026, 3, 10, 1), utc(2026, 3, 10, 2),
    ]  # fmt: skip
    firsts = slots[::3]
    assert labels(firsts, TOKYO) == [
        "2026-03-06 09:00-10:00 JST",
        "2026-03-09 09:00-10:00 JST",
        "2026-03-10 09:00-10:00 JST",
    ]
    # The same slots for the patient: a local date earlier, and an hour later after the change.
    assert labels(firsts, NEW_YORK) == [
        "2026-03-05 19:00-20:00 EST",
        "2026-03-08 20:00-21:00 EDT",
        "2026-03-09 20:00-21:00 EDT",
    ]


def test_tokyo_site_new_york_patient_across_the_us_autumn_change() -> None:
    cal = calendar(zone=TOKYO, weekly=weekdays(time(9), time(12)))
    start, end = visit_window(date(2026, 10, 29), date(2026, 11, 1), NEW_YORK)
    assert (start, end) == (utc(2026, 10, 29, 4), utc(2026, 11, 2, 5))  # EDT, then EST
    slots = free_slots([cal], start, end, duration=HOUR)
    # Tokyo Thursday 29 October is New York Wednesday evening: out. The patient's last day,
    # Sunday 1 November, holds Tokyo's Monday morning.
    assert [s.starts_at for s in slots] == [
        utc(2026, 10, 30, 0), utc(2026, 10, 30, 1), utc(2026, 10, 30, 2),
        utc(2026, 11, 2, 0), utc(2026, 11, 2, 1), utc(2026, 11, 2, 2),
    ]  # fmt: skip
    assert labels(slots[::3], TOKYO) == ["2026-10-30 09:00-10:00 JST", "2026-11-02 09:00-10:00 JST"]
    assert labels(slots[::3], NEW_YORK) == [
        "2026-10-29 20:00-21:00 EDT",
        "2026-11-01 19:00-20:00 EST",
    ]


def test_the_patients_midnight_cuts_tokyo_hours_an_hour_earlier_after_the_us_change() -> None:
    cal = calendar(zone=TOKYO, weekly=weekdays(time(9), time(17)))
    # One New York day, Monday, before the change: it begins at 14:00 in Tokyo.
    before = free_slots(
        [cal], *visit_window(date(2026, 3, 2), date(2026, 3, 2), NEW_YORK), duration=HOUR
    )
    assert [local_label(s, TOKYO).starts for s in before] == [
        time(14), time(15), time(16), time(9), time(10), time(11), time(12), time(13),
    ]  # fmt: skip
    assert [local_label(s, TOKYO).day for s in before[::4]] == [date(2026, 3, 2), date(2026, 3, 3)]
    assert labels([before[0], before[-1]], NEW_YORK) == [
        "2026-03-02 00:00-01:00 EST",
        "2026-03-02 23:00-00:00 EST",
    ]
    # The Monday after the change begins at 13:00 in Tokyo.
    after = free_slots(
        [cal], *visit_window(date(2026, 3, 9), date(2026, 3, 9), NEW_YORK), duration=HOUR
    )
    assert [local_label(s, TOKYO).starts for s in after] == [
        time(13), time(14), time(15), time(16), time(9), time(10), time(11), time(12),
    ]  # fmt: skip
    assert labels([after[0], after[-1]], NEW_YORK) == [
        "2026-03-09 00:00-01:00 EDT",
        "2026-03-09 23:00-00:00 EDT",
    ]


# --- a Berlin site across the EU changes ------------------------------------------------------


def test_berlin_nine_oclock_stays_nine_across_spring_forward() -> None:
    cal = calendar(weekly=weekdays(time(9), time(10)))
    start, end = visit_window(date(2026, 3, 27), date(2026, 3, 30), BERLIN)
    slots = free_slots([cal], start, end, duration=HOUR)
    assert [s.starts_at for s in slots] == [utc(2026, 3, 27, 8), utc(2026, 3, 30, 7)]
    assert labels(slots, BERLIN) == ["2026-03-27 09:00-10:00 CET", "2026-03-30 09:00-10:00 CEST"]


def test_berlin_nine_oclock_stays_nine_across_fall_back() -> None:
    cal = calendar(weekly=weekdays(time(9), time(10)))
    start, end = visit_window(date(2026, 10, 23), date(2026, 10, 26), BERLIN)
    slots = free_slots([cal], start, end, duration=HOUR)
    assert [s.starts_at for s in slots] == [utc(2026, 10, 23, 7), utc(2026, 10, 26, 8)]
    assert labels(slots, BERLIN) == ["2026-10-23 09:00-10:00 CEST", "2026-10-26 09:00-10:00 CET"]


def test_hours_across_the_berlin_gap_are_an_hour_shorter() -> None:
    cal = calendar(weekly=(WeeklyHours(6, time(1), time(5)),))
    day = visit_window(date(2026, 3, 29), date(2026, 3, 29), BERLIN)
    assert available_intervals(cal, *day) == [(utc(2026, 3, 29, 0), utc(2026, 3, 29, 3))]
    slots = free_slots([cal], *day, duration=HOUR)
    assert labels(slots, BERLIN) == [
        "2026-03-29 01:00 CET-03:00 CEST",
        "2026-03-29 03:00-04:00 CEST",
        "2026-03-29 04:00-05:00 CEST",
    ]
    # Hours starting in the gap start at its end (02:30 is read as 03:30 CEST).
    in_gap = calendar(weekly=(WeeklyHours(6, time(2, 30), time(4)),))
    assert available_intervals(in_gap, *day) == [(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2))]
    assert labels(free_slots([in_gap], *day, duration=HALF_HOUR), BERLIN) == [
        "2026-03-29 03:30-04:00 CEST"
    ]


def test_hours_across_the_berlin_repeated_hour_are_an_hour_longer() -> None:
    cal = calendar(weekly=(WeeklyHours(6, time(1), time(5)),))
    day = visit_window(date(2026, 10, 25), date(2026, 10, 25), BERLIN)
    assert available_intervals(cal, *day) == [(utc(2026, 10, 24, 23), utc(2026, 10, 25, 4))]
    slots = free_slots([cal], *day, duration=HOUR)
    assert labels(slots, BERLIN) == [
        "2026-10-25 01:00-02:00 CEST",
        "2026-10-25 02:00 CEST-02:00 CET",
        "2026-10-25 02:00-03:00 CET",
        "2026-10-25 03:00-04:00 CET",
        "2026-10-25 04:00-05:00 CET",
    ]


# --- overnight hours ------------------------------------------------------------------------


def test_overnight_hours_run_into_the_next_local_date() -> None:
    cal = calendar(weekly=(WeeklyHours(0, time(22), time(2)),))
    start, end = june_week()
    slots = free_slots([cal], start, end, duration=HOUR)
    assert [s.starts_at for s in slots] == [
        utc(2026, 6, 1, 20), utc(2026, 6, 1, 21), utc(2026, 6, 1, 22), utc(2026, 6, 1, 23),
    ]  # fmt: skip
    assert labels(slots, BERLIN) == [
        "2026-06-01 22:00-23:00 CEST",
        "2026-06-01 23:00-00:00 CEST",
        "2026-06-02 00:00-01:00 CEST",
        "2026-06-02 01:00-02:00 CEST",
    ]
    # The hours are Monday's: a holiday on Tuesday keeps them, one on Monday removes them.
    tuesday_off = calendar(weekly=cal.weekly, days_off=frozenset({date(2026, 6, 2)}))
    assert free_slots([tuesday_off], start, end, duration=HOUR) == slots
    monday_off = calendar(weekly=cal.weekly, days_off=frozenset({JUNE_MONDAY}))
    assert free_slots([monday_off], start, end, duration=HOUR) == []
    # A patient window ending with Monday (Berlin) keeps the slots before midnight only.
    monday = visit_window(JUNE_MONDAY, JUNE_MONDAY, BERLIN)
    assert free_slots([cal], *monday, duration=HOUR) == slots[:2]


# --- days off and exceptions ----------------------------------------------------------------


def _monday_to_friday_labels(cal: StaffCalendar) -> dict[date, list[str]]:
    by_day: dict[date, list[str]] = {}
    for slot in free_slots([cal], *june_week(), duration=HOUR):
        label = local_label(slot, BERLIN)
        by_day.setdefault(label.day, []).append(label.starts.strftime("%H:%M"))
    return by_day


def test_a_whole_day_off_exception_removes_that_dates_hours() -> None:
    by_day = _monday_to_friday_labels(calendar(exceptions=(DateHours(JUNE_MONDAY, False),)))
    assert sorted(by_day) == [date(2026, 6, d) for d in (2, 3, 4, 5)]
    assert len(by_day[date(2026, 6, 2)]) == 8


def test_a_site_holiday_removes_that_dates_hours() -> None:
    by_day = _monday_to_friday_labels(calendar(days_off=frozenset({date(2026, 6, 3)})))
    assert sorted(by_day) == [date(2026, 6, d) for d in (1, 2, 4, 5)]


def test_a_partial_day_off_removes_those_hours_and_restarts_the_grid() -> None:
    cal = calendar(exceptions=(DateHours(date(2026, 6, 3), False, time(12), time(13, 30)),))
    wednesday = visit_window(date(2026, 6, 3), date(2026, 6, 3), BERLIN)
    assert available_intervals(cal, *wednesday) == [
        (utc(2026, 6, 3, 7), utc(2026, 6, 3, 10)),
        (utc(2026, 6, 3, 11, 30), utc(2026, 6, 3, 15)),
    ]
    by_day = _monday_to_friday_labels(cal)
    assert by_day[date(2026, 6, 3)] == ["09:00", "10:00", "11:00", "13:30", "14:30", "15:30"]
    assert len(by_day[date(2026, 6, 2)]) == 8


def test_extra_hours_add_to_the_week_and_to_a_free_day() -> None:
    cal = calendar(
        exceptions=(
            DateHours(date(2026, 6, 4), True, time(17), time(19)),  # continues Thursday
            DateHours(date(2026, 6, 6), True, time(10), time(12)),  # a Saturday
        )
    )
    thursday = visit_window(date(2026, 6, 4), date(2026, 6, 4), BERLIN)
    assert available_intervals(cal, *thursday) == [(utc(2026, 6, 4, 7), utc(2026, 6, 4, 17))]
    by_day = _monday_to_friday_labels(cal)
    assert by_day[date(2026, 6, 4)][-2:] == ["17:00", "18:00"]
    assert len(by_day[date(2026, 6, 4)]) == 10
    assert by_day[date(2026, 6, 6)] == ["10:00", "11:00"]


def test_extra_hours_on_a_holiday_are_worked() -> None:
    cal = calendar(
        days_off=frozenset({JUNE_MONDAY}),
        exceptions=(DateHours(JUNE_MONDAY, True, time(14), time(16)),),
    )
    assert _monday_to_friday_labels(cal)[JUNE_MONDAY] == ["14:00", "15:00"]


def test_an_exception_needs_both_or_neither_clock_time() -> None:
    with pytest.raises(ValueError, match="both a start and an end"):
        DateHours(JUNE_MONDAY, False, time(12))
    with pytest.raises(ValueError, match="extra hours"):
        DateHours(JUNE_MONDAY, True)


# --- bookings, notice, step -----------------------------------------------------------------


def _monday_morning(busy: tuple[tuple[datetime, datetime], ...] = ()) -> StaffCalendar:
    return calendar(weekly=(WeeklyHours(0, time(9), time(13)),), busy=busy)


def _starts(slots: list[Slot]) -> list[str]:
    return [local_label(s, BERLIN).starts.strftime("%H:%M") for s in slots]


def test_busy_intervals_and_the_buffer_around_them() -> None:
    busy = (
        (utc(2026, 6, 1, 8), utc(2026, 6, 1, 8, 30)),  # 10:00-10:30 local
        (berlin(2026, 6, 1, 11, 10), berlin(2026, 6, 1, 11, 20)),  # any offset will do
    )
    cal = _monday_morning(busy=busy)
    monday = visit_window(JUNE_MONDAY, JUNE_MONDAY, BERLIN)
    assert _starts(free_slots([cal], *monday, duration=HALF_HOUR)) == [
        "09:00", "09:30", "10:30", "11:30", "12:00", "12:30",
    ]  # fmt: skip
    # 15 minutes either side: 09:45-10:45 and 10:55-11:35 are taken.
    buffered = free_slots([cal], *monday, duration=HALF_HOUR, buffer=timedelta(minutes=15))
    assert _starts(buffered) == ["09:00", "12:00", "12:30"]
    assert buffered[0] == Slot(utc(2026, 6, 1, 7), utc(2026, 6, 1, 7, 30), 1)


def test_not_before_keeps_the_grid() -> None:
    cal = _monday_morning()
    monday = visit_window(JUNE_MONDAY, JUNE_MONDAY, BERLIN)
    now = berlin(2026, 6, 1, 11, 10)
    assert _starts(free_slots([cal], *monday, duration=HALF_HOUR, not_before=now)) == [
        "11:30", "12:00", "12:30",
    ]  # fmt: skip
    exactly = free_slots([cal], *monday, duration=HALF_HOUR, not_before=utc(2026, 6, 1, 10))
    assert _starts(exactly) == ["12:00", "12:30"]
    late = free_slots([cal], *monday, duration=HALF_HOUR, not_before=utc(2026, 6, 2))
    assert late == []


def test_a_step_smaller_than_the_duration_gives_overlapping_choices() -> None:
    cal = calendar(weekly=(WeeklyHours(0, time(9), time(12)),))
    monday = visit_window(JUNE_MONDAY, JUNE_MONDAY, BERLIN)
    slots = free_slots([cal], *monday, duration=HOUR, step=HALF_HOUR)
    assert _starts(slots) == ["09:00", "09:30", "10:00", "10:30", "11:00"]
    assert slots[-1].ends_at == utc(2026, 6, 1, 10)  # 12:00 local, the end of the hours
    booked = calendar(weekly=cal.weekly, busy=((utc(2026, 6, 1, 8), utc(2026, 6, 1, 8, 30)),))
    assert _starts(free_slots([booked], *monday, duration=HOUR, step=HALF_HOUR)) == [
        "09:00", "10:30", "11:00",
    ]  # fmt: skip


# --- window edges ---------------------------------------------------------------------------


def test_window_edges_are_half_open() -> None:
    cal = calendar(weekly=(WeeklyHours(0, time(9), time(12)),))
    # Starting exactly at the window start, ending exactly at its end: both in.
    slots = free_slots([cal], utc(2026, 6, 1, 7), utc(2026, 6, 1, 9), duration=HOUR)
    assert [s.starts_at for s in slots] == [utc(2026, 6, 1, 7), utc(2026, 6, 1, 8)]
    # A slot crossing the end is out.
    slots = free_slots([cal], utc(2026, 6, 1, 7), utc(2026, 6, 1, 8, 30), duration=HOUR)
    assert [s.starts_at for s in slots] == [utc(2026, 6, 1, 7)]
    # A slot crossing the start is out; the grid stays anchored at 09:00 local.
    slots = free_slots([cal], utc(2026, 6, 1, 7, 30), utc(2026, 6, 1, 10), duration=HOUR)
    assert [s.starts_at for s in slots] == [utc(2026, 6, 1, 8), utc(2026, 6, 1, 9)]


def test_an_empty_or_reversed_range_has_no_slots() -> None:
    cal = calendar()
    at = utc(2026, 6, 1, 8)
    assert free_slots([cal], at, at, duration=HOUR) == []
    assert free_slots([cal], at, at - HOUR, duration=HOUR) == []
    assert available_intervals(cal, at, at) == []


def test_naive_datetimes_are_refused() -> None:
    naive, aware = datetime(2026, 6, 1, 9), utc(2026, 6, 1, 9)
    cal = calendar()
    with pytest.raises(ValueError, match="no offset"):
        free_slots([cal], naive, aware, duration=HOUR)
    with pytest.raises(ValueError, match="no offset"):
        free_slots([cal], aware, naive, duration=HOUR)
    with pytest.raises(ValueError, match="no offset"):
        free_slots([cal], aware, aware + HOUR, duration=HOUR, not_before=naive)
    with pytest.raises(ValueError, match="no offset"):
        available_intervals(cal, naive, aware)
    with pytest.raises(ValueError, match="no offset"):
        calendar(busy=((naive, naive + HOUR),))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        calendar(zone="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="weekday"):
        WeeklyHours(7, time(9), time(17))
    start, end = june_week()
    with pytest.raises(ValueError, match="last some time"):
        free_slots([calendar()], start, end, duration=timedelta(0))
    with pytest.raises(ValueError, match="step"):
        free_slots([calendar()], start, end, duration=HOUR, step=timedelta(0))
    with pytest.raises(ValueError, match="buffer"):
        free_slots([calendar()], start, end, duration=HOUR, buffer=-HOUR)
    with pytest.raises(ValueError, match="before it starts"):
        visit_window(date(2026, 6, 2), date(2026, 6, 1), BERLIN)


# --- several staff --------------------------------------------------------------------------


def test_several_staff_are_interleaved_by_start_then_staff_id() -> None:
    monday = visit_window(JUNE_MONDAY, JUNE_MONDAY, BERLIN)
    early = (WeeklyHours(0, time(9), time(11)),)
    calendars = [
        calendar(7, weekly=early),
        calendar(3, weekly=(WeeklyHours(0, time(9, 30), time(11, 30)),)),
        calendar(5, weekly=early, busy=((utc(2026, 6, 1, 8), utc(2026, 6, 1, 9)),)),
    ]
    slots = free_slots(calendars, *monday, duration=HOUR)
    assert [(local_label(s, BERLIN).starts.strftime("%H:%M"), s.staff_id) for s in slots] == [
        ("09:00", 5), ("09:00", 7), ("09:30", 3), ("10:00", 7), ("10:30", 3),
    ]  # fmt: skip


def test_staff_of_sites_in_different_zones_share_one_patient_window() -> None:
    # A Berlin and a Tokyo colleague, both 09:00-10:00 on Monday at their own site, for a
    # patient whose window is Monday 1 June in Berlin.
    calendars = [
        calendar(1, zone=TOKYO, weekly=(WeeklyHours(0, time(9), time(10)),)),
        calendar(2, zone=BERLIN, weekly=(WeeklyHours(0, time(9), time(10)),)),
    ]
    slots = free_slots(calendars, *visit_window(JUNE_MONDAY, JUNE_MONDAY, BERLIN), duration=HOUR)
    assert slots == [
        Slot(utc(2026, 6, 1, 0), utc(2026, 6, 1, 1), 1),  # 02:00 in Berlin
        Slot(utc(2026, 6, 1, 7), utc(2026, 6, 1, 8), 2),
    ]
    assert labels(slots, BERLIN) == ["2026-06-01 02:00-03:00 CEST", "2026-06-01 09:00-10:00 CEST"]
