"""Home-nurse dispatch through its services: home visits made from the protocol schedule,
planned to qualified nurses only, a decline that returns a visit and a re-plan that keeps
the others, the nurse's scope and the address rule, and the nurse's audited steps from
check-in to check-out."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from dct_platform import audit, events, policy
from dct_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import AuditAction, MailOutbox, RemoteActivity
from dct_platform.timeutil import to_local, utcnow
from dct_platform.visits.models import PlannedStatus, PlannedVisit, ProtocolDeviation
from logistics.dispatch import home_visits, nurse_work, providers, runs
from logistics.dispatch.models import (
    HomeVisit,
    HomeVisitProcedure,
    HomeVisitStatus,
    PlanRunStatus,
)
from logistics.dispatch.policy import SEE_ADDRESS
from tests.support.clock import TestClock
from tests.support.dispatch import (
    FAST,
    Network,
    add_nurse,
    home_visit_of,
    morning,
    network,
    plan_days,
    profile,
    user,
)
from tests.support.world import World


def test_home_visits_come_from_the_schedule_with_what_the_visit_needs(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    visit = home_visit_of(app, net.patients[0])
    assert visit.status == HomeVisitStatus.OPEN
    assert visit.skills == ["phlebotomy"]
    assert [p["code"] for p in visit.procedures] == ["vitals", "blood_draw"]
    assert (visit.day_start, visit.day_end) == ("08:00", "18:00")
    with app.app_context():
        activity = db.session.scalars(
            select(RemoteActivity).where(RemoteActivity.record_table == "home_visits")
        ).one()
        assert activity.site_id == world.berlin.id and activity.originator_kind == "nurse"


def test_only_a_qualified_nurse_gets_the_visit_and_nobody_qualified_is_explained(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    today = to_local(utcnow(), "Europe/Berlin").date()
    add_nurse(app, net, "novice", skills=("vital_signs",))
    add_nurse(app, net, "expired", licence_expires=today - timedelta(days=1))
    add_nurse(app, net, "untrained", trained_version=None)
    add_nurse(app, net, "faraway", postal_prefixes=("80",), home=(48.14, 11.58))
    add_nurse(app, net, "resting", hours=())
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    assert visit.status == HomeVisitStatus.OPEN and visit.nurse_id is None
    assert visit.attention is not None and "no qualified nurse" in visit.attention

    qualified = add_nurse(app, net, "qualified")
    plan_days(app)
    visit = home_visit_of(app, net.patients[0])
    assert visit.status == HomeVisitStatus.ASSIGNED and visit.nurse_id == qualified
    assert visit.attention is None and visit.planned_start is not None
    local = to_local(visit.planned_start, "Europe/Berlin")
    assert local.date() == today and 9 <= local.hour < 18
    with app.app_context():
        planned = db.session.get(PlannedVisit, visit.planned_visit_id)
        assert planned is not None and planned.status == PlannedStatus.BOOKED


def test_a_decline_returns_the_visit_and_the_replan_keeps_the_accepted_ones(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world, patients=5)
    ada = add_nurse(app, net, "ada", home=(52.51, 13.40))
    bea = add_nurse(app, net, "bea", home=(52.53, 13.41))
    plan_days(app)
    with app.app_context():
        s = db.session()
        visits = list(s.scalars(select(HomeVisit).order_by(HomeVisit.id)))
        assert all(v.status == HomeVisitStatus.ASSIGNED for v in visits)
        held = {v.id: v.nurse_id for v in visits}
        nurses = {ada: user("ada"), bea: user("bea")}
        for v in visits:
            assert v.nurse_id is not None
            nurse_work.accept(s, nurses[v.nurse_id], v, utcnow())
        # One accepted visit is declined (the car broke down).
        declined = visits[0]
        decliner = nurses[declined.nurse_id]
        colleague = bea if decliner.id == ada else ada
        with pytest.raises(ValidationFailed):
            nurse_work.decline(s, decliner, declined, "  ", utcnow())
        nurse_work.decline(s, decliner, declined, "Car broke down", utcnow())
        s.commit()
        assert declined.status == HomeVisitStatus.OPEN and "Car broke down" in (
            declined.attention or ""
        )
    plan_days(app)
    with app.app_context():
        s = db.session()
        after = {v.id: v for v in s.scalars(select(HomeVisit))}
        assert after[declined.id].nurse_id == colleague  # never back to the one who declined
        assert after[declined.id].status == HomeVisitStatus.ASSIGNED
        for visit_id, nurse_id in held.items():
            if visit_id != declined.id:
                assert after[visit_id].nurse_id == nurse_id
                assert after[visit_id].status == HomeVisitStatus.ACCEPTED


def test_a_nurse_sees_only_her_visits_and_the_address_only_near_the_day(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world, patients=1)
    add_nurse(app, net, "ada", home=(52.51, 13.40))
    plan_days(app)
    # A colleague of the same provider, working elsewhere: nothing of ada's is hers.
    other = add_nurse(app, net, "other", postal_prefixes=("99",), home=(50.0, 8.0))
    with app.app_context():
        s = db.session()
        ada = user("ada")
        mine = list(s.scalars(select(HomeVisit).where(policy.visible(ada, HomeVisit, session=s))))
        assert {v.patient_id for v in mine} == set(net.patients)
        stranger = user("other")
        assert other == stranger.id
        assert not list(
            s.scalars(select(HomeVisit).where(policy.visible(stranger, HomeVisit, session=s)))
        )
        visit = mine[0]
        with pytest.raises(NotFound):
            policy.get_visible(s, stranger, HomeVisit, visit.id)
        assert policy.can(ada, SEE_ADDRESS, visit, now=utcnow())
        assert not policy.can(stranger, SEE_ADDRESS, visit, now=utcnow())
        assert visit.planned_start is not None
        two_days_before = visit.planned_start - timedelta(days=2)
        assert not policy.can(ada, SEE_ADDRESS, visit, now=two_days_before)
        assert policy.can(ada, SEE_ADDRESS, visit, now=visit.planned_start - timedelta(days=1))
        with pytest.raises(Forbidden):
            nurse_work.accept(s, stranger, visit, utcnow())


def test_check_in_procedures_and_check_out_are_audited_and_complete_the_visit(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    plan_days(app)
    with app.app_context():
        s = db.session()
        ada = user("ada")
        visit = s.scalars(select(HomeVisit)).one()
        with pytest.raises(Conflict):
            nurse_work.tick(s, ada, visit, "vitals", utcnow())
        nurse_work.accept(s, ada, visit, utcnow())
        nurse_work.check_in(s, ada, visit, utcnow(), 52.52, 13.405)
        nurse_work.tick(s, ada, visit, "vitals", utcnow())
        nurse_work.tick(s, ada, visit, "vitals", utcnow())  # a double tap is one tick
        with pytest.raises(ValidationFailed):
            nurse_work.tick(s, ada, visit, "ecg", utcnow())
        with pytest.raises(ValidationFailed):
            nurse_work.record_findings(s, ada, visit, utcnow(), vitals={"heart_rate": 900})
        nurse_work.record_findings(
            s, ada, visit, utcnow(), vitals={"heart_rate": 72, "systolic_bp": 165}, notes="Fine"
        )
        nurse_work.collect_sample(s, ada, visit, "TUBE-0001", "serum", utcnow())
        with pytest.raises(Conflict):
            nurse_work.collect_sample(s, ada, visit, "TUBE-0001", "serum", utcnow())
        nurse_work.hand_over(s, ada, visit, utcnow(), "MedCourier", "MC-77")
        nurse_work.check_out(s, ada, visit, utcnow())
        s.commit()
        assert visit.status == HomeVisitStatus.COMPLETED
        assert visit.findings_abnormal  # 165 mmHg is outside the normal range
        assert visit.investigator_id == world.users["pi_berlin"].id
        assert visit.site_id == world.berlin.id
        assert s.scalars(select(HomeVisitProcedure)).one().done_by_id == ada.id
        assert visit.planned_visit.status == PlannedStatus.COMPLETED
        assert not visit.planned_visit.out_of_window
        trail = [
            a.summary for a in s.scalars(select(AuditAction).where(AuditAction.actor_id == ada.id))
        ]
        for step in ("Accept home visit", "Check in at home visit", "Procedure done: vitals",
                     "Record visit findings", "Collect sample TUBE-0001",
                     "Hand samples to MedCourier", "Check out of home visit"):  # fmt: skip
            assert step in trail
        activity = s.scalars(
            select(RemoteActivity).where(RemoteActivity.record_table == "home_visits")
        ).one()
        assert activity.status == "completed" and activity.originator_user_id == ada.id


def test_a_visit_done_outside_its_protocol_window_is_flagged(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    plan_days(app)
    with app.app_context():
        s = db.session()
        ada = user("ada")
        visit = s.scalars(select(HomeVisit)).one()
        nurse_work.accept(s, ada, visit, utcnow())
        s.commit()
    # The nurse checks in a week late (the window ran from today to six days ahead).
    clock.advance(timedelta(days=7))
    with app.app_context():
        s = db.session()
        ada = user("ada")
        visit = s.scalars(select(HomeVisit)).one()
        nurse_work.check_in(s, ada, visit, utcnow())
        nurse_work.check_out(s, ada, visit, utcnow())
        s.commit()
        deviation = s.scalars(select(ProtocolDeviation)).one()
        assert deviation.site_id == world.berlin.id and "after its window" in deviation.detail
        assert visit.planned_visit.out_of_window


def test_a_queued_run_plans_outside_the_request_and_reports_progress(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world, patients=2)
    add_nurse(app, net, "ada")
    with app.app_context():
        s = db.session()
        today = to_local(utcnow(), "Europe/Berlin").date()
        coordinator = user("coord_berlin")
        run = runs.queue(s, coordinator, utcnow(), today, days=2)
        again = runs.queue(s, coordinator, utcnow(), today, days=2)
        assert again.id == run.id  # one waiting run per request, however often it is asked
        with pytest.raises(ValidationFailed):
            runs.queue(s, coordinator, utcnow(), today, days=30)
        s.commit()
        assert runs.run_queued(s, utcnow, FAST) == 1
        s.refresh(run)
        assert run.status == PlanRunStatus.DONE and run.progress == "done"
        assert [d["day"] for d in run.summary["days"]] == [
            today.isoformat(),
            (today + timedelta(days=1)).isoformat(),
        ]
        assert run.summary["days"][0]["assigned"] == 3
        assert all(v.plan_run_id == run.id for v in s.scalars(select(HomeVisit)))
        assert runs.run_queued(s, utcnow, FAST) == 0


def test_a_sick_call_moves_her_visits_to_a_colleague(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world, patients=3)
    ada = add_nurse(app, net, "ada", home=(52.51, 13.40))
    plan_days(app)
    bea = add_nurse(app, net, "bea", home=(52.53, 13.41))
    with app.app_context():
        s = db.session()
        visits = list(s.scalars(select(HomeVisit).order_by(HomeVisit.id)))
        assert {v.nurse_id for v in visits} == {ada}
        for v in visits:
            nurse_work.accept(s, user("ada"), v, utcnow())
        today = to_local(utcnow(), "Europe/Berlin").date()
        providers.add_absence(
            s, user("coord_berlin"), utcnow(), profile(ada), today, today, "Sick call"
        )
        s.commit()
        assert runs.run_queued(s, utcnow, FAST) == 1
        s.expire_all()
        moved = list(s.scalars(select(HomeVisit)))
        assert {v.nurse_id for v in moved} == {bea}
        assert all(v.status == HomeVisitStatus.ASSIGNED for v in moved)


def test_mails_tell_the_nurse_of_her_assignment_and_the_site_of_a_decline_once(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world)
    add_nurse(app, net, "ada")
    with app.app_context():
        s = db.session()
        with audit.acting(s, None, utcnow(), what="Coordinator's mail", system="test"):
            user("coord_berlin").email = "coord_berlin@example.org"
        s.commit()
    plan_days(app)
    with app.app_context():
        s = db.session()
        events.deliver_due(s, utcnow(), "test")
        events.deliver_due(s, utcnow(), "test")  # a second worker finds nothing to send
        mails = list(s.scalars(select(MailOutbox)))
        assert [(json.loads(m.recipients), m.subject) for m in mails] == [
            (["ada@example.org"], "New home visit for you")
        ]
        assert "Secretname" not in mails[0].text_body
        assert "Hidden Street" not in mails[0].text_body
        visit = s.scalars(select(HomeVisit)).one()
        nurse_work.decline(s, user("ada"), visit, "Not my area", utcnow())
        s.commit()
        events.deliver_due(s, utcnow(), "test")
        site_mail = s.scalars(select(MailOutbox).where(MailOutbox.id > mails[0].id)).one()
        assert json.loads(site_mail.recipients) == ["coord_berlin@example.org"]
        assert site_mail.subject.startswith("Home visit declined by the nurse")
        assert "Not my area" in site_mail.text_body


def _with_companion(app: Flask, net: Network, companion: dict[str, object]) -> None:
    with app.app_context():
        s = db.session()
        providers.set_requirement(
            s, None, utcnow(), net.definition_id, skills=["phlebotomy"],
            procedures=[{"code": "vitals", "label": "Vital signs"}], companion=companion,
            system="test",
        )  # fmt: skip
        s.commit()


def test_a_two_nurse_visit_gets_two_nurses_at_once_and_completes_with_both(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    schedule_only = network(app, world, home_visits_now=False)
    _with_companion(app, schedule_only, {"kind": "simultaneous", "duration": 30, "skills": ["ecg"]})
    with app.app_context():
        s = db.session()
        home_visits.create_due(s, utcnow(), timedelta(days=14))
        s.commit()
    ada = add_nurse(app, schedule_only, "ada", skills=("phlebotomy", "ecg"))
    bea = add_nurse(app, schedule_only, "bea", skills=("ecg",), home=(52.53, 13.41))
    plan_days(app)
    with app.app_context():
        s = db.session()
        first, second = s.scalars(select(HomeVisit).order_by(HomeVisit.part)).all()
        assert (first.part, second.part, second.partner_id) == (1, 2, first.id)
        assert {first.nurse_id, second.nurse_id} == {ada, bea}
        assert first.nurse_id == ada  # the blood draw needs the phlebotomist
        assert first.planned_start == second.planned_start
        for part in (first, second):
            nurse = user("ada" if part.nurse_id == ada else "bea")
            nurse_work.accept(s, nurse, part, utcnow())
            nurse_work.check_in(s, nurse, part, utcnow())
        nurse_work.check_out(s, user("ada"), first, utcnow())
        assert first.planned_visit.status == PlannedStatus.BOOKED  # one part still running
        nurse_work.check_out(s, user("bea"), second, utcnow())
        assert first.planned_visit.status == PlannedStatus.COMPLETED
        s.commit()


def test_a_sequential_part_starts_within_its_gap_or_neither_is_planned(
    app: Flask, world: World, clock: TestClock
) -> None:
    morning(clock)
    net = network(app, world, home_visits_now=False)
    _with_companion(
        app,
        net,
        {"kind": "sequential", "duration": 20, "skills": ["vital_signs"], "min_gap": 90,
         "max_gap": 150},
    )  # fmt: skip
    with app.app_context():
        s = db.session()
        home_visits.create_due(s, utcnow(), timedelta(days=14))
        s.commit()
    add_nurse(app, net, "ada")
    plan_days(app)
    with app.app_context():
        s = db.session()
        first, second = s.scalars(select(HomeVisit).order_by(HomeVisit.part)).all()
        assert first.planned_start is not None and second.planned_start is not None
        gap = (second.planned_start - first.planned_start).total_seconds() / 60
        assert 90 <= gap <= 150
        # Nobody has the second part's skill: neither part is planned, and both say why.
        with audit.acting(s, None, utcnow(), what="Harder second part", system="test"):
            second.skills = ["imp_administration"]
        s.commit()
    plan_days(app)
    with app.app_context():
        s = db.session()
        first, second = s.scalars(select(HomeVisit).order_by(HomeVisit.part)).all()
        assert first.nurse_id is None and second.nurse_id is None
        assert "imp_administration" in (second.attention or "")
        assert "other part" in (first.attention or "")
