"""Enrolment with a portal account, temporary passwords, and account administration."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import Patient, PatientIdentity, User
from tests.support.clients import duplicate_ids, login, submit
from tests.support.world import World

_SECRET = re.compile(r"username (\S+), temporary password (\S+) \(shown once")


def _enrol(client: FlaskClient, world: World, **overrides: str) -> object:
    data = {
        "site_id": str(world.berlin.id),
        "subject_number": "B1-100",
        "status": "enrolled",
        "timezone": "Europe/Berlin",
        "preferred_language": "de",
        "given_name": "Greta",
        "family_name": "Neumann",
        "email": "greta@example.org",
        "create_account": "y",
        "consent_date": "2026-01-05",
        "consent_version": "3.0",
    }
    data.update(overrides)
    return submit(client, "/site/patients/new", "/site/patients/new", data)


def test_site_staff_enrol_a_patient_who_then_sets_their_own_password(
    app: Flask, world: World
) -> None:
    staff = app.test_client()
    login(staff, "coord_berlin", world.password)
    response = _enrol(staff, world)
    assert response.status_code == 302
    page = staff.get(response.headers["Location"]).get_data(as_text=True)
    username, temporary = _SECRET.search(page).groups()
    assert username == "patient.b1100"
    with app.app_context():
        patient = db.session.scalar(select(Patient).where(Patient.subject_number == "B1-100"))
        assert patient.site_id == world.berlin.id and patient.user_id is not None
        assert db.session.get(PatientIdentity, patient.id).family_name == "Neumann"

    patient_client = app.test_client()
    assert login(patient_client, username, temporary).status_code == 302
    # Nothing but the password page until the temporary password is replaced.
    assert patient_client.get("/portal/").headers["Location"] == "/account/password"
    mismatch = submit(
        patient_client,
        "/account/password",
        "/account/password",
        {"current_password": temporary, "new_password": "my own secret phrase", "confirm": "other"},
    )
    # The patient was enrolled with German as their language.
    assert mismatch.status_code == 422
    assert "Die beiden Passwörter stimmen nicht überein." in mismatch.get_data(as_text=True)
    changed = submit(
        patient_client,
        "/account/password",
        "/account/password",
        {
            "current_password": temporary,
            "new_password": "my own secret phrase",
            "confirm": "my own secret phrase",
        },
    )
    assert changed.status_code == 302
    home = patient_client.get("/portal/")
    assert home.status_code == 200 and "B1-100" in home.get_data(as_text=True)
    # The temporary password no longer works.
    assert login(app.test_client(), username, temporary).status_code == 401


def test_enrolment_errors_are_shown_on_the_form_and_nothing_is_stored(
    app: Flask, world: World
) -> None:
    staff = app.test_client()
    login(staff, "coord_berlin", world.password)
    bad_zone = _enrol(staff, world, timezone="Berlin")
    assert bad_zone.status_code == 422 and "Unknown time zone" in bad_zone.get_data(as_text=True)
    duplicate = _enrol(staff, world, subject_number="B1-anna")
    assert duplicate.status_code == 422 and "already" in duplicate.get_data(as_text=True)
    other_site = _enrol(staff, world, site_id=str(world.tokyo.id))
    assert other_site.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "patient.b1100")) is None
        assert db.session.scalar(select(Patient).where(Patient.subject_number == "B1-100")) is None


def test_admin_creates_disables_and_resets_accounts(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "admin", world.password)
    created = submit(
        client,
        "/admin/users/new",
        "/admin/users/new",
        {
            "username": "nurse2",
            "display_name": "Nina Nurse",
            "role": "nurse",
            "timezone": "Europe/Berlin",
        },
    )
    assert created.status_code == 302
    detail = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "Temporary password for nurse2" in detail
    with app.app_context():
        nurse2 = db.session.scalar(select(User).where(User.username == "nurse2"))
        assert nurse2.must_change_password
    invalid = submit(
        client,
        "/admin/users/new",
        "/admin/users/new",
        {"username": "x", "display_name": "X", "role": "nurse", "timezone": "Nowhere/Zone"},
    )
    assert invalid.status_code == 422 and "Unknown time zone" in invalid.get_data(as_text=True)

    page = f"/admin/users/{world.users['coord_tokyo'].id}"
    no_reason = submit(client, page, f"{page}/disable", {"reason": ""})
    assert no_reason.status_code == 422
    disabled = submit(client, page, f"{page}/disable", {"reason": "Left the site"})
    assert disabled.status_code == 302
    assert login(app.test_client(), "coord_tokyo", world.password).status_code == 403
    own = f"/admin/users/{world.users['admin'].id}"
    assert submit(client, own, f"{own}/disable", {"reason": "oops"}).status_code == 422


def test_only_admins_reach_account_administration(client: FlaskClient, world: World) -> None:
    login(client, "coord_berlin", world.password)
    assert client.get("/admin/users/new").status_code == 403
    assert client.get(f"/admin/users/{world.users['nurse'].id}").status_code == 403


def test_moving_a_coordinator_to_another_site_moves_their_scope(
    app: Flask, client: FlaskClient, world: World
) -> None:
    from tests.support.clients import token_for

    admin = token_for(client, "admin", world.password)
    coord = token_for(client, "coord_tokyo", world.password)
    user_id = world.users["coord_tokyo"].id
    assert [
        p["subject_number"] for p in client.get("/api/v1/patients", headers=coord).get_json()
    ] == ["T1-kenji"]
    no_reason = client.put(
        f"/api/v1/users/{user_id}/access", headers=admin, json={"site_ids": [world.berlin.id]}
    )
    assert no_reason.status_code == 422
    moved = client.put(
        f"/api/v1/users/{user_id}/access",
        headers=admin,
        json={"site_ids": [world.berlin.id], "reason": "Covers Berlin from today"},
    )
    assert moved.status_code == 200 and moved.get_json()["site_ids"] == [world.berlin.id]
    assert [
        p["subject_number"] for p in client.get("/api/v1/patients", headers=coord).get_json()
    ] == ["B1-anna"]
    with app.app_context():
        from dct_platform.models import AuditEntry

        entries = db.session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "site_memberships",
                AuditEntry.reason == "Covers Berlin from today",
            )
        ).all()
        assert {e.action for e in entries} == {"create", "delete"}
    manager = token_for(client, "manager", world.password)
    assert (
        client.put(
            f"/api/v1/users/{user_id}/access", headers=manager, json={"site_ids": [], "reason": "x"}
        ).status_code
        == 403
    )


def test_a_principal_investigator_keeps_their_site_until_replaced(
    client: FlaskClient, world: World
) -> None:
    login(client, "admin", world.password)
    page = f"/admin/users/{world.users['pi_berlin'].id}"
    response = submit(
        client, page, f"{page}/access", {"site_ids": [str(world.tokyo.id)], "reason": "move"}
    )
    assert response.status_code == 422
    assert "principal investigator of B1" in response.get_data(as_text=True)
    ok = submit(
        client,
        page,
        f"{page}/access",
        {"site_ids": [str(world.berlin.id), str(world.tokyo.id)], "reason": "Also covers Tokyo"},
    )
    assert ok.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "B1 T1" in html
    assert duplicate_ids(html) == set()


def test_password_reset_records_the_administrators_reason(
    app: Flask, client: FlaskClient, world: World
) -> None:
    from dct_platform.models import AuditEntry

    login(client, "admin", world.password)
    page = f"/admin/users/{world.users['nurse'].id}"
    missing = submit(client, page, f"{page}/reset", {"reset-reason": ""})
    assert missing.status_code == 422 and "Say why." in missing.get_data(as_text=True)
    done = submit(client, page, f"{page}/reset", {"reset-reason": "Nurse called: locked out"})
    assert done.status_code == 302
    assert "Temporary password for nurse" in client.get(done.headers["Location"]).get_data(
        as_text=True
    )
    assert login(app.test_client(), "nurse", world.password).status_code == 401
    with app.app_context():
        entry = db.session.scalar(
            select(AuditEntry).where(
                AuditEntry.table_name == "users",
                AuditEntry.field == "password_hash",
                AuditEntry.record_id == str(world.users["nurse"].id),
                AuditEntry.action == "update",
            )
        )
        assert entry.reason == "Nurse called: locked out" and entry.new_value == "[redacted]"
