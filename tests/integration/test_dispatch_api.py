"""The home-visit API through HTTP with bearer tokens: a nurse works her day from the list
to check-out and the site sees the visit completed; another nurse reaches nothing of it;
the address shows only near the day and never the patient's name; bad input is refused
with a message; dispatchers pin a visit, queue a planning run and follow it, and a
coordinator of another provider sees none of it."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from dct_platform.extensions import db
from dct_platform.timeutil import to_local, utcnow
from logistics.dispatch import runs
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.dispatch import FAST, add_coordinator, add_nurse, home_visit_of, morning, network
from tests.support.world import World

API = "/api/v1/home-visits"
BERLIN = "Europe/Berlin"
# What a nurse's answers must never carry: anna's given and family names.
PATIENT_NAMES = ("Anna", "Secretname")

Headers = dict[str, str]


def _ok(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _error(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == {"status", "code", "message", "details"}
    assert body["status"] == status and body["message"]
    return body


def _fields(response: TestResponse) -> dict[str, Any]:
    body = _error(response, 422)
    assert body["code"] == "validation_error"
    return body["details"]["fields"]


def _nameless(response: TestResponse) -> Any:
    text = response.get_data(as_text=True)
    for name in PATIENT_NAMES:
        assert name not in text
    return response.get_json()


def _today() -> date:
    return to_local(utcnow(), BERLIN).date()


def _plan(
    client: FlaskClient, app: Flask, headers: Headers, first_day: date, days: int = 1
) -> dict[str, Any]:
    """Queue a run through the API, run it as the scheduler would, and read it back."""
    body = {"first_day": first_day.isoformat(), "days": days}
    queued = _ok(client.post(f"{API}/plan-runs", json=body, headers=headers), 202)
    assert queued["status"] == "queued" and queued["progress"] == "waiting for the planner"
    with app.app_context():
        assert runs.run_queued(db.session(), utcnow, FAST) == 1
    return _ok(client.get(f"{API}/plan-runs/{queued['id']}", headers=headers))


def _post(client: FlaskClient, headers: Headers, visit_id: int, step: str, **body: Any) -> Any:
    return client.post(f"{API}/{visit_id}/{step}", json=body, headers=headers)


@pytest.fixture
def site(client: FlaskClient, world: World) -> Headers:
    return token_for(client, "coord_berlin", world.password)


# --- the nurse's day -----------------------------------------------------------------------


def test_a_nurse_works_her_visit_from_her_day_to_check_out_and_the_site_sees_it_done(
    app: Flask, client: FlaskClient, world: World, clock: TestClock, site: Headers
) -> None:
    morning(clock)
    net = network(app, world)
    ada_id = add_nurse(app, net, "ada")
    today = _today()
    run = _plan(client, app, site, today)
    assert run["status"] == "done" and run["progress"] == "done"
    assert run["requested_by_id"] == world.users["coord_berlin"].id
    assert run["summary"]["days"][0]["day"] == today.isoformat()
    assert run["summary"]["days"][0]["assigned"] == 1

    ada = token_for(client, "ada", world.password)
    (mine,) = _nameless(client.get(f"{API}/mine", headers=ada))
    assert _ok(client.get(f"{API}/mine", query_string={"day": today.isoformat()}, headers=ada)) == [
        mine
    ]
    tomorrow = today + timedelta(days=1)
    assert (
        _ok(client.get(f"{API}/mine", query_string={"day": tomorrow.isoformat()}, headers=ada))
        == []
    )
    assert (mine["subject_number"], mine["visit_name"]) == ("B1-anna", "Week 4 video visit")
    assert (mine["status"], mine["nurse_id"], mine["nurse_name"]) == ("assigned", ada_id, "Ada")
    assert (mine["route_position"], mine["site_id"], mine["zone"]) == (1, world.berlin.id, BERLIN)
    assert (mine["day_start"], mine["day_end"], mine["duration_minutes"]) == ("08:00", "18:00", 30)
    assert mine["skills"] == ["phlebotomy"] and "address" not in mine
    assert mine["planned_start"].endswith("+00:00")
    assert mine["local"]["date"] == today.isoformat() and mine["local"]["zone"] == BERLIN
    assert "08:00" <= mine["local"]["starts"] < "18:00"
    assert mine["window_first"] <= today.isoformat() <= mine["window_last"]
    visit_id = mine["id"]
    upcoming = _nameless(client.get(f"{API}/mine/upcoming", headers=ada))
    assert [v["id"] for v in upcoming] == [visit_id]

    detail = _nameless(client.get(f"{API}/{visit_id}", headers=ada))
    assert detail["address"]["line1"] == "1 Hidden Street"
    assert detail["address"]["city"] == "Berlin" and detail["address"]["postal_code"] == "10115"
    assert detail["address"]["directions_url"].startswith("https://www.openstreetmap.org/")
    assert [(p["code"], p["done"]) for p in detail["procedures"]] == [
        ("vitals", False),
        ("blood_draw", False),
    ]
    assert (detail["vitals"], detail["samples"], detail["notes"]) == ({}, [], None)

    accepted = _nameless(_post(client, ada, visit_id, "accept"))
    assert accepted["status"] == "accepted" and accepted["accepted_at"]
    again = _ok(_post(client, ada, visit_id, "accept"))  # a double tap changes nothing
    assert (again["status"], again["accepted_at"]) == ("accepted", accepted["accepted_at"])

    started = _nameless(_post(client, ada, visit_id, "check-in", latitude=52.52, longitude=13.4))
    assert started["status"] == "in_progress" and started["checked_in_at"]
    assert "latitude" not in json.dumps({k: v for k, v in started.items() if k != "address"})

    ticked = _nameless(_post(client, ada, visit_id, "procedures", code="blood_draw", note="Left"))
    done = {p["code"]: p for p in ticked["procedures"]}
    assert done["blood_draw"]["done"] and done["blood_draw"]["note"] == "Left"
    assert done["blood_draw"]["label"] == "Blood draw (2 tubes)" and done["blood_draw"]["done_at"]
    assert not done["vitals"]["done"]

    found = _nameless(
        _post(
            client,
            ada,
            visit_id,
            "findings",
            vitals={"heart_rate": 72, "systolic_bp": 165},
            notes="Fine, a little tense",
        )
    )
    assert found["vitals"] == {"heart_rate": 72.0, "systolic_bp": 165.0}
    assert found["findings_abnormal"]  # 165 mmHg is above the normal range
    assert found["notes"] == "Fine, a little tense"

    collected = _nameless(_post(client, ada, visit_id, "samples", barcode="TUBE-1", kind="serum"))
    (sample,) = collected["samples"]
    assert (sample["barcode"], sample["kind"], sample["handed_over_at"]) == (
        "TUBE-1",
        "serum",
        None,
    )
    handed = _nameless(
        _post(client, ada, visit_id, "hand-over", courier="MedCourier", reference="MC-7")
    )
    (sample,) = handed["samples"]
    assert (sample["courier"], sample["courier_reference"]) == ("MedCourier", "MC-7")
    assert sample["handed_over_at"]

    finished = _nameless(_post(client, ada, visit_id, "check-out"))
    assert finished["status"] == "completed" and finished["checked_out_at"]
    assert finished["address"] is None  # the visit is over: the address closes with it

    seen = _ok(client.get(f"{API}/{visit_id}", headers=site))
    assert (seen["status"], seen["nurse_name"], seen["notes"]) == (
        "completed",
        "Ada",
        "Fine, a little tense",
    )
    assert seen["findings_abnormal"] and seen["samples"][0]["courier"] == "MedCourier"
    assert seen["address"]["line1"] == "1 Hidden Street"  # the site reads its patient's address
    listed = client.get(API, query_string={"status": "completed"}, headers=site)
    assert [v["id"] for v in _ok(listed)] == [visit_id]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1
    assert _ok(client.get(API, query_string={"status": "open"}, headers=site)) == []
    # The trial manager reads the visit pseudonymously, without the nurse's notes.
    manager = token_for(client, "manager", world.password)
    read = _ok(client.get(f"{API}/{visit_id}", headers=manager))
    assert read["status"] == "completed" and (read["notes"], read["address"]) == (None, None)


def test_another_nurse_reaches_nothing_and_the_address_opens_only_near_the_day(
    app: Flask, client: FlaskClient, world: World, clock: TestClock, site: Headers
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    # A colleague of the same provider, working elsewhere: nothing of ada's is hers.
    add_nurse(app, net, "bea", postal_prefixes=("99",), home=(50.0, 8.0))
    visit_day = _today() + timedelta(days=2)
    assert _plan(client, app, site, visit_day)["summary"]["days"][0]["assigned"] == 1
    visit_id = home_visit_of(app, net.patients[0]).id

    ada, bea = (token_for(client, n, world.password) for n in ("ada", "bea"))
    on_the_day = {"day": visit_day.isoformat()}
    (mine,) = _ok(client.get(f"{API}/mine", query_string=on_the_day, headers=ada))
    assert mine["id"] == visit_id and mine["local"]["date"] == visit_day.isoformat()
    assert _ok(client.get(f"{API}/mine", headers=ada)) == []  # nothing today
    early = _nameless(client.get(f"{API}/{visit_id}", headers=ada))
    assert early["subject_number"] == "B1-anna" and early["address"] is None

    assert _error(client.get(f"{API}/{visit_id}", headers=bea), 404)["code"] == "not_found"
    assert _ok(client.get(f"{API}/mine", query_string=on_the_day, headers=bea)) == []
    assert _ok(client.get(f"{API}/mine/upcoming", headers=bea)) == []
    assert _ok(client.get(API, headers=bea)) == []
    _error(_post(client, bea, visit_id, "check-in"), 404)

    clock.advance(timedelta(days=1))  # the day before: she may plan her route
    ada = token_for(client, "ada", world.password)
    before = _nameless(client.get(f"{API}/{visit_id}", headers=ada))
    assert before["address"]["city"] == "Berlin"
    clock.advance(timedelta(days=1))
    ada = token_for(client, "ada", world.password)
    on_day = _nameless(client.get(f"{API}/{visit_id}", headers=ada))
    assert on_day["address"]["line1"] == "1 Hidden Street"
    assert on_day["address"]["latitude"] == pytest.approx(52.52)


def test_the_nurse_steps_refuse_bad_input_and_other_peoples_visits(
    app: Flask, client: FlaskClient, world: World, clock: TestClock, site: Headers
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    add_nurse(app, net, "bea", postal_prefixes=("99",), home=(50.0, 8.0))
    _plan(client, app, site, _today())
    visit_id = home_visit_of(app, net.patients[0]).id
    ada, bea = (token_for(client, n, world.password) for n in ("ada", "bea"))

    assert _fields(_post(client, ada, visit_id, "decline"))["reason"]
    assert _fields(_post(client, ada, visit_id, "decline", reason="   "))["reason"] == ["Required."]
    assert "extra" in _fields(_post(client, ada, visit_id, "decline", reason="Ill", extra=1))
    assert _fields(_post(client, ada, visit_id, "check-in", latitude=52.5))["latitude"]
    assert _fields(_post(client, ada, visit_id, "check-in", latitude=95, longitude=13))["latitude"]
    response = client.get(f"{API}/mine", query_string={"day": "tomorrow"}, headers=ada)
    assert _fields(response)["day"]
    assert _fields(client.get(f"{API}/mine", query_string={"when": "x"}, headers=ada))["when"]
    # Before she checks in, nothing is recorded at the home.
    refused = _error(_post(client, ada, visit_id, "procedures", code="vitals"), 409)
    assert "Check in first" in refused["message"]

    first = _ok(_post(client, ada, visit_id, "accept"))
    assert _ok(_post(client, ada, visit_id, "accept"))["accepted_at"] == first["accepted_at"]
    _error(_post(client, bea, visit_id, "check-in"), 404)  # not hers: not even there
    _error(_post(client, bea, visit_id, "accept"), 404)
    # The site sees the visit but does not work it; a dispatcher has no day of her own.
    assert _error(_post(client, site, visit_id, "check-in"), 403)["code"] == "forbidden"
    _error(client.get(f"{API}/mine", headers=site), 403)

    _ok(_post(client, ada, visit_id, "check-in"))
    assert _fields(_post(client, ada, visit_id, "procedures", code="ecg"))["code"]
    fields = _fields(_post(client, ada, visit_id, "findings", vitals={"heart_rate": 900}))
    assert fields["vitals.heart_rate"] == ["Between 20 and 250 bpm."]
    assert _fields(_post(client, ada, visit_id, "findings", vitals={"mood": 3}))["vitals.mood"]
    assert _fields(_post(client, ada, visit_id, "findings", vitals={"spo2": "high"}))["vitals"]
    _ok(_post(client, ada, visit_id, "samples", barcode="TUBE-9", kind="serum"))
    taken = _error(_post(client, ada, visit_id, "samples", barcode="TUBE-9", kind="serum"), 409)
    assert "TUBE-9" in taken["message"]
    assert _fields(_post(client, ada, visit_id, "hand-over"))["courier"]
    assert _fields(_post(client, ada, visit_id, "samples", barcode="", kind="serum"))["barcode"]
    # Nothing refused was kept.
    visit = _ok(client.get(f"{API}/{visit_id}", headers=ada))
    assert visit["status"] == "in_progress" and visit["vitals"] == {}
    assert [s["barcode"] for s in visit["samples"]] == ["TUBE-9"]
    assert _error(_post(client, ada, visit_id, "decline", reason="Ill"), 409)["code"] == "conflict"


# --- dispatching ---------------------------------------------------------------------------


def test_a_dispatcher_pins_a_visit_plans_and_a_coordinator_of_another_provider_sees_nothing(
    app: Flask, client: FlaskClient, world: World, clock: TestClock, site: Headers
) -> None:
    morning(clock)
    net = network(app, world)
    ada_id = add_nurse(app, net, "ada", home=(52.52, 13.405))  # next door to the patient
    bea_id = add_nurse(app, net, "bea", home=(52.40, 13.20))
    today = _today()

    nurses = client.get(f"{API}/nurses", headers=site)
    assert [(n["id"], n["name"], n["provider_name"]) for n in _ok(nurses)] == [
        (ada_id, "Ada", "Spree Home Care"),
        (bea_id, "Bea", "Spree Home Care"),
    ]
    assert _ok(nurses)[0]["skills"] == ["phlebotomy", "vital_signs"]
    assert "52.4" not in nurses.get_data(as_text=True)  # never a nurse's home base
    listed = client.get(
        API, query_string={"first_day": today.isoformat(), "site_id": world.berlin.id}, headers=site
    )
    (open_visit,) = _ok(listed)
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1
    assert (open_visit["status"], open_visit["nurse_id"], open_visit["planned_start"]) == (
        "open",
        None,
        None,
    )
    visit_id = open_visit["id"]
    assert _ok(client.get(API, query_string={"site_id": world.tokyo.id}, headers=site)) == []
    assert _fields(client.get(API, query_string={"status": "lost"}, headers=site))["status"]

    assert _fields(_post(client, site, visit_id, "pin"))["nurse_id"]
    assert _fields(_post(client, site, visit_id, "pin", nurse_id=999_999))["nurse_id"]
    nurse_without_profile = world.users["nurse"].id
    assert _fields(_post(client, site, visit_id, "pin", nurse_id=nurse_without_profile))
    pinned = _ok(_post(client, site, visit_id, "pin", nurse_id=bea_id))
    assert (pinned["pinned_nurse_id"], pinned["pinned_nurse_name"]) == (bea_id, "Bea")
    manager = token_for(client, "manager", world.password)
    _error(_post(client, manager, visit_id, "pin", nurse_id=None), 403)

    body = {"first_day": (today - timedelta(days=3)).isoformat()}
    assert _fields(client.post(f"{API}/plan-runs", json=body, headers=site))["first_day"]
    body = {"first_day": today.isoformat(), "days": 30}
    assert _fields(client.post(f"{API}/plan-runs", json=body, headers=site))["days"]
    run = _plan(client, app, site, today)
    assert (run["status"], run["provider_id"], run["error"]) == ("done", None, None)
    assert run["summary"]["days"][0]["assigned"] == 1 and run["finished_at"]
    planned = _ok(client.get(f"{API}/{visit_id}", headers=site))
    # Ada lives next door, yet the pin holds: the visit is Bea's.
    assert (planned["status"], planned["nurse_id"], planned["nurse_name"]) == (
        "assigned",
        bea_id,
        "Bea",
    )
    assert planned["local"]["date"] == today.isoformat() and planned["attention"] is None
    assert _ok(client.get(f"{API}/attention", headers=site)) == []

    # Spree's own coordinator dispatches it, without the patient's address.
    add_coordinator(app, "spree_coord")
    spree = token_for(client, "spree_coord", world.password)
    assert [v["id"] for v in _ok(client.get(API, headers=spree))] == [visit_id]
    assert _nameless(client.get(f"{API}/{visit_id}", headers=spree))["address"] is None
    assert [n["id"] for n in _ok(client.get(f"{API}/nurses", headers=spree))] == [ada_id, bea_id]
    _error(client.get(f"{API}/plan-runs/{run['id']}", headers=spree), 404)  # not her provider's

    # A coordinator of another provider sees none of it.
    havel_id = add_coordinator(app, "havel_coord", provider_name="Havel Care")
    havel = token_for(client, "havel_coord", world.password)
    assert _ok(client.get(API, headers=havel)) == []
    assert _ok(client.get(f"{API}/attention", headers=havel)) == []
    assert _ok(client.get(f"{API}/nurses", headers=havel)) == []
    _error(client.get(f"{API}/{visit_id}", headers=havel), 404)
    _error(_post(client, havel, visit_id, "pin", nurse_id=ada_id), 404)
    _error(_post(client, havel, visit_id, "cancel", reason="Not ours"), 404)
    _error(client.get(f"{API}/plan-runs/{run['id']}", headers=havel), 404)
    own = _ok(
        client.post(f"{API}/plan-runs", json={"first_day": today.isoformat()}, headers=havel), 202
    )
    assert own["provider_id"] == havel_id and own["days"] == 1
    _ok(client.get(f"{API}/plan-runs/{own['id']}", headers=havel))
    bea = token_for(client, "bea", world.password)
    _error(client.get(f"{API}/nurses", headers=bea), 403)
    _error(client.post(f"{API}/plan-runs", json={"first_day": today.isoformat()}, headers=bea), 403)

    # The site cancels it, with a reason; Bea's day is empty again.
    assert _fields(_post(client, site, visit_id, "cancel"))["reason"]
    _error(_post(client, bea, visit_id, "cancel", reason="Mine"), 403)
    cancelled = _ok(_post(client, site, visit_id, "cancel", reason="The patient is in hospital"))
    assert (cancelled["status"], cancelled["cancel_reason"]) == (
        "cancelled",
        "The patient is in hospital",
    )
    assert _ok(client.get(f"{API}/mine", headers=bea)) == []
    _error(_post(client, site, visit_id, "cancel", reason="Again"), 409)
