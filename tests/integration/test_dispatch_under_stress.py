"""Home-nurse dispatch attacked the way phones and servers really fail: twenty taps on the
same step at once, two nurses checking out of a two-nurse visit at the same instant, the
planner process killed mid-run, and nurses calling the API of the platform served by
`dct serve` with several workers at once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import func, select

from dct_platform.extensions import db
from dct_platform.models import AuditAction
from dct_platform.timeutil import to_local, utcnow
from dct_platform.visits.models import PlannedStatus
from logistics.dispatch import home_visits, providers, runs
from logistics.dispatch.models import (
    HomeVisit,
    HomeVisitProcedure,
    HomeVisitStatus,
    PlanRun,
    PlanRunStatus,
)
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.concurrency import all_at_once
from tests.support.dispatch import (
    FAST,
    MITTE,
    add_nurse,
    home_visit_of,
    morning,
    network,
    plan_days,
)
from tests.support.processes import (
    DCT,
    Output,
    free_port,
    process_env,
    start,
    wait_until_serving,
)
from tests.support.waiting import wait_for
from tests.support.world import PASSWORD, World

API = "/api/v1/home-visits"
BERLIN = "Europe/Berlin"
AT_THE_DOOR = {"latitude": MITTE[0], "longitude": MITTE[1]}


def _actions(app: Flask, summary: str) -> int:
    with app.app_context():
        found = db.session.scalar(
            select(func.count(AuditAction.id)).where(AuditAction.summary == summary)
        )
        db.session.remove()
        return int(found or 0)


def _stored(app: Flask, visit_id: int) -> HomeVisit:
    with app.app_context():
        visit = db.session.get(HomeVisit, visit_id)
        assert visit is not None
        _ = (visit.done_procedures, visit.planned_visit.status)
        db.session.expunge_all()
        db.session.remove()
        return visit


def test_twenty_taps_on_each_step_do_each_step_once(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "nina")
    plan_days(app)
    visit = home_visit_of(app, world.patients["anna"].id)
    assert visit.nurse_id == net.nurses["nina"]
    headers = token_for(app.test_client(), "nina", PASSWORD)

    def tap(step: str, body: dict[str, Any]) -> tuple[int, Any]:
        answer = app.test_client().post(f"{API}/{visit.id}/{step}", json=body, headers=headers)
        return answer.status_code, answer.get_json()

    steps = [
        ("accept", {}, "Accept home visit"),
        ("check-in", AT_THE_DOOR, "Check in at home visit"),
        ("procedures", {"code": "vitals"}, "Procedure done: vitals"),
        ("check-out", AT_THE_DOOR, "Check out of home visit"),
    ]
    for step, body, summary in steps:
        answers = all_at_once([lambda s=step, b=body: tap(s, b) for _ in range(20)])
        # Each tap after the first finds the step done and answers the visit as it is.
        assert Counter(status for status, _ in answers) == {200: 20}, (step, answers)
        assert _actions(app, summary) == 1, step
    stored = _stored(app, visit.id)
    assert stored.status == HomeVisitStatus.COMPLETED
    assert [p.code for p in stored.done_procedures] == ["vitals"]
    assert stored.planned_visit.status == PlannedStatus.COMPLETED
    with app.app_context():
        rows = db.session.scalar(select(func.count(HomeVisitProcedure.home_visit_id)))
        assert rows == 1


def test_two_nurses_checking_out_at_the_same_instant_complete_the_visit(
    app: Flask, world: World, clock: TestClock
) -> None:
    """Each nurse's check-out completes the protocol visit only when the other part is done
    too; deciding on the other part as read (not as committed) left it open for ever."""
    morning(clock)
    net = network(app, world, home_visits_now=False)
    with app.app_context():
        s = db.session()
        providers.set_requirement(
            s, None, utcnow(), net.definition_id, skills=["phlebotomy"],
            procedures=[{"code": "vitals", "label": "Vital signs"}],
            companion={"kind": "simultaneous", "duration": 30, "skills": ["ecg"]}, system="test",
        )  # fmt: skip
        home_visits.create_due(s, utcnow(), timedelta(days=14))
        s.commit()
    add_nurse(app, net, "ada", skills=("phlebotomy", "ecg"))
    add_nurse(app, net, "bea", skills=("ecg",), home=(52.53, 13.41))
    plan_days(app)
    with app.app_context():
        parts = [(v.id, v.nurse_id) for v in db.session.scalars(select(HomeVisit))]
        names = {net.nurses["ada"]: "ada", net.nurses["bea"]: "bea"}
    client = app.test_client()
    tokens = {names[nurse]: token_for(client, names[nurse], PASSWORD) for _, nurse in parts}
    for visit_id, nurse in parts:
        for step in ("accept", "check-in"):
            answer = client.post(f"{API}/{visit_id}/{step}", json={}, headers=tokens[names[nurse]])
            assert answer.status_code == 200, answer.get_json()

    def check_out(visit_id: int, nurse: int) -> int:
        answer = app.test_client().post(
            f"{API}/{visit_id}/check-out", json={}, headers=tokens[names[nurse]]
        )
        return answer.status_code

    assert all_at_once([lambda v=v, n=n: check_out(v, n) for v, n in parts]) == [200, 200]
    stored = _stored(app, parts[0][0])
    assert stored.planned_visit.status == PlannedStatus.COMPLETED


def test_a_planner_killed_mid_run_leaves_whole_days_and_the_next_run_plans_the_rest(
    app: Flask, world: World, database_url: str, tmp_path: Path
) -> None:
    net = network(app, world, patients=11)
    # Two short shifts a day: each day takes a few visits and leaves the rest to the next.
    for name, home in (("nina", (52.50, 13.42)), ("otto", (52.53, 13.38))):
        shifts = tuple((day, "09:00", "11:00") for day in range(7))
        add_nurse(app, net, name, home=home, hours=shifts)
    with app.app_context():
        s = db.session()
        tomorrow = to_local(utcnow(), BERLIN).date() + timedelta(days=1)
        run_id = runs.queue(s, None, utcnow(), tomorrow, days=4).id
        s.commit()

    def summary() -> tuple[str, list[dict[str, Any]]]:
        with app.app_context():
            run = db.session.get(PlanRun, run_id)
            assert run is not None
            found = (run.status.value, list((run.summary or {}).get("days", [])))
            db.session.remove()
            return found

    env = process_env(database_url, tmp_path, DISPATCH_SOLVER_SECONDS="2")
    planner = Output(start([DCT, "scheduler"], env))
    try:
        wait_for(
            lambda: summary()[1], timeout=60, interval=0.02,
            message=lambda: f"the first day to be planned\n{planner.text}",
        )  # fmt: skip
    finally:
        planner.kill()
    status, written = summary()
    assert status == "running" and 1 <= len(written) < 4, (status, written, planner.text)

    # What the dead run wrote is whole days: each written day's visits, each nurse's route
    # numbered 1, 2, 3... without a gap; no visit on a day it did not finish.
    with app.app_context():
        planned = list(db.session.scalars(select(HomeVisit).where(HomeVisit.plan_run_id == run_id)))
        db.session.remove()
    days = {row["day"] for row in written}
    routes: dict[tuple[str, int | None], list[int]] = {}
    for visit in planned:
        if visit.status == HomeVisitStatus.OPEN:  # left for a later day, and saying so
            assert visit.nurse_id is None and visit.attention, visit.attention
            continue
        assert visit.status == HomeVisitStatus.ASSIGNED and visit.planned_start is not None
        day = to_local(visit.planned_start, BERLIN).date().isoformat()
        assert day in days, (day, written)
        routes.setdefault((day, visit.nurse_id), []).append(visit.route_position or 0)
    for key, positions in routes.items():
        assert sorted(positions) == list(range(1, len(positions) + 1)), key
    assert sum(len(p) for p in routes.values()) == sum(int(row["assigned"]) for row in written)

    # The next planner, a quarter of an hour on, fails the dead run and plans the rest.
    later = lambda: utcnow() + runs.STALE_AFTER + timedelta(minutes=1)  # noqa: E731
    with app.app_context():
        s = db.session()
        again = runs.queue(s, None, later(), tomorrow, days=4).id
        s.commit()
        assert runs.run_queued(s, later, FAST) == 1
        dead, fresh = s.get(PlanRun, run_id), s.get(PlanRun, again)
        assert dead is not None and fresh is not None
        assert (dead.status, dead.error) == (PlanRunStatus.FAILED, "the planner stopped")
        assert fresh.status == PlanRunStatus.DONE
        still_open = s.scalar(
            select(func.count(HomeVisit.id)).where(HomeVisit.status == HomeVisitStatus.OPEN)
        )
        assert still_open == 0


def test_nurses_calling_the_served_platform_at_once_each_get_their_own_day(
    app: Flask, world: World, clock: TestClock, database_url: str, tmp_path: Path
) -> None:
    net = network(app, world, patients=5)
    for name, home in (("nina", (52.50, 13.42)), ("otto", (52.53, 13.38))):
        shifts = tuple((day, "08:00", "11:00") for day in range(7))
        add_nurse(app, net, name, home=home, hours=shifts)
    with app.app_context():
        s = db.session()
        tomorrow = to_local(utcnow(), BERLIN).date() + timedelta(days=1)
        runs.queue(s, None, utcnow(), tomorrow, days=1)
        s.commit()
        assert runs.run_queued(s, utcnow, FAST) == 1
        held = {
            nurse: {v.id for v in s.scalars(select(HomeVisit).where(HomeVisit.nurse_id == nurse))}
            for nurse in net.nurses.values()
        }
        db.session.remove()
    assert all(held.values()), held  # both nurses have visits to tell apart

    port = free_port()
    command = [DCT, "serve", "--port", str(port), "--workers", "2"]
    server = Output(start(command, process_env(database_url, tmp_path)))
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_serving(server.proc, base, 40).status_code == 200
        tokens = {}
        for name in net.nurses:
            answer = requests.post(
                f"{base}/api/v1/auth/token", json={"username": name, "password": PASSWORD},
                timeout=10,
            )  # fmt: skip
            tokens[name] = answer.json()["access_token"]
        others = {
            name: held[net.nurses["otto" if name == "nina" else "nina"]] for name in net.nurses
        }

        def call(n: int) -> str | None:
            """A complaint, or None when the answer was the caller's."""
            name = ("nina", "otto")[n % 2]
            headers = {"Authorization": f"Bearer {tokens[name]}"}
            if n % 4 < 2:
                answer = requests.get(
                    f"{base}{API}/mine", params={"day": tomorrow.isoformat()}, headers=headers,
                    timeout=10,
                )  # fmt: skip
                seen = {row["id"] for row in answer.json()}
                mine = held[net.nurses[name]]
                return None if seen == mine else f"{name} saw {seen}, holds {mine}"
            foreign = min(others[name])
            answer = requests.get(f"{base}{API}/{foreign}", headers=headers, timeout=10)
            return None if answer.status_code == 404 else f"{name} got {foreign}: {answer.text}"

        with ThreadPoolExecutor(max_workers=8) as pool:
            complaints = [c for c in pool.map(call, range(80)) if c]
    finally:
        output = server.stop()
    assert not complaints, "\n".join(complaints[:10]) + "\n" + output[-2000:]
