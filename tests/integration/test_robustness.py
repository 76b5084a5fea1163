"""No request reaches a person as a stack trace, and no bad input is a 500."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from dct_platform.audit import verify_chain
from dct_platform.extensions import db
from dct_platform.models import AuditEntry, Patient, User
from dct_platform.services import patients as service
from tests.conftest import make_app
from tests.support.clients import token_for
from tests.support.world import World

GARBAGE_BODIES = [
    {"x": [1]},
    [],
    "text",
    {"site_id": "abc", "to_site_id": None, "timezone": 5},
    None,
]


def test_no_documented_operation_answers_500_to_garbage(client: FlaskClient, world: World) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    headers = token_for(client, "coord_berlin", world.password)
    for path, operations in doc["paths"].items():
        for method in operations:
            for ident in ("1", "999999", "-1"):
                url = re.sub(r"\{[^}]+\}", ident, path)
                for body in GARBAGE_BODIES:
                    response = client.open(url, method=method.upper(), json=body, headers=headers)
                    assert response.status_code < 500, (
                        method,
                        url,
                        body,
                        response.get_data(as_text=True),
                    )
                    if response.status_code >= 400:
                        assert {"status", "code", "message"} <= set(response.get_json())


def test_oversized_body_is_413(client: FlaskClient, app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/api/v1/auth/token", data="x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"


def test_unexpected_errors_answer_with_an_incident_id_only(app: Flask) -> None:
    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/boom")
    def boom_page() -> None:
        raise RuntimeError("secret internals")

    client = app.test_client()
    api = client.get("/api/v1/boom")
    assert api.status_code == 500
    body = api.get_json()
    assert body["code"] == "internal_error" and len(body["details"]["incident"]) == 12
    assert "secret" not in api.get_data(as_text=True)
    page = client.get("/boom")
    assert page.status_code == 500 and "secret" not in page.get_data(as_text=True)
    assert "Something went wrong" in page.get_data(as_text=True)


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    broken = make_app("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path)
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_concurrent_audited_transactions_keep_one_valid_chain(app: Flask, world: World) -> None:
    errors: list[BaseException] = []

    def worker(language: str) -> None:
        try:
            with app.app_context():
                for i in range(15):
                    # Like a client told 409 (someone else changed the record), try again
                    # from what is stored now.
                    while True:
                        actor = db.session.get(User, world.users["coord_berlin"].id)
                        patient = db.session.get(Patient, world.patients["anna"].id)
                        try:
                            service.update_patient(
                                db.session,
                                actor,
                                datetime.now(UTC),
                                patient,
                                {"preferred_language": f"{language}-x{i}"},
                            )
                            db.session.commit()
                            break
                        except StaleDataError:
                            db.session.rollback()
                db.session.remove()
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(lang,)) for lang in ("de", "fr", "ja")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    with app.app_context():
        result = verify_chain(db.session)
        assert result.ok, result
        changes = db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.field == "preferred_language", AuditEntry.action == "update")
        )
        assert changes == 45


def test_foreign_keys_hold_on_every_database(app: Flask, world: World) -> None:
    from sqlalchemy.exc import IntegrityError

    from dct_platform import audit
    from dct_platform.models import PatientSiteAssignment

    with app.app_context():
        actor = db.session.get(User, world.users["admin"].id)
        with (
            pytest.raises(IntegrityError),
            audit.acting(db.session, actor, datetime.now(UTC), what="Test change"),
        ):
            db.session.add(
                PatientSiteAssignment(
                    patient_id=world.patients["anna"].id,
                    site_id=999_999,
                    valid_from=datetime.now(UTC),
                )
            )
        db.session.rollback()
