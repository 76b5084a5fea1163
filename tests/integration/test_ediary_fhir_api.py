"""Questionnaires go in and out of the API as FHIR R4 Questionnaires, unchanged; entries
come out as QuestionnaireResponses; what the platform cannot express is refused, named."""

from __future__ import annotations

import json
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from devices.ediary.demo_instruments import MOOD_9
from devices.ediary.fhir_questionnaire import from_questionnaire, to_questionnaire
from devices.ediary.instruments import validate_definition
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.ediary import (
    ANSWERS,
    Diary,
    daily_diary,
    local,
    occurrence,
    refresh,
    submit,
)
from tests.support.world import World

FHIR = "application/fhir+json"


@pytest.fixture
def diary(app: Flask, world: World) -> Diary:
    return daily_diary(app, world)


def test_a_questionnaire_round_trips_through_the_api(client: FlaskClient, world: World) -> None:
    manager = token_for(client, "manager", world.password)
    sent = to_questionnaire(validate_definition(MOOD_9))
    made = client.post(
        "/api/v1/ediary/questionnaires", headers=manager, data=json.dumps(sent),
        content_type=FHIR,
    )  # fmt: skip
    assert made.status_code == 201, made.get_json()
    assert made.content_type == FHIR
    back = client.get(f"/api/v1/ediary/questionnaires/{MOOD_9['code']}/1", headers=manager)
    assert back.status_code == 200
    assert from_questionnaire(back.get_json()) == validate_definition(MOOD_9)
    again = client.post("/api/v1/ediary/questionnaires", headers=manager, json=sent)
    assert again.status_code == 409  # a published version never changes
    staff = token_for(client, "coord_berlin", world.password)
    refused = client.post("/api/v1/ediary/questionnaires", headers=staff, json=sent)
    assert refused.status_code == 403


def test_an_unsupported_questionnaire_is_refused_with_what_is_wrong(
    client: FlaskClient, world: World
) -> None:
    manager = token_for(client, "manager", world.password)
    grouped = {
        "resourceType": "Questionnaire",
        "status": "active",
        "url": "urn:dct-platform:questionnaire:grouped",
        "version": "1",
        "title": "Grouped",
        "item": [{"linkId": "g", "type": "group", "text": "A group", "item": [
            {"linkId": "q1", "type": "boolean", "text": "Yes?"}]}],
    }  # fmt: skip
    answer = client.post("/api/v1/ediary/questionnaires", headers=manager, json=grouped)
    assert answer.status_code == 422
    assert "group" in json.dumps(answer.get_json())
    not_fhir = client.post("/api/v1/ediary/questionnaires", headers=manager, json={"a": 1})
    assert not_fhir.status_code == 422


def test_an_entry_comes_out_as_a_questionnaire_response(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    refresh(app, local(diary.first_day, "12:00:00"))
    clock.freeze(local(diary.first_day, "20:00:00"))
    row = occurrence(app, world.patients["anna"].id, diary.first_day)
    entry_id = submit(app, world, row.id, ANSWERS, "f1").entry.id
    staff = token_for(client, "coord_berlin", world.password)
    response = client.get(f"/api/v1/ediary/entries/{entry_id}/fhir", headers=staff)
    assert response.status_code == 200 and response.content_type == FHIR
    resource = response.get_json()
    assert resource["resourceType"] == "QuestionnaireResponse"
    assert resource["subject"]["reference"] == "Patient/B1-anna"
    answered = {i["linkId"]: i["answer"] for i in resource["item"]}
    assert answered["hours_slept"] == [{"valueDecimal": 7.5}]
    tokyo = token_for(client, "coord_tokyo", world.password)
    assert client.get(f"/api/v1/ediary/entries/{entry_id}/fhir", headers=tokyo).status_code == 404


def test_the_trial_manager_schedules_a_questionnaire_through_the_api(
    app: Flask, client: FlaskClient, world: World
) -> None:
    manager = token_for(client, "manager", world.password)
    sent = to_questionnaire(validate_definition(MOOD_9))
    assert (
        client.post("/api/v1/ediary/questionnaires", headers=manager, json=sent).status_code == 201
    )
    today = date.today().isoformat()
    body = {
        "trial_id": world.trial.id, "instrument": MOOD_9["code"], "version": 1,
        "kind": "daily", "window_start": "00:00", "window_end": "24:00", "first_date": today,
    }  # fmt: skip
    made = client.post("/api/v1/ediary/schedules", headers=manager, json=body)
    assert made.status_code == 201, made.get_json()
    assert [
        s["id"] for s in client.get("/api/v1/ediary/schedules", headers=manager).get_json()
    ] == [made.get_json()["id"]]
    anna = token_for(client, "anna", world.password)
    due = client.get("/api/v1/ediary/occurrences", headers=anna).get_json()
    assert any(o["instrument"] == MOOD_9["code"] and o["state"] == "open" for o in due)
    staff = token_for(client, "coord_berlin", world.password)
    assert client.post("/api/v1/ediary/schedules", headers=staff, json=body).status_code == 403
    bad = client.post(
        "/api/v1/ediary/schedules", headers=manager, json={**body, "window_start": "25:00"}
    )
    assert bad.status_code == 422 and "window_start" in json.dumps(bad.get_json())
    unknown = client.post(
        "/api/v1/ediary/schedules", headers=manager, json={**body, "instrument": "nope"}
    )
    assert unknown.status_code == 404
    for kind, field in (("every_n_days", "every_n"), ("protocol_days", "study_days")):
        incomplete = client.post(
            "/api/v1/ediary/schedules", headers=manager, json={**body, "kind": kind}
        )
        assert incomplete.status_code == 422 and field in json.dumps(incomplete.get_json())
