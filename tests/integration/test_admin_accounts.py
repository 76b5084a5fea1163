"""The administrator's account pages: find accounts, open them with the right access, see
a sign-in lockout and lift it with a reason on the trail."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import AuditAction, User
from tests.support.clients import login, submit
from tests.support.world import World


def _usernames(html: str) -> list[str]:
    return re.findall(r'<a class="subject" href="/admin/users/\d+">([^<]+)</a>', html)


def test_administrators_find_accounts_by_name_role_and_site(
    client: FlaskClient, world: World
) -> None:
    login(client, "admin", world.password)
    everyone = client.get("/admin").get_data(as_text=True)
    assert _usernames(everyone) == sorted(_usernames(everyone))
    assert len(_usernames(everyone)) == len(world.users)
    # A patient's account name is personal data: not shown, and not searchable.
    assert "Anna" not in everyone and "[personal data]" in everyone
    assert _usernames(client.get("/admin?q=anna").get_data(as_text=True)) == ["anna"]
    assert _usernames(client.get("/admin?q=Secretname").get_data(as_text=True)) == []
    assert _usernames(client.get("/admin?q=Coord_B").get_data(as_text=True)) == ["coord_berlin"]
    staff = client.get("/admin?role=site_staff").get_data(as_text=True)
    assert _usernames(staff) == ["coord_berlin", "coord_tokyo"]
    at_tokyo = client.get(f"/admin?site={world.tokyo.id}").get_data(as_text=True)
    assert _usernames(at_tokyo) == ["coord_tokyo"]
    # The site column names the sites and trials each account works on.
    row = everyone.split(">coord_tokyo</a>")[1].split("</li>")[0]
    assert "T1" in row and "B1" not in row
    bad = client.get("/admin?role=pilot&site=abc")
    assert bad.status_code == 422
    assert "Role: no role is called &#39;pilot&#39;." in bad.get_data(as_text=True)


def test_a_new_account_needs_a_chosen_role_and_its_site_or_trial(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, "admin", world.password)
    form = client.get("/admin/users/new").get_data(as_text=True)
    options = re.findall(
        r'<option value="([^"]*)"', form.split('name="role"')[1].split("</select>")[0]
    )
    assert options[0] == "" and "patient" not in options and "site_staff" in options
    base = {"username": "newstaff", "display_name": "New Staff", "timezone": "Europe/Berlin"}
    no_role = submit(client, "/admin/users/new", "/admin/users/new", base)
    assert no_role.status_code == 422 and "Choose a role." in no_role.get_data(as_text=True)
    no_site = submit(client, "/admin/users/new", "/admin/users/new", {**base, "role": "site_staff"})
    assert no_site.status_code == 422
    assert "Choose at least one site." in no_site.get_data(as_text=True)
    no_trial = submit(
        client, "/admin/users/new", "/admin/users/new", {**base, "role": "trial_manager"}
    )
    assert "Choose at least one trial." in no_trial.get_data(as_text=True)
    forged = submit(client, "/admin/users/new", "/admin/users/new", {**base, "role": "patient"})
    assert forged.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "newstaff")) is None
    ok = submit(
        client,
        "/admin/users/new",
        "/admin/users/new",
        {**base, "role": "site_staff", "site_ids": str(world.berlin.id)},
    )
    assert ok.status_code == 302


def test_a_locked_out_account_is_shown_and_unlocked_with_a_reason(
    app: Flask, client: FlaskClient, world: World
) -> None:
    app.config.update(LOGIN_MAX_FAILURES=3, LOGIN_MAX_FAILURES_PER_USERNAME=3)
    guesser = app.test_client()
    for _ in range(3):
        assert login(guesser, "nurse", "wrong guess").status_code == 401
    assert login(guesser, "nurse", world.password).status_code == 429

    login(client, "admin", world.password)
    nurse = world.users["nurse"].id
    page = f"/admin/users/{nurse}"
    assert "Sign-in locked" in client.get("/admin?q=nurse").get_data(as_text=True)
    detail = client.get(page).get_data(as_text=True)
    assert "Sign-in is held back after 3 failed attempts" in detail
    assert "blocked from 1 address" in detail

    no_reason = submit(client, page, f"{page}/unlock", {"unlock-reason": ""})
    assert no_reason.status_code == 422 and "Say why." in no_reason.get_data(as_text=True)
    done = submit(client, page, f"{page}/unlock", {"unlock-reason": "Nurse called, identified"})
    assert done.status_code == 302
    after = client.get(page).get_data(as_text=True)
    assert "Sign-in is not held back. Last unlocked" in after
    assert "Sign-in locked" not in client.get("/admin?q=nurse").get_data(as_text=True)
    assert login(guesser, "nurse", world.password).status_code == 302
    with app.app_context():
        action = db.session.scalar(
            select(AuditAction).where(AuditAction.summary == "Unlock sign-in of nurse")
        )
        assert action is not None and action.reason == "Nurse called, identified"
        assert action.actor_name == "admin"

    staff = app.test_client()
    login(staff, "coord_berlin", world.password)
    assert submit(staff, "/site", f"{page}/unlock", {"unlock-reason": "x"}).status_code == 403
