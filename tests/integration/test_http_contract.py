"""The endpoints outside clients rely on: /healthz, the token endpoint, the OpenAPI document."""

from __future__ import annotations

from flask.testing import FlaskClient
from openapi_spec_validator import validate

from tests.support.world import World


def test_healthz_reports_database_reachable(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"


def test_token_for_right_password_and_401_for_wrong(client: FlaskClient, world: World) -> None:
    ok = client.post(
        "/api/v1/auth/token", json={"username": "coord_berlin", "password": world.password}
    )
    assert ok.status_code == 201
    body = ok.get_json()
    assert body["token_type"] == "Bearer" and len(body["access_token"]) >= 40
    assert body["user"]["role"] == "site_staff"

    wrong = client.post("/api/v1/auth/token", json={"username": "coord_berlin", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.get_json() == {
        "status": 401,
        "code": "unauthorized",
        "message": "The username or password is not correct.",
        "details": {},
    }


def test_token_works_until_revoked(client: FlaskClient, world: World) -> None:
    token = client.post(
        "/api/v1/auth/token", json={"username": "manager", "password": world.password}
    ).get_json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).get_json()["username"] == "manager"
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    again = client.get("/api/v1/me", headers=headers)
    assert again.status_code == 401
    assert again.get_json()["code"] == "unauthorized"


def test_api_refuses_missing_token_and_session_cookies(client: FlaskClient, world: World) -> None:
    assert client.get("/api/v1/patients").status_code == 401
    # A signed-in browser session is no API credential: the API honours bearer tokens only.
    from tests.support.clients import login

    login(client, "coord_berlin", world.password)
    assert client.get("/api/v1/patients").status_code == 401


def test_openapi_document_is_generated_from_the_schemas(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/auth/token" in doc["paths"]
    assert "/api/v1/patients/{patient_id}" in doc["paths"]
    schemas = doc["components"]["schemas"]
    assert {"TokenRequest", "Patient", "Error"} <= set(schemas)
    assert schemas["TokenRequest"]["required"] == ["password", "username"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    validate(doc)  # a valid OpenAPI 3 document, so client generators can consume it


def test_validation_errors_name_each_field(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", json={"username": ""})
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "validation_error"
    assert set(body["details"]["fields"]) == {"username", "password"}


def test_malformed_json_is_400_not_500(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["code"] == "bad_request"


def test_unknown_api_path_answers_in_the_error_format(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_login_page_renders_with_labels(client: FlaskClient) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert '<label for="username">' in html and '<label for="password">' in html
