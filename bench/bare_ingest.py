"""The bare reference for bench/ingest.py: the least a readings endpoint can do.

    python bench/bare_ingest.py --port 8001 [--workers 2]      # DATABASE_URL=postgresql://...

`POST /readings` takes the same native body as `POST /api/v1/devices/readings`
(`{"readings": [{metric, value, unit, time | start and end, id?}, ...]}`), parses it,
`INSERT ... ON CONFLICT DO NOTHING`s the rows into `bare_readings` with SQLAlchemy Core
executemany in 1,000-row chunks in one transaction, and answers how many were new. No
authentication, no validation, no holder or site look-up, no provenance record, no
activity: the columns the platform fills from those (unit, patient, site, batch,
received_at, late) get constants. The dedup key is the device's id or the platform's own
content key, so both tables hold keys of the same kind.

`bare_readings` (`create_schema`) has exactly the shape of `device_readings`: the same
columns, primary key and secondary indexes (`LIKE ... INCLUDING ALL`), and the same monthly
range partitions on effective_start with a default partition. The ratio bench/ingest.py
prints therefore measures the platform's code, not a cheaper table. Served by gunicorn with
the settings `dct serve` uses (sync workers, the same count, an access log).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, request
from sqlalchemy.dialects.postgresql import insert

TABLE = "bare_readings"
SOURCE = "device_readings"
CHUNK = 1000
DECIMALS = 6  # as devices/readings.py, so the content keys are the same

metadata = sa.MetaData()
readings = sa.Table(
    TABLE,
    metadata,
    sa.Column("unit_id", sa.Integer(), primary_key=True),
    sa.Column("dedup_key", sa.String(160), primary_key=True),
    sa.Column("effective_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("effective_end", sa.DateTime(timezone=True)),
    sa.Column("metric", sa.String(40), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("patient_id", sa.Integer(), nullable=False),
    sa.Column("site_id", sa.Integer(), nullable=False),
    sa.Column("device_reading_id", sa.String(128)),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("batch_id", sa.Integer(), nullable=False),
    sa.Column("late", sa.Boolean(), nullable=False),
)


def create_schema(connection: sa.Connection) -> list[str]:
    """(Re)create `bare_readings` as a copy of `device_readings`' shape, with a partition
    for each of its partitions (same bounds); the names of the partitions made."""
    columns = {
        name
        for (name,) in connection.execute(
            sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"),
            {"t": SOURCE},
        )
    }
    if columns != set(readings.c.keys()):
        raise RuntimeError(
            f"{SOURCE} has columns {sorted(columns)}; update {TABLE} in bench/bare_ingest.py"
        )
    connection.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
    connection.execute(
        sa.text(
            f"CREATE TABLE {TABLE} (LIKE {SOURCE} INCLUDING ALL) "
            "PARTITION BY RANGE (effective_start)"
        )
    )
    partitions = connection.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass) ORDER BY c.relname"
        ),
        {"parent": SOURCE},
    ).all()
    made = []
    for name, bound in partitions:
        copy = TABLE + name.removeprefix(SOURCE)
        connection.execute(sa.text(f"CREATE TABLE {copy} PARTITION OF {TABLE} {bound}"))
        made.append(copy)
    return made


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _content_key(metric: str, value: float, start: datetime, end: datetime | None) -> str:
    text = f"{metric}|{value:.{DECIMALS}f}|{start.isoformat()}|{end.isoformat() if end else ''}"
    return hashlib.sha256(text.encode()).hexdigest()


def rows_of(items: list[dict[str, Any]], constants: dict[str, Any]) -> list[dict[str, Any]]:
    """The table rows of native readings: parsed, keyed, nothing checked."""
    rows = []
    for item in items:
        start = _time(item["time"] if "time" in item else item["start"])
        end = _time(item["end"]) if "end" in item else None
        value = float(item["value"])
        reading_id = item.get("id")
        rows.append(
            {
                **constants,
                "dedup_key": reading_id or _content_key(item["metric"], value, start, end),
                "effective_start": start,
                "effective_end": end,
                "metric": item["metric"],
                "value": value,
                "device_reading_id": reading_id,
            }
        )
    return rows


def create_app(database_url: str | None = None) -> Flask:
    url = database_url or os.environ.get("DATABASE_URL", "")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    # The platform's engine options (dct_platform/config.py).
    engine = sa.create_engine(url, pool_pre_ping=True)
    statement = insert(readings).on_conflict_do_nothing()
    unit_id = int(os.environ.get("BARE_UNIT_ID", "1"))
    app = Flask(__name__)

    @app.post("/readings")
    def ingest() -> dict[str, Any]:
        items = (request.get_json() or {}).get("readings", [])
        constants = {
            "unit_id": unit_id,
            "patient_id": 1,
            "site_id": 1,
            "batch_id": 1,
            "received_at": datetime.now(UTC),
            "late": False,
        }
        rows = rows_of(items, constants)
        stored = 0
        # preserve_rowcount: executemany's rowcount, the sum over the rows, is kept.
        with engine.begin() as connection:
            connection = connection.execution_options(preserve_rowcount=True)
            for start in range(0, len(rows), CHUNK):
                stored += connection.execute(statement, rows[start : start + CHUNK]).rowcount
        return {"received": len(items), "stored": stored}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(app: Flask, host: str, port: int, workers: int) -> None:
    """gunicorn with the settings of `dct serve` (dct_platform/cli.py `_serve_gunicorn`)."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return app

    _Server().run()


def __getattr__(name: str) -> Flask:
    # `app` for a WSGI server (gunicorn bench.bare_ingest:app), made on first use so that
    # importing create_schema needs no database URL.
    if name == "app":
        made = create_app()
        globals()["app"] = made
        return made
    raise AttributeError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    args = parser.parse_args()
    serve(create_app(), args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
