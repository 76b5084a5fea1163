"""The visits API through HTTP with bearer tokens: a patient lists their planned visit and
its slots (UTC and local), books it once whatever the retries, and cannot reach another
patient's visits (404); staff of another site see nothing; the trial manager reads but
never books; staff run and record visits, and a visit done outside its window shows as a
deviation; unscheduled requests reach the right site's queue; the protocol schedule and
staff hours refuse bad input with a message, and new hours change the slots offered."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from dct_platform.localtime import local_to_utc, utc_to_local
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.visits import Schedule, more_patients, planned, week4_schedule
from tests.support.world import World

API = "/api/v1/visits"
BERLIN = "Europe/Berlin"
INVALID_FIELDS = "The request has invalid fields; see details."

Headers = dict[str, str]


@pytest.fixture
def schedule(app: Flask, world: World) -> Schedule:
    return week4_schedule(app, world)


@pytest.fixture
def tokens(client: FlaskClient, world: World) -> dict[str, Headers]:
    names = ("anna", "kenji", "coord_berlin", "coord_tokyo", "pi_berlin", "manager", "admin")
    return {name: token_for(client, name, world.password) for name in names}


def _ok(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _error(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == {"status", "code", "message", "details"}
    assert body["status"] == status and body["message"]
    return body


def _fields(response: TestResponse) -> dict[str, list[str]]:
    body = _error(response, 422)
    assert body["code"] == "validation_error"
    return body["details"]["fields"]


def _anna_visit(app: Flask, world: World) -> int:
    return planned(app, world.patients["anna"].id).id


def _slots(client: FlaskClient, headers: Headers, visit_id: int, **query: Any) -> list[Any]:
    url = f"{API}/planned/{visit_id}/slots"
    return _ok(client.get(url, query_string=query, headers=headers))


def _book(
    client: FlaskClient, headers: Headers, visit_id: int, slot: dict[str, Any], **extra: Any
) -> TestResponse:
    body = {
        "planned_visit_id": visit_id,
        "staff_id": slot["staff_id"],
        "starts_at": slot["starts_at"],
    }
    return client.post(f"{API}/bookings", json=body, headers={**headers, **extra})


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _local_day(slot: dict[str, Any]) -> date:
    return utc_to_local(_instant(slot["starts_at"]), BERLIN).date


# --- a patient's own visits ----------------------------------------------------------------


def test_a_patient_lists_their_planned_visit_and_its_slots_in_utc_and_local_time(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    (visit,) = _ok(client.get(f"{API}/planned", headers=tokens["anna"]))
    assert visit["name"] == "Week 4 video visit"
    assert visit["zone"] == BERLIN
    assert visit["window_first"] == (schedule.baseline + timedelta(days=25)).isoformat()
    assert visit["window_last"] == (schedule.baseline + timedelta(days=31)).isoformat()
    assert visit["target_date"] == (schedule.baseline + timedelta(days=28)).isoformat()
    assert visit["modalities"] == ["telehealth", "home_nurse"]
    assert (visit["duration_minutes"], visit["status"]) == (30, "planned")
    assert (visit["booking"], visit["out_of_window"], visit["deviations"]) == (None, False, [])

    slots = _slots(client, tokens["anna"], visit["id"])
    assert slots
    for slot in slots:
        starts, ends = _instant(slot["starts_at"]), _instant(slot["ends_at"])
        assert starts.utcoffset() == timedelta(0) and slot["starts_at"].endswith("+00:00")
        assert ends - starts == timedelta(minutes=30)
        assert (slot["staff_id"], slot["staff_name"]) == (world.users["pi_berlin"].id, "Pi_Berlin")
        local = utc_to_local(starts, BERLIN)
        assert slot["local"]["zone"] == BERLIN
        assert slot["local"]["date"] == local.date.isoformat()
        assert slot["local"]["starts"] == f"{local.time:%H:%M}"
        assert slot["local"]["abbreviation"] in ("CET", "CEST")
        assert slot["local"]["text"].startswith(f"{local.date.isoformat()} {local.time:%H:%M}")
        assert visit["window_first"] <= slot["local"]["date"] <= visit["window_last"]
    # A filter by someone who does not run the visit finds nothing.
    assert (
        _slots(client, tokens["anna"], visit["id"], staff_id=world.users["coord_berlin"].id) == []
    )


def test_booking_twice_with_one_idempotency_key_gives_one_booking(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    anna = tokens["anna"]
    visit_id = _ok(client.get(f"{API}/planned", headers=anna))[0]["id"]
    slot = _slots(client, anna, visit_id)[0]
    first = _ok(_book(client, anna, visit_id, slot, **{"Idempotency-Key": "tap-1"}), 201)
    again = _ok(_book(client, anna, visit_id, slot, **{"Idempotency-Key": "tap-1"}), 200)
    assert again["id"] == first["id"]
    assert first["starts_at"] == slot["starts_at"] and first["status"] == "booked"
    assert first["local"] == slot["local"]
    assert first["room_status"] == "pending" and "room_url" not in first

    (visit,) = _ok(client.get(f"{API}/planned", headers=anna))
    assert visit["status"] == "booked"
    held = visit["booking"]
    assert (held["id"], held["starts_at"], held["staff_name"]) == (
        first["id"],
        slot["starts_at"],
        "Pi_Berlin",
    )
    assert set(held) >= {"ends_at", "status", "room_status"} and "room_url" not in held
    assert _ok(client.get(f"{API}/bookings/{first['id']}", headers=anna))["id"] == first["id"]

    # Without the key, a second booking of the same visit is refused.
    other = _slots(client, anna, visit_id)[0]
    assert "booked already" in _error(_book(client, anna, visit_id, other), 409)["message"]
    # A key longer than the column holds is refused by name.
    long_key = {"Idempotency-Key": "k" * 81}
    assert "Idempotency-Key" in _fields(_book(client, anna, visit_id, other, **long_key))


def test_a_time_without_an_offset_is_refused(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    visit_id = _anna_visit(client.application, world)
    slot = _slots(client, tokens["anna"], visit_id)[0]
    naive = {**slot, "starts_at": slot["starts_at"].removesuffix("+00:00")}
    assert "starts_at" in _fields(_book(client, tokens["anna"], visit_id, naive))
    # The same instant in another offset is the same slot.
    berlin = _instant(slot["starts_at"]).astimezone(ZoneInfo(BERLIN))
    made = _ok(
        _book(client, tokens["anna"], visit_id, {**slot, "starts_at": berlin.isoformat()}), 201
    )
    assert made["starts_at"] == slot["starts_at"]


def test_another_patients_visit_and_its_slots_are_not_found(
    app: Flask, client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    (other,) = more_patients(app, world, 1, schedule.baseline)
    other_visit = planned(app, other).id
    anna = tokens["anna"]
    assert [v["patient_id"] for v in _ok(client.get(f"{API}/planned", headers=anna))] == [
        world.patients["anna"].id
    ]
    _error(client.get(f"{API}/planned/{other_visit}", headers=anna), 404)
    _error(client.get(f"{API}/planned/{other_visit}/slots", headers=anna), 404)
    slot = _slots(client, token_for(client, "p00", world.password), other_visit)[0]
    _error(_book(client, anna, other_visit, slot), 404)
    # Kenji has no visits planned, and sees none of anybody's.
    assert _ok(client.get(f"{API}/planned", headers=tokens["kenji"])) == []


def test_a_slot_taken_meanwhile_is_409_with_a_message(
    app: Flask, client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    (other,) = more_patients(app, world, 1, schedule.baseline)
    p00 = token_for(client, "p00", world.password)
    other_visit = planned(app, other).id
    anna_visit = _anna_visit(app, world)
    slot = _slots(client, p00, other_visit)[0]  # read before anna books it
    _ok(_book(client, tokens["anna"], anna_visit, slot), 201)
    body = _error(_book(client, p00, other_visit, slot), 409)
    assert body["code"] == "conflict"
    assert body["message"].startswith("That time")
    assert body["message"].endswith("Please choose another slot.")
    assert slot not in _slots(client, p00, other_visit)


def test_moving_and_cancelling_need_a_reason(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    anna = tokens["anna"]
    visit_id = _anna_visit(client.application, world)
    first, second = _slots(client, anna, visit_id)[:2]
    booking_id = _ok(_book(client, anna, visit_id, first), 201)["id"]
    url = f"{API}/bookings/{booking_id}"
    move = {"staff_id": second["staff_id"], "starts_at": second["starts_at"]}

    assert "reason" in _fields(client.post(f"{url}/reschedule", json=move, headers=anna))
    assert "reason" in _fields(client.post(f"{url}/cancel", json={}, headers=anna))
    assert "reason" in _fields(client.post(f"{url}/cancel", json={"reason": "   "}, headers=anna))
    assert _ok(client.get(url, headers=anna))["starts_at"] == first["starts_at"]

    # The slots for a booked visit are the times it can move to, its own included.
    assert first in _slots(client, anna, visit_id)
    moved = _ok(
        client.post(f"{url}/reschedule", json={**move, "reason": "A work trip"}, headers=anna)
    )
    assert (moved["starts_at"], moved["sequence"], moved["status"]) == (
        second["starts_at"],
        1,
        "booked",
    )
    cancelled = _ok(client.post(f"{url}/cancel", json={"reason": "Feeling well"}, headers=anna))
    assert (cancelled["status"], cancelled["sequence"]) == ("cancelled", 2)
    (visit,) = _ok(client.get(f"{API}/planned", headers=anna))
    assert (visit["status"], visit["booking"]) == ("planned", None)
    assert (
        "cannot be cancelled"
        in _error(client.post(f"{url}/cancel", json={"reason": "again"}, headers=anna), 409)[
            "message"
        ]
    )


# --- staff and managers --------------------------------------------------------------------


def test_staff_of_the_other_site_find_nothing(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    visit_id = _anna_visit(client.application, world)
    slot = _slots(client, tokens["anna"], visit_id)[0]
    booking_id = _ok(_book(client, tokens["anna"], visit_id, slot), 201)["id"]
    tokyo = tokens["coord_tokyo"]
    assert _ok(client.get(f"{API}/planned", headers=tokyo)) == []
    _error(client.get(f"{API}/planned/{visit_id}", headers=tokyo), 404)
    _error(client.get(f"{API}/planned/{visit_id}/slots", headers=tokyo), 404)
    _error(client.get(f"{API}/bookings/{booking_id}", headers=tokyo), 404)
    _error(client.post(f"{API}/bookings/{booking_id}/start", headers=tokyo), 404)
    _error(
        client.post(f"{API}/bookings/{booking_id}/cancel", json={"reason": "x"}, headers=tokyo),
        404,
    )
    _error(_book(client, tokyo, visit_id, slot), 404)
    # The Berlin coordinator sees it, filtered by patient and status.
    berlin = tokens["coord_berlin"]
    query = {"patient_id": world.patients["anna"].id, "status": "booked"}
    (seen,) = _ok(client.get(f"{API}/planned", query_string=query, headers=berlin))
    assert seen["booking"]["id"] == booking_id
    query["status"] = "completed"
    assert _ok(client.get(f"{API}/planned", query_string=query, headers=berlin)) == []
    assert "bogus" in _fields(client.get(f"{API}/planned?bogus=1", headers=berlin))
    assert "status" in _fields(client.get(f"{API}/planned?status=done", headers=berlin))


def test_the_trial_manager_reads_but_cannot_book(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    manager = tokens["manager"]
    (visit,) = _ok(client.get(f"{API}/planned", headers=manager))
    slot = _slots(client, manager, visit["id"])[0]
    assert _error(_book(client, manager, visit["id"], slot), 403)["code"] == "forbidden"
    booking_id = _ok(_book(client, tokens["anna"], visit["id"], slot), 201)["id"]
    assert _ok(client.get(f"{API}/bookings/{booking_id}", headers=manager))["id"] == booking_id
    url = f"{API}/bookings/{booking_id}"
    _error(client.post(f"{url}/cancel", json={"reason": "no"}, headers=manager), 403)
    _error(client.post(f"{url}/start", headers=manager), 403)
    # An administrator has no scope on patients' visits.
    assert _ok(client.get(f"{API}/planned", headers=tokens["admin"])) == []
    _error(client.get(url, headers=tokens["admin"]), 404)


def _book_and_go_to_it(
    client: FlaskClient, clock: TestClock, world: World, anna: Headers, at: datetime | None = None
) -> tuple[int, dict[str, Any]]:
    visit_id = _anna_visit(client.application, world)
    slot = _slots(client, anna, visit_id)[0]
    booking_id = _ok(_book(client, anna, visit_id, slot), 201)["id"]
    clock.freeze(at or _instant(slot["starts_at"]))
    return booking_id, slot


def test_staff_start_and_complete_a_visit_and_it_shows_completed(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers],
    clock: TestClock,
) -> None:  # fmt: skip
    booking_id, slot = _book_and_go_to_it(client, clock, world, tokens["anna"])
    # Tokens expire; the clock jumped ahead.
    pi = token_for(client, "pi_berlin", world.password)
    anna = token_for(client, "anna", world.password)
    url = f"{API}/bookings/{booking_id}"

    _error(client.post(f"{url}/start", headers=anna), 403)
    started = _ok(client.post(f"{url}/start", headers=pi))
    assert started["status"] == "started" and started["started_at"] == slot["starts_at"]
    assert "notes" in _fields(client.post(f"{url}/complete", json={}, headers=pi))
    assert "location_type" in _fields(
        client.post(f"{url}/complete", json={"notes": "x", "location_type": "moon"}, headers=pi)
    )
    clock.advance(timedelta(minutes=25))
    done = _ok(client.post(f"{url}/complete", json={"notes": "No adverse events."}, headers=pi))
    assert (done["status"], done["notes"], done["location_type"]) == (
        "completed",
        "No adverse events.",
        "patient_home",
    )
    (visit,) = _ok(client.get(f"{API}/planned", headers=anna))
    assert (visit["status"], visit["modality"], visit["out_of_window"]) == (
        "completed",
        "telehealth",
        False,
    )
    assert visit["done_at"] == slot["starts_at"]
    assert visit["booking"]["status"] == "completed"
    # The notes are the site's: the patient's answer leaves them out.
    assert _ok(client.get(url, headers=anna))["notes"] is None
    assert _error(client.get(f"{API}/planned/{visit['id']}/slots", headers=anna), 409)


def test_the_join_link_is_for_the_patient_and_the_staff_member_near_the_time(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers],
    clock: TestClock,
) -> None:  # fmt: skip
    visit_id = _anna_visit(client.application, world)
    slot = _slots(client, tokens["anna"], visit_id)[0]
    booking_id = _ok(_book(client, tokens["anna"], visit_id, slot), 201)["id"]
    url = f"{API}/bookings/{booking_id}/join"
    opens = _instant(slot["starts_at"]) - timedelta(minutes=15)
    early = _error(client.get(url, headers=tokens["anna"]), 409)
    assert early["details"] == {"available_from": opens.isoformat()}
    assert f"{utc_to_local(opens, BERLIN)}" in early["message"]
    assert "available from" in early["message"]
    _error(client.get(url, headers=tokens["coord_berlin"]), 403)  # not the one running it
    _error(client.get(url, headers=tokens["manager"]), 403)
    _error(client.get(url, headers=tokens["coord_tokyo"]), 404)

    clock.freeze(opens + timedelta(minutes=5))
    anna = token_for(client, "anna", world.password)
    pi = token_for(client, "pi_berlin", world.password)
    link = _ok(client.get(url, headers=anna))
    assert set(link) == {"url"} and link["url"].startswith("https://")
    assert _ok(client.get(url, headers=pi)) == link
    _ok(client.post(f"{API}/bookings/{booking_id}/cancel", json={"reason": "Ill"}, headers=anna))
    assert "cancelled" in _error(client.get(url, headers=anna), 409)["message"]


def test_a_visit_completed_after_its_window_shows_out_of_window_and_a_deviation(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers],
    clock: TestClock,
) -> None:  # fmt: skip
    window_last = schedule.baseline + timedelta(days=31)
    late = local_to_utc(window_last + timedelta(days=2), time(10, 0), BERLIN)
    booking_id, _ = _book_and_go_to_it(client, clock, world, tokens["anna"], at=late)
    pi = token_for(client, "pi_berlin", world.password)
    url = f"{API}/bookings/{booking_id}"
    _ok(client.post(f"{url}/start", headers=pi))
    _ok(client.post(f"{url}/complete", json={"notes": "Done late."}, headers=pi))

    coord = token_for(client, "coord_berlin", world.password)
    (visit,) = _ok(client.get(f"{API}/planned", headers=coord))
    assert (visit["status"], visit["out_of_window"]) == ("completed", True)
    (deviation,) = visit["deviations"]
    assert deviation["kind"] == "visit_out_of_window"
    assert "2 days after its window" in deviation["detail"]
    assert deviation["occurred_at"] == late.isoformat()
    listed = _ok(client.get(f"{API}/deviations", headers=coord))
    assert [d["id"] for d in listed] == [deviation["id"]]
    tokyo = token_for(client, "coord_tokyo", world.password)
    assert _ok(client.get(f"{API}/deviations", headers=tokyo)) == []


def test_no_show_frees_the_visit_for_a_new_booking(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers],
    clock: TestClock,
) -> None:  # fmt: skip
    booking_id, _ = _book_and_go_to_it(client, clock, world, tokens["anna"])
    clock.advance(timedelta(minutes=10))
    coord = token_for(client, "coord_berlin", world.password)
    done = _ok(
        client.post(
            f"{API}/bookings/{booking_id}/no-show", json={"notes": "No answer."}, headers=coord
        )
    )
    assert done["status"] == "no_show"
    (visit,) = _ok(client.get(f"{API}/planned", headers=coord))
    assert (visit["status"], visit["booking"]) == ("planned", None)


def test_a_local_provider_visit_is_recorded_by_the_site(
    app: Flask, client: FlaskClient, world: World, tokens: dict[str, Headers], clock: TestClock
) -> None:
    coord = tokens["coord_berlin"]
    today = utc_to_local(clock(), BERLIN).date
    changed = client.patch(
        f"/api/v1/patients/{world.patients['anna'].id}",
        json={"baseline_date": (today - timedelta(days=2)).isoformat(), "reason": "Set"},
        headers=coord,
    )
    assert changed.status_code == 200, changed.get_json()
    definition = {
        "trial_id": world.trial.id, "code": "LAB", "name": "Blood test", "target_day": 1,
        "window_after_days": 10, "modalities": ["local_provider"], "duration_minutes": 15,
        "staff_role": "investigator",
    }  # fmt: skip
    _ok(client.post(f"{API}/definitions", json=definition, headers=tokens["manager"]), 201)
    # Planned at once for the enrolled patients with a baseline date.
    (visit,) = _ok(client.get(f"{API}/planned", headers=coord))
    assert (visit["name"], visit["window_first"]) == (
        "Blood test",
        (today - timedelta(days=2)).isoformat(),
    )
    report = {
        "done_at": (clock() - timedelta(hours=3)).isoformat(),
        "provider_name": "Praxis Dr. Schmidt",
        "provider_address": "Hauptstr. 1, Berlin",
        "results": "BP 120/80",
    }
    url = f"{API}/planned/{visit['id']}/local-provider"
    _error(client.post(url, json=report, headers=tokens["anna"]), 403)
    assert "results" in _fields(client.post(url, json={**report, "results": ""}, headers=coord))
    naive = {**report, "done_at": "2026-03-01T10:00:00"}
    assert "done_at" in _fields(client.post(url, json=naive, headers=coord))
    done = _ok(client.post(url, json=report, headers=coord))
    assert (done["status"], done["modality"], done["out_of_window"]) == (
        "completed",
        "local_provider",
        False,
    )


# --- unscheduled visits --------------------------------------------------------------------


def test_an_unscheduled_request_reaches_the_patients_site_queue_and_no_other(
    client: FlaskClient, world: World, tokens: dict[str, Headers], clock: TestClock
) -> None:
    anna, berlin, tokyo = tokens["anna"], tokens["coord_berlin"], tokens["coord_tokyo"]
    assert "category" in _fields(
        client.post(f"{API}/requests", json={"category": "boredom"}, headers=anna)
    )
    _error(client.post(f"{API}/requests", json={"category": "other"}, headers=berlin), 403)
    made = _ok(
        client.post(
            f"{API}/requests", json={"category": "side_effect", "details": "A rash"}, headers=anna
        ),
        201,
    )
    assert (made["status"], made["site_id"], made["details"]) == ("open", world.berlin.id, "A rash")

    (queued,) = _ok(client.get(f"{API}/requests?status=open", headers=berlin))
    assert queued["id"] == made["id"] and queued["subject_number"] == "B1-anna"
    assert _ok(client.get(f"{API}/requests?status=open", headers=tokyo)) == []
    url = f"{API}/requests/{made['id']}"
    today = utc_to_local(clock(), BERLIN).date
    window = {"first_day": today.isoformat(), "last_day": (today + timedelta(days=3)).isoformat()}
    _error(client.post(f"{url}/plan", json=window, headers=tokyo), 404)
    _error(client.post(f"{url}/plan", json=window, headers=anna), 403)
    backwards = {"first_day": window["last_day"], "last_day": window["first_day"]}
    assert "last_day" in _fields(client.post(f"{url}/plan", json=backwards, headers=berlin))

    visit = _ok(client.post(f"{url}/plan", json=window, headers=berlin), 201)
    assert (visit["name"], visit["definition_id"], visit["modalities"]) == (
        "Unscheduled visit",
        None,
        ["telehealth"],
    )
    assert visit["unscheduled_reason"] == "A side effect: A rash"
    # The patient's words are for the patient and the site, not for oversight.
    (seen,) = _ok(client.get(f"{API}/requests", headers=tokens["manager"]))
    assert (seen["id"], seen["details"]) == (made["id"], None)
    (overseen,) = _ok(client.get(f"{API}/planned", headers=tokens["manager"]))
    assert (overseen["id"], overseen["unscheduled_reason"]) == (visit["id"], None)
    assert _ok(client.get(f"{API}/requests?status=open", headers=berlin)) == []
    assert _ok(client.get(f"{API}/requests", headers=anna))[0]["status"] == "scheduled"
    assert [v["id"] for v in _ok(client.get(f"{API}/planned", headers=anna))] == [visit["id"]]
    assert (
        "already"
        in _error(client.post(f"{url}/close", json={"reason": "Called"}, headers=berlin), 409)[
            "message"
        ]
    )


def test_a_request_closed_without_a_visit_needs_a_reason(
    client: FlaskClient, world: World, tokens: dict[str, Headers]
) -> None:
    made = _ok(
        client.post(f"{API}/requests", json={"category": "other"}, headers=tokens["anna"]), 201
    )
    url = f"{API}/requests/{made['id']}/close"
    assert "reason" in _fields(client.post(url, json={}, headers=tokens["coord_berlin"]))
    closed = _ok(
        client.post(url, json={"reason": "Answered by phone"}, headers=tokens["coord_berlin"])
    )
    assert closed["status"] == "closed" and closed["handled_at"]


# --- the protocol schedule -----------------------------------------------------------------


def test_protocol_visits_are_validated_with_messages_and_kept_by_trial_managers(
    client: FlaskClient, world: World, tokens: dict[str, Headers]
) -> None:
    manager = tokens["manager"]
    url = f"{API}/definitions"
    bad = {
        "trial_id": world.trial.id, "code": "", "name": "Week 4", "target_day": 0,
        "modalities": ["fax"], "duration_minutes": 2, "staff_role": "wizard",
    }  # fmt: skip
    fields = _fields(client.post(url, json=bad, headers=manager))
    assert fields["target_day"] == ["Study days run from day 1 (the baseline)."]
    assert fields["duration_minutes"] == ["A visit lasts from 5 to 480 minutes."]
    assert set(fields) == {"code", "target_day", "modalities", "duration_minutes", "staff_role"}
    good = {
        **bad, "code": "W4", "target_day": 29, "window_before_days": 3, "window_after_days": 3,
        "modalities": ["telehealth"], "duration_minutes": 30, "staff_role": "investigator",
    }  # fmt: skip
    early = {**good, "target_day": 2}
    assert _fields(client.post(url, json=early, headers=manager)) == {
        "window_before_days": ["The window cannot open before the baseline date."]
    }
    assert "trial_id" in _fields(client.post(url, json={**good, "trial_id": "1"}, headers=manager))
    _error(client.post(url, json=good, headers=tokens["coord_berlin"]), 403)
    _error(client.post(url, json={**good, "trial_id": 999999}, headers=manager), 404)

    made = _ok(client.post(url, json=good, headers=manager), 201)
    assert (made["code"], made["window_before_days"], made["active"]) == ("W4", 3, True)
    assert _fields(client.post(url, json=good, headers=manager)) == {
        "code": ["The trial has a visit W4 already."]
    }
    assert [d["code"] for d in _ok(client.get(url, headers=manager))] == ["W4"]
    assert [d["code"] for d in _ok(client.get(url, headers=tokens["coord_berlin"]))] == ["W4"]
    _error(client.get(url, headers=tokens["anna"]), 403)


# --- staff availability --------------------------------------------------------------------


def _hours(world: World, user: str = "pi_berlin", **over: Any) -> dict[str, Any]:
    return {
        "user_id": world.users[user].id, "site_id": world.berlin.id, "weekday": 5,
        "start_time": "08:00", "end_time": "20:00", **over,
    }  # fmt: skip


def test_hours_with_a_bad_clock_time_or_weekday_are_refused_with_a_message(
    client: FlaskClient, world: World, tokens: dict[str, Headers]
) -> None:
    coord = tokens["coord_berlin"]
    url = f"{API}/availability"
    assert _fields(client.post(url, json=_hours(world, start_time="9am"), headers=coord)) == {
        "start_time": ["'9am' is not a time of day: write HH:MM, 00:00 to 23:59."]
    }
    assert "end_time" in _fields(
        client.post(url, json=_hours(world, end_time="25:00"), headers=coord)
    )
    assert "start_time" in _fields(
        client.post(url, json=_hours(world, start_time="24:00"), headers=coord)
    )
    assert _fields(client.post(url, json=_hours(world, weekday=7), headers=coord)) == {
        "weekday": ["The weekday is 0 (Monday) to 6 (Sunday)."]
    }
    same = _hours(world, start_time="09:00", end_time="09:00")
    assert "end_time" in _fields(client.post(url, json=same, headers=coord))
    # Someone who does not work at the site, a site of someone else, other people's hours.
    assert "user_id" in _fields(
        client.post(url, json=_hours(world, user="coord_tokyo"), headers=coord)
    )
    _error(client.post(url, json=_hours(world, site_id=world.tokyo.id), headers=coord), 404)
    pi = tokens["pi_berlin"]
    assert (
        "own hours"
        in _error(client.post(url, json=_hours(world, user="coord_berlin"), headers=pi), 403)[
            "message"
        ]
    )
    _error(client.post(url, json=_hours(world), headers=tokens["manager"]), 403)
    _error(client.get(url, headers=tokens["anna"]), 403)
    # Nothing was stored by any of these.
    assert _ok(client.get(url, headers=coord)) == []


def test_new_hours_and_holidays_change_the_slots_offered(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    anna, coord, pi = tokens["anna"], tokens["coord_berlin"], tokens["pi_berlin"]
    visit_id = _anna_visit(client.application, world)
    before = _slots(client, anna, visit_id)
    assert all(_local_day(s).weekday() < 5 for s in before)

    url = f"{API}/availability"
    saturday = _ok(client.post(url, json=_hours(world), headers=coord), 201)
    assert (saturday["weekday"], saturday["start_time"], saturday["staff_name"]) == (
        5,
        "08:00",
        "Pi_Berlin",
    )
    _ok(client.post(url, json=_hours(world, weekday=6), headers=pi), 201)  # their own
    overlapping = _hours(world, start_time="19:00", end_time="21:00")
    assert "overlaps" in _error(client.post(url, json=overlapping, headers=pi), 409)["message"]
    weekend = [s for s in _slots(client, anna, visit_id) if _local_day(s).weekday() >= 5]
    assert weekend
    assert all("08:00" <= s["local"]["starts"] <= "19:30" for s in weekend)

    for row in _ok(
        client.get(url, query_string={"user_id": world.users["pi_berlin"].id}, headers=coord)
    ):
        if row["weekday"] >= 5:
            response = client.delete(f"{url}/{row['id']}", headers=pi)
            assert response.status_code == 204, response.get_json()
    assert _slots(client, anna, visit_id) == before
    _error(client.delete(f"{url}/{saturday['id']}", headers=pi), 404)

    # A holiday on a day with slots takes that day's slots away.
    day = _local_day(before[-1])
    holidays = f"{API}/holidays"
    holiday = {"site_id": world.berlin.id, "day": day.isoformat(), "name": "Site party"}
    _error(client.post(holidays, json=holiday, headers=pi), 403)  # coordinators only
    made = _ok(client.post(holidays, json=holiday, headers=coord), 201)
    assert "already" in _error(client.post(holidays, json=holiday, headers=coord), 409)["message"]
    assert all(_local_day(s) != day for s in _slots(client, anna, visit_id))
    assert [h["id"] for h in _ok(client.get(holidays, headers=tokens["manager"]))] == [made["id"]]
    assert _ok(client.get(holidays, headers=tokens["coord_tokyo"])) == []
    assert client.delete(f"{holidays}/{made['id']}", headers=coord).status_code == 204
    assert _slots(client, anna, visit_id) == before


def test_a_day_off_and_extra_hours_change_the_slots_offered(
    client: FlaskClient, world: World, schedule: Schedule, tokens: dict[str, Headers]
) -> None:
    anna, pi = tokens["anna"], tokens["pi_berlin"]
    visit_id = _anna_visit(client.application, world)
    before = _slots(client, anna, visit_id)
    day = _local_day(before[-1])
    url = f"{API}/availability/exceptions"
    base = {
        "user_id": world.users["pi_berlin"].id,
        "site_id": world.berlin.id,
        "day": day.isoformat(),
    }
    assert "start_time" in _fields(client.post(url, json={**base, "available": True}, headers=pi))
    half = {**base, "available": False, "start_time": "12:00"}
    assert "end_time" in _fields(client.post(url, json=half, headers=pi))
    off = _ok(
        client.post(url, json={**base, "available": False, "note": "Training"}, headers=pi), 201
    )
    assert all(_local_day(s) != day for s in _slots(client, anna, visit_id))
    evening = {**base, "available": True, "start_time": "18:00", "end_time": "19:00"}
    _ok(client.post(url, json=evening, headers=pi), 201)
    on_the_day = [
        s["local"]["starts"] for s in _slots(client, anna, visit_id) if _local_day(s) == day
    ]
    assert on_the_day == ["18:00", "18:30"]
    assert client.delete(f"{url}/{off['id']}", headers=pi).status_code == 204
    listed = _ok(client.get(url, headers=tokens["coord_berlin"]))
    assert [(e["available"], e["start_time"]) for e in listed] == [(True, "18:00")]


def test_the_visits_api_is_in_the_openapi_document(client: FlaskClient) -> None:
    from openapi_spec_validator import validate

    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    paths = doc["paths"]
    booking = paths[f"{API}/bookings"]["post"]
    assert {"200", "201", "403", "404", "409", "422"} <= set(booking["responses"])
    assert booking["parameters"][0]["name"] == "Idempotency-Key"
    slot = doc["components"]["schemas"]["VisitSlot"]["properties"]
    assert slot["starts_at"]["format"] == "date-time"
    assert "room_url" not in doc["components"]["schemas"]["VisitBooking"]["properties"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("username", ["anna", "coord_berlin", "pi_berlin", "manager"])
def test_generated_requests_to_the_visits_api_get_documented_answers(
    app: Flask, client: FlaskClient, world: World, schedule: Schedule, username: str
) -> None:
    """The security fuzz run (tests/support/fuzz.py) over the visits endpoints
    only, with a visit planned so that the handlers get past their lookups."""
    from tests.support.fuzz import fuzz_run, fuzz_schema

    headers = token_for(client, username, world.password)
    schema = fuzz_schema(app, headers, []).include(path_regex=f"^{API}/")
    failures, statuses = fuzz_run(schema)
    assert not failures, "\n\n".join(failures)
    assert sum(n for status, n in statuses.items() if status.startswith("2")) > 0, statuses
