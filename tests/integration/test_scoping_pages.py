"""Role scoping through the pages: the same answers as the API, enforced by the same policy."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dct_platform.extensions import db
from dct_platform.models import Patient, PatientIdentity
from tests.support.clients import csrf_token, duplicate_ids, login, submit
from tests.support.trail_html import shown_actions
from tests.support.world import World

HOMES = {
    "anna": "/portal/",
    "nurse": "/nurse/visits",
    "coord_berlin": "/site",
    "pi_berlin": "/investigator",
    "supply": "/supply/shipments",
    "manager": "/trial",
    "admin": "/admin",
}
# An investigator also works from the site's patient list, below their own home.
ALSO_REACHES = {"pi_berlin": {"/site"}}


@pytest.mark.parametrize("who", sorted(HOMES))
def test_each_role_lands_on_its_own_home_and_no_other(
    client: FlaskClient, world: World, who: str
) -> None:
    response = login(client, who, world.password)
    assert response.status_code == 302
    assert client.get("/").headers["Location"] == HOMES[who]
    assert client.get(HOMES[who]).status_code == 200
    for other, path in HOMES.items():
        if path != HOMES[who] and path not in ALSO_REACHES.get(who, set()):
            assert client.get(path).status_code == 403, f"{who} reached {other}'s home {path}"


def test_pages_need_sign_in(client: FlaskClient) -> None:
    response = client.get("/site")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_site_staff_page_lists_only_own_patients(client: FlaskClient, world: World) -> None:
    login(client, "coord_berlin", world.password)
    html = client.get("/site").get_data(as_text=True)
    assert "B1-anna" in html and "T1-kenji" not in html
    assert client.get(f"/site/patients/{world.patients['kenji'].id}").status_code == 404
    page = client.get(f"/site/patients/{world.patients['anna'].id}").get_data(as_text=True)
    assert "Secretname" in page
    assert "<title>B1-anna · DCT Platform</title>" in page
    assert duplicate_ids(page) == set()


def test_changing_another_sites_patient_through_forms_changes_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "coord_berlin", world.password)
    kenji = world.patients["kenji"].id
    token = csrf_token(client, "/site")
    identity = client.post(
        f"/site/patients/{kenji}/identity",
        data={"csrf_token": token, "given_name": "Mallory", "family_name": "Evil", "reason": "x"},
    )
    transfer = client.post(
        f"/site/patients/{kenji}/transfer",
        data={"csrf_token": token, "to_site_id": world.berlin.id, "reason": "x"},
    )
    assert identity.status_code == 404 and transfer.status_code == 404
    with app.app_context():
        assert db.session.get(PatientIdentity, kenji).given_name == "Kenji"
        assert db.session.get(Patient, kenji).site_id == world.tokyo.id


def test_supply_and_trial_manager_pages_show_no_names(app: Flask, world: World) -> None:
    for who, path in (("supply", "/supply"), ("manager", "/trial")):
        client = app.test_client()
        login(client, who, world.password)
        html = client.get(path).get_data(as_text=True)
        assert "Secretname" not in html and "Hidden Street" not in html
        assert "Berlin" in html and "Tokyo" in html


def test_forms_without_csrf_token_are_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    response = client.post(
        f"/site/patients/{anna}/identity", data={"given_name": "X", "family_name": "Y"}
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(PatientIdentity, anna).given_name == "Anna"


def test_identity_correction_without_reason_shows_inline_error(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    page = f"/site/patients/{anna}"
    response = submit(
        client, page, f"{page}/identity", {"given_name": "Annie", "family_name": "Secretname"}
    )
    assert response.status_code == 422
    assert "required for a correction" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(PatientIdentity, anna).given_name == "Anna"
    fixed = submit(
        client,
        page,
        f"{page}/identity",
        {"given_name": "Annie", "family_name": "Secretname", "reason": "Typo at enrolment"},
    )
    assert fixed.status_code == 302
    with app.app_context():
        assert db.session.get(PatientIdentity, anna).given_name == "Annie"
    # The page's change history reads as the site reads it: the action, who and why,
    # and the field that changed with its old and new value (the site may see them).
    correction = shown_actions(client.get(page).get_data(as_text=True))[0]
    assert correction.summary == "Correct personal data of B1-anna"
    assert correction.reason == "Typo at enrolment" and "coord_berlin" in correction.meta
    [record] = correction.records
    assert record.description == "Personal data of B1-anna (changed)"
    assert record.fields["Given name"] == "Anna → Annie"
    csv_text = client.get(f"{page}/history.csv").get_data(as_text=True)
    assert "Correct personal data of B1-anna" in csv_text and "Annie" in csv_text
    printed = client.get(f"{page}/history/print").get_data(as_text=True)
    assert "Change history of patient B1-anna" in printed
    assert shown_actions(printed)[0].summary == "Correct personal data of B1-anna"
    other = app.test_client()
    login(other, "coord_tokyo", world.password)
    assert other.get(f"{page}/history.csv").status_code == 404


def test_transfer_through_the_page(app: Flask, client: FlaskClient, world: World) -> None:
    login(client, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    page = f"/site/patients/{anna}"
    no_reason = submit(
        client, page, f"{page}/transfer", {"to_site_id": world.tokyo.id, "reason": ""}
    )
    assert no_reason.status_code == 422 and "Say why the patient moves." in no_reason.get_data(
        as_text=True
    )
    done = submit(
        client, page, f"{page}/transfer", {"to_site_id": world.tokyo.id, "reason": "Moved to Japan"}
    )
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(Patient, anna).site_id == world.tokyo.id
    # The old site has lost access from now on.
    assert client.get(page).status_code == 404


def test_patient_profile_preferences(app: Flask, client: FlaskClient, world: World) -> None:
    login(client, "anna", world.password)
    bad = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Europe/Atlantis", "preferred_language": "de"},
    )
    assert bad.status_code == 422 and "Unknown time zone" in bad.get_data(as_text=True)
    ok = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Asia/Tokyo", "preferred_language": "de"},
    )
    assert ok.status_code == 302
    with app.app_context():
        patient = db.session.get(Patient, world.patients["anna"].id)
        assert (patient.timezone, patient.preferred_language) == ("Asia/Tokyo", "de")
