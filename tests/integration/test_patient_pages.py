"""Site staff's patient pages: enrolment with consent, status changes with a day and a
reason, and a patient list they can search, filter, sort and page through."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import Patient, PatientStatusChange, Site
from dct_platform.models.patients import PatientStatus
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from tests.support.clients import login, submit
from tests.support.trail_html import shown_actions
from tests.support.world import SYSTEM, World


def _subjects(html: str) -> list[str]:
    return re.findall(r'<a class="subject" href="[^"]+">([^<]+)</a>', html)


def _enrol_more(app: Flask, world: World, count: int) -> None:
    with app.app_context():
        berlin = db.session.get(Site, world.berlin.id)
        for i in range(count):
            patient_service.enroll_patient(
                db.session, None, utcnow(), site=berlin, subject_number=f"B1-{i:03}",
                timezone="Europe/Berlin", status=PatientStatus.SCREENING, system=SYSTEM,
                identity=patient_service.IdentityInput(
                    given_name=f"Given{i}", family_name="Zimmermann" if i == 7 else "Other"
                ),
            )  # fmt: skip
        db.session.commit()
        db.session.remove()


def test_enrolment_records_the_consent_and_refuses_without_it(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "coord_berlin", world.password)
    form = {
        "site_id": world.berlin.id, "subject_number": "B1-200", "status": "screening",
        "timezone": "Europe/Berlin", "preferred_language": "de", "given_name": "Lena",
        "family_name": "Vogel",
    }  # fmt: skip
    missing = submit(client, "/site/patients/new", "/site/patients/new", form)
    html = missing.get_data(as_text=True)
    assert missing.status_code == 422
    assert "Give the day the patient signed the consent form." in html
    assert "Give the version of the consent form signed." in html
    future = (date.today() + timedelta(days=3)).isoformat()
    too_early = submit(
        client, "/site/patients/new", "/site/patients/new",
        {**form, "consent_date": future, "consent_version": "3.0"},
    )  # fmt: skip
    assert too_early.status_code == 422
    assert "The consent date cannot be in the future." in too_early.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Patient).where(Patient.subject_number == "B1-200")) is None
    done = submit(
        client, "/site/patients/new", "/site/patients/new",
        {**form, "consent_date": "2026-01-05", "consent_version": "3.0 of 2025-12-01"},
    )  # fmt: skip
    assert done.status_code == 302
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "signed 2026-01-05, form version 3.0 of 2025-12-01" in page


def test_status_changes_on_the_page_with_a_day_and_a_reason(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _enrol_more(app, world, 1)
    with app.app_context():
        pid = db.session.scalar(select(Patient.id).where(Patient.subject_number == "B1-000"))
    login(client, "coord_berlin", world.password)
    page = f"/site/patients/{pid}"
    html = client.get(page).get_data(as_text=True)
    options = re.findall(r'<option value="(\w+)">', html.split('name="status-status"')[1])
    assert options[:3] == ["enrolled", "screen_failed", "withdrawn"]

    no_reason = submit(
        client, page, f"{page}/status",
        {"status-status": "enrolled", "status-effective_on": "2026-01-10", "status-reason": ""},
    )  # fmt: skip
    assert no_reason.status_code == 422
    assert "Say why the status changes." in no_reason.get_data(as_text=True)
    future = (date.today() + timedelta(days=2)).isoformat()
    ahead = submit(
        client, page, f"{page}/status",
        {"status-status": "enrolled", "status-effective_on": future, "status-reason": "x"},
    )  # fmt: skip
    assert ahead.status_code == 422
    assert "The day cannot be in the future." in ahead.get_data(as_text=True)

    ok = submit(
        client, page, f"{page}/status",
        {"status-status": "enrolled", "status-effective_on": "2026-01-10",
         "status-reason": "Eligibility confirmed"},
    )  # fmt: skip
    assert ok.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert '<dd data-testid="patient-status">Enrolled</dd>' in html
    assert "2026-01-10: Screening → Enrolled — Eligibility confirmed" in html
    action = shown_actions(html)[0]
    assert action.summary == "Change status of patient B1-000 to Enrolled"
    assert action.reason == "Eligibility confirmed"

    # Enrolled cannot go back to screening: the page does not offer it, a forged form is
    # refused with the reason, and nothing changes.
    forged = submit(
        client, page, f"{page}/status",
        {"status-status": "screening", "status-effective_on": "2026-01-11", "status-reason": "x"},
    )  # fmt: skip
    assert forged.status_code == 422
    earlier = submit(
        client, page, f"{page}/status",
        {"status-status": "withdrawn", "status-effective_on": "2026-01-09", "status-reason": "x"},
    )  # fmt: skip
    assert "The previous change took effect on 2026-01-10." in earlier.get_data(as_text=True)
    final = submit(
        client, page, f"{page}/status",
        {"status-status": "completed", "status-effective_on": "2026-01-12",
         "status-reason": "Last visit done"},
    )  # fmt: skip
    assert final.status_code == 302
    assert "Completed is final" in client.get(page).get_data(as_text=True)
    with app.app_context():
        changes = list(
            db.session.scalars(
                select(PatientStatusChange.to_status).where(PatientStatusChange.patient_id == pid)
            )
        )
    assert changes == [PatientStatus.ENROLLED, PatientStatus.COMPLETED]

    other = app.test_client()
    login(other, "coord_tokyo", world.password)
    assert submit(
        other, "/site", f"{page}/status",
        {"status-status": "withdrawn", "status-effective_on": "2026-01-12", "status-reason": "x"},
    ).status_code == 404  # fmt: skip


def test_the_patient_list_searches_filters_sorts_and_pages(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _enrol_more(app, world, 30)
    login(client, "coord_berlin", world.password)
    first = client.get("/site").get_data(as_text=True)
    assert "31 patients." in first  # anna and thirty more
    assert _subjects(first)[:3] == ["B1-000", "B1-001", "B1-002"] and len(_subjects(first)) == 25
    second = client.get("/site?page=2").get_data(as_text=True)
    assert _subjects(second) == ["B1-025", "B1-026", "B1-027", "B1-028", "B1-029", "B1-anna"]
    assert "Page 2 of 2" in second

    assert _subjects(client.get("/site?q=b1-02").get_data(as_text=True))[:2] == [
        "B1-020",
        "B1-021",
    ]
    by_name = client.get("/site?q=zimmer").get_data(as_text=True)
    assert _subjects(by_name) == ["B1-007"] and "Given7 Zimmermann" in by_name
    enrolled = client.get("/site?status=enrolled").get_data(as_text=True)
    assert _subjects(enrolled) == ["B1-anna"]
    backwards = client.get("/site?sort=-subject").get_data(as_text=True)
    assert _subjects(backwards)[0] == "B1-anna"
    # One site: no column repeating it on every row.
    assert "Site B1" not in first

    bad = client.get("/site?status=asleep&page=zero&sort=random")
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Status: no status is called &#39;asleep&#39;." in text
    assert "Page: give a page number from 1." in text
    nothing = client.get("/site?q=%25").get_data(as_text=True)
    assert "No patient matches this search." in nothing  # a literal %, not a wildcard


def test_an_investigator_lands_on_what_awaits_them_not_on_enrolment(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "pi_berlin", world.password)
    home = client.get("/", follow_redirects=True)
    html = home.get_data(as_text=True)
    assert home.request.path == "/investigator"
    assert "Awaiting your attention" in html and "Nothing awaits your review" in html
    assert _subjects(html) == ["B1-anna"]
    coordinator = app.test_client()
    login(coordinator, "coord_berlin", world.password)
    assert coordinator.get("/", follow_redirects=True).request.path == "/site"
    assert coordinator.get("/investigator").status_code == 403
