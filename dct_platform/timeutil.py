"""The one time-zone rule: store UTC, show and schedule in the person's own zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import Flask, current_app, has_app_context
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
        # The common case, first: an upload binds thousands of UTC times (bench/ingest.py).
        if value.tzinfo is UTC and dialect.name != "sqlite":
            return value
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


Clock = Callable[[], datetime]
CLOCK_EXTENSION = "dct_clock"


def set_clock(app: Flask, clock: Clock | None) -> None:
    """Give `app` its own clock (tests freeze or advance time this way); None restores the
    system clock. The clock must return timezone-aware datetimes."""
    if clock is None:
        app.extensions.pop(CLOCK_EXTENSION, None)
    else:
        app.extensions[CLOCK_EXTENSION] = clock


def utcnow() -> datetime:
    """The clock. Only views, jobs and CLI commands call it; services receive `now`.

    The app's own clock when one is set and an app context is active, so that everything a
    request or job does shares one timeline; the system clock otherwise, and by default.
    """
    if has_app_context():
        clock: Clock | None = current_app.extensions.get(CLOCK_EXTENSION)
        if clock is not None:
            return clock()
    return datetime.now(UTC)


@lru_cache(maxsize=1)
def canonical_timezones() -> frozenset[str]:
    """IANA zones people live in, from the tz database's own tables, plus UTC.

    `available_timezones()` also holds `localtime` (whatever the server's clock says),
    `Factory`, and old aliases such as `US/Eastern`; none of them is a place a patient or a
    site can be, and `localtime` would silently follow the server's configuration.
    """
    zones = {"UTC"}
    for table in ("zone.tab", "zone1970.tab"):
        text = (files("tzdata.zoneinfo") / table).read_text(encoding="utf-8")
        zones.update(line.split("\t")[2] for line in text.splitlines() if line and line[0] != "#")
    return frozenset(zones & available_timezones())


def is_valid_timezone(name: str) -> bool:
    return name in canonical_timezones()


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


@lru_cache(maxsize=1)
def timezones_by_region() -> dict[str, list[tuple[str, str | None]]]:
    """Every canonical zone under its IANA region ("Europe", "America", ...; "" for UTC),
    each with the ISO country it lies in, for lists a person picks a zone from.

    The country comes from zone.tab (one per zone); zone1970.tab, which merges zones of
    several countries, is only consulted for a zone zone.tab lacks.
    """
    countries: dict[str, str] = {}
    for table in ("zone1970.tab", "zone.tab"):  # zone.tab second: its single country wins
        text = (files("tzdata.zoneinfo") / table).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line and line[0] != "#":
                codes, _coordinates, name = line.split("\t")[:3]
                countries[name] = codes.split(",")[0]
    regions: dict[str, list[tuple[str, str | None]]] = {}
    for name in sorted(canonical_timezones()):
        region = name.split("/", 1)[0] if "/" in name else ""
        regions.setdefault(region, []).append((name, countries.get(name)))
    return regions
