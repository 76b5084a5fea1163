"""Helpers that act like a browser form or an API client."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

_CSRF = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = _CSRF.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def submit(client: FlaskClient, form_page: str, action: str, data: dict[str, Any]) -> TestResponse:
    """POST a form the way a browser does: with the CSRF token from the page that shows it."""
    return client.post(action, data={"csrf_token": csrf_token(client, form_page), **data})


def login(client: FlaskClient, username: str, password: str) -> TestResponse:
    return submit(client, "/login", "/login", {"username": username, "password": password})


def token_for(client: FlaskClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


_ID = re.compile(r'\sid="([^"]+)"')


def duplicate_ids(html: str) -> set[str]:
    """Element ids used twice: a label then points at the wrong field. Each form's hidden
    CSRF input repeats its id harmlessly (no label refers to it)."""
    ids = [i for i in _ID.findall(html) if not i.endswith("csrf_token")]
    return {i for i in ids if ids.count(i) > 1}
