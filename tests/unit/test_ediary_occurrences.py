"""eDiary schedule occurrences: windows in the patient's zone across daylight-saving changes,
zone moves east and west, late entries, and the schedule kinds.

2026's changes: America/New_York springs forward on 8 March (02:00 EST -> 03:00 EDT) and
falls back on 1 November (02:00 EDT -> 01:00 EST); Europe/Berlin springs forward on
29 March (02:00 CET -> 03:00 CEST) and falls back on 25 October (03:00 CEST -> 02:00 CET).
In June, Berlin is UTC+2, Los Angeles UTC-7 and Tokyo UTC+9.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

import pytest

from dct_platform.localtime import local_window, parse_clock_time, utc_to_local
from devices.ediary.occurrences import (
    Daily,
    EveryNDays,
    Occurrence,
    Once,
    ProtocolDays,
    Rule,
    ZonePeriod,
    occurrences,
    state_at,
    submission_verdict,
)

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"
LOS_ANGELES = "America/Los_Angeles"
TOKYO = "Asia/Tokyo"

# The evening window, 18:00-23:59.
SIX_PM, LAST_MINUTE = time(18), time(23, 59)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def lives_in(zone: str) -> list[ZonePeriod]:
    return [ZonePeriod(utc(2020, 1, 1), None, zone)]


def moves(old: str, new: str, at: datetime) -> list[ZonePeriod]:
    return [ZonePeriod(utc(2020, 1, 1), at, old), ZonePeriod(at, None, new)]


def all_of(rule: Rule, zones: list[ZonePeriod], baseline: date | None = None) -> list[Occurrence]:
    return occurrences(rule, zones, baseline=baseline, start=utc(2020, 1, 1), end=utc(2030, 1, 1))


def windows(occs: list[Occurrence]) -> list[tuple[str, datetime, datetime]]:
    return [(o.key, o.opens_at, o.closes_at) for o in occs]


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# --- Daylight-saving changes ---------------------------------------------------------------


def test_new_york_evening_window_stays_at_18_00_across_spring_forward() -> None:
    rule = Daily(
        first_date=date(2026, 3, 6), last_date=date(2026, 3, 9), start=SIX_PM, end=LAST_MINUTE
    )
    occs = all_of(rule, lives_in(NEW_YORK))
    assert windows(occs) == [
        ("2026-03-06", utc(2026, 3, 6, 23, 0), utc(2026, 3, 7, 4, 59)),
        ("2026-03-07", utc(2026, 3, 7, 23, 0), utc(2026, 3, 8, 4, 59)),
        ("2026-03-08", utc(2026, 3, 8, 22, 0), utc(2026, 3, 9, 3, 59)),
        ("2026-03-09", utc(2026, 3, 9, 22, 0), utc(2026, 3, 10, 3, 59)),
    ]
    for occ in occs:
        opens = utc_to_local(occ.opens_at, NEW_YORK)
        assert (opens.date, opens.time) == (occ.local_date, time(18))
        assert occ.zone == NEW_YORK
        assert occ.late_until == occ.closes_at and occ.remind_at is None


def test_new_york_evening_window_stays_at_18_00_across_fall_back() -> None:
    rule = Daily(
        first_date=date(2026, 10, 30), last_date=date(2026, 11, 2), start=SIX_PM, end=LAST_MINUTE
    )
    assert windows(all_of(rule, lives_in(NEW_YORK))) == [
        ("2026-10-30", utc(2026, 10, 30, 22, 0), utc(2026, 10, 31, 3, 59)),
        ("2026-10-31", utc(2026, 10, 31, 22, 0), utc(2026, 11, 1, 3, 59)),
        ("2026-11-01", utc(2026, 11, 1, 23, 0), utc(2026, 11, 2, 4, 59)),
        ("2026-11-02", utc(2026, 11, 2, 23, 0), utc(2026, 11, 3, 4, 59)),
    ]


def test_berlin_evening_window_across_both_changes() -> None:
    spring = Daily(
        first_date=date(2026, 3, 28), last_date=date(2026, 3, 30), start=SIX_PM, end=LAST_MINUTE
    )
    assert [o.opens_at for o in all_of(spring, lives_in(BERLIN))] == [
        utc(2026, 3, 28, 17, 0),
        utc(2026, 3, 29, 16, 0),
        utc(2026, 3, 30, 16, 0),
    ]
    autumn = Daily(
        first_date=date(2026, 10, 24), last_date=date(2026, 10, 26), start=SIX_PM, end=LAST_MINUTE
    )
    assert [o.opens_at for o in all_of(autumn, lives_in(BERLIN))] == [
        utc(2026, 10, 24, 16, 0),
        utc(2026, 10, 25, 17, 0),
        utc(2026, 10, 26, 17, 0),
    ]


def test_berlin_window_in_the_spring_forward_gap_is_empty_but_keeps_its_key() -> None:
    rule = Daily(
        first_date=date(2026, 3, 28),
        last_date=date(2026, 3, 30),
        start=time(2),
        end=time(3),
        remind_before_close=timedelta(minutes=30),
    )
    occs = all_of(rule, lives_in(BERLIN))
    assert windows(occs) == [
        ("2026-03-28", utc(2026, 3, 28, 1, 0), utc(2026, 3, 28, 2, 0)),
        # 02:00-03:00 does not exist that day: both ends read as 03:00 CEST.
        ("2026-03-29", utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 0)),
        ("2026-03-30", utc(2026, 3, 30, 0, 0), utc(2026, 3, 30, 1, 0)),
    ]
    empty = occs[1]
    assert empty.is_empty and not occs[0].is_empty
    assert empty.remind_at is None
    assert occs[0].remind_at == utc(2026, 3, 28, 1, 30)
    assert submission_verdict(empty, utc(2026, 3, 29, 1, 0)) == "refused"
    # A window reaching past the gap keeps what is left of it.
    longer = Daily(
        first_date=date(2026, 3, 29), last_date=date(2026, 3, 29), start=time(2), end=time(4)
    )
    assert windows(all_of(longer, lives_in(BERLIN))) == [
        ("2026-03-29", utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0))
    ]


def test_berlin_window_in_the_repeated_hour_starts_at_its_first_occurrence() -> None:
    rule = Daily(
        first_date=date(2026, 10, 24), last_date=date(2026, 10, 26), start=time(2), end=time(3)
    )
    assert windows(all_of(rule, lives_in(BERLIN))) == [
        ("2026-10-24", utc(2026, 10, 24, 0, 0), utc(2026, 10, 24, 1, 0)),
        # 02:00 CEST (the first 02:00) to 03:00 CET: two hours on the change day.
        ("2026-10-25", utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0)),
        ("2026-10-26", utc(2026, 10, 26, 1, 0), utc(2026, 10, 26, 2, 0)),
    ]


# --- Moving ----------------------------------------------------------------------------------

JUNE = Daily(
    first_date=date(2026, 6, 1), last_date=date(2026, 6, 10), start=SIX_PM, end=LAST_MINUTE
)
JUNE_DATES = days(date(2026, 6, 1), date(2026, 6, 10))


def berlin_window(day: int) -> tuple[str, datetime, datetime]:
    return (f"2026-06-{day:02d}", utc(2026, 6, day, 16, 0), utc(2026, 6, day, 21, 59))


def los_angeles_window(day: int) -> tuple[str, datetime, datetime]:
    return (f"2026-06-{day:02d}", utc(2026, 6, day + 1, 1, 0), utc(2026, 6, day + 1, 6, 59))


def tokyo_window(day: int) -> tuple[str, datetime, datetime]:
    return (f"2026-06-{day:02d}", utc(2026, 6, day, 9, 0), utc(2026, 6, day, 14, 59))


def zones_of(occs: list[Occurrence]) -> list[str]:
    return [o.zone for o in occs]


def test_move_west_while_the_old_window_is_open_keeps_it_and_does_not_double_the_date() -> None:
    # 20:00 in Berlin (its 5 June window is open), 11:00 in Los Angeles: 18:00 on 5 June is
    # still to come there, but the date is Berlin's.
    move = utc(2026, 6, 5, 18, 0)
    occs = all_of(JUNE, moves(BERLIN, LOS_ANGELES, move))
    assert windows(occs) == [berlin_window(d) for d in range(1, 6)] + [
        los_angeles_window(d) for d in range(6, 11)
    ]
    assert zones_of(occs) == [BERLIN] * 5 + [LOS_ANGELES] * 5
    assert [o.local_date for o in occs] == JUNE_DATES
    # The Berlin window that opened before the move closes after it, in Berlin time.
    assert occs[4].opens_at < move < occs[4].closes_at


def test_move_west_before_the_old_window_opens_gives_the_date_to_the_new_zone() -> None:
    move = utc(2026, 6, 5, 10, 0)  # 12:00 in Berlin, 03:00 in Los Angeles
    occs = all_of(JUNE, moves(BERLIN, LOS_ANGELES, move))
    assert windows(occs) == [berlin_window(d) for d in range(1, 5)] + [
        los_angeles_window(d) for d in range(5, 11)
    ]
    assert [o.local_date for o in occs] == JUNE_DATES


def test_move_east_across_the_date_line_before_the_new_window_opens() -> None:
    move = utc(2026, 6, 5, 8, 0)  # 01:00 on 5 June in Los Angeles, 17:00 on 5 June in Tokyo
    occs = all_of(JUNE, moves(LOS_ANGELES, TOKYO, move))
    assert windows(occs) == [los_angeles_window(d) for d in range(1, 5)] + [
        tokyo_window(d) for d in range(5, 11)
    ]
    assert zones_of(occs) == [LOS_ANGELES] * 4 + [TOKYO] * 6
    assert [o.local_date for o in occs] == JUNE_DATES


def test_move_east_during_the_old_window_keeps_it() -> None:
    move = utc(2026, 6, 5, 2, 0)  # 19:00 on 4 June in Los Angeles, 11:00 on 5 June in Tokyo
    occs = all_of(JUNE, moves(LOS_ANGELES, TOKYO, move))
    assert windows(occs) == [los_angeles_window(d) for d in range(1, 5)] + [
        tokyo_window(d) for d in range(5, 11)
    ]
    assert occs[3].zone == LOS_ANGELES and occs[3].opens_at < move < occs[3].closes_at


def test_move_east_into_an_open_window_takes_it_in_the_new_zone() -> None:
    # 05:00 on 5 June in Los Angeles (that day's 18:00 still to come), 21:00 on 5 June in
    # Tokyo, where the window has been open since 18:00: the patient arrives into it.
    move = utc(2026, 6, 5, 12, 0)
    occs = all_of(JUNE, moves(LOS_ANGELES, TOKYO, move))
    assert windows(occs) == [los_angeles_window(d) for d in range(1, 5)] + [
        tokyo_window(d) for d in range(5, 11)
    ]
    assert [o.local_date for o in occs] == JUNE_DATES
    arrived_into = occs[4]
    assert arrived_into.zone == TOKYO and arrived_into.opens_at < move < arrived_into.closes_at
    assert state_at(arrived_into, move, submitted=False) == "open"


def test_move_east_jumping_over_a_whole_window_gives_that_date_no_occurrence() -> None:
    # 09:00 on 5 June in Los Angeles, 01:00 on 6 June in Tokyo: the patient's clock went
    # from before 18:00 on 5 June to after 23:59 on 5 June, so 5 June's window never
    # happened to them, in either zone. The documented rule: no occurrence for it.
    move = utc(2026, 6, 5, 16, 0)
    assert str(utc_to_local(move, LOS_ANGELES)) == "2026-06-05 09:00 PDT"
    assert str(utc_to_local(move, TOKYO)) == "2026-06-06 01:00 JST"
    occs = all_of(JUNE, moves(LOS_ANGELES, TOKYO, move))
    assert windows(occs) == [los_angeles_window(d) for d in range(1, 5)] + [
        tokyo_window(d) for d in range(6, 11)
    ]
    assert "2026-06-05" not in {o.key for o in occs}
    skipped_tokyo, skipped_los_angeles = tokyo_window(5), los_angeles_window(5)
    assert skipped_tokyo[2] <= move <= skipped_los_angeles[1]


def test_move_back_west_across_the_date_line_does_not_double_the_date() -> None:
    # 19:00 on 5 June in Tokyo (window open), 03:00 on 5 June in Los Angeles: 5 June's
    # 18:00 will come round again in Los Angeles; the date stays Tokyo's.
    move = utc(2026, 6, 5, 10, 0)
    occs = all_of(JUNE, moves(TOKYO, LOS_ANGELES, move))
    assert windows(occs) == [tokyo_window(d) for d in range(1, 6)] + [
        los_angeles_window(d) for d in range(6, 11)
    ]
    assert [o.local_date for o in occs] == JUNE_DATES


def test_a_round_trip_with_a_short_stay() -> None:
    # Berlin -> Tokyo for two days -> Berlin.
    there, back = utc(2026, 6, 3, 6, 0), utc(2026, 6, 5, 6, 0)
    zones = [
        ZonePeriod(utc(2020, 1, 1), there, BERLIN),
        ZonePeriod(there, back, TOKYO),
        ZonePeriod(back, None, BERLIN),
    ]
    occs = all_of(JUNE, zones)
    assert windows(occs) == (
        [berlin_window(d) for d in (1, 2)]
        + [tokyo_window(d) for d in (3, 4)]
        + [berlin_window(d) for d in range(5, 11)]
    )


def test_no_zone_no_occurrence_and_a_window_open_when_a_period_begins() -> None:
    # Nothing recorded before 4 June 18:00 UTC: 1-3 June have no zone. Berlin's 4 June window
    # [16:00, 21:59) is open when the period begins, so it is the period's.
    zones = [ZonePeriod(utc(2026, 6, 4, 18, 0), None, BERLIN)]
    assert windows(all_of(JUNE, zones)) == [berlin_window(d) for d in range(4, 11)]
    assert all_of(JUNE, []) == []


# --- Late entries, reminders, states ---------------------------------------------------------


def until_midnight(late: timedelta = timedelta(0)) -> Once:
    return Once(
        on=date(2026, 6, 10),
        start=time(18),
        end=parse_clock_time("24:00", end=True),
        late_allowed=late,
        remind_before_close=timedelta(hours=1),
    )


def test_submission_at_the_last_second_is_on_time_and_at_midnight_refused_or_late() -> None:
    local = ZoneInfo(NEW_YORK)
    last_second = datetime(2026, 6, 10, 23, 59, 59, tzinfo=local)
    midnight = datetime(2026, 6, 11, 0, 0, tzinfo=local)
    assert last_second == utc(2026, 6, 11, 3, 59, 59) and midnight == utc(2026, 6, 11, 4, 0)

    (strict,) = all_of(until_midnight(), lives_in(NEW_YORK))
    assert (strict.opens_at, strict.closes_at) == (utc(2026, 6, 10, 22, 0), utc(2026, 6, 11, 4, 0))
    assert strict.late_until == strict.closes_at
    assert submission_verdict(strict, utc(2026, 6, 10, 22, 0)) == "on_time"
    assert submission_verdict(strict, utc(2026, 6, 10, 21, 59, 59)) == "refused"
    assert submission_verdict(strict, last_second) == "on_time"
    assert submission_verdict(strict, midnight) == "refused"

    (lenient,) = all_of(until_midnight(timedelta(hours=2)), lives_in(NEW_YORK))
    assert lenient.late_until == utc(2026, 6, 11, 6, 0)
    assert submission_verdict(lenient, last_second) == "on_time"
    assert submission_verdict(lenient, midnight) == "late"
    assert submission_verdict(lenient, utc(2026, 6, 11, 5, 59, 59)) == "late"
    assert submission_verdict(lenient, utc(2026, 6, 11, 6, 0)) == "refused"


def test_an_end_of_23_59_closes_at_23_59_00() -> None:
    (occ,) = all_of(Once(on=date(2026, 6, 10), start=SIX_PM, end=LAST_MINUTE), lives_in(NEW_YORK))
    assert occ.closes_at == utc(2026, 6, 11, 3, 59)
    assert submission_verdict(occ, utc(2026, 6, 11, 3, 58, 59)) == "on_time"
    assert submission_verdict(occ, utc(2026, 6, 11, 3, 59, 30)) == "refused"


def test_states_through_the_window() -> None:
    (strict,) = all_of(until_midnight(), lives_in(NEW_YORK))
    (lenient,) = all_of(until_midnight(timedelta(hours=2)), lives_in(NEW_YORK))
    opens, closes = utc(2026, 6, 10, 22, 0), utc(2026, 6, 11, 4, 0)
    assert state_at(lenient, opens - timedelta(seconds=1), submitted=False) == "upcoming"
    assert state_at(lenient, opens, submitted=False) == "open"
    assert state_at(lenient, closes, submitted=False) == "late_window"
    assert state_at(lenient, utc(2026, 6, 11, 6, 0), submitted=False) == "missed"
    assert state_at(lenient, utc(2026, 6, 11, 5, 0), submitted=True) == "done"
    assert state_at(strict, closes - timedelta(microseconds=1), submitted=False) == "open"
    assert state_at(strict, closes, submitted=False) == "missed"
    with pytest.raises(ValueError, match="no offset"):
        state_at(strict, datetime(2026, 6, 11), submitted=False)


def test_reminder_before_close_never_before_opening() -> None:
    (occ,) = all_of(until_midnight(), lives_in(NEW_YORK))
    assert occ.remind_at == utc(2026, 6, 11, 3, 0)
    early = Once(
        on=date(2026, 6, 10), start=time(18), end=time(19), remind_before_close=timedelta(hours=3)
    )
    (occ,) = all_of(early, lives_in(NEW_YORK))
    assert occ.remind_at == occ.opens_at == utc(2026, 6, 10, 22, 0)


# --- Schedule kinds --------------------------------------------------------------------------


def test_every_n_days_across_the_berlin_spring_change() -> None:
    rule = EveryNDays(
        first_date=date(2026, 3, 23),
        last_date=date(2026, 4, 5),
        every_n=3,
        start=time(8),
        end=time(10),
    )
    assert windows(all_of(rule, lives_in(BERLIN))) == [
        ("2026-03-23", utc(2026, 3, 23, 7, 0), utc(2026, 3, 23, 9, 0)),
        ("2026-03-26", utc(2026, 3, 26, 7, 0), utc(2026, 3, 26, 9, 0)),
        ("2026-03-29", utc(2026, 3, 29, 6, 0), utc(2026, 3, 29, 8, 0)),
        ("2026-04-01", utc(2026, 4, 1, 6, 0), utc(2026, 4, 1, 8, 0)),
        ("2026-04-04", utc(2026, 4, 4, 6, 0), utc(2026, 4, 4, 8, 0)),
    ]
    some = occurrences(
        rule, lives_in(BERLIN), baseline=None, start=utc(2026, 3, 25), end=utc(2026, 4, 2)
    )
    assert [o.key for o in some] == ["2026-03-26", "2026-03-29", "2026-04-01"]


def test_protocol_days_from_the_baseline() -> None:
    rule = ProtocolDays(study_days=(29, 1, 15, 8, 8), start=time(8), end=time(20))
    assert rule.study_days == (1, 8, 15, 29)
    occs = all_of(rule, lives_in(BERLIN), baseline=date(2026, 3, 2))
    assert windows(occs) == [
        ("day-1", utc(2026, 3, 2, 7, 0), utc(2026, 3, 2, 19, 0)),
        ("day-8", utc(2026, 3, 9, 7, 0), utc(2026, 3, 9, 19, 0)),
        ("day-15", utc(2026, 3, 16, 7, 0), utc(2026, 3, 16, 19, 0)),
        ("day-29", utc(2026, 3, 30, 6, 0), utc(2026, 3, 30, 18, 0)),
    ]
    assert [o.local_date for o in occs] == [
        date(2026, 3, 2),
        date(2026, 3, 9),
        date(2026, 3, 16),
        date(2026, 3, 30),
    ]


def test_protocol_days_with_a_window_of_plus_minus_two_days() -> None:
    rule = ProtocolDays(study_days=(1, 8, 29), window_days=2, start=time(8), end=time(20))
    occs = all_of(rule, lives_in(BERLIN), baseline=date(2026, 3, 2))
    assert windows(occs) == [
        ("day-1", utc(2026, 2, 28, 7, 0), utc(2026, 3, 4, 19, 0)),
        ("day-8", utc(2026, 3, 7, 7, 0), utc(2026, 3, 11, 19, 0)),
        # Opens 28 March 08:00 CET, closes 1 April 20:00 CEST.
        ("day-29", utc(2026, 3, 28, 7, 0), utc(2026, 4, 1, 18, 0)),
    ]
    assert occs[2].local_date == date(2026, 3, 30)


def test_protocol_days_without_a_baseline_have_no_occurrences() -> None:
    rule = ProtocolDays(study_days=(1, 8), start=time(8), end=time(20))
    assert all_of(rule, lives_in(BERLIN), baseline=None) == []
    with pytest.raises(ValueError, match="day 1"):
        ProtocolDays(study_days=(0, 8), start=time(8), end=time(20))
    with pytest.raises(ValueError, match="at least one"):
        ProtocolDays(study_days=(), start=time(8), end=time(20))


def test_once_and_the_half_open_range() -> None:
    rule = Once(on=date(2026, 7, 4), start=time(9), end=time(17))
    opens, closes = utc(2026, 7, 4, 13, 0), utc(2026, 7, 4, 21, 0)
    assert windows(all_of(rule, lives_in(NEW_YORK))) == [("2026-07-04", opens, closes)]

    def between(start: datetime, end: datetime) -> list[str]:
        return [
            o.key
            for o in occurrences(rule, lives_in(NEW_YORK), baseline=None, start=start, end=end)
        ]

    assert between(utc(2026, 7, 1), opens) == []
    assert between(closes, utc(2026, 7, 10)) == []
    assert between(opens, opens + timedelta(seconds=1)) == ["2026-07-04"]
    assert between(closes - timedelta(seconds=1), closes) == ["2026-07-04"]
    assert between(opens, opens) == []


def test_overnight_window_is_keyed_by_the_date_it_starts_on() -> None:
    rule = Daily(
        first_date=date(2026, 3, 6), last_date=date(2026, 3, 8), start=time(22), end=time(2)
    )
    occs = all_of(rule, lives_in(NEW_YORK))
    assert windows(occs) == [
        ("2026-03-06", utc(2026, 3, 7, 3, 0), utc(2026, 3, 7, 7, 0)),
        # Ends at 02:00 on 8 March, inside the gap: read as 03:00 EDT, 4 hours as written.
        ("2026-03-07", utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 7, 0)),
        ("2026-03-08", utc(2026, 3, 9, 2, 0), utc(2026, 3, 9, 6, 0)),
    ]
    assert [o.local_date for o in occs] == days(date(2026, 3, 6), date(2026, 3, 8))


def test_open_ended_daily_from_long_ago_gives_only_the_range_asked() -> None:
    rule = Daily(first_date=date(2021, 1, 1), start=SIX_PM, end=LAST_MINUTE)
    occs = occurrences(
        rule, lives_in(BERLIN), baseline=None, start=utc(2026, 6, 1), end=utc(2026, 6, 8)
    )
    # 31 May's window [16:00, 21:59) UTC ended before the range; 7 June's opens in it.
    assert [o.key for o in occs] == [
        d.isoformat() for d in days(date(2026, 6, 1), date(2026, 6, 7))
    ]


def test_bad_inputs_are_refused() -> None:
    rule = Daily(first_date=date(2026, 6, 1), start=SIX_PM, end=LAST_MINUTE)
    with pytest.raises(ValueError, match="overlap"):
        occurrences(
            rule,
            [ZonePeriod(utc(2026, 1, 1), None, BERLIN), ZonePeriod(utc(2026, 3, 1), None, TOKYO)],
            baseline=None,
            start=utc(2026, 6, 1),
            end=utc(2026, 6, 2),
        )
    with pytest.raises(ValueError, match="no offset"):
        occurrences(
            rule, lives_in(BERLIN), baseline=None, start=datetime(2026, 6, 1), end=utc(2026, 6, 2)
        )
    with pytest.raises(ValueError, match="before it starts"):
        occurrences(
            rule, lives_in(BERLIN), baseline=None, start=utc(2026, 6, 2), end=utc(2026, 6, 1)
        )
    with pytest.raises(ValueError, match="unknown time zone"):
        all_of(rule, lives_in("Mars/Olympus"))
    with pytest.raises(ValueError, match="ends before it starts"):
        ZonePeriod(utc(2026, 2, 1), utc(2026, 1, 1), BERLIN)
    with pytest.raises(ValueError, match="before it starts"):
        Daily(
            first_date=date(2026, 6, 2), last_date=date(2026, 6, 1), start=SIX_PM, end=LAST_MINUTE
        )
    with pytest.raises(ValueError, match="every_n"):
        EveryNDays(first_date=date(2026, 6, 1), every_n=0, start=SIX_PM, end=LAST_MINUTE)
    with pytest.raises(ValueError, match="negative"):
        Daily(
            first_date=date(2026, 6, 1),
            late_allowed=timedelta(minutes=-1),
            start=SIX_PM,
            end=LAST_MINUTE,
        )
    with pytest.raises(ValueError, match="local clock time"):
        Once(on=date(2026, 6, 1), start=time(18, tzinfo=UTC), end=time(20))


# --- Properties over many zones ----------------------------------------------------------------

# Zones with unusual changes: at midnight, of 30 minutes, south of the equator, none at all.
NOTABLE = [
    NEW_YORK,
    BERLIN,
    LOS_ANGELES,
    TOKYO,
    "America/Santiago",
    "America/Asuncion",
    "America/Havana",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Asia/Tehran",
    "UTC",
]
WINDOWS = [
    ("18:00", "23:59"),
    ("02:00", "03:00"),
    ("01:30", "02:30"),
    ("00:30", "01:00"),
    ("22:00", "02:00"),
    ("23:00", "01:00"),
    ("00:00", "00:00"),
    ("12:00", "12:00"),
]


def sample_zones() -> list[str]:
    names = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))
    return sorted(set(NOTABLE) | set(random.Random(2026).sample(names, 60)))


def change_days(zone: str, year: int) -> list[date]:
    """The local dates on which the zone's noon offset differs from the day before's."""
    tz = ZoneInfo(zone)
    found, previous = [], datetime(year, 1, 1, 12, tzinfo=tz).utcoffset()
    for day in days(date(year, 1, 2), date(year, 12, 31)):
        offset = datetime.combine(day, time(12), tzinfo=tz).utcoffset()
        if offset != previous:
            found.append(day)
        previous = offset
    return found or [date(year, 6, 15)]


def test_windows_never_overlap_and_keys_are_unique_around_changes() -> None:
    checked = 0
    for zone in sample_zones():
        for change in change_days(zone, 2026):
            first, last = change - timedelta(days=3), change + timedelta(days=3)
            for start_text, end_text in WINDOWS:
                start, end = parse_clock_time(start_text), parse_clock_time(end_text, end=True)
                rule = Daily(first_date=first, last_date=last, start=start, end=end)
                occs = all_of(rule, lives_in(zone))
                assert [o.local_date for o in occs] == days(first, last), (zone, start_text)
                assert len({o.key for o in occs}) == len(occs)
                for occ in occs:
                    w = local_window(occ.local_date, start, end, zone)
                    assert (occ.opens_at, occ.closes_at) == (w.start, w.end)
                    assert occ.opens_at < occ.closes_at or (occ.is_empty and w.is_empty)
                    assert occ.opens_at.utcoffset() == timedelta(0)
                for before, after in pairwise(occs):
                    assert before.closes_at <= after.opens_at, (zone, change, start_text)
                checked += len(occs)
    assert checked > 5000


def test_moves_between_random_zones_never_double_and_skip_only_jumped_windows() -> None:
    rng = random.Random(29)
    zones = sample_zones()
    first, last = date(2026, 3, 20), date(2026, 4, 5)
    for _ in range(400):
        old, new = rng.sample(zones, 2)
        start_text, end_text = rng.choice(WINDOWS[:4])
        start, end = parse_clock_time(start_text), parse_clock_time(end_text, end=True)
        rule = Daily(first_date=first, last_date=last, start=start, end=end)
        move = utc(2026, 3, 24) + timedelta(minutes=rng.randrange(0, 10 * 24 * 60))
        occs = all_of(rule, moves(old, new, move))
        case = (old, new, move, start_text)
        keys = [o.key for o in occs]
        assert len(set(keys)) == len(keys), case
        assert [o.opens_at for o in occs] == sorted(o.opens_at for o in occs), case
        got = {o.local_date: o for o in occs}
        # The old zone keeps exactly the dates whose window opened before the move.
        kept = [d for d in days(first, last) if local_window(d, start, end, old).start < move]
        assert [o.local_date for o in occs if o.zone == old] == kept, case
        for day in days(first, last):
            in_old, in_new = (local_window(day, start, end, z) for z in (old, new))
            occ = got.get(day)
            if occ is None:
                # Only a window the move jumped over: over in the new zone, not yet open in
                # the old one.
                assert in_new.end <= move <= in_old.start, case
            elif occ.zone == new:
                assert in_old.start >= move, case
                assert in_new.end > move or (in_new.is_empty and in_new.start >= move), case
                assert (occ.opens_at, occ.closes_at) == (in_new.start, in_new.end), case
