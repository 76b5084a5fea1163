"""A patient's time-zone history: past occurrences keep the zone they were scheduled in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform.audit import verify_chain
from dct_platform.errors import Conflict, NotFound
from dct_platform.extensions import db
from dct_platform.localtime import local_window, utc_to_local
from dct_platform.models import (
    AuditEntry,
    Patient,
    PatientSiteAssignment,
    PatientTimezonePeriod,
    Site,
    User,
)
from dct_platform.services import ownership
from dct_platform.services import patients as service
from tests.support.clients import login, submit, token_for
from tests.support.concurrency import all_at_once
from tests.support.live_server import LiveServer
from tests.support.world import CONSENT, World

BERLIN, NEW_YORK, TOKYO = "Europe/Berlin", "America/New_York", "Asia/Tokyo"


def _periods(patient_id: int) -> list[tuple[str, datetime, datetime | None]]:
    return [
        (p.timezone, p.valid_from, p.valid_to)
        for p in db.session.scalars(
            select(PatientTimezonePeriod)
            .where(PatientTimezonePeriod.patient_id == patient_id)
            .order_by(PatientTimezonePeriod.valid_from)
        )
    ]


def _site_periods(patient_id: int) -> int:
    return len(
        db.session.scalars(
            select(PatientSiteAssignment).where(PatientSiteAssignment.patient_id == patient_id)
        ).all()
    )


def test_enrolment_opens_the_first_period(app: Flask, client: FlaskClient, world: World) -> None:
    anna = world.patients["anna"].id
    with app.app_context():
        [(zone, since, until)] = _periods(anna)
        assert (zone, until) == (BERLIN, None)
        assert since == db.session.get(Patient, anna).created_at
        assert ownership.timezone_at(db.session, anna, datetime.now(UTC)) == BERLIN
        with pytest.raises(NotFound):
            ownership.timezone_at(db.session, anna, since - timedelta(microseconds=1))

    headers = token_for(client, "coord_berlin", world.password)
    enrolled = client.post(
        "/api/v1/patients",
        headers=headers,
        json={
            "site_id": world.berlin.id,
            "subject_number": "B1-new",
            "timezone": "Asia/Kolkata",
            **CONSENT,
        },
    )
    assert enrolled.status_code == 201, enrolled.get_json()
    body = enrolled.get_json()
    history = client.get(f"/api/v1/patients/{body['id']}/timezone-history", headers=headers)
    assert history.status_code == 200
    assert history.get_json() == [
        {
            "timezone": "Asia/Kolkata",
            "valid_from": body["created_at"],
            "valid_to": None,
            "reason": "enrolment",
            "reason_withheld": False,
        }
    ]


def test_a_change_keeps_the_old_zone_for_past_instants(app: Flask, world: World) -> None:
    anna_id = world.patients["anna"].id
    with app.app_context():
        s = db.session
        anna_user = s.get(User, world.users["anna"].id)
        anna = s.get(Patient, anna_id)
        changed_at = datetime.now(UTC)
        service.update_patient(s, anna_user, changed_at, anna, {"timezone": NEW_YORK})
        s.commit()

        assert s.get(Patient, anna_id).timezone == NEW_YORK
        before, after = changed_at - timedelta(microseconds=1), changed_at
        assert ownership.timezone_at(s, anna_id, before) == BERLIN
        assert ownership.timezone_at(s, anna_id, after) == NEW_YORK
        enrolled = s.get(Patient, anna_id).created_at
        assert _periods(anna_id) == [
            (BERLIN, enrolled, changed_at),
            (NEW_YORK, changed_at, None),
        ]

        # A daily 18:00 diary window on a past date, computed with the zone then in force,
        # stays at Berlin's 18:00; on a date after the change it is New York's.
        past_day = utc_to_local(changed_at - timedelta(days=5), BERLIN).date
        zone_then = ownership.timezone_at(
            s, anna_id, datetime.combine(past_day, time(12), tzinfo=UTC)
        )
        assert zone_then == BERLIN
        past = local_window(past_day, time(18), time(20), zone_then)
        assert utc_to_local(past.start, BERLIN).time == time(18)
        assert past.start != local_window(past_day, time(18), time(20), NEW_YORK).start
        next_day = utc_to_local(changed_at + timedelta(days=2), NEW_YORK).date
        zone_now = ownership.timezone_at(
            s, anna_id, datetime.combine(next_day, time(12), tzinfo=UTC)
        )
        later = local_window(next_day, time(18), time(20), zone_now)
        assert str(utc_to_local(later.start, NEW_YORK)).startswith(f"{next_day} 18:00 E")

        # Saving the same zone again is no change and opens no period.
        service.update_patient(
            s, anna_user, changed_at + timedelta(hours=1), anna, {"timezone": NEW_YORK}
        )
        s.commit()
        assert len(_periods(anna_id)) == 2
        # A second change at the very instant of the first cannot make an empty period.
        with pytest.raises(Conflict):
            service.update_patient(s, anna_user, changed_at, anna, {"timezone": TOKYO})
        s.rollback()
        assert len(_periods(anna_id)) == 2

        # The periods are part of the patient's audited record history.
        coord = s.get(User, world.users["coord_berlin"].id)
        trail = service.record_history(s, coord, s.get(Patient, anna_id))
        period_entries = [e for e in trail if e.table_name == "patient_timezone_periods"]
        assert {e.new_value for e in period_entries} >= {NEW_YORK, BERLIN}
        assert verify_chain(s).ok


def test_transfer_with_and_without_a_zone_change_through_the_api(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = token_for(client, "coord_berlin", world.password)
    anna, kenji = world.patients["anna"].id, world.patients["kenji"].id

    moved = client.post(
        f"/api/v1/patients/{anna}/transfer",
        headers=headers,
        json={"to_site_id": world.tokyo.id, "reason": "Moved to Japan", "timezone": TOKYO},
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["timezone"] == TOKYO
    with app.app_context():
        berlin, tokyo = service.site_history(db.session, db.session.get(Patient, anna))
        periods = _periods(anna)
        # The zone changes at the very instant the site does.
        assert [(z, u) for z, _, u in periods] == [(BERLIN, berlin.valid_to), (TOKYO, None)]
        assert periods[1][1] == tokyo.valid_from == berlin.valid_to

    # Whoever sees the patient reads the history; the trial manager without the reasons.
    tokyo_headers = token_for(client, "coord_tokyo", world.password)
    mine = client.get(f"/api/v1/patients/{anna}/timezone-history", headers=tokyo_headers)
    assert [p["reason"] for p in mine.get_json()] == ["enrolment", "Moved to Japan"]
    manager = token_for(client, "manager", world.password)
    withheld = client.get(f"/api/v1/patients/{anna}/timezone-history", headers=manager).get_json()
    assert [(p["timezone"], p["reason"], p["reason_withheld"]) for p in withheld] == [
        (BERLIN, None, True),
        (TOKYO, None, True),
    ]
    # Berlin's coordinator no longer sees Anna, nor Kenji: 404, not 403.
    for pid in (anna, kenji):
        hidden = client.get(f"/api/v1/patients/{pid}/timezone-history", headers=headers)
        assert hidden.status_code == 404

    # Kenji moves to Berlin but keeps Tokyo's time (null, or the zone he has, both keep it).
    for zone in (None, TOKYO):
        payload = {"to_site_id": world.berlin.id, "reason": "Treated in Berlin remotely"}
        if zone:
            payload["timezone"] = zone
        kept = client.post(
            f"/api/v1/patients/{kenji}/transfer", headers=tokyo_headers, json=payload
        )
        assert kept.status_code == 200, kept.get_json()
        assert kept.get_json()["timezone"] == TOKYO
        back = client.post(
            f"/api/v1/patients/{kenji}/transfer",
            headers=headers,
            json={"to_site_id": world.tokyo.id, "reason": "Back home"},
        )
        assert back.status_code == 200
    with app.app_context():
        assert [(z, u) for z, _, u in _periods(kenji)] == [(TOKYO, None)]


def test_an_invalid_zone_on_transfer_is_refused_and_changes_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = token_for(client, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    with app.app_context():
        before = (_periods(anna), _site_periods(anna), db.session.get(Patient, anna).version)
    for zone in ("Mars/Olympus_Mons", "US/Eastern", "localtime", "", "x" * 65):
        refused = client.post(
            f"/api/v1/patients/{anna}/transfer",
            headers=headers,
            json={"to_site_id": world.tokyo.id, "reason": "Moved", "timezone": zone},
        )
        assert refused.status_code == 422, (zone, refused.get_json())
        body = refused.get_json()
        assert set(body) == {"status", "code", "message", "details"}
        assert "timezone" in body["details"]["fields"]

    # The page refuses a zone it did not offer, the same way.
    login(client, "coord_berlin", world.password)
    page = f"/site/patients/{anna}"
    forged = submit(
        client,
        page,
        f"{page}/transfer",
        {"to_site_id": world.tokyo.id, "reason": "Moved", "timezone": "Mars/Olympus_Mons"},
    )
    assert forged.status_code == 422
    with app.app_context():
        patient = db.session.get(Patient, anna)
        assert patient.site_id == world.berlin.id and patient.timezone == BERLIN
        after = (_periods(anna), _site_periods(anna), patient.version)
    assert after == before


def test_transfer_through_the_page_asks_about_the_zone(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    page = f"/site/patients/{anna}"
    html = client.get(page).get_data(as_text=True)
    options = html[html.index('id="transfer-timezone"') :]
    options = options[: options.index("</select>")]
    # Keeping the zone is the first and default choice; the target site's zone comes next.
    assert (
        options.index("Keep Europe/Berlin (current)")
        < options.index("Asia/Tokyo (zone of site T1)")
        < options.index("America/New_York")
    )
    assert '<option selected value="">' in options or '<option value="" selected>' in options

    moved = submit(
        client,
        page,
        f"{page}/transfer",
        {"to_site_id": world.tokyo.id, "reason": "Moved to Japan", "timezone": TOKYO},
    )
    assert moved.status_code == 302
    with app.app_context():
        assert db.session.get(Patient, anna).timezone == TOKYO
        assert [z for z, _, _ in _periods(anna)] == [BERLIN, TOKYO]

    # Kenji is transferred by Tokyo's coordinator, keeping his zone (the default choice).
    client = app.test_client()
    login(client, "coord_tokyo", world.password)
    kenji = world.patients["kenji"].id
    page = f"/site/patients/{kenji}"
    kept = submit(
        client,
        page,
        f"{page}/transfer",
        {"to_site_id": world.berlin.id, "reason": "Treated from Berlin", "timezone": ""},
    )
    assert kept.status_code == 302
    with app.app_context():
        patient = db.session.get(Patient, kenji)
        assert (patient.site_id, patient.timezone) == (world.berlin.id, TOKYO)
        assert [(z, u) for z, _, u in _periods(kenji)] == [(TOKYO, None)]


ZONES = [
    "America/New_York",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Europe/London",
    "America/Chicago",
    "Australia/Sydney",
]


def test_concurrent_zone_changes_leave_one_open_period(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    token = requests.post(
        f"{live_server.url}/api/v1/auth/token",
        json={"username": "coord_berlin", "password": world.password},
        timeout=30,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    anna = world.patients["anna"].id
    answers = all_at_once(
        [
            lambda zone=zone: requests.patch(
                f"{live_server.url}/api/v1/patients/{anna}",
                headers=headers,
                json={"timezone": zone},
                timeout=60,
            )
            for zone in ZONES
        ]
    )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 409}, [a.text for a in answers]
    changed = codes.count(200)
    assert changed >= 1

    with app.app_context():
        periods = _periods(anna)
        # Every accepted change is one period (all zones differ), each ending where the next
        # begins, exactly one open, in the zone the patient record names.
        assert len(periods) == changed + 1
        for (_, _, earlier_to), (_, later_from, _) in itertools.pairwise(periods):
            assert earlier_to == later_from
        assert [until is None for _, _, until in periods].count(True) == 1
        assert periods[-1][2] is None
        assert db.session.get(Patient, anna).timezone == periods[-1][0]
        moves = db.session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "patients",
                AuditEntry.record_id == str(anna),
                AuditEntry.field == "timezone",
                AuditEntry.action == "update",
            )
        ).all()
        assert len(moves) == changed
        assert {z for z, _, _ in periods[1:]} <= set(ZONES)
        assert db.session.get(Site, world.berlin.id) is not None
