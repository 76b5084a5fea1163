"""What the pages can do, the API can do: find accounts, disable and enable them, reset a
password, lift a lockout, and enrol a patient with a portal account."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient

from tests.support.clients import login, token_for
from tests.support.world import CONSENT, World


def test_administrators_manage_accounts_through_the_api(
    app: Flask, client: FlaskClient, world: World
) -> None:
    admin = token_for(client, "admin", world.password)
    nurse = world.users["nurse"].id

    found = client.get("/api/v1/users?role=site_staff&page_size=1", headers=admin)
    assert found.status_code == 200 and [u["username"] for u in found.get_json()] == [
        "coord_berlin"
    ]
    assert json.loads(found.headers["X-Pagination"])["total"] == 2
    at_tokyo = client.get(f"/api/v1/users?site_id={world.tokyo.id}", headers=admin).get_json()
    assert [u["username"] for u in at_tokyo] == ["coord_tokyo"]
    assert [
        u["username"] for u in client.get("/api/v1/users?q=Secretname", headers=admin).get_json()
    ] == []

    disabled = client.post(
        f"/api/v1/users/{nurse}/disable", headers=admin, json={"reason": "left the agency"}
    )
    assert disabled.status_code == 200 and disabled.get_json()["is_enabled"] is False
    refused = client.post(
        "/api/v1/auth/token", json={"username": "nurse", "password": world.password}
    )
    assert refused.status_code == 403 and refused.get_json()["code"] == "account_disabled"
    assert client.post(
        f"/api/v1/users/{nurse}/enable", headers=admin, json={"reason": "came back"}
    ).get_json()["is_enabled"]

    reset = client.post(
        f"/api/v1/users/{nurse}/password-reset", headers=admin, json={"reason": "forgot it"}
    )
    assert reset.status_code == 201
    temporary = reset.get_json()["temporary_password"]
    assert reset.get_json()["username"] == "nurse" and len(temporary) >= 12
    old = client.post("/api/v1/auth/token", json={"username": "nurse", "password": world.password})
    assert old.status_code == 401

    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_MAX_FAILURES_PER_USERNAME=2)
    for _ in range(2):
        client.post("/api/v1/auth/token", json={"username": "nurse", "password": "guess"})
    detail = client.get(f"/api/v1/users/{nurse}", headers=admin).get_json()
    assert detail["lockout"]["failures"] == 2 and detail["lockout"]["blocked_addresses"] == 1
    no_reason = client.post(f"/api/v1/users/{nurse}/unlock", headers=admin, json={})
    assert no_reason.status_code == 422
    unlocked = client.post(
        f"/api/v1/users/{nurse}/unlock", headers=admin, json={"reason": "called in"}
    )
    assert unlocked.status_code == 200 and unlocked.get_json()["lockout"] is None
    assert unlocked.get_json()["unlocked_at"]

    staff = token_for(client, "coord_berlin", world.password)
    for path in ("disable", "unlock", "password-reset"):
        answer = client.post(f"/api/v1/users/{nurse}/{path}", headers=staff, json={"reason": "x"})
        assert answer.status_code == 403, path


def test_site_staff_enrol_with_a_portal_account_through_the_api(
    client: FlaskClient, world: World
) -> None:
    staff = token_for(client, "coord_berlin", world.password)
    body = {
        "site_id": world.berlin.id,
        "subject_number": "B1-300",
        "timezone": "Europe/Berlin",
        "status": "screening",
        **CONSENT,
        "create_account": True,
    }
    nameless = client.post("/api/v1/patients", headers=staff, json=body)
    assert nameless.status_code == 422 and "identity" in nameless.get_json()["details"]["fields"]
    enrolled = client.post(
        "/api/v1/patients",
        headers=staff,
        json={**body, "identity": {"given_name": "Jonas", "family_name": "Brandt"}},
    )
    assert enrolled.status_code == 201
    record = enrolled.get_json()
    assert record["consent_date"] == "2026-01-05" and record["consent_version"] == "3.0"
    assert record["site_number"] == "B1"
    account = record["portal_account"]
    assert account["username"] == "patient.b1300"
    # The patient signs in with the temporary password and must replace it first.
    portal = FlaskClient(client.application)
    first = login(portal, account["username"], account["temporary_password"])
    assert first.status_code == 302
    assert portal.get("/", follow_redirects=True).request.path == "/account/password"
    without_consent = {k: v for k, v in body.items() if not k.startswith("consent")}
    missing = client.post(
        "/api/v1/patients", headers=staff, json={**without_consent, "create_account": False}
    )
    assert set(missing.get_json()["details"]["fields"]) == {"consent_date", "consent_version"}
