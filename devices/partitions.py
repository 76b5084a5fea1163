"""Monthly partitions of the readings table on PostgreSQL (SQLite keeps one table).

Partitions are made ahead of time (`create_month_partitions`, run by the migration and by
the `devices.partitions` job): a month's partition cannot be split off the default
partition once readings of that month sit there.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa


def _month(day: date, offset: int) -> date:
    index = day.year * 12 + day.month - 1 + offset
    return date(index // 12, index % 12 + 1, 1)


def create_month_partitions(
    connection: sa.Connection, now: datetime, *, back: int = 0, ahead: int = 3
) -> list[str]:
    """Create the missing monthly partitions from `back` months before `now`'s month to
    `ahead` months after it; the names of those created."""
    if connection.dialect.name != "postgresql":
        return []
    created = []
    this_month = now.date().replace(day=1)
    for offset in range(-back, ahead + 1):
        start, end = _month(this_month, offset), _month(this_month, offset + 1)
        name = f"device_readings_{start:%Y_%m}"
        exists = connection.execute(
            sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}
        ).scalar()
        if exists:
            continue
        connection.execute(
            sa.text(
                f"CREATE TABLE {name} PARTITION OF device_readings FOR VALUES "
                f"FROM ('{start.isoformat()} 00:00+00') TO ('{end.isoformat()} 00:00+00')"
            )
        )
        created.append(name)
    return created
