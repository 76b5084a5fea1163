"""The test database: real PostgreSQL when DATABASE_URL points at it, else a SQLite file.

PostgreSQL: a dedicated database (never the one DATABASE_URL names) is created and
migrated once per run, and emptied after each test. SQLite: one migrated file is copied
for every test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

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
    exactly what the append-only triggers otherwise refuse)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ]
        for guarded in ("audit_entries", "audit_chain_head"):
            conn.execute(text(f"ALTER TABLE {guarded} DISABLE TRIGGER USER"))
        conn.execute(
            text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
        )
        for guarded in ("audit_entries", "audit_chain_head"):
            conn.execute(text(f"ALTER TABLE {guarded} ENABLE TRIGGER USER"))
        conn.execute(
            text(
                f"INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, 0, '{'0' * 64}')"
            )
        )
    engine.dispose()


def fresh_sqlite_copy(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"
