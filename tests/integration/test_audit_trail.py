"""The audit trail: complete, attributable, append-only and tamper-evident."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from dct_platform import audit
from dct_platform.audit import AuditContextMissing, verify_chain
from dct_platform.extensions import db
from dct_platform.models import AuditEntry, Patient, User
from dct_platform.services import patients as service
from tests.support.clients import token_for
from tests.support.database import tamper_with_audit_trail
from tests.support.world import World


def _entries(table: str, record_id: int | str) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.table_name == table, AuditEntry.record_id == str(record_id))
            .order_by(AuditEntry.seq)
        )
    )


def _verify(app: Flask) -> Result:
    return app.test_cli_runner().invoke(args=["dct", "audit", "verify"])


def test_a_correction_records_who_when_what_old_new_and_why(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = token_for(client, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    response = client.patch(
        f"/api/v1/patients/{anna}/identity",
        headers=headers,
        json={"family_name": "Secretname-Lee", "reason": "Married name"},
    )
    assert response.status_code == 200
    with app.app_context():
        changes = [e for e in _entries("patient_identities", anna) if e.action == "update"]
        assert [(e.field, e.old_value, e.new_value) for e in changes] == [
            ("family_name", "Secretname", "Secretname-Lee")
        ]
        entry = changes[0]
        assert (
            entry.actor_name == "coord_berlin" and entry.actor_id == world.users["coord_berlin"].id
        )
        assert entry.reason == "Married name"
        assert entry.occurred_at.tzinfo is not None
        assert abs((datetime.now(UTC) - entry.occurred_at).total_seconds()) < 60


def test_creation_is_audited_field_by_field(app: Flask, world: World) -> None:
    with app.app_context():
        fields = {e.field: e.new_value for e in _entries("patients", world.patients["kenji"].id)}
        assert fields["subject_number"] == "T1-kenji"
        assert fields["site_id"] == str(world.tokyo.id)
        assert fields["status"] == "enrolled"


def test_password_hashes_never_enter_the_trail(app: Flask, world: World) -> None:
    with app.app_context():
        entry = next(
            e for e in _entries("users", world.users["admin"].id) if e.field == "password_hash"
        )
        assert entry.new_value == "[redacted]"
        assert not db.session.scalar(
            select(AuditEntry).where(AuditEntry.new_value.like("$argon2%"))
        )


def test_unattributed_change_is_refused(app: Flask, world: World) -> None:
    with app.app_context():
        patient = db.session.get(Patient, world.patients["anna"].id)
        patient.preferred_language = "fr"
        with pytest.raises(AuditContextMissing):
            db.session.flush()
        db.session.rollback()
        assert db.session.get(Patient, world.patients["anna"].id).preferred_language == "en"


def test_chain_verifies_after_normal_work(app: Flask, world: World) -> None:
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert "audit chain intact" in result.output


def test_entries_cannot_be_updated_or_deleted_through_the_database(
    app: Flask, world: World
) -> None:
    with app.app_context():
        for statement in (
            "UPDATE audit_entries SET new_value = 'x' WHERE seq = 3",
            "DELETE FROM audit_entries WHERE seq = 3",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()


def _tamper(statement: str) -> None:
    tamper_with_audit_trail(db.session, statement)


def test_altering_one_stored_entry_is_detected_and_named(app: Flask, world: World) -> None:
    with app.app_context():
        target = _entries("patient_identities", world.patients["anna"].id)[1]
        seq = target.seq
        _tamper(f"UPDATE audit_entries SET new_value = 'Someone Else' WHERE seq = {seq}")
        result = verify_chain(db.session)
    assert not result.ok and result.broken_seq == seq
    cli = _verify(app)
    assert cli.exit_code == 1
    assert f"BROKEN at entry {seq}" in cli.output and "altered" in cli.output


def test_deleting_an_entry_is_detected(app: Flask, world: World) -> None:
    with app.app_context():
        _tamper("DELETE FROM audit_entries WHERE seq = 5")
        result = verify_chain(db.session)
    assert (result.ok, result.broken_seq) == (False, 5)


def test_removing_the_newest_entries_is_detected(app: Flask, world: World) -> None:
    with app.app_context():
        last = db.session.scalar(select(db.func.max(AuditEntry.seq)))
        _tamper(f"DELETE FROM audit_entries WHERE seq >= {last - 1}")
        result = verify_chain(db.session)
    assert not result.ok and "removed" in (result.problem or "")


def test_nested_actions_in_one_transaction_keep_one_chain(app: Flask, world: World) -> None:
    with app.app_context():
        actor = db.session.get(User, world.users["coord_berlin"].id)
        patient = db.session.get(Patient, world.patients["anna"].id)
        now = datetime.now(UTC)
        service.update_patient(db.session, actor, now, patient, {"preferred_language": "de"})
        service.update_patient(
            db.session, actor, now, patient, {"status": "completed"}, reason="Study done"
        )
        with audit.acting(db.session, actor, now, "manual", what="Manual change"):
            patient.timezone = "Europe/Paris"
        db.session.commit()
        assert verify_chain(db.session).ok


def test_bulk_statements_cannot_bypass_the_trail(app: Flask, world: World) -> None:
    from sqlalchemy import delete, insert, update

    from dct_platform.audit import AuditBypassRefused

    with app.app_context():
        with pytest.raises(AuditBypassRefused):
            db.session.execute(update(Patient).values(status="withdrawn"))
        with pytest.raises(AuditBypassRefused):
            db.session.execute(delete(Patient))
        with pytest.raises(AuditBypassRefused):
            db.session.execute(insert(Patient), [{"subject_number": "X"}])
        db.session.rollback()
        assert db.session.get(Patient, world.patients["anna"].id).status.value == "enrolled"


def test_administrators_read_the_trail_without_personal_data(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = token_for(client, "admin", world.password)
    entries = client.get(
        "/api/v1/audit/entries?table=patient_identities&page_size=100", headers=headers
    )
    assert entries.status_code == 200
    body = entries.get_data(as_text=True)
    assert "Secretname" not in body and "Hidden Street" not in body
    assert "[personal data]" in body
    from tests.support.clients import login

    login(client, "admin", world.password)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "Secretname" not in page and "[personal data]" in page
    # The site, which may see the record, reads the real values in its history.
    site = app.test_client()
    login(site, "coord_berlin", world.password)
    assert "Secretname" in site.get(f"/site/patients/{world.patients['anna'].id}").get_data(
        as_text=True
    )


def test_daily_verification_alerts_administrators_once(app: Flask, world: World) -> None:
    from datetime import timedelta

    from dct_platform.models import MailOutbox
    from dct_platform.scheduler import run_job
    from tests.support.clients import login, submit

    client = app.test_client()
    login(client, "admin", world.password)
    assert "has not run yet" in client.get("/admin/audit").get_data(as_text=True)
    day = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    assert run_job(app, "core.audit-verify", day)
    assert "intact:" in client.get("/admin/audit").get_data(as_text=True)

    with app.app_context():
        _tamper("UPDATE audit_entries SET reason = 'hidden' WHERE seq = 7")
    assert run_job(app, "core.audit-verify", day + timedelta(days=1))
    assert run_job(app, "core.audit-verify", day + timedelta(days=2))
    with app.app_context():
        alerts = db.session.scalars(select(MailOutbox)).all()
        assert len(alerts) == 1 and "admin@example.org" in alerts[0].recipients
        assert "BROKEN at entry 7" in alerts[0].text_body
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "BROKEN at entry 7" in page and "flash-error" in page
    now = submit(client, "/admin/audit", "/admin/audit/verify", {})
    assert now.status_code == 302
    assert "Chain broken at entry 7" in client.get("/admin/audit").get_data(as_text=True)
