"""Signing out ends the session on the server; personal data stays with those who may see
it; only real places are accepted as time zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dct_platform.extensions import db
from dct_platform.models import Patient, Site, User
from dct_platform.roles import Role
from dct_platform.services import accounts
from dct_platform.services import patients as patient_service
from tests.support.clients import csrf_token, login, token_for
from tests.support.world import World


def _session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def test_a_copied_cookie_is_worthless_after_sign_out(app: Flask, world: World) -> None:
    browser = app.test_client()
    login(browser, "coord_berlin", world.password)
    assert browser.get("/site").status_code == 200
    copied = _session_cookie(browser)

    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/site").status_code == 200  # before sign-out the copy works, as any

    signed_out = browser.post("/logout", data={"csrf_token": csrf_token(browser, "/site")})
    assert signed_out.status_code == 302

    replay = app.test_client()
    replay.set_cookie("session", copied)
    answer = replay.get("/site")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
    page = replay.get("/account/password", follow_redirects=True).get_data(as_text=True)
    assert "Coord_Berlin" not in page
    # Signing out one browser leaves the user's other sessions alone.
    other = app.test_client()
    login(other, "coord_berlin", world.password)
    assert other.get("/site").status_code == 200


def test_site_history_reasons_are_for_the_site_not_for_oversight_roles(
    app: Flask, client: FlaskClient, world: World
) -> None:
    anna = world.patients["anna"].id
    with app.app_context():
        s = db.session
        patient_service.transfer_patient(
            s,
            s.get(User, world.users["coord_berlin"].id),
            datetime.now(UTC),
            s.get(Patient, anna),
            s.get(Site, world.tokyo.id),
            "Moved in with her daughter in Tokyo after her diagnosis",
        )
        s.commit()
    for who, reads in (
        ("coord_tokyo", True),
        ("anna", True),
        ("manager", False),
        ("supply", False),
    ):
        history = client.get(
            f"/api/v1/patients/{anna}/site-history", headers=token_for(client, who, world.password)
        )
        assert history.status_code == 200, (who, history.get_json())
        moved = history.get_json()[-1]
        if reads:
            assert "daughter" in moved["reason"] and moved["reason_withheld"] is False
        else:
            assert moved["reason"] is None and moved["reason_withheld"] is True
            assert "daughter" not in history.get_data(as_text=True)


def test_administrators_read_no_patient_account_names_in_the_trail(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with app.app_context():
        accounts.create_user(
            db.session,
            None,
            datetime.now(UTC),
            username="patient.b1099",
            password="a long passphrase of mine",
            role=Role.PATIENT,
            display_name="Greta Neumann",
            email="greta.neumann@example.org",
            system="test",
            opened_at_enrolment=True,
        )
        db.session.commit()
    admin = token_for(client, "admin", world.password)
    api = client.get("/api/v1/audit/entries?table=users&page_size=100", headers=admin)
    assert api.status_code == 200
    text = api.get_data(as_text=True)
    assert "Greta Neumann" not in text and "greta.neumann@example.org" not in text
    assert "Coord_Berlin" in text  # staff names are professional contact data
    assert "patient.b1099" in text  # a patient's username is pseudonymous

    browser = app.test_client()
    login(browser, "admin", world.password)
    page = browser.get("/admin/audit?table=users").get_data(as_text=True)
    assert "Greta Neumann" not in page and "greta.neumann@example.org" not in page
    assert "Coord_Berlin" in page


@pytest.mark.parametrize("zone", ["localtime", "Factory", "US/Eastern", "posixrules"])
def test_only_canonical_time_zones_are_accepted(
    client: FlaskClient, world: World, zone: str
) -> None:
    admin = token_for(client, "admin", world.password)
    site = client.post(
        f"/api/v1/trials/{world.trial.id}/sites",
        headers=admin,
        json={"site_number": "Z9", "name": "Nowhere", "country": "US", "timezone": zone},
    )
    assert site.status_code == 422
    assert "timezone" in site.get_json()["details"]["fields"]
    coord = token_for(client, "coord_berlin", world.password)
    patient = client.patch(
        f"/api/v1/patients/{world.patients['anna'].id}",
        headers=coord,
        json={"timezone": zone},
    )
    assert patient.status_code == 422
    accepted = client.patch(
        f"/api/v1/patients/{world.patients['anna'].id}",
        headers=coord,
        json={"timezone": "America/New_York"},
    )
    assert accepted.status_code == 200
