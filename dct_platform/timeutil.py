"""The one time-zone rule: store UTC, show and schedule in the person's own zone."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class NaiveDatetimeError(ValueError):
    """A datetime without an offset cannot be stored: its instant is unknown."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamp column, always stored and returned in UTC.

    SQLite has no timestamp type and drops offsets, so values are normalised to UTC on
    the way in and tagged as UTC on the way out; naive values are refused rather than
    guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(f"naive datetime {value!r} cannot be stored; give an offset")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The clock. Only views, jobs and CLI commands call it; services receive `now`."""
    return datetime.now(UTC)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_valid_timezone(name: str) -> bool:
    return name in _zones()


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def to_local(value: datetime, tz_name: str) -> datetime:
    return value.astimezone(zone(tz_name))


def format_local(value: datetime | None, tz_name: str) -> str:
    if value is None:
        return ""
    local = to_local(value, tz_name)
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or tz_name)
