"""Concurrent changes of one record never corrupt its history or lose an update.

Each race is run for real: 20 threads send their requests at once to the app served over
HTTP by a threaded server, on PostgreSQL and on SQLite.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dct_platform import audit
from dct_platform.audit import verify_chain
from dct_platform.extensions import db
from dct_platform.models import (
    AuditEntry,
    Patient,
    PatientIdentity,
    PatientSiteAssignment,
    PatientStatusChange,
    Site,
    SiteInvestigatorPeriod,
    User,
)
from dct_platform.roles import Role
from dct_platform.services import accounts, trials
from tests.support.clients import login, submit, token_for
from tests.support.concurrency import all_at_once
from tests.support.live_server import LiveServer
from tests.support.world import World

THREADS = 20


def _token(live_server: LiveServer, username: str, password: str) -> dict[str, str]:
    response = requests.post(
        f"{live_server.url}/api/v1/auth/token",
        json={"username": username, "password": password},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _coordinator_of_both_sites(app: Flask, world: World) -> str:
    with app.app_context():
        berlin, tokyo = db.session.get(Site, world.berlin.id), db.session.get(Site, world.tokyo.id)
        accounts.create_user(
            db.session,
            None,
            datetime.now(UTC),
            username="coord_both",
            password=world.password,
            role=Role.SITE_STAFF,
            display_name="Coordinator of both sites",
            sites=[berlin, tokyo],
            system="test",
        )
        db.session.commit()
    return "coord_both"


def _values(entries: list[AuditEntry]) -> list[tuple[str | None, str | None]]:
    return [(e.old_value, e.new_value) for e in entries]


def test_concurrent_transfers_leave_one_unbroken_ownership_history(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    headers = _token(live_server, _coordinator_of_both_sites(app, world), world.password)
    anna = world.patients["anna"].id
    targets = [world.tokyo.id if i % 2 == 0 else world.berlin.id for i in range(THREADS)]
    answers = all_at_once(
        [
            lambda site=site: requests.post(
                f"{live_server.url}/api/v1/patients/{anna}/transfer",
                headers=headers,
                json={"to_site_id": site, "reason": f"to site {site}"},
                timeout=60,
            )
            for site in targets
        ]
    )
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    moved = sum(a.status_code == 200 for a in answers)
    assert moved >= 1

    with app.app_context():
        s = db.session
        periods = list(
            s.scalars(
                select(PatientSiteAssignment)
                .where(PatientSiteAssignment.patient_id == anna)
                .order_by(PatientSiteAssignment.valid_from)
            )
        )
        # One period per successful transfer plus enrolment, each ending where the next
        # begins, exactly one open, at the site the patient record names.
        assert len(periods) == moved + 1
        for earlier, later in itertools.pairwise(periods):
            assert earlier.valid_to == later.valid_from
            assert earlier.site_id != later.site_id
        assert [p.valid_to is None for p in periods].count(True) == 1
        assert periods[-1].valid_to is None
        assert s.get(Patient, anna).site_id == periods[-1].site_id

        # The trail tells the same story: each move starts where the previous one ended.
        moves = list(
            s.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.table_name == "patients",
                    AuditEntry.record_id == str(anna),
                    AuditEntry.field == "site_id",
                    AuditEntry.action == "update",
                )
                # Written order (as the trail's pages read it): a sealer running meanwhile
                # leaves some entries without a seq yet, which would sort them last.
                .order_by(AuditEntry.id)
            )
        )
        assert len(moves) == moved
        hops = _values(moves)
        assert hops[0][0] == str(world.berlin.id)
        for (_, new), (old, _) in itertools.pairwise(hops):
            assert old == new
        assert verify_chain(s).ok


def test_concurrent_status_changes_apply_exactly_one(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    """Twenty coordinators end the same enrolled patient's study at once, half as completed
    and half as withdrawn: exactly one change is applied, every other request is refused
    with a reason, and the history holds one change."""
    headers = _token(live_server, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    statuses = ["completed", "withdrawn"]
    answers = all_at_once(
        [
            lambda i=i: requests.post(
                f"{live_server.url}/api/v1/patients/{anna}/status",
                headers=headers,
                json={
                    "status": statuses[i % 2],
                    "effective_on": "2026-03-01",
                    "reason": f"change {i}",
                },
                timeout=60,
            )
            for i in range(THREADS)
        ]
    )
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 1 and codes.count(409) == THREADS - 1, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert refused.json()["code"] in ("stale_record", "conflict"), refused.text
    winner = next(a.json() for a in answers if a.status_code == 200)

    with app.app_context():
        changes = list(
            db.session.scalars(
                select(AuditEntry).where(
                    AuditEntry.table_name == "patients",
                    AuditEntry.record_id == str(anna),
                    AuditEntry.field == "status",
                    AuditEntry.action == "update",
                )
            )
        )
        assert _values(changes) == [("enrolled", winner["status"])]
        history = list(
            db.session.scalars(
                select(PatientStatusChange).where(PatientStatusChange.patient_id == anna)
            )
        )
        assert [(h.from_status.value, h.to_status.value) for h in history] == [
            ("enrolled", winner["status"])
        ]
        assert db.session.get(Patient, anna).status.value == winner["status"]


def test_if_match_refuses_a_change_from_an_outdated_copy(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    headers = _token(live_server, "coord_berlin", world.password)
    url = f"{live_server.url}/api/v1/patients/{world.patients['anna'].id}"
    read = requests.get(url, headers=headers, timeout=10)
    etag = read.headers["ETag"]

    first = requests.post(
        f"{url}/status",
        headers={**headers, "If-Match": etag},
        json={"status": "withdrawn", "effective_on": "2026-03-01", "reason": "Consent withdrawn"},
        timeout=10,
    )
    assert first.status_code == 200 and first.json()["status"] == "withdrawn"
    assert first.headers["ETag"] != etag

    second = requests.patch(
        url,
        headers={**headers, "If-Match": etag},
        json={"baseline_date": "2026-02-01", "reason": "Corrected baseline"},
        timeout=10,
    )
    assert second.status_code == 412
    assert second.json()["code"] == "precondition_failed"
    assert requests.get(url, headers=headers, timeout=10).json()["baseline_date"] is None

    fresh = requests.patch(
        url,
        headers={**headers, "If-Match": first.headers["ETag"]},
        json={"baseline_date": "2026-02-01", "reason": "Corrected baseline"},
        timeout=10,
    )
    assert fresh.status_code == 200 and fresh.json()["baseline_date"] == "2026-02-01"


def test_identity_etag_and_if_match(app: Flask, world: World, live_server: LiveServer) -> None:
    headers = _token(live_server, "coord_berlin", world.password)
    url = f"{live_server.url}/api/v1/patients/{world.patients['anna'].id}/identity"
    etag = requests.get(url, headers=headers, timeout=10).headers["ETag"]
    ok = requests.patch(
        url,
        headers={**headers, "If-Match": etag},
        json={"phone": "+49 30 1234567", "reason": "Patient gave a phone number"},
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["phone"] == "+49 30 1234567"
    stale = requests.patch(
        url,
        headers={**headers, "If-Match": etag},
        json={"phone": "+49 30 7654321", "reason": "typo"},
        timeout=10,
    )
    assert stale.status_code == 412
    assert requests.get(url, headers=headers, timeout=10).json()["phone"] == "+49 30 1234567"


def test_a_form_saved_from_an_outdated_page_is_refused(app: Flask, world: World) -> None:
    anna = world.patients["anna"].id
    page = f"/site/patients/{anna}"
    first, second = app.test_client(), app.test_client()
    login(first, "coord_berlin", world.password)
    login(second, "pi_berlin", world.password)
    form = {
        "given_name": "Anna",
        "family_name": "Secretname",
        "address_line1": "1 Hidden Street",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
        "email": "anna@example.org",
    }
    # Both open the page (version 1), then both save.
    for client in (first, second):
        html = client.get(page).get_data(as_text=True)
        assert 'name="version" type="hidden" value="1"' in html
    saved = submit(
        first,
        page,
        f"{page}/identity",
        {**form, "version": "1", "phone": "+49 1", "reason": "Phone number given"},
    )
    assert saved.status_code == 302
    late = submit(
        second,
        page,
        f"{page}/identity",
        {**form, "version": "1", "phone": "+49 2", "reason": "Phone number given"},
    )
    assert late.status_code == 409
    assert "reload it" in late.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(PatientIdentity, anna).phone == "+49 1"


def test_the_database_refuses_overlapping_ownership(app: Flask, world: World) -> None:
    """Whatever a service or a script does, a patient never has two owners at once."""
    now = datetime.now(UTC)
    anna = world.patients["anna"].id
    with app.app_context():
        s = db.session
        with (
            pytest.raises(IntegrityError),
            audit.acting(s, None, now, system="test", what="Test change"),
        ):
            s.add(PatientSiteAssignment(patient_id=anna, site_id=world.tokyo.id, valid_from=now))
        s.rollback()
        with (
            pytest.raises(IntegrityError),
            audit.acting(s, None, now, system="test", what="Test change"),
        ):
            s.add(
                PatientSiteAssignment(
                    patient_id=anna,
                    site_id=world.tokyo.id,
                    valid_from=now - timedelta(days=5),
                    valid_to=now - timedelta(days=6),
                )
            )
        s.rollback()


@pytest.mark.postgres_only
def test_postgres_refuses_overlapping_closed_periods(app: Flask, world: World) -> None:
    from tests.support.database import is_postgres

    if not is_postgres():
        pytest.skip("the exclusion constraint is PostgreSQL's")
    now = datetime.now(UTC)
    with app.app_context():
        s = db.session
        overlapping = PatientSiteAssignment(
            patient_id=world.patients["anna"].id,
            site_id=world.tokyo.id,
            valid_from=now - timedelta(days=10),
            valid_to=now - timedelta(days=9),
        )
        # Enrolled 20 days ago and still open: a closed period inside it overlaps.
        with (
            pytest.raises(IntegrityError, match="no_overlap"),
            audit.acting(s, None, now, system="test", what="Test change"),
        ):
            s.add(overlapping)
        s.rollback()


def test_principal_investigator_changes_need_a_reason_and_repeat_is_a_no_op(
    app: Flask, world: World
) -> None:
    from dct_platform.errors import ValidationFailed

    now = datetime.now(UTC)
    with app.app_context():
        s = db.session
        admin = s.get(User, world.users["admin"].id)
        berlin = s.get(Site, world.berlin.id)
        pi = s.get(User, world.users["pi_berlin"].id)
        with pytest.raises(ValidationFailed) as refused:
            trials.appoint_principal_investigator(s, admin, now, berlin, pi, reason=" ")
        assert set(refused.value.details["fields"]) == {"reason"}
        before = s.scalar(select(db.func.max(AuditEntry.seq)))
        trials.appoint_principal_investigator(s, admin, now, berlin, pi, reason="again")
        s.commit()
        assert s.scalar(select(db.func.max(AuditEntry.seq))) == before
        periods = s.scalars(
            select(SiteInvestigatorPeriod).where(SiteInvestigatorPeriod.site_id == berlin.id)
        ).all()
        assert len(periods) == 1 and periods[0].valid_to is None


def test_a_patient_saving_outdated_settings_sees_the_current_ones(
    app: Flask, client: FlaskClient, world: World
) -> None:
    patient = app.test_client()
    login(patient, "anna", world.password)
    html = patient.get("/portal/profile").get_data(as_text=True)
    assert 'name="version" type="hidden" value="1"' in html
    staff = token_for(client, "coord_berlin", world.password)
    moved = client.patch(
        f"/api/v1/patients/{world.patients['anna'].id}",
        headers=staff,
        json={"timezone": "Europe/Paris"},
    )
    assert moved.status_code == 200
    late = submit(
        patient,
        "/portal/profile",
        "/portal/profile",
        {"version": "1", "timezone": "Asia/Tokyo", "preferred_language": "en"},
    )
    assert late.status_code == 409
    page = late.get_data(as_text=True)
    assert "changed in the meantime" in page and 'value="Europe/Paris"' in page
    with app.app_context():
        assert db.session.get(Patient, world.patients["anna"].id).timezone == "Europe/Paris"
