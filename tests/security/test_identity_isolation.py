"""Every answer belongs to its own caller, however the platform is served.

`dct serve` once answered the previous caller's identity to requests with no token, a
garbage token or another user's token, because gunicorn's workers inherited the CLI's
application context and with it the user cached on `g`. These tests serve the real app in
each way it is run in production, interleave callers with different credentials (and
none), and check who answered every single request.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.processes import (
    BIN,
    DCT,
    free_port,
    process_env,
    start,
    stop,
    wait_until_serving,
)
from tests.support.world import World

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
_WHO = re.compile(r'data-testid="who">([^<·]+)')
ROUNDS = 12


@dataclass
class Caller:
    """One client: its credentials, and what every answer to it must say."""

    name: str
    request: Callable[[], requests.Response]
    expect: Callable[[requests.Response], str | None]  # a complaint, or None when right


def _api_me(base: str, token: str | None) -> Callable[[], requests.Response]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return lambda: requests.get(f"{base}/api/v1/me", headers=headers, timeout=10)


def _identity(base: str, patient_id: int) -> Callable[[], requests.Response]:
    return lambda: requests.get(f"{base}/api/v1/patients/{patient_id}/identity", timeout=10)


def _page(base: str, cookies: requests.Session | None) -> Callable[[], requests.Response]:
    def get() -> requests.Response:
        getter = cookies.get if cookies is not None else requests.get
        return getter(f"{base}/account/password", timeout=10, allow_redirects=False)

    return get


def _token(base: str, username: str, password: str) -> str:
    response = requests.post(
        f"{base}/api/v1/auth/token",
        json={"username": username, "password": password},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


def _signed_in(base: str, username: str, password: str) -> requests.Session:
    browser = requests.Session()
    csrf = _CSRF.search(browser.get(f"{base}/login", timeout=10).text)
    assert csrf, "no CSRF token on the sign-in page"
    response = browser.post(
        f"{base}/login",
        data={"csrf_token": csrf.group(1), "username": username, "password": password},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return browser


def _is_user(username: str) -> Callable[[requests.Response], str | None]:
    def check(r: requests.Response) -> str | None:
        if r.status_code != 200:
            return f"{r.status_code} {r.text[:200]}"
        got = r.json().get("username")
        return None if got == username else f"answered as {got!r}"

    return check


def _refused(r: requests.Response) -> str | None:
    if r.status_code == 401 and r.json().get("code") == "unauthorized":
        return None
    return f"{r.status_code} {r.text[:200]}"


def _page_as(display_name: str) -> Callable[[requests.Response], str | None]:
    def check(r: requests.Response) -> str | None:
        who = _WHO.search(r.text)
        if r.status_code == 200 and who and who.group(1).strip() == display_name:
            return None
        return f"{r.status_code} signed in as {who.group(1) if who else None!r}"

    return check


def _sent_to_sign_in(r: requests.Response) -> str | None:
    if r.status_code == 302 and r.headers["Location"].startswith("/login"):
        return None
    who = _WHO.search(r.text)
    return f"{r.status_code} signed in as {who.group(1) if who else None!r}"


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    display_name: str


def _callers(base: str, first: Account, second: Account, patient_id: int) -> list[Caller]:
    return [
        Caller(f"token {first.username}", _api_me(base, _token(base, *_creds(first))), _is_user(first.username)),
        Caller(f"token {second.username}", _api_me(base, _token(base, *_creds(second))), _is_user(second.username)),
        Caller("garbage token", _api_me(base, "not-a-token-" + "x" * 30), _refused),
        Caller("no token", _api_me(base, None), _refused),
        Caller("no token, personal data", _identity(base, patient_id), _refused),
        Caller(f"cookie {first.username}", _page(base, _signed_in(base, *_creds(first))), _page_as(first.display_name)),
        Caller(f"cookie {second.username}", _page(base, _signed_in(base, *_creds(second))), _page_as(second.display_name)),
        Caller("no cookie", _page(base, None), _sent_to_sign_in),
    ]  # fmt: skip


def _creds(account: Account) -> tuple[str, str]:
    return account.username, account.password


def _interleave(callers: list[Caller], seed: int) -> list[str]:
    """Every caller many times, in a shuffled order, one after the other and then from
    several threads at once (so that several workers and threads answer); the wrong
    answers."""
    schedule = [c for _ in range(ROUNDS) for c in callers]
    random.Random(seed).shuffle(schedule)

    def ask(caller: Caller) -> str | None:
        complaint = caller.expect(caller.request())
        return f"{caller.name}: {complaint}" if complaint else None

    wrong = [w for w in map(ask, schedule) if w]
    with ThreadPoolExecutor(max_workers=6) as pool:
        wrong += [w for w in pool.map(ask, schedule) if w]
    return wrong


def _world_accounts(world: World) -> tuple[Account, Account, int]:
    return (
        Account("anna", world.password, "Anna"),
        Account("coord_berlin", world.password, "Coord_Berlin"),
        world.patients["anna"].id,
    )


SERVERS = {
    "dct serve, 1 worker": lambda port: [DCT, "serve", "--port", str(port), "--workers", "1"],
    "dct serve, 3 workers": lambda port: [DCT, "serve", "--port", str(port), "--workers", "3"],
    "flask --app wsgi dct serve": lambda port: [
        str(BIN / "flask"), "--app", "wsgi", "dct", "serve", "--port", str(port), "--workers", "1"
    ],
    "gunicorn wsgi:app": lambda port: [
        str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "wsgi:app"
    ],
}  # fmt: skip


@pytest.mark.parametrize("server", list(SERVERS))
def test_every_answer_belongs_to_its_caller(
    server: str, world: World, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    proc = start(SERVERS[server](port), process_env(database_url, tmp_path))
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_serving(proc, base, 40).status_code == 200
        first, second, patient_id = _world_accounts(world)
        wrong = _interleave(_callers(base, first, second, patient_id), seed=len(server))
    finally:
        output = stop(proc)
    assert not wrong, "\n".join(wrong[:20]) + "\n" + output[-2000:]


def test_every_answer_belongs_to_its_caller_under_dct_demo(tmp_path: Path) -> None:
    """What `make demo` serves: the development server with the in-process scheduler."""
    port = free_port()
    proc = start([DCT, "demo", "--port", str(port)], process_env(None, tmp_path))
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_serving(proc, base, 90).status_code == 200
        logins = json.loads((tmp_path / "demo-logins.json").read_text())
        patient = next(row for row in logins if row["role"] == "patient")
        staff = next(row for row in logins if row["role"] == "site_staff")
        token = _token(base, staff["username"], staff["password"])
        me = requests.get(
            f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        patients = requests.get(
            f"{base}/api/v1/patients", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        wrong = _interleave(
            _callers(
                base,
                Account(patient["username"], patient["password"], _display(base, patient)),
                Account(staff["username"], staff["password"], me["display_name"]),
                patients[0]["id"],
            ),
            seed=7,
        )
    finally:
        output = stop(proc)
    assert not wrong, "\n".join(wrong[:20]) + "\n" + output[-2000:]


def _display(base: str, row: dict[str, str]) -> str:
    token = _token(base, row["username"], row["password"])
    me = requests.get(
        f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    return str(me["display_name"])
