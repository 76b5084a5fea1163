"""The supply manager's excursion disposition through the API: the same rules as the
disposition page (a reason required, a supply manager of the trial only, once), and a
rejection that orders the replacement."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from logistics.supply.models import KitStatus
from tests.integration.test_shipment_temperature import (
    WARM_80_MINUTES,
    kit_statuses,
    send,
    start_trip,
)
from tests.integration.test_shipment_temperature import supply as supply  # the fixture
from tests.support.clients import token_for
from tests.support.supply import Supply
from tests.support.world import PASSWORD, World


def test_the_supply_manager_reads_and_rejects_an_excursion_once(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    manager = token_for(client, "supply", PASSWORD)
    staff = token_for(client, "coord_berlin", PASSWORD)
    trip = start_trip(session, world, supply)
    session.rollback()  # on SQLite an open read would lock out the API's writes
    url = f"/api/v1/shipments/{trip.shipment_id}/disposition"
    assert client.get(url, headers=manager).status_code == 404  # no excursion yet

    send(session, client, trip, WARM_80_MINUTES)
    session.rollback()
    found = client.get(url, headers=manager)
    assert found.status_code == 200, found.get_json()
    assert found.get_json()["decision"] is None and found.get_json()["minutes_out_of_range"] > 60

    no_reason = client.post(url, headers=manager, json={"decision": "reject", "reason": ""})
    not_hers = client.post(url, headers=staff, json={"decision": "release", "reason": "Looks fine"})
    assert (no_reason.status_code, not_hers.status_code) == (422, 403)
    assert kit_statuses(session, trip) == [KitStatus.QUARANTINED] * 2
    session.rollback()

    rejected = client.post(
        url, headers=manager, json={"decision": "reject", "reason": "Above 8 °C for 80 min"}
    )
    assert rejected.status_code == 200, rejected.get_json()
    assert rejected.get_json()["decision"] == "reject"
    replacement = rejected.get_json()["replacement_id"]
    assert replacement is not None
    ordered = client.get(f"/api/v1/shipments/{replacement}", headers=manager).get_json()
    assert (ordered["status"], ordered["reason"]) == ("requested", "replacement")
    assert ordered["replaces_id"] == trip.shipment_id

    again = client.post(url, headers=manager, json={"decision": "release", "reason": "Oops"})
    assert again.status_code == 409
