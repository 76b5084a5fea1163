"""The home-visit pages through the test client: a nurse sees her own visits only (another
nurse's is a 404), a decline without a reason is refused on the page and changes nothing,
the address shows from the day before the visit and never earlier; the dispatcher pins a
visit the planner could not place and queues a re-plan whose progress the board shows; a
nurse's whole visit is recorded through the forms and read on the site's record page;
the patient's name never shows on a nurse's page before the address does, nor on any page
of the provider's coordinator."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from dct_platform.extensions import db
from dct_platform.services import accounts
from dct_platform.timeutil import to_local, utcnow
from logistics.dispatch import home_visits, runs
from logistics.dispatch.models import (
    HomeVisit,
    HomeVisitDecline,
    HomeVisitStatus,
    PlanRun,
    PlanRunStatus,
)
from logistics.dispatch.policy import COORDINATOR
from tests.support.clients import csrf_token, login
from tests.support.clock import TestClock
from tests.support.dispatch import (
    FAST,
    add_coordinator,
    add_nurse,
    home_visit_of,
    morning,
    network,
    plan_days,
    user,
)
from tests.support.world import World

BERLIN = "Europe/Berlin"
SECRET = "Secretname"


# --- helpers ------------------------------------------------------------------------------


def _visits(app: Flask) -> list[HomeVisit]:
    with app.app_context():
        found = list(db.session.scalars(select(HomeVisit).order_by(HomeVisit.id)))
        for v in found:
            _ = v.patient.subject_number
        db.session.expunge_all()
        return found


def _pin(app: Flask, visit_id: int, nurse: str) -> None:
    with app.app_context():
        s = db.session()
        visit = s.get(HomeVisit, visit_id)
        assert visit is not None
        home_visits.pin(s, user("coord_berlin"), visit, user(nurse), utcnow())
        s.commit()


def _signed_in(app: Flask, username: str, password: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, username, password).status_code == 302
    return client


def _post(client: FlaskClient, page: str, action: str, **data: str) -> TestResponse:
    return client.post(action, data={"csrf_token": csrf_token(client, page), **data})


def _text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


# --- the nurse ----------------------------------------------------------------------------


def test_a_nurse_sees_only_her_visits_and_another_nurse_gets_404(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world, patients=3)
    add_nurse(app, net, "ada", home=(52.51, 13.40))
    add_nurse(app, net, "bea", home=(52.53, 13.41))
    first = _visits(app)
    for n, visit in enumerate(first):
        _pin(app, visit.id, "ada" if n % 2 == 0 else "bea")
    plan_days(app)
    visits = _visits(app)
    mine = {name: [v for v in visits if v.nurse_id == net.nurses[name]] for name in ("ada", "bea")}
    assert len(mine["ada"]) == 2 and len(mine["bea"]) == 2

    ada = _signed_in(app, "ada", world.password)
    page = ada.get("/nurse/visits")
    assert page.status_code == 200
    html = _text(page)
    route = html.split('data-testid="route"')[1].split('data-testid="upcoming"')[0]
    assert route.count('data-testid="stop"') == 2
    # In route order: the times on her page rise.
    times = re.findall(r'class="stop-time">.*?(\d\d:\d\d)', route)
    assert times == sorted(times) and len(times) == 2
    for v in mine["ada"]:
        assert v.patient.subject_number in route
        assert f"/nurse/visits/{v.id}" in route
    for v in mine["bea"]:
        assert v.patient.subject_number not in html
        assert ada.get(f"/nurse/visits/{v.id}").status_code == 404
        # Nor can she act on it: the same 404, and nothing changes.
        token = csrf_token(ada, "/nurse/visits")
        answer = ada.post(f"/nurse/visits/{v.id}/accept", data={"csrf_token": token})
        assert answer.status_code == 404
    assert all(v.status == HomeVisitStatus.ASSIGNED for v in _visits(app))

    visit = mine["ada"][0]
    page = ada.get(f"/nurse/visits/{visit.id}")
    assert page.status_code == 200
    html = _text(page)
    assert "Accept" in html and "Decline this visit" in html
    assert "Check in" not in html  # after accepting
    assert ada.get("/nurse/visits?day=not-a-day").status_code == 422
    assert ada.get("/nurse/visits?day=1000-01-01").status_code == 422
    # Another role is refused the nurse's pages; the nurse the dispatcher's.
    assert ada.get("/dispatch").status_code == 403
    coord = _signed_in(app, "coord_berlin", world.password)
    assert coord.get("/nurse/visits").status_code == 403


def test_a_decline_without_a_reason_is_refused_and_changes_nothing(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    assert visit.status == HomeVisitStatus.ASSIGNED
    page = f"/nurse/visits/{visit.id}"
    ada = _signed_in(app, "ada", world.password)

    refused = _post(ada, page, f"{page}/decline", reason="   ")
    assert refused.status_code == 422
    html = _text(refused)
    assert "There is a problem" in html and "Required." in html
    assert 'id="decline-reason"' in html and 'aria-invalid="true"' in html
    assert '<details class="sub-form" open>' in html  # the form stays open
    after = home_visit_of(app, net.patients[0])
    assert after.status == HomeVisitStatus.ASSIGNED and after.nurse_id == net.nurses["ada"]
    assert after.version == visit.version
    with app.app_context():
        assert db.session.scalar(select(func.count(HomeVisitDecline.id))) == 0

    done = _post(ada, page, f"{page}/decline", reason="My car broke down")
    assert done.status_code == 302 and done.headers["Location"].endswith("/nurse/visits")
    after = home_visit_of(app, net.patients[0])
    assert after.status == HomeVisitStatus.OPEN and after.nurse_id is None
    assert "it goes back to the dispatcher" in _text(ada.get("/nurse/visits"))  # the flash
    assert ada.get(page).status_code == 404  # no longer hers


def test_the_address_shows_from_the_day_before_and_never_the_name_before(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    assert visit.planned_start is not None
    page = f"/nurse/visits/{visit.id}"
    visit_day = to_local(visit.planned_start, BERLIN).date()

    clock.freeze(visit.planned_start - timedelta(days=2))
    ada = _signed_in(app, "ada", world.password)
    html = _text(ada.get(page))
    assert "1 Hidden Street" not in html and "Directions" not in html
    note = (visit_day - timedelta(days=1)).strftime("%a %d %b %Y")
    assert f"The address shows here from {note}, the day before the visit." in html
    for path in (page, "/nurse/visits", f"/nurse/visits?day={visit_day.isoformat()}"):
        assert SECRET not in _text(ada.get(path)), path

    clock.freeze(visit.planned_start - timedelta(hours=1))
    html = _text(ada.get(page))
    assert "1 Hidden Street, 10115 Berlin" in html
    assert 'data-testid="directions"' in html
    assert "https://www.openstreetmap.org/directions?route=%3B52.52000%2C13.40500" in html
    assert SECRET not in html  # the address only, never the name


# --- the dispatcher -----------------------------------------------------------------------


def test_pin_and_replan_from_the_board(app: Flask, world: World, clock: TestClock) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "novice", skills=("vital_signs",))
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    assert visit.status == HomeVisitStatus.OPEN and visit.attention
    ada = add_nurse(app, net, "ada")
    today = to_local(utcnow(), BERLIN).date().isoformat()

    coord = _signed_in(app, "coord_berlin", world.password)
    board = coord.get("/dispatch")
    assert board.status_code == 200
    html = _text(board)
    assert 'data-testid="attention-visit"' in html and visit.attention in html
    assert "Novice" in html and "Ada" in html  # a row per nurse
    assert 'data-testid="no-runs"' in html

    # A pin that names nobody the board lists, or someone who is not a nurse: refused.
    action = f"/dispatch/visits/{visit.id}/pin"
    refused = _post(coord, "/dispatch", action, nurse_id="abc", board_day=today)
    assert refused.status_code == 422 and "Choose one of the nurses listed." in _text(refused)
    refused = _post(
        coord, "/dispatch", action, nurse_id=str(world.users["pi_berlin"].id), board_day=today
    )
    assert refused.status_code == 422 and "Not an active mobile nurse." in _text(refused)
    assert home_visit_of(app, net.patients[0]).pinned_nurse_id is None

    pinned = _post(coord, "/dispatch", action, nurse_id=str(ada), board_day=today)
    assert pinned.status_code == 302
    assert pinned.headers["Location"].endswith(f"/dispatch?day={today}")
    assert home_visit_of(app, net.patients[0]).pinned_nurse_id == ada
    assert 'data-testid="pinned">Pinned to Ada.' in _text(coord.get("/dispatch"))

    # Re-plan: too many days is refused and queues nothing; then a run is queued.
    refused = _post(coord, "/dispatch", "/dispatch/replan", day=today, days="9", board_day=today)
    assert refused.status_code == 422 and "Plan 1 to 7 days at a time." in _text(refused)
    refused = _post(coord, "/dispatch", "/dispatch/replan", day="", days="1", board_day=today)
    assert refused.status_code == 422 and "Choose the first day to plan." in _text(refused)
    with app.app_context():
        assert db.session.scalar(select(func.count(PlanRun.id))) == 0
    queued = _post(coord, "/dispatch", "/dispatch/replan", day=today, days="2", board_day=today)
    assert queued.status_code == 302
    with app.app_context():
        run = db.session.scalars(select(PlanRun)).one()
        assert run.status == PlanRunStatus.QUEUED and run.days == 2
        assert run.provider_id is None  # site staff plan the whole network
        assert run.requested_by_id == world.users["coord_berlin"].id
    html = _text(coord.get("/dispatch"))
    assert 'data-active="true"' in html and 'data-testid="runs-active"' in html
    assert 'data-testid="run-status">waiting' in html
    assert 'data-active="true"' in _text(coord.get("/dispatch/runs"))

    with app.app_context():
        assert runs.run_queued(db.session(), utcnow, FAST) == 1
    html = _text(coord.get("/dispatch"))
    assert 'data-active="false"' in html and 'data-testid="run-status">done' in html
    assert 'data-testid="run-summary"' in html
    assert 'data-testid="no-attention"' in html
    after = home_visit_of(app, net.patients[0])
    assert after.status == HomeVisitStatus.ASSIGNED and after.nurse_id == ada
    assert f'href="/dispatch/visits/{after.id}" data-testid="timeline-visit"' in html


def test_the_coordinator_plans_her_provider_and_never_sees_the_patients_name(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    add_coordinator(app, "carla", provider_id=net.provider_id)
    carla = _signed_in(app, "carla", world.password)
    home = carla.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/dispatch")
    today = to_local(utcnow(), BERLIN).date().isoformat()

    pages = ["/dispatch", f"/dispatch?day={today}", f"/dispatch/visits/{visit.id}"]
    for path in pages:
        answer = carla.get(path)
        assert answer.status_code == 200, path
        assert SECRET not in _text(answer), path
        assert "1 Hidden Street" not in _text(answer), path
    assert "B1-anna" in _text(carla.get("/dispatch"))
    queued = _post(carla, "/dispatch", "/dispatch/replan", day=today, days="1", board_day=today)
    assert queued.status_code == 302
    with app.app_context():
        assert db.session.scalars(select(PlanRun)).one().provider_id == net.provider_id
    for path in [*pages, "/dispatch/runs"]:
        assert SECRET not in _text(carla.get(path)), path

    # A coordinator whose provider is not set yet is told so, and plans nothing.
    with app.app_context():
        accounts.create_user(
            db.session(), None, utcnow(), username="dora", password=world.password,
            role=COORDINATOR, display_name="Dora", system="test",
        )  # fmt: skip
        db.session.commit()
    dora = _signed_in(app, "dora", world.password)
    board = dora.get("/dispatch")
    assert board.status_code == 200 and 'data-testid="unassigned"' in _text(board)
    token = csrf_token(dora, "/dispatch")
    refused = dora.post("/dispatch/replan", data={"csrf_token": token, "day": today, "days": "1"})
    assert refused.status_code == 403
    assert dora.get(f"/dispatch/visits/{visit.id}").status_code == 404


# --- a whole visit --------------------------------------------------------------------------


def test_a_nurse_records_the_visit_through_the_forms_and_the_site_reads_it(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    assert visit.planned_start is not None
    clock.freeze(visit.planned_start)
    page = f"/nurse/visits/{visit.id}"
    ada = _signed_in(app, "ada", world.password)

    assert _post(ada, page, f"{page}/accept").status_code == 302
    # Procedures wait for the check-in.
    refused = _post(ada, page, f"{page}/procedures", code="vitals")
    assert refused.status_code == 409 and "Check in first" in _text(refused)
    refused = _post(ada, page, f"{page}/check-in", latitude="north", longitude="13.4")
    assert refused.status_code == 422 and "could not be read" in _text(refused)
    assert home_visit_of(app, net.patients[0]).status == HomeVisitStatus.ACCEPTED
    checked_in = _post(ada, page, f"{page}/check-in", latitude="52.5203", longitude="13.4051")
    assert checked_in.status_code == 302 and checked_in.headers["Location"].endswith("#procedures")
    for code in ("vitals", "blood_draw"):
        assert _post(ada, page, f"{page}/procedures", code=code).status_code == 302

    # A reading out of what can be stored: refused at its field, everything typed kept.
    refused = _post(
        ada, page, f"{page}/findings", vital_heart_rate="900", vital_systolic_bp="128",
        notes="Calm, well hydrated", abnormal="",
    )  # fmt: skip
    assert refused.status_code == 422
    html = _text(refused)
    assert '<a href="#vital-heart_rate">Heart rate: Between 20 and 250 bpm.</a>' in html
    assert 'value="900"' in html and 'value="128"' in html and "Calm, well hydrated" in html
    assert home_visit_of(app, net.patients[0]).vitals == {}
    saved = _post(
        ada, page, f"{page}/findings", vital_heart_rate="72", vital_systolic_bp="128",
        vital_temperature="36,8", notes="Calm, well hydrated", abnormal="yes",
    )  # fmt: skip
    assert saved.status_code == 302
    stored = home_visit_of(app, net.patients[0])
    assert stored.vitals == {"heart_rate": 72, "systolic_bp": 128, "temperature": 36.8}
    assert stored.findings_abnormal and stored.notes == "Calm, well hydrated"

    refused = _post(ada, page, f"{page}/samples", barcode="", kind="serum tube")
    assert refused.status_code == 422 and 'value="serum tube"' in _text(refused)
    assert (
        _post(ada, page, f"{page}/samples", barcode="TUBE-1", kind="serum tube").status_code == 302
    )
    refused = _post(ada, page, f"{page}/samples", barcode="TUBE-1", kind="serum tube")
    assert refused.status_code == 409 and "recorded already" in _text(refused)
    refused = _post(ada, page, f"{page}/hand-over", courier=" ", courier_reference="")
    assert refused.status_code == 422
    handed = _post(ada, page, f"{page}/hand-over", courier="MedCourier", courier_reference="MC-7")
    assert handed.status_code == 302
    assert _post(ada, page, f"{page}/check-out", latitude="", longitude="").status_code == 302
    done = home_visit_of(app, net.patients[0])
    assert done.status == HomeVisitStatus.COMPLETED
    assert (done.checked_in_lat, done.checked_in_lon) == (52.5203, 13.4051)
    html = _text(ada.get(page))
    assert "Check out" not in html and "Mark done" not in html and "completed" in html

    coord = _signed_in(app, "coord_berlin", world.password)
    record = coord.get(f"/dispatch/visits/{visit.id}")
    assert record.status_code == 200
    html = _text(record)
    assert 'data-testid="visit-status"><span class="status status-completed">completed' in html
    assert "Pi_Berlin" in html  # the investigator at the time
    assert "at 52.52030, 13.40510, 30 m from the patient&#39;s home" in html
    assert "MedCourier (MC-7)" in html and "TUBE-1" in html
    assert "72 bpm" in html and "36.8 °C" in html and "Calm, well hydrated" in html
    assert "no location from the phone" in html  # the check-out had none
    assert "Cancel the home visit" not in html  # done: nothing to cancel
    # The trial manager reads the record; the board is the dispatchers'.
    manager = _signed_in(app, "manager", world.password)
    assert manager.get(f"/dispatch/visits/{visit.id}").status_code == 200
    assert manager.get("/dispatch").status_code == 403


def test_a_dispatcher_cancels_only_with_a_reason(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    page = f"/dispatch/visits/{visit.id}"
    coord = _signed_in(app, "coord_berlin", world.password)
    refused = _post(coord, page, f"{page}/cancel", reason="")
    assert refused.status_code == 422 and "Say why" in _text(refused)
    assert home_visit_of(app, net.patients[0]).status == HomeVisitStatus.ASSIGNED
    # Another site's staff do not see it at all.
    tokyo = _signed_in(app, "coord_tokyo", world.password)
    assert tokyo.get(page).status_code == 404
    token = csrf_token(tokyo, "/dispatch")
    answer = tokyo.post(f"{page}/cancel", data={"csrf_token": token, "reason": "x"})
    assert answer.status_code == 404
    cancelled = _post(coord, page, f"{page}/cancel", reason="Patient in hospital")
    assert cancelled.status_code == 302
    after = home_visit_of(app, net.patients[0])
    assert (
        after.status == HomeVisitStatus.CANCELLED and after.cancel_reason == "Patient in hospital"
    )
    ada = _signed_in(app, "ada", world.password)
    assert "Patient in hospital" in _text(ada.get(f"/nurse/visits/{visit.id}"))


def test_the_timeline_style_sheet_has_a_class_for_every_column_of_a_day(app: Flask) -> None:
    from logistics.dispatch.views import DAY_SLOTS

    client = app.test_client()
    # Files are streamed: each answer is closed once read.
    with client.get("/dispatch/static/dispatch.css") as css:
        assert css.status_code == 200 and css.mimetype == "text/css"
        text = _text(css)
    assert f".gs-{DAY_SLOTS + 1} {{" in text and f".gsp-{DAY_SLOTS} {{" in text
    with client.get("/dispatch/static/dispatch.js") as js:
        assert js.status_code == 200 and "navigator.geolocation" in _text(js)
