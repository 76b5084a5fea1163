"""Schemathesis on the home-visits API with a planned day behind it: a nurse with visits
assigned, accepted and under way, the provider's coordinator and the site's coordinator,
so that generated requests reach the nurse's steps and the dispatcher's actions past
their lookups (the general fuzz run's world has no home visit at all)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.timeutil import utcnow
from logistics.dispatch import nurse_work
from logistics.dispatch.models import HomeVisit
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.dispatch import (
    add_coordinator,
    add_nurse,
    morning,
    network,
    plan_days,
    user,
)
from tests.support.fuzz import fuzz_run, fuzz_schema
from tests.support.world import PASSWORD, World

CALLERS = ["nina", "carla", "coord_berlin"]
SKIPPED = [("DELETE", "/api/v1/auth/token"), ("POST", "/api/v1/auth/token")]


@pytest.mark.timeout(300)
def test_generated_requests_on_home_visits_get_the_documented_answers(
    app: Flask,
    client: FlaskClient,
    world: World,
    clock: TestClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    morning(clock)
    net = network(app, world, patients=4)
    add_nurse(app, net, "nina")
    add_coordinator(app, "carla", provider_id=net.provider_id)
    plan_days(app)
    with app.app_context():
        s = db.session()
        nina = user("nina")
        held = list(s.scalars(select(HomeVisit).where(HomeVisit.nurse_id == nina.id)))
        assert len(held) >= 2, "nina needs a visit accepted and one under way"
        nurse_work.accept(s, nina, held[0], utcnow())
        nurse_work.check_in(s, nina, held[1], utcnow())
        s.commit()
    found: list[str] = []
    for username in CALLERS:
        headers = token_for(client, username, PASSWORD)
        schema = fuzz_schema(app, headers, SKIPPED).include(path_regex="^/api/v1/home-visits")
        failures, statuses = fuzz_run(schema)
        found += [f"as {username}: {failure}" for failure in failures]
        with capsys.disabled():
            print(f"\nhome visits fuzzed as {username}: {dict(sorted(statuses.items()))}")
        assert sum(statuses[s] for s in statuses if s.startswith("2")) > 0, statuses
    assert not found, "\n\n".join(found)
