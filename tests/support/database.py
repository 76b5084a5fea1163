"""The test database: real PostgreSQL when DATABASE_URL points at it, else a SQLite file.

PostgreSQL: a dedicated database (never the one DATABASE_URL names) is created and
migrated once per run, and emptied after each test. SQLite: one migrated file is copied
for every test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session

from dct_platform.config import normalise_database_url


def configured_url() -> URL | None:
    raw = os.environ.get("DATABASE_URL")
    return make_url(normalise_database_url(raw)) if raw else None


def is_postgres() -> bool:
    url = configured_url()
    return url is not None and url.get_backend_name() == "postgresql"


def create_postgres_test_database() -> str:
    base = configured_url()
    assert base is not None
    name = f"{base.database or 'dct'}_pytest_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def empty_postgres(url: str) -> None:
    """Remove every row the test wrote, including audit entries (as a DBA could, which is
    exactly what the append-only triggers otherwise refuse).

    Only the tables the test wrote to are emptied, with DELETE and every trigger (foreign
    keys too) switched off: TRUNCATE of all tables and partitions replaced each file on
    disk and cost most of a second per test. Sequences restart as TRUNCATE's RESTART
    IDENTITY would have.
    """
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c"
                    " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
                    " AND NOT c.relispartition AND c.relname <> 'alembic_version'"
                )
            )
        ]
        written = [
            r[0]
            for r in conn.execute(
                text(
                    " UNION ALL ".join(
                        f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables
                    )
                )
            )
        ]
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in written:
            conn.execute(text(f'DELETE FROM "{table}"'))
        conn.execute(
            text(
                "SELECT setval(c.oid, s.seqstart, false) FROM pg_class c"
                " JOIN pg_sequence s ON s.seqrelid = c.oid"
                " WHERE c.relnamespace = 'public'::regnamespace"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, 0, '{'0' * 64}')"
            )
        )
    engine.dispose()


def fresh_sqlite_copy(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


# The trail's guards on SQLite (migrations 0004 and 0009); PostgreSQL switches all off at once.
SQLITE_TRAIL_GUARDS = (
    "audit_entries_insert_guard",
    "audit_entries_update_guard",
    "audit_entries_no_delete",
    "audit_chain_head_update_guard",
    "audit_chain_head_no_delete",
)


@contextmanager
def as_database_owner(session: Session) -> Iterator[Connection]:
    """What an attacker with database-owner rights could do: switch the guards off, then
    edit the trail. SQLite drops its guard triggers for good, which only the test's own
    copy of the database ever sees."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        for trigger in SQLITE_TRAIL_GUARDS:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
    yield conn
    session.commit()


def tamper_with_audit_trail(session: Session, statement: str) -> None:
    with as_database_owner(session) as conn:
        conn.execute(text(statement))


def schema_and_data(session: Session) -> dict[str, object]:
    """Everything a migration could change: each table's columns, indexes, constraints and
    triggers (and PostgreSQL's functions), and every row of every table."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        schema_queries = [
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'",
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
            "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)"
            " FROM pg_trigger WHERE NOT tgisinternal",
            "SELECT proname, pg_get_functiondef(oid) FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace AND prokind = 'f'",
        ]
    else:
        schema_queries = ["SELECT type, name, tbl_name, sql FROM sqlite_master"]
    schema = [sorted(map(tuple, conn.execute(text(q)))) for q in schema_queries]
    tables = sorted(inspect(conn).get_table_names())
    rows = {t: sorted(map(repr, conn.execute(text(f'SELECT * FROM "{t}"')))) for t in tables}
    return {"schema": schema, "rows": rows}
