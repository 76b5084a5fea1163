"""Migration 0010 frees `users.role` from its fixed list, without losing an account's
memberships or tokens (SQLite cannot drop a CHECK constraint in place; a table copy with
foreign keys on would cascade to them)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from flask import Flask
from sqlalchemy import create_engine, inspect, text

from dct_platform.extensions import db
from dct_platform.migrate import _config_for, upgrade
from dct_platform.services.accounts import issue_token
from tests.conftest import make_app
from tests.support.database import configured_url, is_postgres, schema_and_data
from tests.support.world import build_world

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
# Tables no migration after 0009 changes; accounts are compared by the columns 0009 has.
KEPT = ("site_memberships", "trial_access", "api_tokens", "audit_entries")
ACCOUNTS = text("SELECT id, username, role, password_hash, is_enabled FROM users ORDER BY id")


def _private_database(tmp_path: Path) -> str:
    if not is_postgres():
        return f"sqlite:///{tmp_path / 'roles.sqlite3'}"
    base = configured_url()
    assert base is not None
    name = f"{base.database}_pytest_roles_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _role_check_present() -> bool:
    conn = db.session.connection()
    if conn.dialect.name == "postgresql":
        return bool(
            conn.scalar(
                text("SELECT count(*) FROM pg_constraint WHERE conname = 'ck_users_user_role'")
            )
        )
    sql = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'users'"))
    return "ck_users_user_role" in sql


def _migrate(app: Flask, revision: str, direction: str = "upgrade") -> None:
    with app.app_context(), db.engine.begin() as connection:
        cfg = _config_for(app)
        cfg.attributes["connection"] = connection
        getattr(command, direction)(cfg, revision)


def test_0010_keeps_every_account_and_its_access_both_ways(tmp_path: Path) -> None:
    # Data written by today's models at the head, then taken down below 0010 and back up:
    # later migrations change other tables, never the accounts and their access.
    app = make_app(_private_database(tmp_path), tmp_path / "instance")
    upgrade(app)
    with app.app_context():
        world = build_world(db.session, NOW)
        issue_token(db.session, world.users["coord_berlin"], NOW, timedelta(hours=1))
        db.session.commit()
        at_head = schema_and_data(db.session)
        accounts_at_head = db.session.execute(ACCOUNTS).all()
        assert at_head["rows"]["site_memberships"] and at_head["rows"]["api_tokens"]
        db.session.remove()

    _migrate(app, "0009", "downgrade")
    with app.app_context():
        below = schema_and_data(db.session)
        assert _role_check_present()
        for table in KEPT:
            assert below["rows"][table] == at_head["rows"][table], table
        assert db.session.execute(ACCOUNTS).all() == accounts_at_head
        db.session.remove()

    upgrade(app)
    with app.app_context():
        after = schema_and_data(db.session)
        assert not _role_check_present()
        role = next(
            c for c in inspect(db.session.connection()).get_columns("users") if c["name"] == "role"
        )
        assert role["type"].length == 64
        assert after == at_head
        db.session.remove()
        db.engine.dispose()
