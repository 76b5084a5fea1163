"""The demo seed and the `dct` commands people and scripts use."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from dct_platform.demo import logins_path, seed_and_report
from dct_platform.extensions import db
from dct_platform.models import AuditEntry, Patient, Site, User
from dct_platform.roles import Role
from logistics.dispatch.policy import COORDINATOR
from tests.support.database import schema_and_data
from tests.support.world import World


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            m.__name__: db.session.scalar(select(func.count()).select_from(m)) or 0
            for m in (User, Site, Patient)
        }


def test_demo_seed_is_complete_idempotent_and_its_logins_work(app: Flask) -> None:
    seed_and_report(app)
    first = _counts(app)
    # 43 of the core's demo, and the home-health provider's coordinator of the dispatch demo.
    assert first == {"User": 44, "Site": 3, "Patient": 30}
    logins = json.loads(logins_path(app).read_text())
    seed_and_report(app)
    assert _counts(app) == first
    assert json.loads(logins_path(app).read_text()) == logins

    # The core's roles, and the dispatch package's coordinator.
    assert {row["role"] for row in logins} == {r.value for r in Role} | {COORDINATOR}
    assert set(logins[0]) == {"role", "username", "password", "site"}
    with app.app_context():
        zones = set(db.session.scalars(select(Site.timezone)))
        assert zones == {"Europe/Berlin", "America/New_York", "Asia/Tokyo"}
    client = app.test_client()
    seen_roles = set()
    for row in logins:
        if row["role"] in seen_roles:
            continue
        response = client.post(
            "/api/v1/auth/token", json={"username": row["username"], "password": row["password"]}
        )
        assert response.status_code == 201, row
        assert response.get_json()["user"]["role"] == row["role"]
        seen_roles.add(row["role"])
    verify = app.test_cli_runner().invoke(args=["dct", "audit", "verify"])
    assert verify.exit_code == 0 and "intact" in verify.output

    # Losing the logins file must not lock people out of the demo: a reseed resets them.
    logins_path(app).unlink()
    seed_and_report(app)
    admin = next(r for r in json.loads(logins_path(app).read_text()) if r["role"] == "admin")
    response = client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": admin["password"]}
    )
    assert response.status_code == 201
    assert _counts(app) == first


def test_create_user_command(app: Flask) -> None:
    runner = app.test_cli_runner()
    ok = runner.invoke(
        args=[
            "dct",
            "create-user",
            "--username",
            "Ops",
            "--role",
            "admin",
            "--display-name",
            "Ops",
            "--password",
            "a long admin passphrase",
        ]
    )
    assert ok.exit_code == 0, ok.output
    assert "created admin ops" in ok.output
    again = runner.invoke(
        args=[
            "dct",
            "create-user",
            "--username",
            "ops",
            "--role",
            "admin",
            "--display-name",
            "Ops",
            "--password",
            "a long admin passphrase",
        ]
    )
    assert again.exit_code != 0 and "taken" in again.output
    weak = runner.invoke(
        args=[
            "dct",
            "create-user",
            "--username",
            "x",
            "--role",
            "nurse",
            "--display-name",
            "X",
            "--password",
            "short",
        ]
    )
    assert weak.exit_code != 0 and "at least 10 characters" in weak.output
    unknown = runner.invoke(
        args=[
            "dct",
            "create-user",
            "--username",
            "y",
            "--role",
            "pilot",
            "--display-name",
            "Y",
            "--password",
            "a long pilot passphrase",
        ]
    )
    assert unknown.exit_code != 0 and "Unknown role 'pilot'" in unknown.output
    listed = runner.invoke(args=["dct", "roles"])
    assert listed.exit_code == 0
    assert "site_staff\tSite staff\tsites" in listed.output.splitlines()
    with app.app_context():
        entry = db.session.scalar(
            select(AuditEntry).where(AuditEntry.field == "username", AuditEntry.new_value == "ops")
        )
        assert entry is not None and entry.actor_name == "system:cli"


def test_db_upgrade_on_a_migrated_database_changes_nothing(app: Flask, world: World) -> None:
    """The fixture migrated to head; upgrading again (twice, as a deploy script re-run
    would) must succeed and leave the schema and every row, data and audit trail, as is."""
    with app.app_context():
        before = schema_and_data(db.session)
        db.session.remove()
    assert before["rows"]["users"] and before["rows"]["audit_entries"]
    for _ in range(2):
        result = app.test_cli_runner().invoke(args=["dct", "db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "database at heads" in result.output
        with app.app_context():
            after = schema_and_data(db.session)
            db.session.remove()
        assert after["schema"] == before["schema"]
        assert after["rows"] == before["rows"]
    verify = app.test_cli_runner().invoke(args=["dct", "audit", "verify"])
    assert verify.exit_code == 0, verify.output


def test_upgrade_from_empty_on_a_new_sqlite_file(tmp_path: Path) -> None:
    from dct_platform.migrate import current_heads, script_heads, upgrade
    from tests.conftest import make_app

    fresh = make_app(f"sqlite:///{tmp_path / 'new.sqlite3'}", tmp_path / "inst")
    upgrade(fresh)
    assert current_heads(fresh) == script_heads(fresh)
    with fresh.app_context():
        db.engine.dispose()
