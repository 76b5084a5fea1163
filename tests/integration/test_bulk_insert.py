"""The platform's bulk insert, on both of its PostgreSQL paths (unnest chunks for an upload,
COPY through a staging table for a backfill) and on SQLite: each row stored once, values
through the columns' own types, the count of rows stored, and nothing half-written when a
value is refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from flask import Flask
from sqlalchemy import Table, func, select
from sqlalchemy.exc import StatementError

from dct_platform.bulk import BulkInsert
from dct_platform.extensions import db
from dct_platform.timeutil import NaiveDatetimeError
from devices.ediary.models import Occurrence, Outcome, Schedule
from tests.support.ediary import daily_diary
from tests.support.world import World

COLUMNS = ("schedule_id", "patient_id", "site_id", "outcome", "key", "local_date", "zone",
           "opens_at", "closes_at", "late_until", "remind_at")  # fmt: skip
START = datetime(2026, 3, 1, 17, tzinfo=UTC)


def _rows(app: Flask, world: World, days: int) -> list[dict[str, Any]]:
    daily_diary(app, world)
    with app.app_context():
        schedule = db.session.scalars(select(Schedule)).one()
        anna = world.patients["anna"]
        return [
            {
                "schedule_id": schedule.id,
                "patient_id": anna.id,
                "site_id": world.berlin.id,
                "outcome": Outcome.MISSED if day % 2 else None,
                "key": (date(2026, 3, 1) + timedelta(days=day)).isoformat(),
                "local_date": date(2026, 3, 1) + timedelta(days=day),
                "zone": "Europe/Berlin",
                "opens_at": START + timedelta(days=day),
                "closes_at": START + timedelta(days=day, hours=6),
                "late_until": START + timedelta(days=day, hours=6),
                "remind_at": None,
            }
            for day in range(days)
        ]


# copy_above=0 takes the COPY path on PostgreSQL; SQLite has one path whatever it is.
@pytest.mark.parametrize("copy_above", [0, 1_000_000], ids=["copy", "unnest"])
def test_rows_are_stored_once_with_their_types_and_counted(
    app: Flask, world: World, copy_above: int
) -> None:
    rows = _rows(app, world, 40)
    insert = BulkInsert(cast(Table, Occurrence.__table__), COLUMNS, chunk=15, copy_above=copy_above)
    with app.app_context():
        assert insert(db.session(), rows[:25]) == 25
        # A second run over an overlapping range stores only what is new.
        assert insert(db.session(), rows) == 15
        db.session.commit()
        stored = db.session.scalars(select(Occurrence).order_by(Occurrence.opens_at)).all()
        assert [o.key for o in stored] == [r["key"] for r in rows]
        assert stored[1].outcome is Outcome.MISSED and stored[0].outcome is None
        assert stored[3].opens_at == START + timedelta(days=3)
        assert stored[3].opens_at.tzinfo is not None


@pytest.mark.parametrize("copy_above", [0, 1_000_000], ids=["copy", "unnest"])
def test_a_naive_time_is_refused_and_nothing_of_the_call_is_kept(
    app: Flask, world: World, copy_above: int
) -> None:
    rows = _rows(app, world, 10)
    rows[7]["opens_at"] = rows[7]["opens_at"].replace(tzinfo=None)
    insert = BulkInsert(cast(Table, Occurrence.__table__), COLUMNS, chunk=4, copy_above=copy_above)
    with app.app_context():
        with pytest.raises((NaiveDatetimeError, StatementError), match="naive datetime"):
            insert(db.session(), rows)
        db.session.rollback()
        assert db.session.scalar(select(func.count(Occurrence.id))) == 0


def test_an_unknown_column_is_named() -> None:
    with pytest.raises(ValueError, match="no column colour"):
        BulkInsert(cast(Table, Occurrence.__table__), ("key", "colour"))
