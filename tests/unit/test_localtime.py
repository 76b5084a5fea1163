"""Local dates and clock times as UTC intervals, across daylight-saving changes and far zones.

2026's changes: Europe/Berlin springs forward on 29 March (02:00 CET -> 03:00 CEST) and
falls back on 25 October (03:00 CEST -> 02:00 CET); America/New_York springs forward on
8 March (02:00 EST -> 03:00 EDT) and falls back on 1 November (02:00 EDT -> 01:00 EST).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dct_platform.localtime import (
    UtcInterval,
    daily_windows,
    local_to_utc,
    local_window,
    parse_clock_time,
    utc_to_local,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def window(day: date, start: str, end: str, zone: str) -> tuple[datetime, datetime]:
    w = local_window(day, parse_clock_time(start), parse_clock_time(end, end=True), zone)
    return w.start, w.end


# --- Europe/Berlin -------------------------------------------------------------------------

SPRING_BERLIN = date(2026, 3, 29)
AUTUMN_BERLIN = date(2026, 10, 25)


def test_berlin_gap_time_moves_forward_by_the_gap() -> None:
    assert local_to_utc(SPRING_BERLIN, time(2, 30), BERLIN) == utc(2026, 3, 29, 1, 30)
    assert str(utc_to_local(utc(2026, 3, 29, 1, 30), BERLIN)) == "2026-03-29 03:30 CEST"
    # The gap's edges: 02:00 does not exist either, 03:00 does.
    assert local_to_utc(SPRING_BERLIN, time(2, 0), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert local_to_utc(SPRING_BERLIN, time(3, 0), BERLIN) == utc(2026, 3, 29, 1, 0)


def test_berlin_window_starting_in_the_gap() -> None:
    # 02:30 is read as 03:30 CEST: half an hour of the window remains.
    assert window(SPRING_BERLIN, "02:30", "04:00", BERLIN) == (
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 2, 0),
    )


def test_berlin_window_ending_in_the_gap_keeps_its_length() -> None:
    start, end = window(SPRING_BERLIN, "01:00", "02:30", BERLIN)
    assert (start, end) == (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 30))
    assert end - start == timedelta(hours=1, minutes=30)


def test_berlin_window_spanning_the_gap_is_an_hour_shorter() -> None:
    start, end = window(SPRING_BERLIN, "01:00", "04:00", BERLIN)
    assert (start, end) == (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0))
    assert end - start == timedelta(hours=2)


def test_berlin_window_wholly_lost_in_the_gap_is_empty_not_reversed() -> None:
    w = local_window(SPRING_BERLIN, time(2, 30), time(3, 15), BERLIN)
    assert w.is_empty and w.start == w.end == utc(2026, 3, 29, 1, 30)
    assert utc(2026, 3, 29, 1, 30) not in w
    # Both ends in the gap: both move forward, the length stays.
    w = local_window(SPRING_BERLIN, time(2, 10), time(2, 40), BERLIN)
    assert (w.start, w.end) == (utc(2026, 3, 29, 1, 10), utc(2026, 3, 29, 1, 40))


def test_berlin_repeated_hour_means_the_first_occurrence() -> None:
    first = local_to_utc(AUTUMN_BERLIN, time(2, 30), BERLIN)
    assert first == utc(2026, 10, 25, 0, 30)
    assert str(utc_to_local(first, BERLIN)) == "2026-10-25 02:30 CEST"
    # The second 02:30 reads the same on the clock; the abbreviation tells them apart.
    second = utc_to_local(first + timedelta(hours=1), BERLIN)
    assert str(second) == "2026-10-25 02:30 CET"
    assert second.local.fold == 1 and second.utc_offset == timedelta(hours=1)
    # A caller's fold=1 does not change the rule.
    assert local_to_utc(AUTUMN_BERLIN, time(2, 30, fold=1), BERLIN) == first


def test_berlin_window_starting_in_the_repeated_hour() -> None:
    start, end = window(AUTUMN_BERLIN, "02:30", "04:00", BERLIN)
    assert (start, end) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3, 0))
    assert end - start == timedelta(hours=2, minutes=30)


def test_berlin_window_spanning_the_repeated_hour_is_an_hour_longer() -> None:
    start, end = window(AUTUMN_BERLIN, "01:00", "04:00", BERLIN)
    assert (start, end) == (utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))
    assert end - start == timedelta(hours=4)


def test_berlin_whole_days_on_change_days() -> None:
    assert local_window(SPRING_BERLIN, time(0), time(0), BERLIN).duration == timedelta(hours=23)
    assert local_window(AUTUMN_BERLIN, time(0), time(0), BERLIN).duration == timedelta(hours=25)


# --- America/New_York ----------------------------------------------------------------------

SPRING_NY = date(2026, 3, 8)
AUTUMN_NY = date(2026, 11, 1)


def test_new_york_gap() -> None:
    assert local_to_utc(SPRING_NY, time(2, 30), NEW_YORK) == utc(2026, 3, 8, 7, 30)
    assert str(utc_to_local(utc(2026, 3, 8, 7, 30), NEW_YORK)) == "2026-03-08 03:30 EDT"
    assert window(SPRING_NY, "02:30", "05:00", NEW_YORK) == (
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 8, 9, 0),
    )
    start, end = window(SPRING_NY, "00:00", "05:00", NEW_YORK)
    assert (start, end) == (utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 9, 0))
    assert end - start == timedelta(hours=4)


def test_new_york_repeated_hour() -> None:
    assert local_to_utc(AUTUMN_NY, time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)
    assert str(utc_to_local(utc(2026, 11, 1, 5, 30), NEW_YORK)) == "2026-11-01 01:30 EDT"
    assert str(utc_to_local(utc(2026, 11, 1, 6, 30), NEW_YORK)) == "2026-11-01 01:30 EST"
    assert window(AUTUMN_NY, "01:30", "02:30", NEW_YORK) == (
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 7, 30),
    )


def test_new_york_overnight_window_spanning_the_repeated_hour() -> None:
    start, end = window(date(2026, 10, 31), "22:00", "06:00", NEW_YORK)
    assert (start, end) == (utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 11, 0))
    assert end - start == timedelta(hours=9)


def test_a_daily_18_00_window_stays_at_18_00_local_over_the_change() -> None:
    windows = daily_windows(date(2026, 3, 6), date(2026, 3, 10), time(18), time(20), NEW_YORK)
    assert [w.local_date for w in windows] == [date(2026, 3, d) for d in range(6, 11)]
    assert [w.start.hour for w in windows] == [23, 23, 22, 22, 22]
    for w in windows:
        start = utc_to_local(w.start, NEW_YORK)
        assert (start.date, start.time) == (w.local_date, time(18))
        assert utc_to_local(w.end, NEW_YORK).time == time(20)
        assert w.duration == timedelta(hours=2)
    with pytest.raises(ValueError, match="before it starts"):
        daily_windows(date(2026, 3, 10), date(2026, 3, 9), time(18), time(20), NEW_YORK)


# --- Zones without daylight saving, far from UTC -------------------------------------------


def test_kolkata_half_hour_offset() -> None:
    day = date(2026, 7, 1)
    assert window(day, "09:00", "09:30", "Asia/Kolkata") == (
        utc(2026, 7, 1, 3, 30),
        utc(2026, 7, 1, 4, 0),
    )
    assert window(day, "23:00", "01:00", "Asia/Kolkata") == (
        utc(2026, 7, 1, 17, 30),
        utc(2026, 7, 1, 19, 30),
    )
    assert str(utc_to_local(utc(2026, 7, 1, 18, 30), "Asia/Kolkata")) == "2026-07-02 00:00 IST"


def test_kiritimati_window_falls_on_the_previous_utc_date() -> None:
    w = local_window(date(2026, 3, 10), time(8), time(10), "Pacific/Kiritimati")
    assert (w.start, w.end) == (utc(2026, 3, 9, 18, 0), utc(2026, 3, 9, 20, 0))
    assert w.local_date == date(2026, 3, 10) and w.zone == "Pacific/Kiritimati"
    back = utc_to_local(w.start, "Pacific/Kiritimati")
    assert str(back) == "2026-03-10 08:00 +14" and back.utc_offset == timedelta(hours=14)
    # The whole local day lies on two UTC dates.
    day = local_window(date(2026, 3, 10), time(0), time(0), "Pacific/Kiritimati")
    assert (day.start, day.end) == (utc(2026, 3, 9, 10, 0), utc(2026, 3, 10, 10, 0))


def test_pago_pago_end_of_day_windows() -> None:
    zone = "Pacific/Pago_Pago"
    day = date(2026, 3, 10)
    # "23:59 style": the day up to its last minute.
    assert window(day, "00:00", "23:59", zone) == (
        utc(2026, 3, 10, 11, 0),
        utc(2026, 3, 11, 10, 59),
    )
    # An explicit end of midnight, written 00:00 or 24:00, ends at the end of the day.
    evening = (utc(2026, 3, 11, 5, 0), utc(2026, 3, 11, 11, 0))
    assert window(day, "18:00", "00:00", zone) == evening
    assert window(day, "18:00", "24:00", zone) == evening
    last_minute = local_window(day, time(23, 59), time(0), zone)
    assert last_minute.duration == timedelta(minutes=1)
    assert str(utc_to_local(utc(2026, 3, 11, 10, 59), zone)) == "2026-03-10 23:59 SST"


# --- The interval and the inputs -----------------------------------------------------------


def test_intervals_are_half_open() -> None:
    w = local_window(date(2026, 1, 5), time(9), time(10), BERLIN)
    assert w.start in w and w.end not in w
    assert w.end - timedelta(microseconds=1) in w
    # Any offset is accepted for the instant tested.
    assert datetime(2026, 1, 5, 9, 30, tzinfo=ZoneInfo(BERLIN)) in w
    assert datetime(2026, 1, 5, 10, 0, tzinfo=ZoneInfo(BERLIN)) not in w


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        local_to_utc(date(2026, 1, 1), time(9), "Mars/Olympus")
    with pytest.raises(ValueError, match="without a time zone"):
        local_to_utc(date(2026, 1, 1), time(9, tzinfo=UTC), BERLIN)
    with pytest.raises(ValueError, match="no offset"):
        utc_to_local(datetime(2026, 1, 1, 9), BERLIN)
    with pytest.raises(ValueError, match="before it starts"):
        UtcInterval(utc(2026, 1, 2), utc(2026, 1, 1), date(2026, 1, 1), BERLIN)
    for text in ("7:30", "25:00", "12:60", "24:01", "noon"):
        with pytest.raises(ValueError):
            parse_clock_time(text, end=True)
    with pytest.raises(ValueError, match="end of day"):
        parse_clock_time("24:00")
    assert parse_clock_time(" 08:05 ") == time(8, 5)
