"""Schemathesis on the shipments API with orders behind it: one waiting for release, one
released (kits reserved), one cancelled, as the supply manager, Berlin's investigator
(who may release, so generated passwords reach the signature), Berlin's and Tokyo's
coordinators, and Anna, whose receipt and problem reports are hers, so that generated
requests reach the rules past their lookups (the general fuzz run's world has no shipment
at all). No answer may be a 500 or undocumented, and no supply manager's answer may carry
a patient's name or street."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dct_platform.extensions import db
from dct_platform.models import PatientIdentity
from dct_platform.timeutil import utcnow
from logistics.shipments import orders
from logistics.shipments.models import Shipment
from tests.support.clients import token_for
from tests.support.fuzz import fuzz_run, fuzz_schema
from tests.support.shipments import released_shipment, requested_shipment, stock
from tests.support.supply import user_named
from tests.support.world import PASSWORD, World

CALLERS = ["supply", "pi_berlin", "coord_berlin", "coord_tokyo", "anna"]
# Wrong passwords would lock the investigator out of the rest of the run: the signature
# counts them on the sign-in throttle, as it must.
SKIPPED = [("DELETE", "/api/v1/auth/token"), ("POST", "/api/v1/auth/token")]


@pytest.mark.timeout(300)
def test_generated_requests_on_shipments_get_the_documented_answers(
    app: Flask, client: FlaskClient, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utcnow() - timedelta(minutes=5)
    supply = stock(app, world, now)
    released_shipment(app, world, supply, now)
    requested_shipment(app, world, supply, now, patient="kenji")
    cancelled = requested_shipment(app, world, supply, now, next_resupply_days=40)
    with app.app_context():
        s = db.session()
        shipment = s.get_one(Shipment, cancelled)
        orders.cancel(s, user_named(s, "coord_berlin"), now, shipment, reason="Doubled")
        s.commit()
        private = {
            value
            for identity in s.query(PatientIdentity)
            for value in (identity.given_name, identity.family_name, identity.address_line1)
            if value
        }
    found: list[str] = []
    for username in CALLERS:
        headers = token_for(client, username, PASSWORD)
        schema = fuzz_schema(app, headers, SKIPPED).include(path_regex="^/api/v1/shipments")
        failures, statuses = fuzz_run(schema)
        found += [f"as {username}: {failure}" for failure in failures]
        with capsys.disabled():
            print(f"\nshipments fuzzed as {username}: {dict(sorted(statuses.items()))}")
        assert sum(statuses[s] for s in statuses if s.startswith("2")) > 0, statuses
    assert not found, "\n\n".join(found)

    supply_manager = token_for(client, "supply", PASSWORD)
    for path in ["/api/v1/shipments", *(f"/api/v1/shipments/{i}" for i in range(1, 4))]:
        body = client.get(path, headers=supply_manager).get_data(as_text=True)
        assert not [value for value in private if value in body], path
