"""Sign-in: throttled failures, safe sessions, bearer tokens only as hashes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import ApiToken, LoginThrottle, User
from dct_platform.services import accounts
from tests.conftest import make_app
from tests.support.clients import login, submit
from tests.support.world import World


def test_wrong_password_shows_an_inline_error(client: FlaskClient, world: World) -> None:
    response = login(client, "coord_berlin", "wrong password")
    assert response.status_code == 401
    assert "The username or password is not correct." in response.get_data(as_text=True)


def test_repeated_failures_are_throttled_even_with_the_right_password(
    client: FlaskClient, world: World
) -> None:
    for _ in range(5):
        assert login(client, "coord_berlin", "guess").status_code == 401
    blocked = login(client, "coord_berlin", world.password)
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.get_data(as_text=True)
    api = client.post(
        "/api/v1/auth/token", json={"username": "coord_berlin", "password": world.password}
    )
    assert api.status_code == 429 and int(api.headers["Retry-After"]) > 0
    # Other accounts are unaffected.
    assert login(client, "coord_tokyo", world.password).status_code == 302


def test_failures_for_unknown_usernames_are_throttled_too(
    client: FlaskClient, world: World
) -> None:
    for _ in range(5):
        client.post("/api/v1/auth/token", json={"username": "ghost", "password": "x"})
    assert (
        client.post("/api/v1/auth/token", json={"username": "ghost", "password": "x"}).status_code
        == 429
    )


def test_session_cookie_is_httponly_and_samesite(client: FlaskClient, world: World) -> None:
    response = login(client, "coord_berlin", world.password)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # idle sessions end after PERMANENT_SESSION_LIFETIME


def test_idle_session_ends(app: Flask, world: World) -> None:
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=1)
    client = app.test_client()
    login(client, "coord_berlin", world.password)
    assert client.get("/site").status_code == 200
    time.sleep(2.1)
    assert client.get("/site").status_code == 302


def test_password_change_ends_existing_sessions(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "coord_berlin", world.password)
    assert client.get("/site").status_code == 200
    with app.app_context():
        user = db.session.get(User, world.users["coord_berlin"].id)
        accounts.set_password(db.session, user, datetime.now(UTC), user, "a brand new passphrase")
        db.session.commit()
    assert client.get("/site").status_code == 302  # back to the sign-in page


def test_disabled_account_cannot_sign_in(app: Flask, client: FlaskClient, world: World) -> None:
    with app.app_context():
        from dct_platform import audit

        user = db.session.get(User, world.users["coord_berlin"].id)
        admin = db.session.get(User, world.users["admin"].id)
        with audit.acting(db.session, admin, datetime.now(UTC), "left the study team"):
            user.is_enabled = False
        db.session.commit()
    assert login(client, "coord_berlin", world.password).status_code == 401
    assert (
        client.post(
            "/api/v1/auth/token", json={"username": "coord_berlin", "password": world.password}
        ).status_code
        == 401
    )


def test_after_sign_in_only_local_redirects(client: FlaskClient, world: World) -> None:
    response = submit(
        client,
        "/login",
        "/login?next=https://evil.example/x",
        {"username": "coord_berlin", "password": world.password},
    )
    assert response.headers["Location"] == "/"


def test_tokens_are_stored_only_as_hashes(app: Flask, client: FlaskClient, world: World) -> None:
    token = client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": world.password}
    ).get_json()
    with app.app_context():
        stored = db.session.scalars(select(ApiToken.token_hash)).all()
    assert token["access_token"] not in stored
    assert len(stored) == 1 and len(stored[0]) == 64


def test_error_pages_hide_internals(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Not found" in html and "Traceback" not in html


def test_behind_a_trusted_proxy_failures_count_per_real_client(
    database_url: str, tmp_path: Path, world: World
) -> None:
    app = make_app(database_url, tmp_path, TRUSTED_PROXY_COUNT=1)
    client = app.test_client()
    for _ in range(2):
        client.post(
            "/api/v1/auth/token",
            json={"username": "nurse", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    with app.app_context():
        counted = set(
            db.session.scalars(select(LoginThrottle.key).where(LoginThrottle.kind != "user"))
        )
        assert counted == {"203.0.113.7", "203.0.113.7|nurse"}
        db.session.remove()  # hand the connection back before the pool is closed
        db.engine.dispose()


def test_password_change_revokes_bearer_tokens(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = {
        "Authorization": "Bearer "
        + client.post(
            "/api/v1/auth/token", json={"username": "coord_berlin", "password": world.password}
        ).get_json()["access_token"]
    }
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    with app.app_context():
        user = db.session.get(User, world.users["coord_berlin"].id)
        accounts.change_own_password(
            db.session, user, datetime.now(UTC), world.password, "another passphrase"
        )
        db.session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401
