"""The home-visit API under /api/v1/home-visits: a mobile nurse's day and her steps at the
patient's home, and the dispatcher's lists, pins, cancellations and planning runs.

Thin handlers: the rules live in the services (`nurse_work`, `home_visits`, `runs`) and
the reads in `queries`; the request commits once at its end (db_session.py), so a refusal
raised anywhere leaves nothing half-written. A visit outside the caller's scope answers
404 (`policy.get_visible`); a visible one the caller may not act on answers 403.

Who does what:
- mobile nurses: their own visits (GET /mine, /mine/upcoming, /{id}) and the steps at
  the home: accept, decline, check in, tick procedures, record findings, collect samples,
  hand them to the courier, check out. The address only from the day before the visit
  until it ends; never the patient's name;
- site staff and investigators: their sites' visits, with the address; dispatch them
  (pin, cancel, planning runs);
- providers' coordinators: the visits of the sites their provider serves, without the
  address; dispatch them and plan their provider's nurses;
- trial managers: read their trials' visits, without free-text reasons or notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from dct_platform import policy
from dct_platform.auth import api_actor
from dct_platform.errors import NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import User
from dct_platform.models.users import SITE_ROLES
from dct_platform.roles import Role
from dct_platform.timeutil import to_local, utcnow
from dct_platform.visits import slots
from logistics.dispatch import home_visits, nurse_work, queries, runs
from logistics.dispatch import schemas as s
from logistics.dispatch.models import (
    HomeVisit,
    HomeVisitProcedure,
    HomeVisitSample,
    NurseProfile,
    PlanRun,
)
from logistics.dispatch.policy import DISPATCH, DISPATCHERS

blp = Blueprint(
    "dispatch_api",
    __name__,
    url_prefix="/api/v1/home-visits",
    description="Home-nurse visits: the nurse's day and her steps at the patient's home, "
    "and dispatching (lists, pins, cancellations, planning runs)",
)

# The list and every answer about one visit read its patient (subject number, zone) and
# its planned visit (name) right after it.
_WITH = (joinedload(HomeVisit.patient), joinedload(HomeVisit.planned_visit))
# A run may be asked for a day just begun somewhere west of the caller, not for one over;
# and not so far ahead that the days it adds leave the calendar.

NOT_FOUND_VISIT = "No such home visit for the caller"
NOT_THE_NURSE = "Only the nurse the visit is assigned to does this (`forbidden`)"
NOT_A_DISPATCHER = (
    "Only the staff of the visit's site and the coordinators of a provider serving it "
    "dispatch it (`forbidden`)"
)
ONLY_NURSES = "Only mobile nurses have visits of their own (`forbidden`)"
ONLY_DISPATCHERS = (
    "Only site staff, investigators and providers' coordinators dispatch (`forbidden`); a "
    "coordinator must belong to a provider"
)


def _session() -> Session:
    return db.session()


def _visit(visit_id: int, now: datetime) -> HomeVisit:
    return policy.get_visible(_session(), api_actor(), HomeVisit, visit_id, now, load=_WITH)


# --- how visits are answered ---------------------------------------------------------------


def _names(session: Session, user_ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in user_ids if i is not None})
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {i: name for i, name in rows}


def _local(start: datetime, end: datetime, zone: str) -> dict[str, Any]:
    label = slots.local_label(slots.Slot(start, end, 0), zone)
    return {
        "zone": label.zone,
        "date": label.day,
        "starts": f"{label.starts:%H:%M}",
        "ends": f"{label.ends:%H:%M}",
        "abbreviation": label.abbreviation,
        "end_abbreviation": label.end_abbreviation,
        "text": str(label),
    }


def _reads_reasons(actor: User) -> bool:
    """Decline and cancel reasons are free text that may name people or health details:
    the people who work on or dispatch the visit read them; trial managers do not."""
    return actor.role == Role.NURSE or actor.role in DISPATCHERS


def _reads_notes(actor: User, visit: HomeVisit) -> bool:
    """The nurse's notes are clinical: the nurse who wrote them and the patient's site."""
    if actor.role == Role.NURSE:
        return visit.nurse_id == actor.id
    return actor.role in SITE_ROLES and visit.site_id in actor.site_ids


def _summary(visit: HomeVisit, actor: User, names: dict[int, str]) -> dict[str, Any]:
    zone = visit.patient.timezone
    start, end = visit.planned_start, visit.planned_end
    return {
        "id": visit.id,
        "status": visit.status,
        "planned_visit_id": visit.planned_visit_id,
        "part": visit.part,
        "partner_id": visit.partner_id,
        "link_kind": visit.link_kind,
        "min_gap_minutes": visit.min_gap_minutes,
        "max_gap_minutes": visit.max_gap_minutes,
        "patient_id": visit.patient_id,
        "subject_number": visit.patient.subject_number,
        "site_id": visit.site_id,
        "visit_name": visit.planned_visit.name,
        "zone": zone,
        "window_first": visit.window_first,
        "window_last": visit.window_last,
        "day_start": visit.day_start,
        "day_end": visit.day_end,
        "duration_minutes": visit.duration_minutes,
        "planned_start": start,
        "planned_end": end,
        "local": _local(start, end, zone) if start and end else None,
        "route_position": visit.route_position,
        "travel_minutes": visit.travel_minutes,
        "skills": list(visit.skills or []),
        "nurse_id": visit.nurse_id,
        "nurse_name": names.get(visit.nurse_id) if visit.nurse_id else None,
        "pinned_nurse_id": visit.pinned_nurse_id,
        "pinned_nurse_name": names.get(visit.pinned_nurse_id) if visit.pinned_nurse_id else None,
        "attention": visit.attention if _reads_reasons(actor) else None,
        "accepted_at": visit.accepted_at,
        "checked_in_at": visit.checked_in_at,
        "checked_out_at": visit.checked_out_at,
    }


def _summaries(session: Session, actor: User, visits: list[HomeVisit]) -> list[dict[str, Any]]:
    """The visits with their nurses' names, in one more query whatever their number."""
    names = _names(session, (i for v in visits for i in (v.nurse_id, v.pinned_nurse_id)))
    return [_summary(v, actor, names) for v in visits]


def _detail(session: Session, actor: User, visit: HomeVisit, now: datetime) -> dict[str, Any]:
    """One visit with its checklist, findings, samples, and the address when the rules let
    the caller see it now. Procedures and samples are read afresh: a step of this request
    may have added one after the visit's collections were loaded."""
    names = _names(session, (visit.nurse_id, visit.pinned_nurse_id))
    done = {
        p.code: p
        for p in session.scalars(
            select(HomeVisitProcedure).where(HomeVisitProcedure.home_visit_id == visit.id)
        )
    }
    samples = session.scalars(
        select(HomeVisitSample)
        .where(HomeVisitSample.home_visit_id == visit.id)
        .order_by(HomeVisitSample.id)
    )
    address = queries.address(session, actor, visit, now)
    return {
        **_summary(visit, actor, names),
        "procedures": [
            {
                "code": item["code"],
                "label": item.get("label", item["code"]),
                "done": item["code"] in done,
                "done_at": done[item["code"]].done_at if item["code"] in done else None,
                "note": done[item["code"]].note if item["code"] in done else None,
            }
            for item in visit.procedures or []
        ],
        "vitals": dict(visit.vitals or {}),
        "findings_abnormal": visit.findings_abnormal,
        "notes": visit.notes if _reads_notes(actor, visit) else None,
        "samples": [
            {
                "id": sample.id,
                "barcode": sample.barcode,
                "kind": sample.kind,
                "collected_at": sample.collected_at,
                "handed_over_at": sample.handed_over_at,
                "courier": sample.courier,
                "courier_reference": sample.courier_reference,
            }
            for sample in samples
        ],
        "cancel_reason": visit.cancel_reason if _reads_reasons(actor) else None,
        "address": None
        if address is None
        else {
            "line1": address.line1,
            "line2": address.line2,
            "postal_code": address.postal_code,
            "city": address.city,
            "country": address.country,
            "latitude": address.latitude,
            "longitude": address.longitude,
            "access_notes": address.access_notes,
            "one_line": address.one_line,
            "directions_url": address.directions_url,
        },
    }


def _planned_day(outcome: dict[str, Any]) -> dict[str, Any]:
    # The run keeps its outcomes as JSON, the day as text; the answer gives a date.
    return {**outcome, "day": date.fromisoformat(outcome["day"])}


def _run_out(run: PlanRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "provider_id": run.provider_id,
        "first_day": run.first_day,
        "days": run.days,
        "requested_by_id": run.requested_by_id,
        "requested_at": run.requested_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "progress": run.progress,
        "summary": {"days": [_planned_day(d) for d in (run.summary or {}).get("days", [])]},
        "error": run.error,
    }


# --- the dispatcher's lists ----------------------------------------------------------------


@blp.route("")
class HomeVisits(MethodView):
    @blp.arguments(s.HomeVisitQuerySchema, location="query")
    @blp.response(200, s.HomeVisitSummarySchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[dict[str, Any]]:
        """The home visits the caller may see whose window overlaps the days asked, the
        planned ones first in time order, then the rest by the end of their window: site
        staff their sites', coordinators those of the sites their provider serves, a
        nurse her own, a trial manager their trials'. Never an address."""
        actor, session, now = api_actor(), _session(), utcnow()
        query = queries.visible_query(
            session, actor, now, first_day=args.get("first_day"), last_day=args.get("last_day"),
            statuses=args.get("status"), site_id=args.get("site_id"),
        )  # fmt: skip
        pagination_parameters.item_count = (
            session.scalar(select(func.count()).select_from(query.subquery())) or 0
        )
        page, size = pagination_parameters.page, pagination_parameters.page_size
        found = session.scalars(
            query.options(*_WITH)
            .order_by(*queries.LIST_ORDER)
            .offset((page - 1) * size)
            .limit(size)
        )
        return _summaries(session, actor, list(found))


@blp.route("/attention")
class Attention(MethodView):
    @blp.response(200, s.HomeVisitSummarySchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Open visits the planner could not place, each with its reason (`attention`),
        soonest deadline first."""
        actor, session, now = api_actor(), _session(), utcnow()
        return _summaries(session, actor, queries.needing_attention(session, actor, now))


@blp.route("/nurses")
class Nurses(MethodView):
    @blp.response(200, s.DispatchNurseSchema(many=True))
    @blp.alt_response(403, description=ONLY_DISPATCHERS)
    def get(self) -> list[dict[str, Any]]:
        """The active nurses the caller dispatches, by name: a coordinator her provider's,
        site staff those of the providers serving their sites. Never their home base."""
        actor, session = api_actor(), _session()
        policy.require_role(actor, *DISPATCHERS)
        found: list[NurseProfile] = queries.nurses_for(session, actor)
        return [
            {
                "id": p.user_id,
                "name": p.user.display_name,
                "provider_id": p.provider_id,
                "provider_name": p.provider.name,
                "skills": list(p.skills or []),
                "languages": list(p.languages or []),
            }
            for p in found
        ]


# --- planning runs -------------------------------------------------------------------------


@blp.route("/plan-runs")
class PlanRuns(MethodView):
    @blp.arguments(s.PlanRunCreateSchema)
    @blp.response(202, s.PlanRunSchema)
    @blp.alt_response(403, description=ONLY_DISPATCHERS)
    @blp.alt_response(422, description="Invalid input: a day that is over, or too many days")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Queue a planning run for the days asked; the scheduler runs it shortly (follow
        it with GET /plan-runs/{id}). A coordinator's run plans her provider's nurses
        only; site staff plan every provider serving their sites. Asking again while the
        same run waits returns that run."""
        actor, session, now = api_actor(), _session(), utcnow()
        provider_id = queries.dispatch_scope(session, actor)
        run = runs.queue(session, actor, now, body["first_day"], body["days"], provider_id)
        return _run_out(run)


@blp.route("/plan-runs/<int:run_id>")
class PlanRunDetail(MethodView):
    @blp.response(200, s.PlanRunSchema)
    @blp.alt_response(403, description=ONLY_DISPATCHERS)
    @blp.alt_response(404, description="No such planning run for the caller")
    def get(self, run_id: int) -> dict[str, Any]:
        """A planning run: its status, progress and, per day planned, what it changed. A
        coordinator sees her provider's runs only."""
        actor, session = api_actor(), _session()
        provider_id = queries.dispatch_scope(session, actor)
        run = session.get(PlanRun, run_id)
        if run is None or (provider_id is not None and run.provider_id != provider_id):
            raise NotFound(f"Planning run {run_id} was not found.")
        return _run_out(run)


# --- the nurse's day -----------------------------------------------------------------------


@blp.route("/mine")
class MyDay(MethodView):
    @blp.arguments(s.NurseDayQuerySchema, location="query")
    @blp.response(200, s.HomeVisitSummarySchema(many=True))
    @blp.alt_response(403, description=ONLY_NURSES)
    def get(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The nurse's visits of a day (her calendar; today by default), in route order.
        Without addresses: GET /{id} gives it near the day."""
        actor, session, now = api_actor(), _session(), utcnow()
        policy.require_role(actor, Role.NURSE)
        day = args.get("day") or to_local(now, actor.timezone).date()
        return _summaries(session, actor, queries.nurse_day(session, actor, day))


@blp.route("/mine/upcoming")
class MyUpcoming(MethodView):
    @blp.response(200, s.HomeVisitSummarySchema(many=True))
    @blp.alt_response(403, description=ONLY_NURSES)
    def get(self) -> list[dict[str, Any]]:
        """The nurse's visits still to do over the next two weeks, in time order."""
        actor, session, now = api_actor(), _session(), utcnow()
        policy.require_role(actor, Role.NURSE)
        return _summaries(session, actor, queries.nurse_upcoming(session, actor, now))


# --- one visit -----------------------------------------------------------------------------


@blp.route("/<int:visit_id>")
class HomeVisitDetail(MethodView):
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    def get(self, visit_id: int) -> dict[str, Any]:
        """One home visit: its plan, checklist, findings and samples, and the patient's
        address when the caller may see it now (null otherwise)."""
        actor, session, now = api_actor(), _session(), utcnow()
        return _detail(session, actor, _visit(visit_id, now), now)


@blp.route("/<int:visit_id>/accept")
class Accept(MethodView):
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="The visit is not assigned to her (`conflict`)")
    def post(self, visit_id: int) -> dict[str, Any]:
        """The nurse accepts the visit; accepting it again changes nothing."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = nurse_work.accept(session, actor, _visit(visit_id, now), now)
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/decline")
class Decline(MethodView):
    @blp.arguments(s.HomeVisitDeclineSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="The visit is not assigned or accepted (`conflict`)")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """The nurse declines the visit, with her reason: it goes back to the dispatcher and
        is never offered to her again. The answer is the visit as she leaves it."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = nurse_work.decline(session, actor, _visit(visit_id, now), body["reason"], now)
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/check-in")
class CheckIn(MethodView):
    @blp.arguments(s.HomeVisitLocationSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="The visit is not hers to start now (`conflict`)")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """The nurse arrives: the visit is in progress, with the time and, when sent, her
        location; the site and investigator responsible now are recorded."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = nurse_work.check_in(
            session, actor, _visit(visit_id, now), now, body["latitude"], body["longitude"]
        )
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/procedures")
class Procedures(MethodView):
    @blp.arguments(s.ProcedureTickSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="She has not checked in (`conflict`)")
    @blp.alt_response(422, description="Not on the visit's checklist")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """Tick a procedure of the checklist as done (once: a second tick changes
        nothing)."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = _visit(visit_id, now)
        nurse_work.tick(session, actor, visit, body["code"], now, note=body["note"])
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/findings")
class Findings(MethodView):
    @blp.arguments(s.HomeVisitFindingsSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="She has not checked in (`conflict`)")
    @blp.alt_response(422, description="An unknown vital sign, or a value out of range")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """Record vital signs (merged with those recorded before), notes, and whether the
        findings are abnormal; a vital sign outside its normal range flags them too."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = nurse_work.record_findings(
            session,
            actor,
            _visit(visit_id, now),
            now,
            vitals=body["vitals"],
            notes=body["notes"],
            abnormal=body["abnormal"],
        )
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/samples")
class Samples(MethodView):
    @blp.arguments(s.SampleCollectSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(
        409, description="She has not checked in, or the barcode is recorded (`conflict`)"
    )
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """Record a sample collected, by its tube's barcode: the start of its chain of
        custody."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = _visit(visit_id, now)
        nurse_work.collect_sample(session, actor, visit, body["barcode"], body["kind"], now)
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/hand-over")
class HandOver(MethodView):
    @blp.arguments(s.SampleHandOverSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="No sample is waiting for the courier (`conflict`)")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """Hand every sample not handed over yet to the courier, now."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = _visit(visit_id, now)
        nurse_work.hand_over(session, actor, visit, now, body["courier"], body["reference"])
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/check-out")
class CheckOut(MethodView):
    @blp.arguments(s.HomeVisitLocationSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_THE_NURSE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="She has not checked in (`conflict`)")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """The nurse leaves: the visit and its protocol visit are completed (a day outside
        the window is recorded as a protocol deviation the site sees). Again: no change."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = nurse_work.check_out(
            session, actor, _visit(visit_id, now), now, body["latitude"], body["longitude"]
        )
        return _detail(session, actor, visit, now)


# --- dispatching one visit -----------------------------------------------------------------


@blp.route("/<int:visit_id>/pin")
class Pin(MethodView):
    @blp.arguments(s.HomeVisitPinSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_A_DISPATCHER)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="The visit is in progress or over (`conflict`)")
    @blp.alt_response(422, description="Not an active nurse the caller dispatches")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """Pin the visit to a nurse (null: unpin it); the next planning run gives it to her
        or says in `attention` why it cannot."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = _visit(visit_id, now)
        # The caller's right to dispatch is judged before the nurse she names, so that a
        # nurse or trial manager learns nothing about which accounts exist.
        policy.authorize(actor, DISPATCH, visit, now=now)
        nurse = None
        if body["nurse_id"] is not None:
            nurse = session.get(User, body["nurse_id"])
            if nurse is None:
                raise ValidationFailed.on_field("nurse_id", "Not an active mobile nurse.")
        home_visits.pin(session, actor, visit, nurse, now)
        return _detail(session, actor, visit, now)


@blp.route("/<int:visit_id>/cancel")
class Cancel(MethodView):
    @blp.arguments(s.HomeVisitCancelSchema)
    @blp.response(200, s.HomeVisitSchema)
    @blp.alt_response(403, description=NOT_A_DISPATCHER)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="The visit is in progress or over already (`conflict`)")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """Cancel the visit, with a reason; its protocol visit can be booked otherwise, and
        the nurse who held it is told."""
        actor, session, now = api_actor(), _session(), utcnow()
        visit = _visit(visit_id, now)
        # `home_visits.cancel` trusts its caller to have checked the right to dispatch.
        policy.authorize(actor, DISPATCH, visit, now=now)
        home_visits.cancel(session, actor, visit, body["reason"], now)
        return _detail(session, actor, visit, now)
