"""Schemathesis against the app's own OpenAPI document: the API answers what it documents.

Every operation of /api/v1/openapi.json gets a bounded, reproducible run (a fixed seed,
derandomized) of the boundary values of the coverage phase, generated valid and invalid
requests, and short stateful sequences, over the WSGI app with the `world` data on the
test database (SQLite or PostgreSQL). It runs once with an administrator's token and once
with a site coordinator's, whose scope makes other answers (404, 403) reachable.

It fails on any 500, on a status the operation does not list, on a body (the error body
included) or header that does not match the documented schema, and on a content type the
operation does not document. `DCT_FUZZ_CHECKS=all` adds the rest of schemathesis'
checks; some of them stop on its WSGI transport (a TypeError about `max_redirects`), not
on the API.

The run goes through schemathesis' engine (what its CLI runs) rather than
`schemathesis.pytest.from_fixture(...).parametrize()`: the app and its data come from
function fixtures, and that lazy loader fails on pytest 9 (`Function` has no `_nodeid`).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dct_platform import errors, policy
from dct_platform.errors import DomainError
from tests.support.clients import token_for
from tests.support.fuzz import fuzz_run, fuzz_schema
from tests.support.world import World

# Revoking the caller's own token would turn the rest of the run into 401s.
NEVER = [("DELETE", "/api/v1/auth/token")]
# Public, and slow on purpose (password hashing): the first caller's run covers them.
PUBLIC = [("POST", "/api/v1/auth/token"), ("POST", "/api/v1/auth/password")]

# A coordinator is refused these (403) after the same parsing the administrator's run covers.
ADMIN_ONLY = [
    ("POST", "/api/v1/trials"),
    ("POST", "/api/v1/trials/{trial_id}/sites"),
    ("PUT", "/api/v1/sites/{site_id}/principal-investigator"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("PUT", "/api/v1/users/{user_id}/access"),
    ("GET", "/api/v1/users/{user_id}"),
    ("POST", "/api/v1/users/{user_id}/{action}"),
    ("POST", "/api/v1/users/{user_id}/unlock"),
    ("POST", "/api/v1/users/{user_id}/password-reset"),
    ("GET", "/api/v1/audit/entries"),
    ("GET", "/api/v1/audit/verify"),
]

# The coordinator first: the administrator's run resets, disables and unlocks accounts.
CALLERS = [
    ("coord_berlin", NEVER + PUBLIC + ADMIN_ONLY),
    # The trial manager reaches what only that role may do (diary schedules, questionnaires).
    ("manager", NEVER + PUBLIC + ADMIN_ONLY),
    # The patient reaches the diary's own endpoints past the role check.
    ("anna", NEVER + PUBLIC + ADMIN_ONLY),
    ("admin", NEVER),
]


@pytest.mark.timeout(300)
def test_generated_requests_get_the_documented_answers(
    app: Flask, client: FlaskClient, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    found: list[str] = []
    for username, skipped in CALLERS:
        headers = token_for(client, username, world.password)
        failures, statuses = fuzz_run(fuzz_schema(app, headers, skipped))
        found += [f"as {username}: {failure}" for failure in failures]
        with capsys.disabled():
            print(f"\nfuzzed as {username}: responses by status {dict(sorted(statuses.items()))}")
        # The run must have reached the handlers, not bounced off authentication.
        assert statuses["401"] < sum(statuses.values()) / 4, statuses
        assert sum(statuses[s] for s in statuses if s.startswith("2")) > 0, statuses
    assert not found, "\n\n".join(found)


class _Teapot(DomainError):
    status = 418
    code = "teapot"


def _raise_500(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("planted by the test")


def _raise_418(*args: Any, **kwargs: Any) -> None:
    raise _Teapot("planted by the test")


def _status_as_text(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"status": str(status), "code": code, "message": message, "details": {}}


@pytest.mark.parametrize(
    ("target", "name", "replacement", "title"),
    [
        (policy, "get_visible", _raise_500, "Server error"),
        (policy, "get_visible", _raise_418, "Undocumented status code"),
        (errors, "error_body", _status_as_text, "Response violates schema"),
    ],
    ids=["500", "undocumented-status", "error-body-off-schema"],
)
def test_the_fuzzer_reports_what_the_document_does_not_allow(
    app: Flask,
    client: FlaskClient,
    world: World,
    target: object,
    name: str,
    replacement: Any,
    title: str,
) -> None:
    """The run above is only worth something if each of its checks fails it."""
    headers = token_for(client, "admin", world.password)
    schema = fuzz_schema(app, headers, NEVER).include(method="GET", path="/api/v1/sites/{site_id}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(target, name, replacement)
        failures, _ = fuzz_run(schema)
    assert any(f"GET /api/v1/sites/{{site_id}}: {title}" in f for f in failures), failures
    assert all(f.startswith("GET /api/v1/sites/{site_id}: ") for f in failures), failures
