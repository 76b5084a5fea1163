"""Account security: temporary passwords on the API, the password policy, and sign-in
throttling that counts parallel guesses exactly and never locks an owner out."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import TooManyAttempts, Unauthorized
from dct_platform.extensions import db
from dct_platform.models import LoginThrottle, MailOutbox, Patient, User
from dct_platform.scheduler import run_job
from dct_platform.security import password_problems
from dct_platform.services import accounts
from dct_platform.services.accounts import ThrottlePolicy
from tests.support.clients import login, submit, token_for
from tests.support.live_server import LiveServer
from tests.support.smtp import LoopbackSMTPServer
from tests.support.world import World

NEW_PASSWORD = "a fresh passphrase of mine"
TOKEN = "/api/v1/auth/token"
CHANGE = "/api/v1/auth/password"


def _reset(app: Flask, world: World, username: str) -> str:
    with app.app_context():
        admin = db.session.get(User, world.users["admin"].id)
        user = db.session.get(User, world.users[username].id)
        temporary = accounts.reset_password(db.session, admin, datetime.now(UTC), user, "forgot it")
        db.session.commit()
    return temporary


def _counter(app: Flask, kind: str, key: str) -> int:
    with app.app_context():
        row = db.session.get(LoginThrottle, (kind, key))
        return row.failures if row else 0


def _from(address: str) -> dict[str, Any]:
    return {"environ_overrides": {"REMOTE_ADDR": address}}


# --- temporary passwords on the API ------------------------------------------------------


def test_a_reset_password_gets_no_token_until_changed_through_the_api(
    app: Flask, client: FlaskClient, world: World
) -> None:
    temporary = _reset(app, world, "nurse")
    refused = client.post(TOKEN, json={"username": "nurse", "password": temporary})
    assert refused.status_code == 403
    body = refused.get_json()
    assert body["code"] == "password_change_required"
    assert "/account/password" in body["message"] and CHANGE in body["message"]

    changed = client.post(
        CHANGE,
        json={"username": "nurse", "current_password": temporary, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.get_json()
    headers = token_for(client, "nurse", NEW_PASSWORD)
    assert client.get("/api/v1/me", headers=headers).get_json()["username"] == "nurse"
    assert client.post(TOKEN, json={"username": "nurse", "password": temporary}).status_code == 401


def test_an_account_created_through_the_api_must_change_its_password(
    app: Flask, client: FlaskClient, world: World
) -> None:
    admin = token_for(client, "admin", world.password)
    created = client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "nurse2",
            "password": "handed over on paper",
            "display_name": "Nina",
            "role": "nurse",
        },
    )
    assert created.status_code == 201
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "nurse2")).must_change_password
    refused = client.post(TOKEN, json={"username": "nurse2", "password": "handed over on paper"})
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "password_change_required"
    assert (
        client.post(
            CHANGE,
            json={
                "username": "nurse2",
                "current_password": "handed over on paper",
                "new_password": NEW_PASSWORD,
            },
        ).status_code
        == 204
    )
    token_for(client, "nurse2", NEW_PASSWORD)


def test_a_token_of_an_account_that_must_change_its_password_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = token_for(client, "nurse", world.password)
    with app.app_context():
        admin = db.session.get(User, world.users["admin"].id)
        nurse = db.session.get(User, world.users["nurse"].id)
        with audit.acting(
            db.session, admin, datetime.now(UTC), "password seen on a screen", what="Reset"
        ):
            nurse.must_change_password = True
        db.session.commit()
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "password_change_required"


def test_wrong_current_passwords_on_the_password_endpoint_count_as_failed_sign_ins(
    client: FlaskClient, world: World
) -> None:
    wrong = {"username": "nurse", "current_password": "not it at all", "new_password": NEW_PASSWORD}
    for _ in range(5):
        assert client.post(CHANGE, json=wrong).status_code == 401
    right = {**wrong, "current_password": world.password}
    throttled = client.post(CHANGE, json=right)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert client.post(
        TOKEN, json={"username": "nurse", "password": world.password}
    ).status_code == (429)


# --- password policy -----------------------------------------------------------------------

RULES = [
    pytest.param("Password123", "This is one of the most common passwords", id="common"),
    pytest.param("QWERTYUIOP", "This is one of the most common passwords", id="common-upper"),
    pytest.param("COORD_Berlin", "Do not use your username as your password.", id="username"),
    pytest.param("zzzzzzzzzzzzzzz", "Do not repeat one character only.", id="repeated"),
    pytest.param("ab" * 513, "Use at most 1024 characters.", id="too-long"),
]


@pytest.mark.parametrize(("password", "message"), RULES)
def test_password_rules_on_the_api(
    client: FlaskClient, world: World, password: str, message: str
) -> None:
    response = client.post(
        CHANGE,
        json={
            "username": "coord_berlin",
            "current_password": world.password,
            "new_password": password,
        },
    )
    assert response.status_code == 422
    assert response.get_json()["code"] == "validation_error"
    problems = response.get_json()["details"]["fields"]["new_password"]
    assert any(message in problem for problem in problems), problems
    assert token_for(client, "coord_berlin", world.password)  # nothing was changed


def test_a_nul_character_is_refused_at_every_door(client: FlaskClient, world: World) -> None:
    # The request guard refuses NUL in any input before a view runs; the policy refuses it
    # too, for passwords that arrive another way (the `dct create-user` prompt).
    with_nul = "long enough\x00 really"
    assert "The password contains a character that cannot be typed." in [
        str(problem) for problem in password_problems(with_nul)
    ]
    response = client.post(
        CHANGE,
        json={
            "username": "coord_berlin",
            "current_password": world.password,
            "new_password": with_nul,
        },
    )
    assert response.status_code == 422
    login(client, "coord_berlin", world.password)
    page = submit(
        client,
        "/account/password",
        "/account/password",
        {"current_password": world.password, "new_password": with_nul, "confirm": with_nul},
    )
    assert page.status_code == 422
    assert token_for(client, "coord_berlin", world.password)  # nothing was changed


def test_the_username_rule_applies_when_an_administrator_creates_an_account(
    client: FlaskClient, world: World
) -> None:
    admin = token_for(client, "admin", world.password)
    response = client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "nurse.schmidt",
            "password": "Nurse.Schmidt",
            "display_name": "S",
            "role": "nurse",
        },
    )
    assert response.status_code == 422
    assert response.get_json()["details"]["fields"]["password"] == [
        "Do not use your username as your password."
    ]


@pytest.mark.parametrize(("password", "message"), RULES)
def test_password_rules_on_the_page(
    client: FlaskClient, world: World, password: str, message: str
) -> None:
    login(client, "coord_berlin", world.password)
    response = submit(
        client,
        "/account/password",
        "/account/password",
        {"current_password": world.password, "new_password": password, "confirm": password},
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_password_rules_speak_the_patients_language(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with app.app_context():
        admin = db.session.get(User, world.users["admin"].id)
        patient = db.session.get(Patient, world.patients["anna"].id)
        with audit.acting(
            db.session, admin, datetime.now(UTC), "asked for German", what="Change language"
        ):
            patient.preferred_language = "de"
        db.session.commit()
    login(client, "anna", world.password)
    response = submit(
        client,
        "/account/password",
        "/account/password",
        {"current_password": world.password, "new_password": "1234567890", "confirm": "1234567890"},
    )
    assert response.status_code == 422
    assert "Dies ist eines der häufigsten Passwörter" in response.get_data(as_text=True)


def test_the_page_refuses_an_overlong_current_password_before_hashing_it(
    client: FlaskClient, world: World
) -> None:
    login(client, "coord_berlin", world.password)
    response = submit(
        client,
        "/account/password",
        "/account/password",
        {"current_password": "x" * 1025, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 422


# --- throttling ---------------------------------------------------------------------------


def _post_json(url: str, path: str, body: dict[str, str], source: str) -> tuple[int, str]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60, source_address=(source, 0))
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After") or ""
    finally:
        conn.close()


def test_forty_parallel_guesses_verify_only_five(app: Flask, world: World) -> None:
    wrong = {"username": "coord_berlin", "password": "a wrong guess"}
    barrier = threading.Barrier(40)
    statuses: list[int] = []

    def guess(url: str) -> None:
        barrier.wait()
        statuses.append(_post_json(url, TOKEN, wrong, "127.0.0.1")[0])

    with LiveServer(app) as server:
        threads = [threading.Thread(target=guess, args=(server.url,)) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert Counter(statuses) == {401: 5, 429: 35}
        right = {"username": "coord_berlin", "password": world.password}
        # The sixth attempt from the guessing address is refused, right password or not...
        status, retry_after = _post_json(server.url, TOKEN, right, "127.0.0.1")
        assert status == 429 and int(retry_after) > 0
        # ...while the owner, elsewhere, signs in.
        assert _post_json(server.url, TOKEN, right, "127.0.0.2")[0] == 201
    assert _counter(app, "user_address", "127.0.0.1|coord_berlin") == 5
    assert _counter(app, "user", "coord_berlin") == 5  # refused attempts were never counted


def test_the_owner_signs_in_elsewhere_while_the_guessing_address_is_throttled(
    client: FlaskClient, world: World
) -> None:
    for _ in range(5):
        wrong = {"username": "coord_berlin", "password": "guess"}
        assert client.post(TOKEN, json=wrong, **_from("198.51.100.9")).status_code == 401
    right = {"username": "coord_berlin", "password": world.password}
    assert client.post(TOKEN, json=right, **_from("198.51.100.9")).status_code == 429
    assert client.post(TOKEN, json=right, **_from("192.0.2.44")).status_code == 201


def test_a_username_guessed_from_many_addresses_is_slowed_down_not_locked(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = {"username": "admin", "password": "a wrong guess"}
    right = {"username": "admin", "password": world.password}
    for attempt in range(20):  # four from each address stays under the per-address limit
        response = client.post(TOKEN, json=wrong, **_from(f"203.0.113.{attempt // 4}"))
        assert response.status_code == 401
    slowed = client.post(TOKEN, json=right, **_from("192.0.2.1"))
    assert slowed.status_code == 429
    assert 0 < int(slowed.headers["Retry-After"]) <= 30

    # Half a minute later one attempt goes through; the next must wait twice as long.
    later = datetime.now(UTC) + timedelta(seconds=31)
    monkeypatch.setattr("dct_platform.api.auth_api.utcnow", lambda: later)
    assert client.post(TOKEN, json=wrong, **_from("203.0.113.99")).status_code == 401
    again = client.post(TOKEN, json=right, **_from("192.0.2.1"))
    assert again.status_code == 429 and 30 < int(again.headers["Retry-After"]) <= 60
    later += timedelta(seconds=61)
    assert client.post(TOKEN, json=right, **_from("192.0.2.1")).status_code == 201

    with app.app_context():
        mails = db.session.scalars(select(MailOutbox)).all()
    assert len(mails) == 1  # one warning however many attempts follow
    assert json.loads(mails[0].recipients) == ["admin@example.org"]


def test_the_guessing_warning_reaches_the_owner(
    app: Flask, session: Session, world: World, smtp_server: LoopbackSMTPServer
) -> None:
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port)
    now = datetime.now(UTC)
    policy = ThrottlePolicy(max_failures_per_username=3)
    for attempt in range(5):
        with pytest.raises(Unauthorized):  # a minute apart: slowed down, never refused
            accounts.authenticate(
                session, "admin", "nope", remote_addr=f"10.0.0.{attempt}", now=now, policy=policy
            )
        session.commit()  # as the request does despite the error
        now += timedelta(minutes=1)
    assert run_job(app, "core.mail-outbox", now)
    (mail,) = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["admin@example.org"]
    assert "failed sign-in attempts" in mail.message["Subject"]


def test_slow_down_in_the_service_follows_the_clock_given(session: Session, world: World) -> None:
    policy = ThrottlePolicy(max_failures_per_username=3)
    now = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)

    def attempt(at: datetime, password: str, address: str = "10.0.0.1") -> str:
        try:
            accounts.authenticate(
                session, "nurse", password, remote_addr=address, now=at, policy=policy
            )
        except TooManyAttempts as exc:
            session.commit()
            return f"wait {exc.retry_after}"
        except Unauthorized:
            session.commit()
            return "wrong"
        session.commit()
        return "in"

    assert [attempt(now, "x") for _ in range(3)] == ["wrong"] * 3
    assert attempt(now, world.password, "10.0.0.2") == "wait 30"
    assert attempt(now + timedelta(seconds=30), "x") == "wrong"
    assert attempt(now + timedelta(seconds=31), world.password) == "wait 59"
    assert attempt(now + timedelta(seconds=90), world.password, "10.0.0.2") == "in"
    # The success gave its own reservation back; the guesses still count.
    row = session.get(LoginThrottle, ("user", "nurse"))
    assert row is not None and row.failures == 4
    # A window after the last delay ran out, the username starts afresh.
    assert attempt(now + timedelta(minutes=40), "x", "10.0.0.3") == "wrong"
    session.expire_all()
    assert session.get(LoginThrottle, ("user", "nurse")).failures == 1


def test_a_successful_sign_in_gives_its_reservation_back(
    app: Flask, client: FlaskClient, world: World
) -> None:
    for _ in range(4):
        wrong = {"username": "nurse", "password": "guess"}
        assert client.post(TOKEN, json=wrong).status_code == 401
    assert client.post(
        TOKEN, json={"username": "nurse", "password": world.password}
    ).status_code == (201)
    assert _counter(app, "user_address", "127.0.0.1|nurse") == 0
    assert _counter(app, "user", "nurse") == 4
    assert _counter(app, "address", "127.0.0.1") == 4


def test_the_per_username_limit_is_configurable(
    app: Flask, client: FlaskClient, world: World
) -> None:
    app.config["LOGIN_MAX_FAILURES_PER_USERNAME"] = 3
    wrong = {"username": "nurse", "password": "a wrong guess"}
    for attempt in range(3):
        assert client.post(TOKEN, json=wrong, **_from(f"203.0.113.{attempt}")).status_code == 401
    right = {"username": "nurse", "password": world.password}
    assert client.post(TOKEN, json=right, **_from("192.0.2.1")).status_code == 429


def test_the_sign_in_page_says_when_to_try_again(client: FlaskClient, world: World) -> None:
    for _ in range(5):
        assert login(client, "coord_berlin", "a wrong guess").status_code == 401
    throttled = login(client, "coord_berlin", world.password)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in throttled.get_data(as_text=True)
