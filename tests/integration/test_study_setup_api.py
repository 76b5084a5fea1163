"""Administrators set up trials, sites and principal investigators through the API."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform.extensions import db
from dct_platform.models import Site, SiteInvestigatorPeriod, Trial
from tests.support.clients import token_for
from tests.support.world import World


def test_admin_sets_up_a_trial_with_a_site_and_pi(
    app: Flask, client: FlaskClient, world: World
) -> None:
    admin = token_for(client, "admin", world.password)
    trial = client.post(
        "/api/v1/trials",
        headers=admin,
        json={
            "sponsor": "Acme Pharma",
            "protocol_number": "T-002",
            "title": "Second",
            "phase": "III",
            "title_translations": {"de": "Zweite Studie", "ja": "第二の試験"},
        },
    )
    assert trial.status_code == 201, trial.get_json()
    body = trial.get_json()
    assert body["sponsor"] == "Acme Pharma" and body["status"] == "planning"
    assert body["title_translations"] == {"de": "Zweite Studie", "ja": "第二の試験"}
    bad = client.post(
        "/api/v1/trials",
        headers=admin,
        json={"sponsor": "A", "protocol_number": "T-003", "title": "T", "phase": "III",
              "title_translations": {"not a language": "x"}},
    )  # fmt: skip
    assert bad.status_code == 422 and "title_translations" in bad.get_json()["details"]["fields"]

    site = client.post(
        f"/api/v1/trials/{body['id']}/sites",
        headers=admin,
        json={
            "site_number": "US-1",
            "name": "Boston",
            "country": "US",
            "timezone": "America/New_York",
            "phone": "+1 617 555 0100",
            "enrolment_target": 20,
        },
    )
    assert site.status_code == 201 and site.get_json()["phone"] == "+1 617 555 0100"
    assert site.get_json()["enrolment_target"] == 20
    site_id = site.get_json()["id"]

    pi = world.users["pi_berlin"].id
    appointed = client.put(
        f"/api/v1/sites/{site_id}/principal-investigator",
        headers=admin,
        json={"investigator_id": pi, "reason": "Site initiation"},
    )
    assert (
        appointed.status_code == 200
        and appointed.get_json()["principal_investigator"] == "Pi_Berlin"
    )
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(SiteInvestigatorPeriod)
                .where(SiteInvestigatorPeriod.site_id == site_id)
            )
            == 1
        )


def test_set_up_input_is_checked(client: FlaskClient, world: World) -> None:
    admin = token_for(client, "admin", world.password)
    dup = client.post(
        "/api/v1/trials",
        headers=admin,
        json={
            "sponsor": "Acme Pharma",
            "protocol_number": "T-001",
            "title": "Again",
            "phase": "II",
        },
    )
    assert dup.status_code == 409
    bad_phase = client.post(
        "/api/v1/trials",
        headers=admin,
        json={"sponsor": "X", "protocol_number": "T-9", "title": "X", "phase": "V"},
    )
    assert bad_phase.status_code == 422 and "phase" in bad_phase.get_json()["details"]["fields"]
    bad_site = client.post(
        f"/api/v1/trials/{world.trial.id}/sites",
        headers=admin,
        json={"site_number": "X1", "name": "X", "country": "Germany", "timezone": "CET/Berlin"},
    )
    assert bad_site.status_code == 422
    assert set(bad_site.get_json()["details"]["fields"]) == {"country", "timezone"}
    not_pi = client.put(
        f"/api/v1/sites/{world.berlin.id}/principal-investigator",
        headers=admin,
        json={"investigator_id": world.users["nurse"].id, "reason": "Site initiation"},
    )
    assert not_pi.status_code == 422
    assert set(not_pi.get_json()["details"]["fields"]) == {"investigator_id"}


def test_only_administrators_set_up_studies(app: Flask, client: FlaskClient, world: World) -> None:
    manager = token_for(client, "manager", world.password)
    assert (
        client.post(
            "/api/v1/trials",
            headers=manager,
            json={"sponsor": "Acme Pharma", "protocol_number": "T-3", "title": "X", "phase": "II"},
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/trials/{world.trial.id}/sites",
            headers=manager,
            json={"site_number": "X1", "name": "X", "country": "DE", "timezone": "Europe/Berlin"},
        ).status_code
        == 403
    )
    coord = token_for(client, "coord_berlin", world.password)
    assert (
        client.put(
            f"/api/v1/sites/{world.berlin.id}/principal-investigator",
            headers=coord,
            json={"investigator_id": world.users["pi_berlin"].id, "reason": "r"},
        ).status_code
        == 403
    )
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Trial)) == 1
        assert db.session.scalar(select(func.count()).select_from(Site)) == 2
