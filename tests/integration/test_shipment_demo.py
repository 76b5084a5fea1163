"""The demo's shipments: stocked depots, a Berlin shipment in each state the pages show
(delivered and confirmed, on its way with a logger, quarantined after an excursion with a
disposition waiting, waiting for release), one on its way at every other site, the supply
manager's board and the investigator's queue showing them, and a second seed that adds
nothing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform import events
from dct_platform.demo import seed_and_report
from dct_platform.extensions import db
from dct_platform.timeutil import utcnow
from logistics.shipments.models import ExcursionDisposition, Shipment
from logistics.supply.models import Kit, KitStatus
from tests.support.clients import login


def _counts(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        s = db.session()
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Shipment, Kit, ExcursionDisposition)
        )


def test_the_demo_has_a_shipment_in_each_state_and_a_second_seed_adds_nothing(
    app: Flask, client: FlaskClient
) -> None:
    logins = {x.username: x.password for x in seed_and_report(app)}
    with app.app_context():
        s = db.session()
        statuses = Counter(st.value for st in s.scalars(select(Shipment.status)))
        assert statuses == {"delivered": 1, "in_transit": 4, "requested": 1}
        kits = Counter(st.value for st in s.scalars(select(Kit.status)))
        assert kits[KitStatus.DISPENSED.value] == 2, "the delivered one was confirmed"
        assert kits[KitStatus.QUARANTINED.value] == 2, "the warm one is in quarantine"
        assert s.scalar(
            select(func.count()).select_from(ExcursionDisposition).where(
                ExcursionDisposition.decision.is_(None)
            )
        ) == 1  # fmt: skip
    counts = _counts(app)
    with app.app_context():
        # The releases' booking events find the demo's shipments booked: nothing to do, and
        # no booking failure on the board although the demo has no courier.
        events.deliver_due(db.session(), utcnow() + timedelta(minutes=1), "demo-test")
        s = db.session()
        shipments = list(s.scalars(select(Shipment)))
        assert all(x.booking_failures == 0 and x.booking_error is None for x in shipments)
        assert all(x.tracking_number for x in shipments if x.status.value != "requested")

    login(client, "supply", logins["supply"])
    board = client.get("/supply/shipments").get_data(as_text=True)
    assert "In transit" in board and "Delivered" in board
    assert client.get("/supply/dispositions").status_code == 200
    investigator = app.test_client()
    login(investigator, "pi.de101", logins["pi.de101"])
    queue = investigator.get("/site/shipments/release").get_data(as_text=True)
    assert "Release" in queue

    seed_and_report(app)
    assert _counts(app) == counts
