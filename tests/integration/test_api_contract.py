"""The OpenAPI document tells the truth about the API, and the API keeps to it: the one
error body, the statuses each operation answers, JSON-only bodies, no unknown query
parameters, the patient's site number, and refusals that read as sentences."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform.extensions import db
from dct_platform.models.users import LoginThrottle
from tests.support.clients import token_for
from tests.support.world import CONSENT, World

INVALID_FIELDS = "The request has invalid fields; see details."
ERROR_REF = {"$ref": "#/components/schemas/Error"}
METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture
def doc(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").get_json()


@pytest.fixture
def staff(client: FlaskClient, world: World) -> dict[str, str]:
    return token_for(client, "coord_berlin", world.password)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], list[Any]]]:
    return [
        (method.upper(), path, op, item.get("parameters", []) + op.get("parameters", []))
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _conforms(doc: dict[str, Any], body: dict[str, Any]) -> None:
    """`body` is valid against the document's Error schema."""
    jsonschema.validate(body, doc["components"]["schemas"]["Error"])


# --- the error schema --------------------------------------------------------------------


def test_the_documented_error_schema_is_the_error_body(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["Error"]
    types = {name: prop["type"] for name, prop in error["properties"].items()}
    assert types == {
        "status": "integer",
        "code": "string",
        "message": "string",
        "details": "object",
    }
    assert sorted(error["required"]) == ["code", "details", "message", "status"]
    assert error["additionalProperties"] is False
    assert all(prop.get("description") for prop in error["properties"].values())


def test_real_error_bodies_conform_to_the_documented_schema(
    client: FlaskClient, doc: dict[str, Any], staff: dict[str, str]
) -> None:
    for response in (
        client.get("/api/v1/patients"),  # 401
        client.get("/api/v1/patients/999999", headers=staff),  # 404
        client.get("/api/v1/audit/verify", headers=staff),  # 403
        client.get("/api/v1/patients?site_id=x", headers=staff),  # 422
        client.post("/api/v1/auth/token", data="{", content_type="application/json"),  # 400
    ):
        assert response.status_code >= 400
        _conforms(doc, response.get_json())


def test_every_error_response_is_documented_with_the_error_schema(doc: dict[str, Any]) -> None:
    for method, path, op, _ in _operations(doc):
        responses = op["responses"]
        # A catch-all would make any status "documented".
        assert "default" not in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                content = response["content"]["application/json"]
                assert content["schema"] == ERROR_REF, (method, path, status)
                assert response["description"], (method, path, status)


# --- the statuses each operation answers ---------------------------------------------------


def test_statuses_the_platform_answers_around_every_handler_are_listed(
    doc: dict[str, Any],
) -> None:
    for method, path, op, parameters in _operations(doc):
        listed = set(op["responses"])
        where = (method, path)
        assert {"422", "503"} <= listed, where  # an unknown query parameter, a database outage
        security = op.get("security")
        if security is None and path != "/api/v1/auth/token":
            # A user token: refused (401), or held back while its password is temporary (403).
            assert {"401", "403"} <= listed, where
        elif security:
            # A device's own credential: valid or refused, nothing in between.
            assert "401" in listed, where
        if any(p["in"] == "path" for p in parameters):
            assert "404" in listed, where
        if "requestBody" in op:
            assert {"400", "413", "415"} <= listed, where


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/api/v1/auth/token", {"201", "401", "403", "415", "422", "429"}),
        ("delete", "/api/v1/auth/token", {"204", "401"}),
        ("post", "/api/v1/patients", {"201", "403", "404", "409", "422"}),
        ("patch", "/api/v1/patients/{patient_id}", {"200", "403", "404", "409", "412"}),
        ("get", "/api/v1/patients/{patient_id}/identity", {"200", "403", "404"}),
        ("patch", "/api/v1/patients/{patient_id}/identity", {"403", "404", "409", "412"}),
        ("post", "/api/v1/patients/{patient_id}/transfer", {"403", "404", "409"}),
        ("post", "/api/v1/trials/{trial_id}/sites", {"201", "403", "404", "409"}),
        ("get", "/api/v1/audit/entries", {"200", "401", "403", "422"}),
    ],
)
def test_each_operation_lists_what_its_handler_answers(
    doc: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(doc["paths"][path][method]["responses"])


def test_the_sign_in_lists_its_own_refusals_not_the_bearer_checks(
    doc: dict[str, Any],
) -> None:
    token = doc["paths"]["/api/v1/auth/token"]["post"]
    assert token["security"] == []
    # No bearer check runs before it: its 403 is the sign-in's own, not the token check's.
    assert "password_change_required" in token["responses"]["403"]["description"]
    assert "bearer" not in token["responses"]["401"]["description"].lower()


def test_an_answer_the_handler_really_gives_is_listed(
    client: FlaskClient, doc: dict[str, Any], staff: dict[str, str], world: World
) -> None:
    """Enrolling at a site outside the caller's scope is 404, and the document says so."""
    response = client.post(
        "/api/v1/patients",
        json={
            "site_id": world.tokyo.id,
            "subject_number": "T1-9",
            "timezone": "Asia/Tokyo",
            **CONSENT,
        },
        headers=staff,
    )
    assert response.status_code == 404
    assert "404" in doc["paths"]["/api/v1/patients"]["post"]["responses"]


# --- the rest of the document --------------------------------------------------------------


def test_servers_are_set(doc: dict[str, Any]) -> None:
    assert doc["servers"][0]["url"] == "/"


def test_pagination_header_is_documented_as_the_json_text_it_is(
    client: FlaskClient, doc: dict[str, Any], staff: dict[str, str]
) -> None:
    header = doc["paths"]["/api/v1/patients"]["get"]["responses"]["200"]["headers"]
    ref = header["X-Pagination"]["$ref"].rsplit("/", 1)[-1]
    documented = doc["components"]["headers"][ref]
    assert documented["schema"]["type"] == "string"
    assert "JSON" in documented["description"]
    assert isinstance(json.loads(documented["schema"]["example"]), dict)
    sent = client.get("/api/v1/patients", headers=staff).headers["X-Pagination"]
    assert json.loads(sent)["total"] == 1


def test_fields_carry_descriptions_and_examples(doc: dict[str, Any]) -> None:
    patient = doc["components"]["schemas"]["Patient"]["properties"]
    assert patient["subject_number"]["description"]
    assert patient["subject_number"]["example"] == "B1-001"
    assert patient["site_number"]["type"] == "string"
    user = doc["components"]["schemas"]["User"]["properties"]
    assert user["site_ids"] == {
        "readOnly": True,
        "description": "Sites the account works on",
        "type": "array",
        "items": {"type": "integer"},
    }


# --- bodies that are not JSON --------------------------------------------------------------


def test_malformed_json_gets_the_platform_error_body(
    client: FlaskClient, doc: dict[str, Any], staff: dict[str, str], world: World
) -> None:
    anna = world.patients["anna"]
    for response in (
        client.post("/api/v1/auth/token", data="{not json", content_type="application/json"),
        client.patch(
            f"/api/v1/patients/{anna.id}",
            data='{"status": ',
            content_type="application/json",
            headers=staff,
        ),
        client.post("/api/v1/auth/token", data=b"\xff\xfe", content_type="application/json"),
    ):
        assert response.status_code == 400
        body = response.get_json()
        assert body["code"] == "bad_request"
        assert body["message"] == "The request body is not valid JSON"
        _conforms(doc, body)


def test_a_form_encoded_sign_in_is_415_and_no_attempt(
    app: Flask, client: FlaskClient, world: World
) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": "coord_berlin", "password": "wrong password"}
    )
    assert response.status_code == 415
    body = response.get_json()
    assert body["code"] == "unsupported_media_type"
    assert "must be JSON" in body["message"]
    assert body["details"]["received"] == "application/x-www-form-urlencoded"
    with app.app_context():  # refused before the password was tried: nothing to throttle
        assert db.session.scalar(select(func.count()).select_from(LoginThrottle)) == 0


def test_any_json_operation_refuses_a_body_of_another_type(
    client: FlaskClient, staff: dict[str, str], world: World
) -> None:
    anna = world.patients["anna"]
    response = client.post(
        f"/api/v1/patients/{anna.id}/transfer",
        data="to_site_id=2&reason=moved",
        content_type="text/plain",
        headers=staff,
    )
    assert response.status_code == 415
    # Without a token the caller learns only that it needs one.
    response = client.post(f"/api/v1/patients/{anna.id}/transfer", data={"reason": "moved"})
    assert response.status_code == 401


def test_a_json_operation_sent_no_body_names_the_missing_fields(
    client: FlaskClient, staff: dict[str, str], world: World
) -> None:
    anna = world.patients["anna"]
    response = client.post(f"/api/v1/patients/{anna.id}/transfer", headers=staff)
    assert response.status_code == 422
    assert set(response.get_json()["details"]["fields"]) == {"to_site_id", "reason"}


# --- unknown query parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/patients?siteid=1",  # a misspelt filter that used to list every patient
        "/api/v1/patients?page=1&bogus=2",
        "/api/v1/trials?limit=5",  # an operation without any query parameter
        "/api/v1/me?bogus=",
    ],
)
def test_unknown_query_parameters_are_refused_by_name(
    client: FlaskClient, doc: dict[str, Any], staff: dict[str, str], url: str
) -> None:
    response = client.get(url, headers=staff)
    assert response.status_code == 422
    body = response.get_json()
    assert body["message"] == INVALID_FIELDS
    name = url.rsplit("&", 1)[-1].split("?")[-1].split("=")[0]
    assert body["details"]["fields"] == {name: ["Unknown parameter."]}
    _conforms(doc, body)


def test_declared_query_parameters_still_work(
    client: FlaskClient, staff: dict[str, str], world: World
) -> None:
    url = f"/api/v1/patients?site_id={world.berlin.id}&status=enrolled&page=1&page_size=5"
    response = client.get(url, headers=staff)
    assert response.status_code == 200, response.get_json()
    assert [p["subject_number"] for p in response.get_json()] == ["B1-anna"]


def test_unknown_query_parameters_on_a_write_are_refused_before_it(
    client: FlaskClient, staff: dict[str, str], world: World
) -> None:
    anna = world.patients["anna"]
    response = client.patch(
        f"/api/v1/patients/{anna.id}?dry_run=1", json={"preferred_language": "de"}, headers=staff
    )
    assert response.status_code == 422
    assert response.get_json()["details"]["fields"] == {"dry_run": ["Unknown parameter."]}
    after = client.get(f"/api/v1/patients/{anna.id}", headers=staff).get_json()
    assert after["preferred_language"] == "en"


# --- the patient's site number ---------------------------------------------------------------


def test_a_patient_record_carries_its_site_number(
    client: FlaskClient, staff: dict[str, str], world: World
) -> None:
    anna = world.patients["anna"]
    one = client.get(f"/api/v1/patients/{anna.id}", headers=staff).get_json()
    assert (one["site_id"], one["site_number"]) == (world.berlin.id, "B1")
    listed = client.get("/api/v1/patients", headers=staff).get_json()
    assert [(p["site_id"], p["site_number"]) for p in listed] == [(world.berlin.id, "B1")]


def test_the_site_number_follows_a_transfer(
    client: FlaskClient, staff: dict[str, str], world: World
) -> None:
    anna = world.patients["anna"]
    response = client.post(
        f"/api/v1/patients/{anna.id}/transfer",
        json={"to_site_id": world.tokyo.id, "reason": "moved to Tokyo"},
        headers=staff,
    )
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["site_id"], response.get_json()["site_number"]) == (
        world.tokyo.id,
        "T1",
    )


# --- refusals read as sentences ------------------------------------------------------------


def test_refused_actions_read_as_sentences(client: FlaskClient, world: World) -> None:
    manager = token_for(client, "manager", world.password)
    anna = world.patients["anna"]
    refusals = {
        "You are not allowed to see the personal data of this record.": client.get(
            f"/api/v1/patients/{anna.id}/identity", headers=manager
        ),
        "You are not allowed to change this record.": client.post(
            f"/api/v1/patients/{anna.id}/status",
            json={"status": "withdrawn", "effective_on": "2026-03-01", "reason": "withdrew"},
            headers=manager,
        ),
        "You are not allowed to transfer this record.": client.post(
            f"/api/v1/patients/{anna.id}/transfer",
            json={"to_site_id": world.tokyo.id, "reason": "moved"},
            headers=manager,
        ),
    }
    for message, response in refusals.items():
        assert response.status_code == 403, response.get_json()
        assert response.get_json()["message"] == message
