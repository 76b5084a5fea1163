"""The supply manager's shipment pages through the test client: the board and its filters
(site, status, late, excursion; a bad value is a 400 with the reason on the page), one
shipment's record (kits blinded except for the unblinded role, the tracking timeline with a
refused update, the investigator's signature, the excursion and the patient's problem),
the inventory by depot with expiries; another trial's supply manager sees none of it, site
staff are refused the pages; and no page ever shows a patient's name, street, postcode,
email or phone, while the subject number and city do show."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, signatures
from dct_platform.extensions import db
from dct_platform.models import Patient, PatientIdentity
from dct_platform.models.trials import TrialPhase, TrialStatus
from dct_platform.roles import Role
from dct_platform.services import accounts, trials
from logistics.shipments.models import (
    ExcursionDisposition,
    MessageOutcome,
    OrderReason,
    Shipment,
    ShipmentKit,
    TrackingEvent,
)
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import Depot, Kit, KitStatus, Product
from logistics.supply.selection import reserve_kits
from tests.support.clients import duplicate_ids, login
from tests.support.clock import TestClock
from tests.support.supply import Supply, build_supply, receive, unblinded_user, user_named
from tests.support.world import PASSWORD, World

NOW = datetime.fromisoformat("2026-03-10T09:30:00+00:00")
TODAY = date(2026, 3, 10)
NEXT = TODAY + timedelta(days=28)
SYSTEM = "test-supply-pages"
S = ShipmentStatus


@dataclass
class Shipments:
    in_transit: int  # anna, with a timeline including a refused update, signed
    late: int  # kenji, out for delivery past the courier's promise
    excursion: int  # anna, delivered, excursion, problem reported
    waiting: int  # kenji, requested three days ago: late for release
    fresh: int  # anna, requested an hour ago
    booking: int  # anna, released, courier booking failed twice
    supply: Supply


def _shipment(
    s: Session, supply: Supply, patient: Patient, status: ShipmentStatus, *, kits: int = 0,
    requested: timedelta = timedelta(days=1), **fields: object,
) -> Shipment:  # fmt: skip
    """A shipment row as the order service would leave it, with `kits` kits reserved."""
    identity = s.scalars(
        select(PatientIdentity).where(PatientIdentity.patient_id == patient.id)
    ).one()
    with audit.acting(s, None, NOW, what="Test shipment", system=SYSTEM):
        shipment = Shipment(
            reason=OrderReason.SITE_REQUEST, trial_id=patient.trial_id, patient_id=patient.id,
            site_id=patient.site_id, product_id=supply.product_id, depot_id=supply.depot_id,
            kit_count=max(kits, 1), next_resupply_date=NEXT, status=status,
            requested_at=NOW - requested, destination_city=identity.city,
            destination_country=identity.country, created_at=NOW, updated_at=NOW, **fields,
        )  # fmt: skip
        s.add(shipment)
        s.flush()
    if kits:
        product, depot = s.get(Product, supply.product_id), s.get(Depot, supply.depot_id)
        assert product is not None and depot is not None
        reserved = reserve_kits(
            s, None, NOW, patient=patient, product=product, depot=depot, count=kits,
            next_resupply=NEXT, system=SYSTEM,
        )  # fmt: skip
        with audit.acting(s, None, NOW, what="Test shipment kits", system=SYSTEM):
            for kit in reserved:
                s.add(ShipmentKit(shipment_id=shipment.id, kit_id=kit.id))
    return shipment


def _event(
    s: Session, shipment: Shipment, status: str, hours_ago: float, *, source: str = "webhook",
    outcome: MessageOutcome = MessageOutcome.APPLIED, location: str | None = None,
    detail: str | None = None,
) -> None:  # fmt: skip
    at = NOW - timedelta(hours=hours_ago)
    s.add(
        TrackingEvent(
            shipment_id=shipment.id, status=status, occurred_at=at, recorded_at=at,
            source=source, location=location, outcome=outcome, detail=detail,
        )
    )  # fmt: skip


@pytest.fixture
def world_shipments(app: Flask, world: World, clock: TestClock) -> Shipments:
    clock.freeze(NOW)
    supply = build_supply(app, world, NOW)
    p, depot = supply.product_id, supply.depot_id
    receive(app, p, depot, "L1", NEXT + timedelta(days=120),
            [(f"K-{n:03d}", "A") for n in range(1, 9)], NOW)  # fmt: skip
    receive(app, p, depot, "L2", NEXT + timedelta(days=120),
            [(f"K-{n:03d}", "B") for n in range(101, 105)], NOW)  # fmt: skip
    receive(app, p, depot, "L-SOON", TODAY + timedelta(days=20), [("K-050", "A")], NOW)
    receive(app, p, depot, "L-OLD", TODAY - timedelta(days=1), [("K-060", "B")], NOW)
    with app.app_context():
        s = db.session()
        anna = s.get(Patient, world.patients["anna"].id)
        kenji = s.get(Patient, world.patients["kenji"].id)
        assert anna is not None and kenji is not None
        # More identity to leak than the world has: a second address line and a phone.
        with audit.acting(s, None, NOW, what="Test identities", system=SYSTEM):
            for patient, phone in ((anna, "+49 170 5550199"), (kenji, "+81 90 5550 1234")):
                identity = s.get(PatientIdentity, patient.id)
                assert identity is not None
                identity.address_line2 = "Hinterhaus, 3. Etage"
                identity.phone = phone
            # The supply manager reads times on a Berlin clock.
            user_named(s, "supply").timezone = "Europe/Berlin"
        pi = user_named(s, "pi_berlin")

        in_transit = _shipment(
            s, supply, anna, S.IN_TRANSIT, kits=2, investigator_id=pi.id,
            released_by_id=pi.id, released_at=NOW - timedelta(hours=20), courier="simcourier",
            tracking_number="TRK-1001", expected_delivery_at=NOW + timedelta(days=1),
        )  # fmt: skip
        _event(s, in_transit, "created", 20, source="platform")
        _event(s, in_transit, "booked", 19, location="Frankfurt hub")
        _event(s, in_transit, "in_transit", 5, source="poll", location="Leipzig")
        _event(
            s, in_transit, "delivered_elsewhere", 4, outcome=MessageOutcome.REFUSED,
            detail="impossible move from in_transit to delivered_elsewhere",
        )  # fmt: skip
        late = _shipment(
            s, supply, kenji, S.OUT_FOR_DELIVERY, kits=1, courier="simcourier",
            tracking_number="TRK-2002", expected_delivery_at=NOW - timedelta(hours=3),
        )  # fmt: skip
        excursion = _shipment(
            s, supply, anna, S.DELIVERED, kits=1, courier="simcourier",
            tracking_number="TRK-3003", expected_delivery_at=NOW - timedelta(days=2),
            delivered_at=NOW - timedelta(days=2), excursion_at=NOW - timedelta(days=2, hours=5),
            problem_report="The cool box was warm when it arrived.",
        )  # fmt: skip
        with audit.acting(s, None, NOW, what="Test excursion", system=SYSTEM):
            s.add(
                ExcursionDisposition(
                    shipment_id=excursion.id, opened_at=NOW - timedelta(days=2),
                    finding="Above 8 °C for 95 minutes.", worst_c=14.5, minutes_out_of_range=95,
                )
            )  # fmt: skip
        waiting = _shipment(s, supply, kenji, S.REQUESTED, requested=timedelta(days=3))
        fresh = _shipment(s, supply, anna, S.REQUESTED, requested=timedelta(hours=1))
        booking = _shipment(
            s, supply, anna, S.CREATED, kits=1, released_at=NOW - timedelta(hours=2),
            booking_failures=2, booking_error="Courier answered 503",
        )  # fmt: skip
        s.flush()
        signatures.sign(
            s, pi, PASSWORD, signatures.Meaning.APPROVAL, in_transit, NOW - timedelta(hours=20),
            remote_addr="127.0.0.1",
        )  # fmt: skip
        s.commit()
        return Shipments(
            in_transit.id, late.id, excursion.id, waiting.id, fresh.id, booking.id, supply
        )


def _client(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, username, PASSWORD).status_code == 302
    return client


def _ids(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'data-testid="shipment-row" data-shipment="(\d+)"', html)}


def _identity_strings(app: Flask, world: World) -> list[str]:
    with app.app_context():
        found: list[str] = []
        for key in ("anna", "kenji"):
            identity = db.session.get(PatientIdentity, world.patients[key].id)
            assert identity is not None
            values = [
                identity.given_name, identity.family_name, identity.address_line1,
                identity.address_line2, identity.postal_code, identity.email, identity.phone,
            ]  # fmt: skip
            assert all(values), "every identity field is filled, so every one is checked"
            found.extend(v for v in values if v)
        return found


# --- privacy ------------------------------------------------------------------------------


def test_no_supply_page_shows_a_name_street_postcode_email_or_phone(
    app: Flask, world: World, world_shipments: Shipments
) -> None:
    secrets = _identity_strings(app, world)
    sm = _client(app, "supply")
    w = world_shipments
    pages = [
        "/supply/shipments",
        f"/supply/shipments?site={world.berlin.id}",
        f"/supply/shipments?site={world.tokyo.id}",
        *(f"/supply/shipments?status={status.value}" for status in S),
        "/supply/shipments?late=1",
        "/supply/shipments?excursion=1",
        "/supply/shipments?status=bogus",
        *(
            f"/supply/shipments/{i}"
            for i in (w.in_transit, w.late, w.excursion, w.waiting, w.fresh, w.booking)
        ),
        "/supply/inventory",
        f"/supply/inventory?depot={w.supply.depot_id}&product={w.supply.product_id}",
        "/",
    ]
    seen = ""
    for page in pages:
        answer = sm.get(page, follow_redirects=True)
        assert answer.status_code in (200, 400), page
        html = answer.get_data(as_text=True)
        for secret in secrets:
            assert secret not in html, f"{secret!r} on {page}"
        seen += html
    # What the supply manager may know does show: subject numbers and cities.
    for shown in ("B1-anna", "T1-kenji", "Berlin", "Tokyo"):
        assert shown in seen
    board = sm.get("/supply/shipments").get_data(as_text=True)
    cities = re.findall(r'data-testid="shipment-row".*?</tr>', board, re.S)
    assert any("<td>Tokyo</td>" in row and "T1-kenji" in row for row in cities)
    detail = sm.get(f"/supply/shipments/{w.in_transit}").get_data(as_text=True)
    assert "B1-anna" in detail and "Berlin (DE)" in detail


# --- the board ----------------------------------------------------------------------------


def test_the_board_filters_by_site_status_late_and_excursion(
    app: Flask, world: World, world_shipments: Shipments, clock: TestClock
) -> None:
    w = world_shipments
    sm = _client(app, "supply")
    everything = {w.in_transit, w.late, w.excursion, w.waiting, w.fresh, w.booking}

    home = sm.get("/", follow_redirects=True)
    assert home.request.path == "/supply/shipments"
    html = home.get_data(as_text=True)
    assert _ids(html) == everything
    assert 'href="/supply/inventory"' in html  # in the navigation
    # The rule for "late" is on the page, in words.
    assert "expected delivery time has passed" in html and "2 days" in html

    def ids(query: str) -> set[int]:
        answer = sm.get(f"/supply/shipments?{query}")
        assert answer.status_code == 200, query
        return _ids(answer.get_data(as_text=True))

    assert ids(f"site={world.tokyo.id}") == {w.late, w.waiting}
    assert ids(f"site={world.berlin.id}") == {w.in_transit, w.excursion, w.fresh, w.booking}
    assert ids("status=requested") == {w.waiting, w.fresh}
    assert ids("status=delivered") == {w.excursion}
    assert ids("status=lost") == set()
    # Late: past the courier's promise, or waiting for release too long; not the fresh
    # request, not the delivered one whose promise also passed, nor the booking an hour old.
    assert ids("late=1") == {w.late, w.waiting}
    assert ids("excursion=1") == {w.excursion}
    assert ids(f"late=1&site={world.tokyo.id}&status=out_for_delivery") == {w.late}
    assert ids(f"excursion=1&site={world.tokyo.id}") == set()

    row = re.search(rf'data-shipment="{w.late}".*?</tr>', html, re.S)
    assert row is not None
    cells = row.group(0)
    assert "TRK-2002" in cells and "Out for delivery" in cells and "IP-01" in cells
    assert 'data-flag="late"' in cells and 'data-flag="excursion"' not in cells
    # Expected 06:30 UTC, read on the supply manager's Berlin clock.
    assert "2026-03-10 07:30 CET" in cells
    booking = re.search(rf'data-shipment="{w.booking}".*?</tr>', html, re.S)
    assert booking is not None and "Booking failed 2 times" in booking.group(0)
    excursion = re.search(rf'data-shipment="{w.excursion}".*?</tr>', html, re.S)
    assert excursion is not None and 'data-flag="excursion"' in excursion.group(0)
    assert 'data-flag="late"' not in excursion.group(0)

    # A day on, the courier booking that kept failing has waited over 24 hours: late too.
    clock.freeze(NOW + timedelta(hours=23))
    assert ids("late=1") == {w.late, w.waiting, w.booking}


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=teleported", "no shipment status is called &#39;teleported&#39;"),
        ("site=abc", "Site: choose one of the listed sites"),
        ("site=999999", "Site: choose one of the listed sites"),
        ("late=maybe", "Late: give 1"),
        ("excursion=2", "Temperature excursion: give 1"),
        ("page=0", "Page: give a page number from 1"),
        ("page=" + "9" * 30, "Page: give a page number from 1"),
    ],
)
def test_a_bad_filter_is_a_400_that_says_why(
    app: Flask, world: World, world_shipments: Shipments, query: str, message: str
) -> None:
    answer = _client(app, "supply").get(f"/supply/shipments?{query}")
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert 'data-testid="filter-errors"' in html and message in html


def test_a_long_board_is_paged(app: Flask, world: World, world_shipments: Shipments) -> None:
    from logistics.shipments.board import PAGE_SIZE

    with app.app_context():
        s = db.session()
        kenji = s.get(Patient, world.patients["kenji"].id)
        assert kenji is not None
        for n in range(PAGE_SIZE):
            _shipment(s, world_shipments.supply, kenji, S.REQUESTED,
                      requested=timedelta(minutes=n + 1))  # fmt: skip
        s.commit()
    sm = _client(app, "supply")
    first = sm.get("/supply/shipments?status=requested").get_data(as_text=True)
    second = sm.get("/supply/shipments?status=requested&page=2").get_data(as_text=True)
    assert len(_ids(first)) == PAGE_SIZE and "Page 1 of 2" in first
    assert 'href="/supply/shipments?page=2&amp;status=requested"' in first
    # Newest request first: the fixture's two older requests make the second page.
    assert _ids(second) == {world_shipments.waiting, world_shipments.fresh}
    assert "Page 2 of 2" in second


# --- one shipment -------------------------------------------------------------------------


def test_a_shipment_shows_kits_timeline_release_excursion_and_problem(
    app: Flask, world: World, world_shipments: Shipments
) -> None:
    w = world_shipments
    sm = _client(app, "supply")
    html = sm.get(f"/supply/shipments/{w.in_transit}").get_data(as_text=True)
    kits = html.split('data-testid="kits"')[1].split("</section>")[0]
    assert kits.count('data-testid="kit"') == 2
    assert "K-001" in kits and "K-002" in kits and "L1" in kits
    assert (NEXT + timedelta(days=120)).isoformat() in kits
    assert 'data-testid="arm"' not in html and ">Arm<" not in html  # blinded

    timeline = html.split('data-testid="tracking"')[1].split("</section>")[0]
    events = re.findall(r'data-testid="tracking-event" data-outcome="(\w+)"', timeline)
    assert events == ["applied", "applied", "applied", "refused"]
    assert "Courier booked" in timeline and "Frankfurt hub" in timeline
    assert "courier (polling)" in timeline
    # The booking at 14:30 UTC the day before, on the reader's Berlin clock.
    assert "2026-03-09 15:30 CET" in timeline
    refused = timeline.split('data-outcome="refused"')[1].split("</tr>")[0]
    assert "Refused" in refused and "impossible move from in_transit" in refused

    release = html.split('data-testid="release"')[1].split("</section>")[0]
    assert "Signed by Pi_Berlin, 2026-03-09 14:30 CET: Approval" in release
    assert "Valid" in release and "Not valid" not in release

    # Not released, with an excursion and a problem reported.
    html = sm.get(f"/supply/shipments/{w.excursion}").get_data(as_text=True)
    box = html.split('data-testid="excursion"')[1].split("</section>")[0]
    assert "Above 8 °C for 95 minutes." in box and "Waiting for a decision" in box
    assert "The cool box was warm when it arrived." in html
    assert "Not released yet." in html
    with app.app_context():
        task = db.session.scalars(
            select(ExcursionDisposition.id).where(ExcursionDisposition.shipment_id == w.excursion)
        ).one()
    assert f'href="/supply/dispositions/{task}"' in box
    # No logger has reported for it: said so, where the chart would be.
    assert 'data-testid="temperature-chart-missing"' in html


def test_the_temperature_chart_of_the_loggers_readings_is_on_the_shipment(
    app: Flask, world: World, world_shipments: Shipments, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logistics.shipments import temperature_chart

    # The logger's readings as device ingestion would have stored them (the logger set-up
    # is the excursion tests' business): 4 to 9 °C over the trip, one above the range.
    trip = [(NOW - timedelta(hours=h), 4.0 + (9 - h) * 0.5) for h in range(9, 0, -1)]
    monkeypatch.setattr(
        temperature_chart,
        "readings_of",
        lambda _s, shipment_id, since=None: trip if shipment_id == world_shipments.late else [],
    )
    sm = _client(app, "supply")
    html = sm.get(f"/supply/shipments/{world_shipments.late}").get_data(as_text=True)
    section = html.split('data-testid="temperature"')[1].split("</section>")[0]
    assert 'data-testid="temperature-chart"' in section
    assert "<svg" in section and 'role="img"' in section and "&lt;svg" not in section
    assert "temperature-chart-missing" not in section
    other = sm.get(f"/supply/shipments/{world_shipments.in_transit}").get_data(as_text=True)
    assert 'data-testid="temperature-chart-missing"' in other


def test_the_unblinded_supply_manager_sees_the_arm_on_the_shipment(
    app: Flask, world: World, world_shipments: Shipments
) -> None:
    unblinded_user(app, world, NOW)
    html = _client(app, "unblinded").get(f"/supply/shipments/{world_shipments.in_transit}")
    arms = re.findall(r'data-testid="arm">(\w+)<', html.get_data(as_text=True))
    assert arms == ["A", "A"]  # Anna's arm
    inventory = _client(app, "unblinded").get("/supply/inventory").get_data(as_text=True)
    assert ">Arm<" not in inventory


def test_an_unknown_or_invisible_shipment_is_a_404(
    app: Flask, world: World, world_shipments: Shipments
) -> None:
    sm = _client(app, "supply")
    assert sm.get("/supply/shipments/999999").status_code == 404
    with app.app_context():
        s = db.session()
        sponsor = trials.create_sponsor(s, None, NOW, "Other Pharma", system=SYSTEM)
        other = trials.create_trial(
            s, None, NOW, sponsor=sponsor, protocol_number="T-002", title="Other trial",
            phase=TrialPhase.PHASE_3, status=TrialStatus.ACTIVE, system=SYSTEM,
        )  # fmt: skip
        accounts.create_user(
            s, None, NOW, username="supply_other", password=PASSWORD,
            role=Role.SUPPLY_MANAGER, display_name="Other supply", trials=[other],
            system=SYSTEM,
        )  # fmt: skip
        s.commit()
    stranger = _client(app, "supply_other")
    board = stranger.get("/supply/shipments")
    assert board.status_code == 200 and _ids(board.get_data(as_text=True)) == set()
    assert "0 shipments" in board.get_data(as_text=True)
    for shipment_id in (world_shipments.in_transit, world_shipments.excursion):
        assert stranger.get(f"/supply/shipments/{shipment_id}").status_code == 404
    # Nor its sites as a filter: the same message as for a site that does not exist.
    assert stranger.get(f"/supply/shipments?site={world.berlin.id}").status_code == 400
    inventory = stranger.get("/supply/inventory").get_data(as_text=True)
    assert 'data-testid="stock-line"' not in inventory and "IP-01" not in inventory


@pytest.mark.parametrize("username", ["coord_berlin", "pi_berlin", "anna", "nurse"])
def test_other_roles_are_refused_the_supply_pages(
    app: Flask, world: World, world_shipments: Shipments, username: str
) -> None:
    client = _client(app, username)
    for page in (
        "/supply/shipments",
        f"/supply/shipments/{world_shipments.in_transit}",
        "/supply/inventory",
    ):
        assert client.get(page).status_code == 403, page


def test_anonymous_readers_are_sent_to_sign_in(app: Flask, world_shipments: Shipments) -> None:
    answer = app.test_client().get("/supply/shipments")
    assert answer.status_code == 302 and "login" in answer.headers["Location"]


# --- inventory ----------------------------------------------------------------------------


def test_inventory_counts_kits_by_status_with_expiries_and_filters(
    app: Flask, world: World, world_shipments: Shipments
) -> None:
    w = world_shipments
    with app.app_context():
        s = db.session()
        kit = s.scalars(select(Kit).where(Kit.kit_number == "K-008")).one()
        with audit.acting(s, None, NOW, what="Quarantine", system=SYSTEM):
            kit.status = KitStatus.QUARANTINED
        s.commit()
    sm = _client(app, "supply")
    html = sm.get("/supply/inventory").get_data(as_text=True)
    line = re.search(
        rf'data-testid="stock-line" data-depot="{w.supply.depot_id}" '
        rf'data-product="{w.supply.product_id}".*?</tr>',
        html,
        re.S,
    )
    assert line is not None
    cells = line.group(0)

    def count(col: str) -> str:
        found = re.search(rf'data-col="{col}">(?:<span[^>]*>)?(\d+)', cells)
        assert found is not None, col
        return found.group(1)

    # Received 8 + 4 + 1 + 1; reserved 2 + 1 + 1 + 1 (the shipments); one quarantined,
    # one expired yesterday: available 14 - 5 - 1 - 1 = 7.
    assert count("reserved") == "5"
    assert count("quarantined") == "1"
    assert count("expired") == "1"
    assert count("available") == "7"
    assert 'data-flag="expiring"' in cells and "1 expiring within 90 days" in cells
    lots = re.findall(r'data-testid="lot">Lot ([\w-]+): (\d+) expiring ([\d-]+)', cells)
    assert lots[0] == ("L-OLD", "1", (TODAY - timedelta(days=1)).isoformat())
    assert lots[1] == ("L-SOON", "1", (TODAY + timedelta(days=20)).isoformat())
    # K-001..008: four held for shipments, one quarantined; K-101..104: one held.
    assert [(lot, n) for lot, n, _ in lots[2:]] == [("L1", "3"), ("L2", "3")]

    narrow = sm.get("/supply/inventory?days=10").get_data(as_text=True)
    assert 'data-flag="expiring"' not in narrow
    pharmacy = sm.get(f"/supply/inventory?depot={w.supply.pharmacy_id}").get_data(as_text=True)
    assert 'data-testid="stock-line"' not in pharmacy and "No kits in stock" in pharmacy
    for bad in ("depot=abc", "product=999999", "days=-1", "days=lots"):
        answer = sm.get(f"/supply/inventory?{bad}")
        assert answer.status_code == 400, bad
        assert 'data-testid="filter-errors"' in answer.get_data(as_text=True)


def test_tables_scroll_inside_their_container_on_a_phone(
    app: Flask, world: World, world_shipments: Shipments
) -> None:
    sm = _client(app, "supply")
    for page in (
        "/supply/shipments",
        f"/supply/shipments/{world_shipments.in_transit}",
        "/supply/inventory",
    ):
        html = sm.get(page).get_data(as_text=True)
        tables = html.count("<table")
        assert tables >= 1
        wrapped = len(re.findall(r'<div class="table-wrap"[^>]*>\s*<table', html))
        assert wrapped == tables, page
        assert duplicate_ids(html) == set(), page
    assert sm.get("/supply/shipments").get_data(as_text=True).count("viewport") >= 1
