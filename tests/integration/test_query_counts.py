"""What a request costs the database does not grow with the data: the caller is resolved
in one statement, and every list and page runs a fixed number of statements whether it
shows two rows or twenty."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dct_platform.audit import seal_all
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, Trial, User
from dct_platform.models.patients import PatientStatus
from dct_platform.models.trials import TrialPhase, TrialStatus
from dct_platform.roles import Role
from dct_platform.services import accounts, trials
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from tests.support.clients import login, token_for
from tests.support.queries import statements_of
from tests.support.world import SYSTEM, World

# Statements per request, pinned: a change that adds one per row (or per request) fails.
API = {
    ("coord_berlin", "/api/v1/me"): 1,
    ("coord_berlin", "/api/v1/patients"): 3,
    ("coord_berlin", "/api/v1/activities"): 3,
    ("manager", "/api/v1/trials"): 2,
    ("admin", "/api/v1/users"): 3,
    ("admin", "/api/v1/audit/entries"): 3,
}
PAGES = {
    # The device panels (devices/views.py) add one statement each: the open alerts on the
    # homes, the patient's devices on the patient page, the sites' coverage (three) on /trial.
    # The visit-requests panel (dct_platform/visits/views.py) adds one on the homes: the
    # count of open requests.
    ("coord_berlin", "/site"): 7,
    ("pi_berlin", "/investigator"): 7,
    ("coord_berlin", "/site/patients/{anna}"): 20,
    ("coord_berlin", "/activity"): 6,
    ("admin", "/admin"): 7,
    ("manager", "/trial"): 7,
    ("anna", "/portal/profile"): 5,
}


def _grow(app: Flask, world: World) -> None:
    """Ten more patients (each moved once), another trial with its sponsor and site, and
    more accounts with sites and trials: every list above gets longer."""
    with app.app_context():
        s = db.session
        now = utcnow()
        berlin, tokyo = s.get(Site, world.berlin.id), s.get(Site, world.tokyo.id)
        coordinator = s.get(User, world.users["coord_berlin"].id)
        sponsor = trials.create_sponsor(s, None, now, "Other Pharma", system=SYSTEM)
        other = trials.create_trial(
            s, None, now, sponsor=sponsor, protocol_number="T-002", title="Second",
            phase=TrialPhase.PHASE_3, status=TrialStatus.ACTIVE, system=SYSTEM,
        )  # fmt: skip
        trials.create_site(
            s, None, now, trial=other, site_number="X1", name="Paris", country="FR",
            timezone="Europe/Paris", system=SYSTEM,
        )  # fmt: skip
        manager = s.get(User, world.users["manager"].id)
        accounts.set_access(
            s, s.get(User, world.users["admin"].id), now, manager,
            sites=[], trials=[s.get(Trial, world.trial.id), other], reason="second trial",
        )  # fmt: skip
        for i in range(10):
            patient = patient_service.enroll_patient(
                s, None, now - timedelta(days=5), site=berlin, subject_number=f"B1-{i:03}",
                timezone="Europe/Berlin", status=PatientStatus.ENROLLED, system=SYSTEM,
            )  # fmt: skip
            patient_service.transfer_patient(s, coordinator, now, patient, tokyo, "moved")
            accounts.create_user(
                s, None, now, username=f"staff{i}", password=world.password,
                role=Role.SITE_STAFF, display_name=f"Staff {i}", sites=[berlin, tokyo],
                system=SYSTEM,
            )  # fmt: skip
        anna = s.get(Patient, world.patients["anna"].id)
        for zone in ("Europe/Paris", "Europe/Berlin", "Europe/Paris"):
            patient_service.update_patient(
                s, coordinator, now, anna, {"timezone": zone}, reason="travelling"
            )
            now += timedelta(minutes=1)
        seal_all(s)
        s.commit()
        db.session.remove()


def _count(app: Flask, client: FlaskClient, path: str, **kwargs: object) -> int:
    with statements_of(app) as statements:
        response = client.get(path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, (path, response.status_code)
    return len(statements)


@pytest.mark.parametrize(("who", "path"), list(API))
def test_an_api_request_costs_the_same_few_statements_whatever_the_rows(
    app: Flask, world: World, who: str, path: str
) -> None:
    client = app.test_client()
    headers = token_for(client, who, world.password)
    before = _count(app, client, path, headers=headers)
    _grow(app, world)
    after = _count(app, client, path, headers=headers)
    assert (before, after) == (API[(who, path)], API[(who, path)])


@pytest.mark.parametrize(("who", "path"), list(PAGES))
def test_a_page_costs_the_same_few_statements_whatever_the_rows(
    app: Flask, world: World, who: str, path: str
) -> None:
    client = app.test_client()
    login(client, who, world.password)
    expected = PAGES[(who, path)]
    path = path.format(anna=world.patients["anna"].id)
    before = _count(app, client, path)
    _grow(app, world)
    after = _count(app, client, path)
    assert (before, after) == (expected, expected)
