"""Inserting many rows at once: the one way the platform writes rows by the thousand.

A device upload writes its readings, the eDiary job a quarter-year of occurrences for
thousands of patients. The ORM's unit of work builds one object per row and a flush of
hundreds of thousands spends most of its time in Python; Core executemany sends one
statement per row. So:

* PostgreSQL: one ``INSERT ... SELECT * FROM unnest(:a, :b, ...)`` per chunk, each column
  sent as one typed array. A multi-row VALUES of 12,000 parameters took longer to build and
  parse than the database took to insert the rows (bench/ingest.py), and executemany in a
  pipeline spent 15 s on 460,000 occurrences that unnest writes in a few (bench/ediary.py).
  Past `copy_above` rows (a backfill, not an upload) the rows are COPYed into a temporary
  staging table and inserted from it in one statement: COPY moved 460,000 occurrences in
  under 2 s where unnest chunks took 6.5 s, and the staging table (dropped at commit)
  costs a few catalog writes that a small upload should not pay.
* SQLite (the embedded first-run database): Core executemany, which is its fast path.

Rows that collide with a unique key are skipped (ON CONFLICT DO NOTHING): a row that
another transaction wrote first stays as it is, and the count returned says how many this
call stored. Values go through each column's own type, so a naive datetime is refused and
an enum is stored as its value, as with any other write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from psycopg import sql
from sqlalchemy import Table, bindparam, func, select
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert


class BulkInsert:
    """Insert-if-new of many rows with the given columns into one table."""

    def __init__(
        self, table: Table, columns: Sequence[str], *, chunk: int = 5000, copy_above: int = 20_000
    ) -> None:
        self.table, self.columns, self.chunk = table, tuple(columns), chunk
        self.copy_above = copy_above
        unknown = [name for name in self.columns if name not in table.c]
        if unknown:
            raise ValueError(f"{table.name} has no column {', '.join(unknown)}")
        self._postgres: Insert | None = None
        self._sqlite: Insert | None = None

    def _postgres_statement(self) -> Insert:
        if self._postgres is None:
            unnested = (
                func.unnest(
                    *(
                        cast_(bindparam(name, type_=array), array)
                        for name, array in (
                            (name, ARRAY(self.table.c[name].type)) for name in self.columns
                        )
                    )
                )
                .table_valued(*self.columns)
                .render_derived()
            )
            self._postgres = (
                postgresql.insert(self.table)
                .from_select(list(self.columns), select(*(unnested.c[n] for n in self.columns)))
                .on_conflict_do_nothing()
                .execution_options(preserve_rowcount=True)
            )
        return self._postgres

    def _sqlite_statement(self) -> Insert:
        if self._sqlite is None:
            self._sqlite = (
                sqlite.insert(self.table)
                .on_conflict_do_nothing()
                .execution_options(preserve_rowcount=True)
            )
        return self._sqlite

    def __call__(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert the rows the table does not have yet; how many it stored."""
        stored = 0
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres and len(rows) > self.copy_above:
            return self._copy(session, rows)
        for start in range(0, len(rows), self.chunk):
            chunk = rows[start : start + self.chunk]
            if postgres:
                arrays = {name: [row[name] for row in chunk] for name in self.columns}
                result = session.execute(self._postgres_statement(), arrays)
            else:
                values = [{name: row[name] for name in self.columns} for row in chunk]
                result = session.execute(self._sqlite_statement(), values)
            stored += cast(CursorResult[Any], result).rowcount or 0
        return stored

    def _copy(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
        connection = session.connection()
        dialect = connection.dialect
        # COPY sends what the driver makes of each value: the column types' own bind
        # processing first (an enum as its stored value, a naive datetime refused).
        processors = [self.table.c[name].type.bind_processor(dialect) for name in self.columns]
        target = sql.Identifier(*filter(None, (self.table.schema, self.table.name)))
        stage = sql.Identifier(f"bulk_{self.table.name}")
        names = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        raw = connection.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(
                sql.SQL(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DROP "
                    "AS SELECT {names} FROM {target} WITH NO DATA"
                ).format(stage=stage, names=names, target=target)
            )
            cursor.execute(sql.SQL("TRUNCATE {stage}").format(stage=stage))
            copy_in = sql.SQL("COPY {stage} ({names}) FROM STDIN")
            with cursor.copy(copy_in.format(stage=stage, names=names)) as copy:
                for row in rows:
                    copy.write_row(
                        [
                            value if process is None or value is None else process(value)
                            for value, process in zip(
                                (row[name] for name in self.columns), processors, strict=True
                            )
                        ]
                    )
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {target} ({names}) SELECT {names} FROM {stage} "
                    "ON CONFLICT DO NOTHING"
                ).format(target=target, names=names, stage=stage)
            )
            return int(cursor.rowcount)
