"""Visit invitations (.ics): read back with icalendar, as a calendar app would, and checked
line by line against RFC 5545's framing rules (CRLF, lines folded at 75 octets)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event

from dct_platform.visits.calendar import PRODID, CalendarVisit, invitation

NOW = datetime(2026, 2, 20, 8, 15, tzinfo=UTC)
UID = "booking-42@dct.example.org"


def visit(**changes: object) -> CalendarVisit:
    base = CalendarVisit(
        uid=UID,
        sequence=0,
        title="Week 4 video visit — ACME-301",
        description="Join from the link in your patient portal 5 minutes early.",
        starts_at=datetime(2026, 3, 9, 14, 0, tzinfo=UTC),
        ends_at=datetime(2026, 3, 9, 14, 30, tzinfo=UTC),
        zone="America/New_York",
        organizer_email="site-101@dct.example.org",
        organizer_name="Site 101 study team",
        attendees=(("Ana Patient", "ana@example.org"),),
        location="Video visit",
        url="https://meet.jit.si/dct-abcdefghijklmnopqrstuvwxyz234567",
    )
    return dataclasses.replace(base, **changes)


def parse(ics: bytes) -> tuple[Calendar, Event]:
    calendar = Calendar.from_ical(ics)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


# -- time zones ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "starts_at", "local_wall_time", "utc_offset"),
    [
        # The Monday after the US switch to summer time (2026-03-08): EDT, UTC-4.
        ("America/New_York", datetime(2026, 3, 9, 14, 0, tzinfo=UTC), "20260309T100000", -4),
        # The Friday before it: still EST, UTC-5.
        ("America/New_York", datetime(2026, 3, 6, 14, 0, tzinfo=UTC), "20260306T090000", -5),
        # Half-hour offset, no daylight saving.
        ("Asia/Kolkata", datetime(2026, 3, 9, 14, 0, tzinfo=UTC), "20260309T193000", 5.5),
        # Berlin moves on 2026-03-29, three weeks after New York.
        ("Europe/Berlin", datetime(2026, 3, 9, 14, 0, tzinfo=UTC), "20260309T150000", 1),
        ("Europe/Berlin", datetime(2026, 3, 30, 14, 0, tzinfo=UTC), "20260330T160000", 2),
    ],
)
def test_start_is_written_in_the_recipients_zone_and_reads_back_as_the_same_instant(
    zone: str, starts_at: datetime, local_wall_time: str, utc_offset: float
) -> None:
    ics = invitation(
        visit(zone=zone, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=30)),
        now=NOW,
    )

    assert f"DTSTART;TZID={zone}:{local_wall_time}".encode() in ics
    calendar, event = parse(ics)
    assert event["DTSTART"].params["TZID"] == zone
    assert event["DTEND"].params["TZID"] == zone
    assert event.start == starts_at
    assert event.end == starts_at + timedelta(minutes=30)
    assert event.start.utcoffset() == timedelta(hours=utc_offset)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == [zone]


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Asia/Kolkata"])
def test_the_vtimezone_alone_gives_every_wall_time_of_the_year_its_offset(zone: str) -> None:
    # An app that does not know the IANA name has only the VTIMEZONE to go by. Every hour of
    # the visit's year, and the minutes around each change, must read as zoneinfo reads them
    # (fold=0: RFC 5545's rule for a repeated hour and for a time in the spring-forward gap).
    ics = invitation(visit(zone=zone), now=NOW)
    (timezone,) = Calendar.from_ical(ics).walk("VTIMEZONE")
    from_file = timezone.to_tz(lookup_tzid=False)  # built from the file, not looked up
    real = ZoneInfo(zone)

    start = datetime(2026, 1, 1)
    wall_times = [start + timedelta(hours=h) for h in range(365 * 24)]
    wall_times += [
        datetime(2026, 3, 8, 1, 59), datetime(2026, 3, 8, 2, 30), datetime(2026, 3, 8, 3, 0),
        datetime(2026, 11, 1, 0, 59), datetime(2026, 11, 1, 1, 30), datetime(2026, 11, 1, 2, 0),
        datetime(2026, 3, 29, 1, 59), datetime(2026, 3, 29, 2, 30), datetime(2026, 3, 29, 3, 0),
        datetime(2026, 10, 25, 1, 59), datetime(2026, 10, 25, 2, 30), datetime(2026, 10, 25, 3, 0),
    ]  # fmt: skip
    wrong = [
        t
        for t in wall_times
        if t.replace(tzinfo=from_file).utcoffset() != t.replace(tzinfo=real).utcoffset()
    ]
    assert wrong == []
    # The file only covers the visit's year, not icalendar's default 1970-2038.
    assert "2026-01-01 to 2027-01-01" in str(timezone["COMMENT"])
    assert len(ics) < 2000


def test_a_visit_in_utc_is_written_in_utc_without_a_vtimezone() -> None:
    ics = invitation(visit(zone="UTC"), now=NOW)

    calendar, event = parse(ics)
    assert b"DTSTART:20260309T140000Z" in ics
    assert calendar.walk("VTIMEZONE") == []
    assert event.start == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


def test_a_visit_across_new_year_gets_a_vtimezone_covering_both_years() -> None:
    starts_at = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)  # 23:30 CET, ends 00:30 CET
    ics = invitation(
        visit(zone="Europe/Berlin", starts_at=starts_at, ends_at=starts_at + timedelta(hours=1)),
        now=NOW,
    )

    (timezone,) = Calendar.from_ical(ics).walk("VTIMEZONE")
    assert "2026-01-01 to 2028-01-01" in str(timezone["COMMENT"])
    assert b"DTEND;TZID=Europe/Berlin:20270101T003000" in ics


def test_dtstamp_is_now_in_utc() -> None:
    now_in_tokyo = NOW.astimezone(ZoneInfo("Asia/Tokyo"))

    _calendar, event = parse(invitation(visit(), now=now_in_tokyo))

    assert event.DTSTAMP == NOW
    assert event["DTSTAMP"].to_ical() == b"20260220T081500Z"


# -- identity: invite, reschedule, cancel --------------------------------------------------


def test_request_then_reschedule_then_cancel_replace_one_event() -> None:
    invite = invitation(visit(), now=NOW)
    moved = visit(
        sequence=1,
        starts_at=datetime(2026, 3, 10, 15, tzinfo=UTC),
        ends_at=datetime(2026, 3, 10, 15, 30, tzinfo=UTC),
    )
    reschedule = invitation(moved, now=NOW + timedelta(days=1))
    cancel = invitation(
        dataclasses.replace(moved, sequence=2, status="CANCELLED"),
        method="CANCEL",
        now=NOW + timedelta(days=2),
    )

    parsed = [parse(ics) for ics in (invite, reschedule, cancel)]
    assert [calendar["METHOD"] for calendar, _ in parsed] == ["REQUEST", "REQUEST", "CANCEL"]
    assert [event["UID"] for _, event in parsed] == [UID, UID, UID]
    assert [event["SEQUENCE"] for _, event in parsed] == [0, 1, 2]
    assert [event["STATUS"] for _, event in parsed] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    # RFC 5546: a CANCEL names the attendees whose calendars should drop the event.
    assert [str(a) for a in parsed[2][1].attendees] == ["mailto:ana@example.org"]


def test_cancel_is_cancelled_even_if_the_visit_still_says_confirmed() -> None:
    _calendar, event = parse(invitation(visit(sequence=3), method="CANCEL", now=NOW))

    assert event["STATUS"] == "CANCELLED"


def test_a_cancelled_visit_cannot_be_sent_as_a_request() -> None:
    with pytest.raises(ValueError, match="method='CANCEL'"):
        invitation(visit(status="CANCELLED"), now=NOW)


def test_calendar_header() -> None:
    calendar, _event = parse(invitation(visit(), method="PUBLISH", now=NOW))

    assert (calendar["PRODID"], calendar["VERSION"], calendar["METHOD"]) == (
        PRODID,
        "2.0",
        "PUBLISH",
    )
    # Reminders are the platform's own, sent in the patient's language; an alarm here would
    # duplicate them.
    assert calendar.walk("VALARM") == []


# -- people --------------------------------------------------------------------------------


def test_organizer_and_attendees_with_their_names_and_no_rsvp() -> None:
    ics = invitation(
        visit(
            attendees=(
                ("Jürgen Müller", "juergen@example.de"),
                ("山田 太郎", "taro@example.jp"),
                ("Nurse Lee, RN; Site 101", "lee@example.org"),
            )
        ),
        now=NOW,
    )

    _calendar, event = parse(ics)
    assert str(event.organizer) == "mailto:site-101@dct.example.org"
    assert event.organizer.params["CN"] == "Site 101 study team"
    assert [(a.params["CN"], str(a)) for a in event.attendees] == [
        ("Jürgen Müller", "mailto:juergen@example.de"),
        ("山田 太郎", "mailto:taro@example.jp"),
        ("Nurse Lee, RN; Site 101", "mailto:lee@example.org"),
    ]
    for attendee in event.attendees:
        # We do not process replies, so no calendar app should offer to send one.
        assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
        assert attendee.params["RSVP"] == "FALSE"


def test_publish_carries_no_attendees() -> None:
    # RFC 5546 3.2.1: "Attendees" MUST NOT be present in a PUBLISH; the file is a plain
    # "add to my calendar" download.
    _calendar, event = parse(invitation(visit(), method="PUBLISH", now=NOW))

    assert event.attendees == []
    assert str(event.organizer) == "mailto:site-101@dct.example.org"


def test_a_line_break_in_a_name_cannot_inject_a_property() -> None:
    ics = invitation(
        visit(attendees=(("Ana\r\nATTENDEE:mailto:eve@example.org", "ana@example.org"),)),
        now=NOW,
    )

    _calendar, event = parse(ics)
    assert [str(a) for a in event.attendees] == ["mailto:ana@example.org"]
    assert event.attendees[0].params["CN"] == "Ana ATTENDEE:mailto:eve@example.org"


@pytest.mark.parametrize(
    "email", ["ana@example.org\r\nATTENDEE:mailto:eve@example.org", "no-at-sign", "a b@x.org"]
)
def test_an_unusable_email_address_is_refused(email: str) -> None:
    with pytest.raises(ValueError, match="email address"):
        invitation(visit(attendees=(("Ana", email),)), now=NOW)


# -- text ----------------------------------------------------------------------------------


def test_text_with_commas_semicolons_newlines_and_non_ascii_round_trips() -> None:
    description = (
        "Dear Mr. Müller,\n"
        "your visit; week 4, day 2.\n"
        "ビデオ診察の5分前にポータルのリンクから参加してください。\n"
        "Backslash \\ stays a backslash."
    )
    title = "Woche 4 — Videovisite; ACME-301, Zentrum Köln"
    location = "Video visit, 東京"

    ics = invitation(visit(title=title, description=description, location=location), now=NOW)

    _calendar, event = parse(ics)
    assert event["SUMMARY"] == title
    assert event["DESCRIPTION"] == description
    assert event["LOCATION"] == location
    assert event["URL"] == "https://meet.jit.si/dct-abcdefghijklmnopqrstuvwxyz234567"


def test_windows_line_endings_and_control_characters_in_text_are_normalised() -> None:
    _calendar, event = parse(
        invitation(visit(description="Line one\r\nLine two\rLine three\x07\x00"), now=NOW)
    )

    assert event["DESCRIPTION"] == "Line one\nLine two\nLine three"


def test_no_location_or_url_when_none_is_given() -> None:
    _calendar, event = parse(invitation(visit(location="", url=None), now=NOW))

    assert "LOCATION" not in event
    assert "URL" not in event


# -- RFC 5545 framing ----------------------------------------------------------------------


def test_lines_end_in_crlf_and_are_folded_at_75_octets() -> None:
    long_japanese = "治験の来院について。" * 40
    ics = invitation(
        visit(description=long_japanese, title="Sehr geehrte Frau Müller — " * 10), now=NOW
    )

    assert ics.endswith(b"\r\n")
    lines = ics[:-2].split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert all(len(line) <= 75 for line in lines), max(lines, key=len)
    # Folding never splits a UTF-8 character across lines.
    for line in lines:
        line.decode("utf-8")
    assert sum(line.startswith(b" ") for line in lines) > 10
    assert lines[0] == b"BEGIN:VCALENDAR"
    assert lines[-1] == b"END:VCALENDAR"
    _calendar, event = parse(ics)
    assert event["DESCRIPTION"] == long_japanese


def test_vtimezone_comes_before_the_event_that_uses_it() -> None:
    ics = invitation(visit(), now=NOW)

    assert ics.index(b"BEGIN:VTIMEZONE") < ics.index(b"BEGIN:VEVENT")


# -- refused input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"zone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"zone": "localtime"}, "unknown time zone"),
        ({"starts_at": datetime(2026, 3, 9, 14)}, "timezone-aware"),
        ({"ends_at": datetime(2026, 3, 9, 13, tzinfo=UTC)}, "end after it starts"),
        ({"sequence": -1}, "negative"),
        ({"uid": ""}, "uid"),
        ({"uid": "booking-42\r\nSTATUS:CANCELLED"}, "uid"),
        ({"attendees": ()}, "at least one attendee"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://meet.example.org/a\r\nX:1"}, "url"),
    ],
)
def test_input_a_calendar_app_would_misread_is_refused(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        invitation(visit(**changes), now=NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        invitation(visit(), now=datetime(2026, 2, 20, 8, 15))
