"""The audit trail as investigators and inspectors read it: one entry per action with its
fields under it, labels and record numbers instead of column names and ids, times in the
reader's zone, personal data masked for administrators, and exports an inspector can keep."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from html import unescape

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform.extensions import db
from dct_platform.models import AuditAction, AuditEntry, Patient, Site, User
from dct_platform.services import patients as service
from dct_platform.timeutil import format_local, utcnow
from tests.support.clients import login, token_for
from tests.support.trail_html import ShownAction, shown_actions
from tests.support.world import World

PERSONAL = ("Secretname", "Hidden Street", "anna@example.org", "Anna", "Kenji")
COLUMN_NAMES = ("session_version", "site_id", "subject_number", "password_hash", "user_id")


def _walk(client: FlaskClient, path: str) -> list[ShownAction]:
    """Every action across the "Older actions" pages."""
    shown: list[ShownAction] = []
    while path:
        html = client.get(path).get_data(as_text=True)
        page = shown_actions(html)
        older = re.search(r'href="(/admin/audit\?[^"]*before=\d+[^"]*)"', html)
        assert page or (shown and not older), f"{path} shows no actions"
        shown += page
        path = unescape(older.group(1)) if older else ""
    return shown


def _transfer_kenji(app: Flask, world: World, reason: str) -> None:
    with app.app_context():
        s = db.session
        service.transfer_patient(
            s,
            s.get(User, world.users["coord_tokyo"].id),
            utcnow(),
            s.get(Patient, world.patients["kenji"].id),
            s.get(Site, world.berlin.id),
            reason,
        )
        s.commit()
        db.session.remove()


def test_administrators_read_one_entry_per_action_across_pages(app: Flask, world: World) -> None:
    _transfer_kenji(app, world, "moved to Berlin for work")
    app.config["AUDIT_PAGE_SIZE"] = 7  # pages end inside actions: none may be cut in two
    client = app.test_client()
    login(client, "admin", world.password)
    with app.app_context():
        zone = db.session.get(User, world.users["admin"].id).timezone
        stored = Counter(
            (a.summary, a.actor_name, format_local(a.occurred_at, zone))
            for a in db.session.scalars(select(AuditAction))
        )
        entries = db.session.scalar(select(func.count(AuditEntry.id)))
        db.session.remove()
    assert entries > 7 * 10, "the world writes many pages"

    shown = _walk(client, "/admin/audit")
    assert (
        Counter((a.summary, a.meta.split(" · ")[1], a.meta.split(" · ")[0]) for a in shown)
        == stored
    ), "every action exactly once, who and when as stored, in the reader's zone"

    # Newest first, also among the world's actions, all recorded in the same instant.
    assert shown[0].summary.startswith("Transfer patient")
    assert shown[-1].summary == "Create sponsor Acme Pharma"
    transfer = next(a for a in shown if a.summary.startswith("Transfer patient"))
    assert transfer.summary == "Transfer patient T1-kenji to site B1"
    assert transfer.reason == "moved to Berlin for work"
    by_record = {r.description: r.fields for r in transfer.records}
    assert by_record["Patient T1-kenji (changed)"] == {"Site": "T1 → B1"}
    new_period = next(f for d, f in by_record.items() if d.endswith("(added)"))
    assert new_period["Site"] == "B1" and re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d \S+", new_period["Valid from"]
    )

    enrol = next(a for a in shown if a.summary == "Enrol patient B1-anna")
    patient = next(r for r in enrol.records if r.description == "Patient B1-anna (added)")
    assert patient.fields["Site"] == "B1" and patient.fields["Trial"] == "T-001"
    assert patient.fields["Status"] == "Enrolled" and patient.fields["Time zone"]
    identity = next(r for r in enrol.records if r.description.startswith("Personal data of"))
    assert identity.description == "Personal data of B1-anna (added)"
    assert identity.fields["Given name"] == "[personal data]"

    account = next(a for a in shown if a.summary == "Create account coord_berlin (Site staff)")
    fields = account.records[0].fields
    assert fields["Role"] == "Site staff" and fields["Password"] == "[redacted]"

    text = "\n".join(a.text for a in shown)
    for personal in PERSONAL:
        assert personal not in text
    for column in COLUMN_NAMES:
        assert column not in text


def test_the_trail_is_filtered_by_record_person_and_days(app: Flask, world: World) -> None:
    _transfer_kenji(app, world, "moved")
    client = app.test_client()
    login(client, "admin", world.password)
    kenji = world.patients["kenji"].id
    app.config["AUDIT_PAGE_SIZE"] = 1
    only_kenji = _walk(client, f"/admin/audit?table=patients&record={kenji}")
    assert [a.summary for a in only_kenji] == [
        "Transfer patient T1-kenji to site B1",
        "Enrol patient T1-kenji",
    ]
    by_subject = _walk(client, "/admin/audit?subject=T1-kenji")
    assert [a.summary for a in by_subject] == [
        "Transfer patient T1-kenji to site B1",
        "Enrol patient T1-kenji",
    ]
    nobody = client.get("/admin/audit?subject=nobody").get_data(as_text=True)
    assert shown_actions(nobody) == [] and "No action matches this filter." in nobody
    by_coordinator = _walk(client, "/admin/audit?who=coord_tokyo")
    assert [a.summary for a in by_coordinator] == ["Transfer patient T1-kenji to site B1"]
    nothing_yet = client.get("/admin/audit?from=2999-01-01")
    assert shown_actions(nothing_yet.get_data(as_text=True)) == []
    assert "No action matches this filter." in nothing_yet.get_data(as_text=True)

    bad = client.get("/admin/audit?from=yesterday&to=2026-01-01")
    assert bad.status_code == 422
    assert "From: give a date as YYYY-MM-DD, not &#39;yesterday&#39;." in bad.get_data(as_text=True)
    backwards = client.get("/admin/audit?from=2026-02-01&to=2026-01-01")
    assert backwards.status_code == 422
    assert "the last day comes after the first" in backwards.get_data(as_text=True)


def test_an_inspector_takes_the_filtered_trail_as_csv_or_on_paper(app: Flask, world: World) -> None:
    # A reason that a spreadsheet would run as a formula stays text.
    _transfer_kenji(app, world, '=HYPERLINK("http://evil.example","click")')
    client = app.test_client()
    login(client, "admin", world.password)
    kenji = world.patients["kenji"].id

    response = client.get(f"/admin/audit.csv?table=patients&record={kenji}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["action"] for r in rows} == {
        "Transfer patient T1-kenji to site B1",
        "Enrol patient T1-kenji",
    }
    site_change = next(
        r for r in rows if r["record"] == "Patient T1-kenji" and r["change"] == "changed"
    )
    assert (site_change["field"], site_change["old_value"], site_change["new_value"]) == (
        "Site", "T1", "B1",
    )  # fmt: skip
    assert site_change["reason"].startswith("'=HYPERLINK")
    assert site_change["who"] == "coord_tokyo" and site_change["sealed"] in ("yes", "no")
    everything = client.get("/admin/audit.csv").get_data(as_text=True)
    for personal in PERSONAL:
        assert personal not in everything

    printed = client.get(f"/admin/audit/print?table=patients&record={kenji}")
    html = printed.get_data(as_text=True)
    assert printed.status_code == 200 and "Printed" in html and "Patient" in html
    assert [a.summary for a in shown_actions(html)] == [
        "Transfer patient T1-kenji to site B1",
        "Enrol patient T1-kenji",
    ]

    assert client.get("/admin/audit.csv?to=someday").status_code == 422
    staff = app.test_client()
    login(staff, "coord_berlin", world.password)
    assert staff.get("/admin/audit.csv").status_code == 403


def test_the_api_filters_the_trail_as_the_page_does(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _transfer_kenji(app, world, "moved")
    admin = token_for(client, "admin", world.password)
    entries = client.get(
        "/api/v1/audit/entries?subject=T1-kenji&actor=coord_tokyo&page_size=100", headers=admin
    ).get_json()
    assert entries and {e["actor_name"] for e in entries} == {"coord_tokyo"}
    assert {e["table_name"] for e in entries} <= {
        "patients", "patient_site_assignments", "patient_timezone_periods",
    }  # fmt: skip
    later = client.get(
        "/api/v1/audit/entries?since=2999-01-01T00:00:00%2B00:00", headers=admin
    ).get_json()
    assert later == []
    naive = client.get("/api/v1/audit/entries?since=2026-01-01T00:00:00", headers=admin)
    assert naive.status_code == 422
