from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy.dialects import postgresql, sqlite

from dct_platform.timeutil import (
    NaiveDatetimeError,
    UTCDateTime,
    format_local,
    is_valid_timezone,
    set_clock,
    utcnow,
)
from tests.support.clock import TestClock


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(NaiveDatetimeError):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1, 12, 0), postgresql.dialect())


def test_offsets_are_normalised_to_utc() -> None:
    from zoneinfo import ZoneInfo

    tokyo_noon = datetime(2026, 1, 1, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    stored = UTCDateTime().process_bind_param(tokyo_noon, sqlite.dialect())
    assert stored == datetime(2026, 1, 1, 3, 0)
    assert UTCDateTime().process_result_value(stored, sqlite.dialect()) == datetime(
        2026, 1, 1, 3, 0, tzinfo=UTC
    )


def test_local_display_follows_dst() -> None:
    assert (
        format_local(datetime(2026, 3, 7, 23, 0, tzinfo=UTC), "America/New_York")
        == "2026-03-07 18:00 EST"
    )
    assert (
        format_local(datetime(2026, 3, 9, 22, 0, tzinfo=UTC), "America/New_York")
        == "2026-03-09 18:00 EDT"
    )


def test_timezone_names_are_checked() -> None:
    assert is_valid_timezone("Europe/Berlin")
    assert not is_valid_timezone("Europe/Atlantis")


def test_api_input_times_without_offset_are_refused() -> None:
    from marshmallow import Schema, ValidationError

    from dct_platform.api.schemas import InputDateTime

    class Reading(Schema):
        at = InputDateTime(required=True)

    assert Reading().load({"at": "2026-03-10T09:30:00+01:00"})["at"].utcoffset() is not None
    with pytest.raises(ValidationError):
        Reading().load({"at": "2026-03-10T09:30:00"})


def test_the_clock_is_the_systems_unless_the_app_has_its_own() -> None:
    app, other = Flask("with_clock"), Flask("without_clock")
    fixed = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    with app.app_context():
        before = datetime.now(UTC)
        assert before <= utcnow() <= datetime.now(UTC)
    set_clock(app, lambda: fixed)
    with app.app_context():
        assert utcnow() == fixed
    with other.app_context():
        assert utcnow() != fixed
    assert utcnow() != fixed  # outside an app context
    set_clock(app, None)
    with app.app_context():
        assert utcnow() != fixed


def test_the_test_clock_follows_the_system_until_frozen_and_advances_either_way() -> None:
    clock = TestClock()
    before = datetime.now(UTC)
    assert before <= clock() <= datetime.now(UTC)
    clock.advance(timedelta(days=1))
    assert clock() - datetime.now(UTC) > timedelta(hours=23)
    fixed = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    assert clock.freeze(fixed) == fixed and clock() == fixed == clock()
    assert clock.advance(timedelta(minutes=5)) == fixed + timedelta(minutes=5) == clock()
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.freeze(datetime(2026, 3, 10, 9, 30))
