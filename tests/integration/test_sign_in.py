"""Sign-in: throttled failures, safe sessions, bearer tokens only as hashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import extract_parameters
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from dct_platform import audit, security
from dct_platform.audit_guard import writing_audit_tables
from dct_platform.extensions import db
from dct_platform.models import ApiToken, LoginThrottle, User
from dct_platform.services import accounts
from tests.conftest import make_app
from tests.support.clients import login, submit
from tests.support.clock import TestClock
from tests.support.waiting import wait_for
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
    # The signed cookie's age is measured on the wall clock (itsdangerous), not the app's
    # clock, so this test waits. It asks with a copy of the cookie from another client:
    # asking with the original would refresh it and keep the session alive.
    cookie_name = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(cookie_name)
    assert cookie is not None

    def session_ended() -> bool:
        probe = app.test_client()
        probe.set_cookie(cookie_name, cookie.value)
        return probe.get("/site").status_code == 302

    wait_for(session_ended, timeout=10, interval=0.25, message="the idle session to end")
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


def test_a_disabled_account_is_told_so_only_after_the_right_password(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with app.app_context():
        user = db.session.get(User, world.users["coord_berlin"].id)
        admin = db.session.get(User, world.users["admin"].id)
        accounts.set_enabled(db.session, admin, datetime.now(UTC), user, False, "left the team")
        db.session.commit()
    disabled = "This account is disabled. Ask your site or the administrator to enable it."
    right = login(client, "coord_berlin", world.password)
    assert right.status_code == 403 and disabled in right.get_data(as_text=True)
    assert client.get("/site").status_code == 302  # not signed in
    wrong = login(client, "coord_berlin", "not the password")
    assert wrong.status_code == 401 and disabled not in wrong.get_data(as_text=True)
    token = client.post(
        "/api/v1/auth/token", json={"username": "coord_berlin", "password": world.password}
    )
    assert token.status_code == 403
    assert token.get_json()["code"] == "account_disabled"
    assert token.get_json()["message"] == disabled


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


def test_a_hash_made_at_another_cost_verifies_and_is_upgraded_at_sign_in(
    app: Flask, client: FlaskClient, world: World
) -> None:
    current = extract_parameters(security.hash_password(world.password))
    # Argon2 stores its parameters in the hash: one made at another cost (production's
    # before the tests lowered it, or an older deployment's) still verifies.
    other = security.hasher_from_env(
        {
            "PASSWORD_HASH_TIME_COST": str(current.time_cost + 1),
            "PASSWORD_HASH_MEMORY_KIB": str(current.memory_cost * 2),
            "PASSWORD_HASH_PARALLELISM": str(current.parallelism),
        }
    )
    old_hash = other.hash(world.password)
    assert extract_parameters(old_hash) != current and security.needs_rehash(old_hash)
    user_id = world.users["coord_berlin"].id

    def stored_hash() -> str:
        with app.app_context():
            value = db.session.get(User, user_id).password_hash
            db.session.remove()
            return value

    with app.app_context():
        # Put in place the way an older deployment left it: as a migration would, past the
        # guard that refuses unaudited changes of users.
        with writing_audit_tables(db.session.connection()):
            db.session.execute(
                update(User)
                .where(User.id == user_id)
                .values(password_hash=old_hash)
                .execution_options(**{audit.EXEMPT: True})
            )
        db.session.commit()

    assert login(client, "coord_berlin", "wrong password").status_code == 401
    assert stored_hash() == old_hash  # a failed sign-in upgrades nothing
    assert login(client, "coord_berlin", world.password).status_code == 302
    upgraded = stored_hash()
    assert upgraded != old_hash and extract_parameters(upgraded) == current
    assert security.verify_password(upgraded, world.password)
    assert not security.needs_rehash(upgraded)
    # Upgraded once: the next sign-in keeps the hash it finds.
    assert login(app.test_client(), "coord_berlin", world.password).status_code == 302
    assert stored_hash() == upgraded


def test_bearer_tokens_expire_on_the_apps_clock(
    app: Flask, client: FlaskClient, world: World, clock: TestClock
) -> None:
    clock.freeze()
    headers = {
        "Authorization": "Bearer "
        + client.post(
            "/api/v1/auth/token", json={"username": "nurse", "password": world.password}
        ).get_json()["access_token"]
    }
    ttl = timedelta(seconds=app.config["API_TOKEN_TTL_SECONDS"])
    clock.advance(ttl - timedelta(seconds=1))
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_the_upgraded_hash_is_on_the_trail(app: Flask, client: FlaskClient, world: World) -> None:
    from dct_platform.models import AuditEntry

    with app.app_context():
        user = db.session.get(User, world.users["coord_berlin"].id)
        with writing_audit_tables(db.session.connection()):
            db.session.execute(
                update(User)
                .where(User.id == user.id)
                .values(password_hash=security.hasher_from_env(
                    {"PASSWORD_HASH_TIME_COST": "3", "PASSWORD_HASH_MEMORY_KIB": "1024",
                     "PASSWORD_HASH_PARALLELISM": "1"}
                ).hash(world.password))
                .execution_options(**{audit.EXEMPT: True})
            )  # fmt: skip
        db.session.commit()
    assert login(client, "coord_berlin", world.password).status_code == 302
    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.table_name == "users", AuditEntry.field == "password_hash")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None and entry.new_value == "[redacted]"
        assert entry.reason == "password re-hashed with current parameters"
