"""Role scoping through the API: other sites' and other patients' records answer 403/404
and stay unchanged."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform.extensions import db
from dct_platform.models import AuditEntry, Patient, PatientIdentity
from tests.support.clients import token_for
from tests.support.world import CONSENT, World


def _snapshot(app: Flask, patient_id: int) -> tuple[tuple, tuple, int]:
    with app.app_context():
        p = db.session.get(Patient, patient_id)
        i = db.session.get(PatientIdentity, patient_id)
        audit_count = db.session.scalar(select(func.count()).select_from(AuditEntry))
        return (
            (p.site_id, p.status, p.timezone, p.preferred_language),
            (i.given_name, i.family_name, i.address_line1),
            audit_count,
        )


def test_site_staff_list_only_their_site(client: FlaskClient, world: World) -> None:
    headers = token_for(client, "coord_berlin", world.password)
    response = client.get("/api/v1/patients", headers=headers)
    assert [p["subject_number"] for p in response.get_json()] == ["B1-anna"]


def test_trial_manager_sees_all_sites_pseudonymously(client: FlaskClient, world: World) -> None:
    headers = token_for(client, "manager", world.password)
    body = client.get("/api/v1/patients", headers=headers).get_data(as_text=True)
    assert "B1-anna" in body and "T1-kenji" in body
    assert "Secretname" not in body and "Hidden Street" not in body
    kenji = world.patients["kenji"].id
    identity = client.get(f"/api/v1/patients/{kenji}/identity", headers=headers)
    assert identity.status_code == 403


@pytest.mark.parametrize("who", ["supply", "manager"])
def test_sponsor_side_roles_never_get_personal_data(
    client: FlaskClient, world: World, who: str
) -> None:
    headers = token_for(client, who, world.password)
    for patient in world.patients.values():
        response = client.get(f"/api/v1/patients/{patient.id}/identity", headers=headers)
        assert response.status_code == 403
        assert "Secretname" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("who", "target", "expected"),
    [
        ("coord_berlin", "kenji", 404),  # another site's patient does not exist for them
        ("coord_tokyo", "anna", 404),
        ("anna", "kenji", 404),  # another patient
        ("nurse", "anna", 404),  # nothing assigned yet
        ("admin", "anna", 404),  # account administration is not clinical access
    ],
)
def test_reading_out_of_scope_patient(
    client: FlaskClient, world: World, who: str, target: str, expected: int
) -> None:
    headers = token_for(client, who, world.password)
    pid = world.patients[target].id
    assert client.get(f"/api/v1/patients/{pid}", headers=headers).status_code == expected
    assert client.get(f"/api/v1/patients/{pid}/identity", headers=headers).status_code == expected
    assert (
        client.get(f"/api/v1/patients/{pid}/site-history", headers=headers).status_code == expected
    )


@pytest.mark.parametrize(
    ("who", "target", "expected"),
    [
        ("coord_tokyo", "anna", 404),
        ("anna", "kenji", 404),
        ("manager", "anna", 403),
        ("supply", "kenji", 403),
    ],
)
def test_changing_out_of_scope_patient_changes_nothing(
    app: Flask, client: FlaskClient, world: World, who: str, target: str, expected: int
) -> None:
    headers = token_for(client, who, world.password)
    pid = world.patients[target].id
    before = _snapshot(app, pid)
    attempts = [
        client.post(
            f"/api/v1/patients/{pid}/status",
            headers=headers,
            json={"status": "withdrawn", "effective_on": "2026-03-01", "reason": "x"},
        ),
        client.patch(
            f"/api/v1/patients/{pid}/identity",
            headers=headers,
            json={"given_name": "Mallory", "family_name": "Evil", "reason": "x"},
        ),
        client.post(
            f"/api/v1/patients/{pid}/transfer",
            headers=headers,
            json={"to_site_id": world.tokyo.id, "reason": "x"},
        ),
    ]
    assert [r.status_code for r in attempts] == [expected] * 3
    for response in attempts:
        assert set(response.get_json()) == {"status", "code", "message", "details"}
    assert _snapshot(app, pid) == before


def test_patient_may_change_own_preferences_but_not_status(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = token_for(client, "anna", world.password)
    pid = world.patients["anna"].id
    ok = client.patch(
        f"/api/v1/patients/{pid}", headers=headers, json={"timezone": "America/Los_Angeles"}
    )
    assert ok.status_code == 200 and ok.get_json()["timezone"] == "America/Los_Angeles"
    refused = client.post(
        f"/api/v1/patients/{pid}/status",
        headers=headers,
        json={"status": "withdrawn", "effective_on": "2026-03-01", "reason": "I want out"},
    )
    assert refused.status_code == 403
    with app.app_context():
        assert db.session.get(Patient, pid).status.value == "enrolled"


def test_patient_reads_own_identity(client: FlaskClient, world: World) -> None:
    headers = token_for(client, "anna", world.password)
    body = client.get(
        f"/api/v1/patients/{world.patients['anna'].id}/identity", headers=headers
    ).get_json()
    assert body["family_name"] == "Secretname"


def test_enrolling_at_another_site_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = token_for(client, "coord_berlin", world.password)
    response = client.post(
        "/api/v1/patients",
        headers=headers,
        json={
            "site_id": world.tokyo.id,
            "subject_number": "T1-999",
            "timezone": "Asia/Tokyo",
            **CONSENT,
        },
    )
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(Patient).where(Patient.subject_number == "T1-999")) is None


def test_enrolment_validates_and_reports_each_field(client: FlaskClient, world: World) -> None:
    headers = token_for(client, "coord_berlin", world.password)
    bad = client.post(
        "/api/v1/patients",
        headers=headers,
        json={
            "site_id": world.berlin.id,
            "subject_number": "B1-002",
            "timezone": "Mars/Olympus",
            "preferred_language": "!!",
            **CONSENT,
        },
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["details"]["fields"]) == {"timezone", "preferred_language"}
    dup = client.post(
        "/api/v1/patients",
        headers=headers,
        json={
            "site_id": world.berlin.id,
            "subject_number": "B1-anna",
            "timezone": "Europe/Berlin",
            **CONSENT,
        },
    )
    assert dup.status_code == 409
    ok = client.post(
        "/api/v1/patients",
        headers=headers,
        json={
            "site_id": world.berlin.id,
            "subject_number": "B1-002",
            "timezone": "Europe/Berlin",
            **CONSENT,
            "identity": {"given_name": "Max", "family_name": "Mustermann"},
        },
    )
    assert ok.status_code == 201 and ok.get_json()["site_id"] == world.berlin.id


def test_status_change_needs_reason(client: FlaskClient, world: World) -> None:
    headers = token_for(client, "coord_berlin", world.password)
    pid = world.patients["anna"].id
    url = f"/api/v1/patients/{pid}/status"
    missing = client.post(url, headers=headers, json={"status": "completed"})
    assert missing.status_code == 422
    assert set(missing.get_json()["details"]["fields"]) == {"effective_on", "reason"}
    blank = client.post(
        url, headers=headers, json={"status": "completed", "effective_on": "2026-03-01",
                                    "reason": "  "},
    )  # fmt: skip
    assert blank.status_code == 422
    assert blank.get_json()["details"]["fields"] == {"reason": ["Say why the status changes."]}
    old_way = client.patch(
        f"/api/v1/patients/{pid}", headers=headers, json={"status": "completed", "reason": "x"}
    )
    assert old_way.status_code == 422
    assert (
        "POST /api/v1/patients/{id}/status" in old_way.get_json()["details"]["fields"]["status"][0]
    )
    backwards = client.post(
        url, headers=headers, json={"status": "screening", "effective_on": "2026-03-01",
                                    "reason": "typo"},
    )  # fmt: skip
    assert backwards.status_code == 409
    assert backwards.get_json()["message"] == (
        "A patient in Enrolled cannot move to Screening. Allowed: Withdrawn, Completed."
    )
    done = client.post(
        url, headers=headers, json={"status": "completed", "effective_on": "2026-03-01",
                                    "reason": "Last visit done"},
    )  # fmt: skip
    assert done.status_code == 200 and done.get_json()["status"] == "completed"
    history = client.get(f"/api/v1/patients/{pid}/status-history", headers=headers).get_json()
    assert [
        (h["from_status"], h["to_status"], h["effective_on"], h["reason"]) for h in history
    ] == [("enrolled", "completed", "2026-03-01", "Last visit done")]


def test_users_api_is_for_admins(client: FlaskClient, world: World) -> None:
    assert (
        client.get(
            "/api/v1/users", headers=token_for(client, "manager", world.password)
        ).status_code
        == 403
    )
    admin = token_for(client, "admin", world.password)
    created = client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "coord2",
            "password": "long enough pw",
            "display_name": "Second",
            "role": "site_staff",
            "site_ids": [world.berlin.id],
        },
    )
    assert created.status_code == 201 and created.get_json()["site_ids"] == [world.berlin.id]
    bad = client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "coord3",
            "password": "short",
            "display_name": "X",
            "role": "site_staff",
            "site_ids": [999],
        },
    )
    assert bad.status_code == 422


def test_api_password_rules_answer_as_json(client: FlaskClient, world: World) -> None:
    admin = token_for(client, "admin", world.password)
    response = client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "weak", "password": "short", "display_name": "W", "role": "nurse"},
    )
    assert response.status_code == 422
    assert response.get_json()["details"]["fields"]["password"] == ["Use at least 10 characters."]
