"""The visits API under /api/v1/visits: planned visits and their free slots, televisit
bookings (book, move, cancel, and the visit record: start, complete, no-show), visits with
a local provider, unscheduled visit requests, the protocol visit schedule, and the hours
in which site staff can be booked.

Thin handlers: the rules live in the services (`planning`, `booking`, `record`,
`unscheduled`, `availability`); the request commits once at its end (db_session.py), so a
refusal raised anywhere leaves nothing half-written. Records outside the caller's scope
answer 404 (`policy.get_visible`); a visible record the caller may not change answers 403.

Who does what:
- patients: their own planned visits, slots and bookings; book, move and cancel them;
  join them near the time (GET /bookings/{id}/join); ask for an unscheduled visit;
- site staff and investigators: the visits of their sites' patients; book for them; run
  and record the visits; handle the sites' visit requests; hours (coordinators: everyone's
  at their sites and the sites' holidays; investigators: their own hours);
- trial managers: read the visits of their trials (never book or record them), and keep
  the protocol visit schedule of their trials.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from dct_platform import policy
from dct_platform.auth import api_actor
from dct_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.models import Patient, Site, Trial, User
from dct_platform.models.patients import PatientStatus
from dct_platform.models.users import SITE_ROLES
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from dct_platform.visits import (
    availability,
    booking,
    notifications,
    planning,
    record,
    unscheduled,
)
from dct_platform.visits import schemas as s
from dct_platform.visits import slots as slot_rules
from dct_platform.visits.models import (
    AvailabilityException,
    Booking,
    BookingStatus,
    PlannedStatus,
    PlannedVisit,
    ProtocolDeviation,
    RoomStatus,
    SiteHoliday,
    StaffAvailability,
    UnscheduledRequest,
    VisitDefinition,
)

blp = Blueprint(
    "visits_api",
    __name__,
    url_prefix="/api/v1/visits",
    description="Protocol visits: planned visits, televisit bookings, visit records, "
    "unscheduled visit requests, the visit schedule and staff availability",
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 80  # the column's width
# The bookings that hold a planned visit (models.HOLDS_VISIT).
HOLDING = (BookingStatus.BOOKED, BookingStatus.STARTED, BookingStatus.COMPLETED)
_CHUNK = 500
# The booking reads the patient (who may book, the site, the zone) right after the visit.
_WITH_PATIENT = (joinedload(PlannedVisit.patient),)

NOT_FOUND_VISIT = "No such planned visit for the caller"
NOT_FOUND_BOOKING = "No such booking for the caller"
NOT_FOUND_REQUEST = "No such visit request for the caller"
NOT_BOOKABLE = "The visit is not bookable now (`conflict`): completed or cancelled"
TAKEN = "The time is no longer free, or the visit is booked already (`conflict`)"
NOT_THE_SITE = "The caller is not staff of the patient's site (`forbidden`)"
NOT_THE_PATIENT_OR_SITE = (
    "Only the patient or the staff of the patient's site book and change bookings "
    "(`forbidden`): a trial manager reads them"
)


def _session() -> Session:
    return db.session()


def _min_notice() -> timedelta:
    return timedelta(minutes=current_app.config["VISIT_MIN_NOTICE_MINUTES"])


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for n in range(0, len(ids), _CHUNK):
        yield ids[n : n + _CHUNK]


def _names(session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(user_ids))
    found: dict[int, str] = {}
    for chunk in _chunks(wanted):
        found.update(
            (i, name)
            for i, name in session.execute(
                select(User.id, User.display_name).where(User.id.in_(chunk))
            )
        )
    return found


# --- how records are answered ------------------------------------------------------------


def _label(label: slot_rules.SlotLabel) -> dict[str, Any]:
    return {
        "zone": label.zone,
        "date": label.day,
        "starts": f"{label.starts:%H:%M}",
        "ends": f"{label.ends:%H:%M}",
        "abbreviation": label.abbreviation,
        "end_abbreviation": label.end_abbreviation,
        "text": str(label),
    }


def _local(starts_at: datetime, ends_at: datetime, zone: str) -> dict[str, Any]:
    return _label(slot_rules.local_label(slot_rules.Slot(starts_at, ends_at, 0), zone))


def _reads_free_text(actor: User) -> bool:
    """What patients write (a request's details) may name health details: the patient and
    their site read it; pseudonymous oversight roles (trial managers) do not."""
    return actor.role == Role.PATIENT or actor.role in SITE_ROLES


def _booking_out(
    found: Booking, actor: User, zone: str, names: dict[int, str] | None = None
) -> dict[str, Any]:
    staff_name = (names or {}).get(found.staff_id) or found.staff.display_name
    # Visit notes are clinical: the patient's site reads them, nobody else through here.
    site_reads = actor.role in SITE_ROLES and found.site_id in actor.site_ids
    return {
        "id": found.id,
        "planned_visit_id": found.planned_visit_id,
        "visit_name": found.planned_visit.name,
        "patient_id": found.patient_id,
        "site_id": found.site_id,
        "starts_at": found.starts_at,
        "ends_at": found.ends_at,
        "staff_id": found.staff_id,
        "staff_name": staff_name,
        "status": found.status,
        "room_status": found.room_status,
        "sequence": found.sequence,
        "started_at": found.started_at,
        "ended_at": found.ended_at,
        "location_type": found.location_type,
        "notes": found.notes if site_reads else None,
        "local": _local(found.starts_at, found.ends_at, zone),
    }


def _planned_out(session: Session, actor: User, visits: list[PlannedVisit]) -> list[dict[str, Any]]:
    """The visits with the booking that holds each and their deviations, in three queries
    whatever the number of visits."""
    ids = [v.id for v in visits]
    holding: dict[int, Booking] = {}
    deviations: dict[int, list[ProtocolDeviation]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        for found in session.scalars(
            select(Booking)
            .where(Booking.planned_visit_id.in_(chunk), Booking.status.in_(HOLDING))
            .order_by(Booking.id)
        ):
            holding[found.planned_visit_id] = found
        for deviation in session.scalars(
            select(ProtocolDeviation)
            .where(ProtocolDeviation.planned_visit_id.in_(chunk))
            .order_by(ProtocolDeviation.id)
        ):
            deviations[deviation.planned_visit_id].append(deviation)
    names = _names(session, (b.staff_id for b in holding.values()))
    answer = []
    for visit in visits:
        zone = visit.patient.timezone
        held = holding.get(visit.id)
        answer.append(
            {
                "id": visit.id,
                "patient_id": visit.patient_id,
                "subject_number": visit.patient.subject_number,
                "site_id": visit.site_id,
                "definition_id": visit.definition_id,
                "name": visit.name,
                "zone": zone,
                "target_date": visit.target_date,
                "window_first": visit.window_first,
                "window_last": visit.window_last,
                "modalities": list(visit.modalities),
                "duration_minutes": visit.duration_minutes,
                "staff_role": visit.staff_role,
                "status": visit.status,
                "modality": visit.modality,
                "done_at": visit.done_at,
                "out_of_window": visit.out_of_window,
                "unscheduled_reason": (
                    visit.unscheduled_reason if _reads_free_text(actor) else None
                ),
                "booking": _booking_out(held, actor, zone, names) if held else None,
                "deviations": deviations[visit.id],
            }
        )
    return answer


def _request_out(found: UnscheduledRequest, actor: User) -> dict[str, Any]:
    return {
        "id": found.id,
        "patient_id": found.patient_id,
        "subject_number": found.patient.subject_number,
        "site_id": found.site_id,
        "category": found.category,
        "details": found.details if _reads_free_text(actor) else None,
        "requested_at": found.requested_at,
        "status": found.status,
        "planned_visit_id": found.planned_visit_id,
        "handled_at": found.handled_at,
    }


# --- lookups -------------------------------------------------------------------------------


def _visit(visit_id: int) -> PlannedVisit:
    return policy.get_visible(_session(), api_actor(), PlannedVisit, visit_id)


def _booking(booking_id: int) -> Booking:
    return policy.get_visible(_session(), api_actor(), Booking, booking_id)


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        message = f"The {IDEMPOTENCY_HEADER} header is limited to {MAX_IDEMPOTENCY_KEY} characters."
        raise ValidationFailed(message, {"fields": {IDEMPOTENCY_HEADER: [message]}})
    return key or None


def _one_visit(session: Session, actor: User, visit: PlannedVisit) -> dict[str, Any]:
    return _planned_out(session, actor, [visit])[0]


# --- planned visits ------------------------------------------------------------------------


@blp.route("/planned")
class PlannedVisits(MethodView):
    @blp.arguments(s.PlannedVisitQuerySchema, location="query")
    @blp.response(200, s.PlannedVisitSchema(many=True))
    def get(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The planned visits the caller may see, by window: a patient their own, site staff
        their sites' patients', a trial manager their trials' (read only). Each with its
        window on the patient's calendar and the booking that holds it, if any (never the
        room's link: GET /bookings/{id}/join)."""
        actor, session = api_actor(), _session()
        query = (
            select(PlannedVisit)
            .where(policy.visible(actor, PlannedVisit, session=session))
            .options(selectinload(PlannedVisit.patient))
            .order_by(PlannedVisit.window_first, PlannedVisit.id)
        )
        if "patient_id" in args:
            query = query.where(PlannedVisit.patient_id == args["patient_id"])
        if "status" in args:
            query = query.where(PlannedVisit.status == args["status"])
        return _planned_out(session, actor, list(session.scalars(query)))


@blp.route("/planned/<int:visit_id>")
class PlannedVisitDetail(MethodView):
    @blp.response(200, s.PlannedVisitSchema)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    def get(self, visit_id: int) -> dict[str, Any]:
        """One planned visit, as in the list."""
        return _one_visit(_session(), api_actor(), _visit(visit_id))


@blp.route("/planned/<int:visit_id>/slots")
class Slots(MethodView):
    @blp.arguments(s.SlotQuerySchema, location="query")
    @blp.response(200, s.VisitSlotSchema(many=True))
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description=NOT_BOOKABLE)
    def get(self, args: dict[str, Any], visit_id: int) -> list[dict[str, Any]]:
        """Free televisit slots of the visit: inside its window (the patient's dates) and
        the hours of the staff who may run it (the site's zone), not taken, starting after
        the minimum notice. Each also on the patient's clock (`local`). For a booked visit:
        the times it can be moved to."""
        session, visit = _session(), _visit(visit_id)
        if visit.status in (PlannedStatus.COMPLETED, PlannedStatus.CANCELLED):
            raise Conflict(f"{visit.name} is {visit.status.value}; there is nothing to book.")
        moving = session.scalar(
            select(Booking).where(
                Booking.planned_visit_id == visit.id, Booking.status == BookingStatus.BOOKED
            )
        )
        found = booking.free_slots(
            session,
            visit,
            utcnow(),
            min_notice=_min_notice(),
            staff_ids=[args["staff_id"]] if "staff_id" in args else None,
            ignore=moving,
        )
        names = _names(session, (slot.staff_id for slot in found))
        zone = visit.patient.timezone
        return [
            {
                "starts_at": slot.starts_at,
                "ends_at": slot.ends_at,
                "staff_id": slot.staff_id,
                "staff_name": names.get(slot.staff_id, ""),
                "local": _label(slot_rules.local_label(slot, zone)),
            }
            for slot in found
        ]


@blp.route("/planned/<int:visit_id>/local-provider")
class LocalProviderVisit(MethodView):
    @blp.arguments(s.LocalProviderVisitSchema)
    @blp.response(200, s.PlannedVisitSchema)
    @blp.alt_response(403, description=NOT_THE_SITE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(409, description="The visit is completed or cancelled already")
    def post(self, body: dict[str, Any], visit_id: int) -> dict[str, Any]:
        """Site staff record a visit done by the patient's local healthcare provider, from
        the provider's report. A date outside the window is recorded all the same, flagged
        out of window with a protocol deviation."""
        actor, session = api_actor(), _session()
        visit = record.record_local_provider_visit(
            session,
            actor,
            _visit(visit_id),
            utcnow(),
            done_at=_utc(body["done_at"]),
            provider_name=body["provider_name"],
            provider_address=body["provider_address"],
            results=body["results"],
        )
        return _one_visit(session, actor, visit)


@blp.route("/deviations")
class Deviations(MethodView):
    @blp.arguments(s.DeviationQuerySchema, location="query")
    @blp.response(200, s.VisitDeviationSchema(many=True))
    def get(self, args: dict[str, Any]) -> list[ProtocolDeviation]:
        """Protocol deviations of visits the caller may see (a visit done outside its
        window), newest first."""
        actor, session = api_actor(), _session()
        query = (
            select(ProtocolDeviation)
            .where(policy.visible(actor, ProtocolDeviation, session=session))
            .order_by(ProtocolDeviation.occurred_at.desc(), ProtocolDeviation.id.desc())
        )
        if "patient_id" in args:
            query = query.where(ProtocolDeviation.patient_id == args["patient_id"])
        return list(session.scalars(query))


# --- bookings ------------------------------------------------------------------------------


@blp.route("/bookings")
class Bookings(MethodView):
    @blp.arguments(s.BookingCreateSchema)
    @blp.response(201, s.VisitBookingSchema)
    @blp.alt_response(
        200, schema=s.VisitBookingSchema, description="A retry with the same Idempotency-Key: "
        "the booking the first request made"
    )  # fmt: skip
    @blp.alt_response(403, description=NOT_THE_PATIENT_OR_SITE)
    @blp.alt_response(404, description=NOT_FOUND_VISIT)
    @blp.alt_response(
        409, description=TAKEN + "; or the Idempotency-Key was used for another visit"
    )
    @blp.alt_response(422, description="Invalid input: e.g. a time without its offset")
    @blp.doc(
        parameters=[
            {
                "in": "header",
                "name": IDEMPOTENCY_HEADER,
                "required": False,
                "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
                "description": "Your id for this booking: a retry with the same key gets "
                "the same booking (200) instead of a second one",
            }
        ]
    )
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Book a televisit: one of the free slots of the planned visit (GET
        /planned/{id}/slots). The patient books their own; the site's staff book for
        their patients. A time taken meanwhile is refused (409) with a message."""
        actor, session = api_actor(), _session()
        visit = policy.get_visible(
            session, actor, PlannedVisit, body["planned_visit_id"], load=_WITH_PATIENT
        )
        done = booking.book(
            session,
            actor,
            visit,
            body["staff_id"],
            _utc(body["starts_at"]),
            utcnow(),
            idempotency_key=_idempotency_key(),
            min_notice=_min_notice(),
        )
        if not done.created and done.booking.planned_visit_id != visit.id:
            raise Conflict(
                f"This {IDEMPOTENCY_HEADER} was used to book another visit; send a new key."
            )
        out = _booking_out(done.booking, actor, visit.patient.timezone)
        return out, (201 if done.created else 200)


@blp.route("/bookings/<int:booking_id>")
class BookingDetail(MethodView):
    @blp.response(200, s.VisitBookingSchema)
    @blp.alt_response(404, description=NOT_FOUND_BOOKING)
    def get(self, booking_id: int) -> dict[str, Any]:
        """One booking (without the room's link: GET /bookings/{id}/join)."""
        found = _booking(booking_id)
        return _booking_out(found, api_actor(), found.patient.timezone)


@blp.route("/bookings/<int:booking_id>/join")
class JoinLink(MethodView):
    @blp.response(200, s.JoinLinkSchema)
    @blp.alt_response(
        403, description="Only the patient and the staff member who runs the visit join it"
    )
    @blp.alt_response(404, description=NOT_FOUND_BOOKING)
    @blp.alt_response(
        409,
        description="Not available now (`conflict`): too early (`details.available_from` "
        "says when), the room is not ready yet, or the visit is over or cancelled",
    )
    def get(self, booking_id: int) -> dict[str, Any]:
        """The video room's link, for the patient and the staff member who runs the visit,
        from shortly before its start until shortly after its end; otherwise a refusal
        saying when the link will be available."""
        found, actor, now = _booking(booking_id), api_actor(), utcnow()
        url = notifications.join_link(found, actor, now)
        if url:
            return {"url": url}
        state = notifications.join_state(found, actor, now)
        if state == "not_yours":
            raise Forbidden(
                f"Only the patient and {found.staff.display_name}, who runs the visit, "
                "get the link to join it."
            )
        if state == "too_early":
            lead = notifications.join_opens_before()
            opens = found.starts_at - lead
            minutes = int(lead.total_seconds() // 60)
            raise Conflict(
                f"The link is available from {utc_to_local(opens, actor.timezone)}, "
                f"{minutes} minutes before the visit.",
                {"available_from": opens.isoformat()},
            )
        if state == "cancelled":
            raise Conflict("This visit is cancelled; there is nothing to join.")
        if state == "over":
            raise Conflict("This visit is over; its link is no longer available.")
        if found.room_status == RoomStatus.FAILED:
            raise Conflict(
                "The video room could not be created; the site has been told and can retry. "
                "The link is available once the room is ready."
            )
        raise Conflict("The video room is not ready yet; the link is available once it is.")


@blp.route("/bookings/<int:booking_id>/reschedule")
class Reschedule(MethodView):
    @blp.arguments(s.RescheduleSchema)
    @blp.response(200, s.VisitBookingSchema)
    @blp.alt_response(403, description=NOT_THE_PATIENT_OR_SITE)
    @blp.alt_response(404, description=NOT_FOUND_BOOKING)
    @blp.alt_response(409, description=TAKEN + "; or the visit is no longer booked")
    def post(self, body: dict[str, Any], booking_id: int) -> dict[str, Any]:
        """Move a booked visit to another free slot, with a reason (kept in the audit
        trail). The calendar invitation's sequence goes up."""
        actor, session = api_actor(), _session()
        moved = booking.reschedule(
            session,
            actor,
            _booking(booking_id),
            body["staff_id"],
            _utc(body["starts_at"]),
            body["reason"],
            utcnow(),
            min_notice=_min_notice(),
        )
        return _booking_out(moved, actor, moved.patient.timezone)


@blp.route("/bookings/<int:booking_id>/cancel")
class Cancel(MethodView):
    @blp.arguments(s.VisitReasonSchema)
    @blp.response(200, s.VisitBookingSchema)
    @blp.alt_response(403, description=NOT_THE_PATIENT_OR_SITE)
    @blp.alt_response(404, description=NOT_FOUND_BOOKING)
    @blp.alt_response(409, description="The visit is no longer booked (`conflict`)")
    def post(self, body: dict[str, Any], booking_id: int) -> dict[str, Any]:
        """Cancel a booked visit, with a reason; the planned visit can be booked again."""
        actor, session = api_actor(), _session()
        done = booking.cancel(session, actor, _booking(booking_id), body["reason"], utcnow())
        return _booking_out(done, actor, done.patient.timezone)


@blp.route("/bookings/<int:booking_id>/start")
class StartVisit(MethodView):
    @blp.response(200, s.VisitBookingSchema)
    @blp.alt_response(403, description=NOT_THE_SITE)
    @blp.alt_response(404, description=NOT_FOUND_BOOKING)
    @blp.alt_response(
        409, description="Not booked, or it starts more than an hour from now (`conflict`)"
    )
    def post(self, booking_id: int) -> dict[str, Any]:
        """Site staff start the visit (from an hour before its time); they are recorded
        as who ran it, with the investigator responsible at that time."""
        actor, session = api_actor(), _session()
        done = record.start(session, actor, _booking(booking_id), utcnow())
        return _booking_out(done, actor, done.patient.timezone)


@blp.route("/bookings/<int:booking_id>/complete")
class CompleteVisit(MethodView):
    @blp.arguments(s.CompleteVisitSchema)
    @blp.response(200, s.VisitBookingSchema)
    @blp.alt_response(403, description=NOT_THE_SITE)
    @blp.alt_response(404, description=NOT_FOUND_BOOKING)
    @blp.alt_response(409, description="Not booked or started, or not begun yet (`conflict`)")
    def post(self, body: dict[str, Any], booking_id: int) -> dict[str, Any]:
        """Site staff complete the visit with its notes; the planned visit is completed
        (flagged out of window, with a protocol deviation, when done outside it)."""
        actor, session = api_actor(), _session()
        done = record.complete(
            session,
            actor,
            _booking(booking_id),
            utcnow(),
            notes=body["notes"],
            location_type=body["location_type"],
        )
        return _booking_out(done, actor, done.patient.timezone)


@blp.route("/bookings/<int:booking_id>/no-show")
class NoShow(MethodView):
    @blp.arguments(s.NoShowSchema)
    @blp.response(200, s.VisitBookingSchema)
    @blp.alt_response(403, description=NOT_THE_SITE)
    @blp.alt_response(404, description=NOT_FOUND_BOOKING)
    @blp.alt_response(409, description="Not booked or started, or not due yet (`conflict`)")
    def post(self, body: dict[str, Any], booking_id: int) -> dict[str, Any]:
        """Site staff record that the patient did not join; the planned visit can be
        booked again while its window lasts (the time stays taken)."""
        actor, session = api_actor(), _session()
        done = record.no_show(session, actor, _booking(booking_id), utcnow(), notes=body["notes"])
        return _booking_out(done, actor, done.patient.timezone)


# --- unscheduled visit requests ------------------------------------------------------------


@blp.route("/requests")
class VisitRequests(MethodView):
    @blp.arguments(s.VisitRequestCreateSchema)
    @blp.response(201, s.VisitRequestSchema)
    @blp.alt_response(403, description="Only a patient asks for a visit (`forbidden`)")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """The patient asks for a visit outside the schedule; the request goes to the
        queue of the site responsible for them now."""
        actor, session = api_actor(), _session()
        if actor.role != Role.PATIENT:
            raise Forbidden("Only a patient asks for a visit of their own.")
        patient = session.scalar(select(Patient).where(Patient.user_id == actor.id))
        if patient is None:
            raise Forbidden("No study record is linked to this account.")
        made = unscheduled.request_visit(
            session, actor, patient, utcnow(), category=body["category"], details=body["details"]
        )
        return _request_out(made, actor)

    @blp.arguments(s.VisitRequestQuerySchema, location="query")
    @blp.response(200, s.VisitRequestSchema(many=True))
    def get(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Visit requests the caller may see, oldest first: site staff the queue of their
        sites' patients (`?status=open`), a patient their own."""
        actor, session = api_actor(), _session()
        query = (
            select(UnscheduledRequest)
            .where(policy.visible(actor, UnscheduledRequest, session=session))
            .options(selectinload(UnscheduledRequest.patient))
            .order_by(UnscheduledRequest.requested_at, UnscheduledRequest.id)
        )
        if "status" in args:
            query = query.where(UnscheduledRequest.status == args["status"])
        if "site_id" in args:
            query = query.where(UnscheduledRequest.site_id == args["site_id"])
        return [_request_out(r, actor) for r in session.scalars(query)]


def _request(request_id: int) -> UnscheduledRequest:
    return policy.get_visible(_session(), api_actor(), UnscheduledRequest, request_id)


@blp.route("/requests/<int:request_id>/plan")
class PlanRequest(MethodView):
    @blp.arguments(s.PlanRequestSchema)
    @blp.response(201, s.PlannedVisitSchema)
    @blp.alt_response(403, description="Only the staff of the patient's site (`forbidden`)")
    @blp.alt_response(404, description=NOT_FOUND_REQUEST)
    @blp.alt_response(409, description="The request is handled already (`conflict`)")
    def post(self, body: dict[str, Any], request_id: int) -> dict[str, Any]:
        """Plan an unscheduled visit for the request, in a window of the patient's dates;
        the patient then books it like any other."""
        actor, session = api_actor(), _session()
        visit = unscheduled.plan_for_request(
            session,
            actor,
            _request(request_id),
            utcnow(),
            first_day=body["first_day"],
            last_day=body["last_day"],
            duration_minutes=body["duration_minutes"],
            modalities=body["modalities"],
            staff_role=body["staff_role"],
        )
        return _one_visit(session, actor, visit)


@blp.route("/requests/<int:request_id>/close")
class CloseRequest(MethodView):
    @blp.arguments(s.VisitReasonSchema)
    @blp.response(200, s.VisitRequestSchema)
    @blp.alt_response(403, description="Only the staff of the patient's site (`forbidden`)")
    @blp.alt_response(404, description=NOT_FOUND_REQUEST)
    @blp.alt_response(409, description="The request is handled already (`conflict`)")
    def post(self, body: dict[str, Any], request_id: int) -> dict[str, Any]:
        """Close the request without a visit (answered by phone, say), with the reason."""
        actor, session = api_actor(), _session()
        done = unscheduled.close_request(
            session, actor, _request(request_id), utcnow(), reason=body["reason"]
        )
        return _request_out(done, actor)


# --- the protocol visit schedule -----------------------------------------------------------


@blp.route("/definitions")
class Definitions(MethodView):
    @blp.arguments(s.DefinitionQuerySchema, location="query")
    @blp.response(200, s.VisitDefinitionSchema(many=True))
    @blp.alt_response(403, description="Patients read their planned visits instead")
    def get(self, args: dict[str, Any]) -> list[VisitDefinition]:
        """The protocol visits of the trials the caller may see (trial managers theirs,
        site staff their sites' trials)."""
        actor, session = api_actor(), _session()
        policy.require_role(actor, Role.TRIAL_MANAGER, Role.ADMIN, *SITE_ROLES)
        trials = select(Trial.id).where(policy.visible(actor, Trial, session=session))
        query = (
            select(VisitDefinition)
            .where(VisitDefinition.trial_id.in_(trials))
            .order_by(VisitDefinition.trial_id, VisitDefinition.target_day, VisitDefinition.code)
        )
        if "trial_id" in args:
            query = query.where(VisitDefinition.trial_id == args["trial_id"])
        return list(session.scalars(query))

    @blp.arguments(s.VisitDefinitionCreateSchema)
    @blp.response(201, s.VisitDefinitionSchema)
    @blp.alt_response(403, description="Only the trial's managers keep its visit schedule")
    @blp.alt_response(404, description="No such trial for the caller")
    def post(self, body: dict[str, Any]) -> VisitDefinition:
        """Add a visit to the trial's protocol schedule. Enrolled patients with a baseline
        date get it planned at once (and later ones by the hourly planning job)."""
        actor, session, now = api_actor(), _session(), utcnow()
        policy.require_role(actor, Role.TRIAL_MANAGER)
        trial = policy.get_visible(session, actor, Trial, body.pop("trial_id"))
        definition = planning.add_definition(session, actor, now, trial=trial, **body)
        for patient in session.scalars(
            select(Patient)
            .where(
                Patient.trial_id == trial.id,
                Patient.status == PatientStatus.ENROLLED,
                Patient.baseline_date.is_not(None),
            )
            .order_by(Patient.id)
        ):
            planning.plan_patient(session, patient, now, actor=actor)
        return definition


# --- staff availability --------------------------------------------------------------------


def _staff_reader() -> User:
    actor = api_actor()
    policy.require_role(actor, Role.TRIAL_MANAGER, Role.ADMIN, *SITE_ROLES)
    return actor


def _visible_sites(actor: User, session: Session) -> Any:
    return select(Site.id).where(policy.visible(actor, Site, session=session))


def _site(site_id: int) -> Site:
    return policy.get_visible(_session(), api_actor(), Site, site_id)


def _at_visible_site(model: Any, ident: int, what: str) -> Any:
    """A row of `model` (with a site_id) at a site the caller sees, or 404."""
    actor, session = api_actor(), _session()
    found = session.scalar(
        select(model).where(model.id == ident, model.site_id.in_(_visible_sites(actor, session)))
    )
    if found is None:
        raise NotFound(f"{what} {ident} was not found.")
    return found


MANAGE_HOURS = "Coordinators manage their sites' members' hours, investigators their own"


@blp.route("/availability")
class WeeklyHours(MethodView):
    @blp.arguments(s.AvailabilityQuerySchema, location="query")
    @blp.response(200, s.WeeklyHoursSchema(many=True))
    @blp.alt_response(403, description="Patients see free slots instead")
    def get(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Weekly hours of staff at the sites the caller sees, local times of each site."""
        actor, session = _staff_reader(), _session()
        query = (
            select(StaffAvailability, User.display_name)
            .join(User, User.id == StaffAvailability.user_id)
            .where(StaffAvailability.site_id.in_(_visible_sites(actor, session)))
            .order_by(
                StaffAvailability.site_id,
                StaffAvailability.user_id,
                StaffAvailability.weekday,
                StaffAvailability.start_time,
            )
        )
        if "site_id" in args:
            query = query.where(StaffAvailability.site_id == args["site_id"])
        if "user_id" in args:
            query = query.where(StaffAvailability.user_id == args["user_id"])
        return [{**_columns(row), "staff_name": name} for row, name in session.execute(query)]

    @blp.arguments(s.WeeklyHoursCreateSchema)
    @blp.response(201, s.WeeklyHoursSchema)
    @blp.alt_response(403, description=MANAGE_HOURS)
    @blp.alt_response(404, description="No such site for the caller")
    @blp.alt_response(409, description="The hours overlap hours of that day (`conflict`)")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add weekly hours of a staff member at a site (local times of the site; an end
        at or before the start runs past midnight). Slots follow at once."""
        actor, session = api_actor(), _session()
        row = availability.add_weekly_hours(
            session,
            actor,
            utcnow(),
            site=_site(body["site_id"]),
            user_id=body["user_id"],
            weekday=body["weekday"],
            start_time=body["start_time"],
            end_time=body["end_time"],
        )
        return {**_columns(row), "staff_name": row.user.display_name}


@blp.route("/availability/<int:hours_id>")
class WeeklyHoursDetail(MethodView):
    @blp.response(204)
    @blp.alt_response(403, description=MANAGE_HOURS)
    @blp.alt_response(404, description="No such hours at a site of the caller")
    def delete(self, hours_id: int) -> None:
        """Remove weekly hours. Visits booked in them stay booked."""
        row = _at_visible_site(StaffAvailability, hours_id, "Weekly hours")
        availability.remove_weekly_hours(_session(), api_actor(), utcnow(), row)


@blp.route("/availability/exceptions")
class Exceptions(MethodView):
    @blp.arguments(s.ExceptionQuerySchema, location="query")
    @blp.response(200, s.AvailabilityExceptionSchema(many=True))
    @blp.alt_response(403, description="Patients see free slots instead")
    def get(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Days off, hours off and extra hours of staff at the sites the caller sees."""
        actor, session = _staff_reader(), _session()
        query = (
            select(AvailabilityException, User.display_name)
            .join(User, User.id == AvailabilityException.user_id)
            .where(AvailabilityException.site_id.in_(_visible_sites(actor, session)))
            .order_by(AvailabilityException.day, AvailabilityException.id)
        )
        if "site_id" in args:
            query = query.where(AvailabilityException.site_id == args["site_id"])
        if "user_id" in args:
            query = query.where(AvailabilityException.user_id == args["user_id"])
        if "since" in args:
            query = query.where(AvailabilityException.day >= args["since"])
        return [{**_columns(row), "staff_name": name} for row, name in session.execute(query)]

    @blp.arguments(s.AvailabilityExceptionCreateSchema)
    @blp.response(201, s.AvailabilityExceptionSchema)
    @blp.alt_response(403, description=MANAGE_HOURS)
    @blp.alt_response(404, description="No such site for the caller")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """A day off (available false, no times), hours off (false, with times) or extra
        hours (true, with times) of a staff member on one local date of the site."""
        actor, session = api_actor(), _session()
        row = availability.add_exception(
            session,
            actor,
            utcnow(),
            site=_site(body["site_id"]),
            user_id=body["user_id"],
            day=body["day"],
            available=body["available"],
            start_time=body["start_time"],
            end_time=body["end_time"],
            note=body["note"],
        )
        return {**_columns(row), "staff_name": _names(session, [row.user_id])[row.user_id]}


@blp.route("/availability/exceptions/<int:exception_id>")
class ExceptionDetail(MethodView):
    @blp.response(204)
    @blp.alt_response(403, description=MANAGE_HOURS)
    @blp.alt_response(404, description="No such exception at a site of the caller")
    def delete(self, exception_id: int) -> None:
        """Remove an availability exception."""
        row = _at_visible_site(AvailabilityException, exception_id, "Availability exception")
        availability.remove_exception(_session(), api_actor(), utcnow(), row)


@blp.route("/holidays")
class Holidays(MethodView):
    @blp.arguments(s.HolidayQuerySchema, location="query")
    @blp.response(200, s.HolidaySchema(many=True))
    @blp.alt_response(403, description="Patients see free slots instead")
    def get(self, args: dict[str, Any]) -> list[SiteHoliday]:
        """Holidays of the sites the caller sees: nobody's weekly hours apply that day."""
        actor, session = _staff_reader(), _session()
        query = (
            select(SiteHoliday)
            .where(SiteHoliday.site_id.in_(_visible_sites(actor, session)))
            .order_by(SiteHoliday.day, SiteHoliday.site_id)
        )
        if "site_id" in args:
            query = query.where(SiteHoliday.site_id == args["site_id"])
        if "since" in args:
            query = query.where(SiteHoliday.day >= args["since"])
        return list(session.scalars(query))

    @blp.arguments(s.HolidayCreateSchema)
    @blp.response(201, s.HolidaySchema)
    @blp.alt_response(403, description="Only the site's coordinators (`forbidden`)")
    @blp.alt_response(404, description="No such site for the caller")
    @blp.alt_response(409, description="The day is a holiday of the site already (`conflict`)")
    def post(self, body: dict[str, Any]) -> SiteHoliday:
        """Add a holiday of the site (a local date of the site)."""
        return availability.add_holiday(
            _session(),
            api_actor(),
            utcnow(),
            site=_site(body["site_id"]),
            day=body["day"],
            name=body["name"],
        )


@blp.route("/holidays/<int:holiday_id>")
class HolidayDetail(MethodView):
    @blp.response(204)
    @blp.alt_response(403, description="Only the site's coordinators (`forbidden`)")
    @blp.alt_response(404, description="No such holiday at a site of the caller")
    def delete(self, holiday_id: int) -> None:
        """Remove a holiday of the site."""
        row = _at_visible_site(SiteHoliday, holiday_id, "Holiday")
        availability.remove_holiday(_session(), api_actor(), utcnow(), row)


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}
