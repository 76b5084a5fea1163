"""The televisit pages of site staff and investigators (trial managers read them):

* `/visits/calendar`: the reader's bookings, or all of their sites', as a day list or a
  week grid, on the reader's clock;
* `/visits/bookings/<id>`: one visit and its record, with Start, Complete and No-show;
* `/visits/queue`: the sites' open visit requests (plan a visit, or close with a reason),
  visits done out of their window, and bookings whose video room is not ready;
* `/visits/patients/<id>`: a patient's planned visits, with booking, moving and
  cancelling on the patient's behalf and a visit with the local provider;
* `/visits/availability`: the reader's weekly hours, exceptions and the site's holidays.

The pages only read and present: what may be seen is `policy.visible` (another site's
records are 404), and every change is a service call (booking.py, record.py,
unscheduled.py, notifications.py, availability.py) that checks its rules and writes the
audit trail. A refused form shows the page again with the service's messages and its
status (422, 409); nothing of it is stored, as the request's transaction rolls back.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import DomainError, NotFound
from dct_platform.extensions import db
from dct_platform.localtime import local_to_utc, parse_clock_time, utc_to_local
from dct_platform.models import Patient, RemoteActivity, Site, SiteMembership, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.navigation import add_nav_item
from dct_platform.panels import add_panel
from dct_platform.roles import Role, role_label
from dct_platform.timeutil import utcnow
from dct_platform.visits import availability, notifications, record, unscheduled
from dct_platform.visits import booking as booking_service
from dct_platform.visits.booking import TELEVISIT
from dct_platform.visits.models import (
    AvailabilityException,
    Booking,
    BookingStatus,
    Modality,
    PlannedStatus,
    PlannedVisit,
    ProtocolDeviation,
    RequestStatus,
    RoomStatus,
    SiteHoliday,
    StaffAvailability,
    UnscheduledRequest,
)
from dct_platform.visits.slots import Slot
from dct_platform.web.guards import roles_required
from dct_platform.web.refusal import Refusal, refused

bp = Blueprint(
    "visit_pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/visits/static",
)

# Site staff and investigators work here; the trial manager reads (no form is shown to
# them, and every POST is for the site roles only).
READERS = (*SITE_ROLES, Role.TRIAL_MANAGER)
WORKERS = tuple(SITE_ROLES)

STATUS_LABELS = {
    BookingStatus.BOOKED: "booked",
    BookingStatus.STARTED: "started",
    BookingStatus.COMPLETED: "completed",
    BookingStatus.NO_SHOW: "no-show",
    BookingStatus.CANCELLED: "cancelled",
}
PLANNED_LABELS = {
    PlannedStatus.PLANNED: "not booked yet",
    PlannedStatus.BOOKED: "booked",
    PlannedStatus.COMPLETED: "done",
    PlannedStatus.MISSED: "missed (window over)",
    PlannedStatus.CANCELLED: "cancelled",
}
ROOM_LABELS = {
    RoomStatus.READY: "room ready",
    RoomStatus.PENDING: "room pending",
    RoomStatus.FAILED: "room failed",
}
MODALITY_LABELS = {
    Modality.TELEHEALTH: "Video (telehealth)",
    Modality.HOME_NURSE: "Home nurse",
    Modality.LOCAL_PROVIDER: "Local healthcare provider",
    Modality.ON_SITE: "At the site",
}
VIEWS = {"day": "Day", "week": "Week"}
LIVE = (BookingStatus.BOOKED, BookingStatus.STARTED)
HOLDS_VISIT = (BookingStatus.BOOKED, BookingStatus.STARTED, BookingStatus.COMPLETED)
_DAY = timedelta(days=1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Dates a page accepts: far enough either way for any trial, and never near the limits of
# `date`, where a week's arithmetic would overflow.
_FIRST_DATE, _LAST_DATE = date(2000, 1, 1), date(2099, 12, 31)
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,80}$")
MAX_FIELD = 10_000  # longer text is refused before it reaches a service


# --- small helpers ----------------------------------------------------------------------


def _session() -> Session:
    return db.session()


def _may_work(site_id: int) -> bool:
    """The reader may change this site's visits (the trial manager only reads)."""
    return current_user.role in SITE_ROLES and site_id in current_user.site_ids


def _day_text(day: date) -> str:
    return day.strftime("%a %d %b %Y")


def _clock_span(starts: datetime, ends: datetime, zone: str) -> str:
    """The times "10:00-10:30 CET" on a clock in `zone` (each end with its own abbreviation across
    a change, and the end's date when it falls on the next day)."""
    a, b = utc_to_local(starts, zone), utc_to_local(ends, zone)
    end = f"{b.time:%H:%M}"
    if b.date != a.date:
        end = f"{_day_text(b.date)} {end}"
    if a.abbreviation != b.abbreviation:
        return f"{a.time:%H:%M} {a.abbreviation}-{end} {b.abbreviation}"
    return f"{a.time:%H:%M}-{end} {a.abbreviation}"


def _when(starts: datetime, ends: datetime, zone: str) -> str:
    """The date and the times on a clock in `zone`: "Tue 10 Mar 2026, 10:00-10:30 CET"."""
    return f"{_day_text(utc_to_local(starts, zone).date)}, {_clock_span(starts, ends, zone)}"


def _instant(at: datetime | None, zone: str) -> str:
    if at is None:
        return ""
    local = utc_to_local(at, zone)
    return f"{_day_text(local.date)} {local.time:%H:%M} {local.abbreviation}"


def _parse_date(raw: str | None, what: str, errors: list[str]) -> date | None:
    """A YYYY-MM-DD date, or None with a message in `errors`."""
    text = (raw or "").strip()
    if not _DATE.match(text):
        errors.append(f"{what}: give a date as YYYY-MM-DD, e.g. 2026-03-10.")
        return None
    try:
        found = date.fromisoformat(text)
    except ValueError:
        errors.append(f"{what}: {text} is not a date of the calendar.")
        return None
    if not _FIRST_DATE <= found <= _LAST_DATE:
        errors.append(f"{what}: choose a date from {_FIRST_DATE} to {_LAST_DATE}.")
        return None
    return found


def _names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}


def _safe_next(default: str) -> str:
    """Back to the page the form was on, if it is one of these pages."""
    target = request.form.get("next", "")
    if target.startswith("/visits/") and "//" not in target and "\\" not in target:
        return target
    return default


def _field_errors(form: str, values: Mapping[str, str], problems: Mapping[str, str]) -> Refusal:
    return Refusal(form, dict(values), {k: [v] for k, v in problems.items()}, [])


# --- the calendar -----------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEntry:
    booking: Booking
    day: date  # on the reader's clock
    time: str  # "10:00-10:30 CET" on the reader's clock
    staff: str


@dataclass(frozen=True)
class CalendarArgs:
    view: str
    day: date
    staff: int | None  # None: everyone of the reader's sites
    first: date
    days: int

    def link(self, **changes: Any) -> str:
        args: dict[str, Any] = {
            "view": self.view,
            "date": self.day.isoformat(),
            "staff": "all" if self.staff is None else self.staff,
        }
        args.update(changes)
        return url_for("visit_pages.calendar", **args)


def _staff_choices(session: Session) -> list[tuple[int, str]]:
    """The site roles' members of the sites the reader sees, by name."""
    sites = select(Site.id).where(policy.visible(current_user, Site, session=session))
    rows = session.execute(
        select(User.id, User.display_name)
        .join(SiteMembership, SiteMembership.user_id == User.id)
        .where(SiteMembership.site_id.in_(sites), User.role.in_([str(r) for r in SITE_ROLES]))
        .distinct()
        .order_by(User.display_name, User.id)
    )
    return [(uid, name) for uid, name in rows]


def _calendar_args(today: date, staff: list[tuple[int, str]]) -> tuple[CalendarArgs, list[str]]:
    errors: list[str] = []
    view = request.args.get("view", "week")
    if view not in VIEWS:
        errors.append("View: choose the day or the week view.")
        view = "week"
    day = today
    if "date" in request.args:
        day = _parse_date(request.args["date"], "Date", errors) or today
    mine = current_user.role in SITE_ROLES
    default = str(current_user.id) if mine else "all"
    raw = request.args.get("staff", default)
    chosen: int | None = None
    if raw != "all":
        ids = {uid for uid, _ in staff}
        if raw.isascii() and raw.isdigit() and len(raw) < 12 and int(raw) in ids:
            chosen = int(raw)
        elif raw == default:  # the reader is not a member of any site: nothing is theirs
            chosen = current_user.id
        else:
            errors.append("Staff: choose someone of your site, or everyone.")
            chosen = current_user.id if mine else None
    first = day - timedelta(days=day.weekday()) if view == "week" else day
    return CalendarArgs(view, day, chosen, first, 7 if view == "week" else 1), errors


def _calendar_entries(
    session: Session, args: CalendarArgs, zone: str
) -> dict[date, list[CalendarEntry]]:
    start = local_to_utc(args.first, time(0), zone)
    end = local_to_utc(args.first + args.days * _DAY, time(0), zone)
    query = (
        select(Booking)
        .where(
            policy.visible(current_user, Booking, session=session),
            Booking.starts_at >= start,
            Booking.starts_at < end,
            Booking.status != BookingStatus.CANCELLED,
        )
        .options(
            joinedload(Booking.patient),
            joinedload(Booking.planned_visit),
            joinedload(Booking.staff),
        )
        .order_by(Booking.starts_at, Booking.id)
    )
    if args.staff is not None:
        query = query.where(Booking.staff_id == args.staff)
    found: dict[date, list[CalendarEntry]] = {args.first + n * _DAY: [] for n in range(args.days)}
    for row in session.scalars(query):
        day = utc_to_local(row.starts_at, zone).date
        entry = CalendarEntry(
            row, day, _clock_span(row.starts_at, row.ends_at, zone), row.staff.display_name
        )
        found.setdefault(day, []).append(entry)
    return found


@bp.get("/visits/calendar")
@roles_required(*READERS)
def calendar() -> tuple[str, int]:
    session, now, zone = _session(), utcnow(), current_user.timezone
    today = utc_to_local(now, zone).date
    staff = _staff_choices(session)
    args, errors = _calendar_args(today, staff)
    by_day = _calendar_entries(session, args, zone)
    days = list(by_day)
    rows = max((len(v) for v in by_day.values()), default=0)
    grid = [[by_day[d][i] if i < len(by_day[d]) else None for d in days] for i in range(rows)]
    step = 7 if args.view == "week" else 1
    return render_template(
        "visits/calendar.html",
        args=args,
        views=VIEWS,
        errors=errors,
        staff=staff,
        chosen_name=dict(staff).get(args.staff or 0, ""),
        days=days,
        by_day=by_day,
        grid=grid,
        count=sum(len(v) for v in by_day.values()),
        today=today,
        zone=zone,
        previous=args.link(date=(args.day - step * _DAY).isoformat()),
        following=args.link(date=(args.day + step * _DAY).isoformat()),
        this_period=args.link(date=today.isoformat()),
        status_labels=STATUS_LABELS,
        room_labels=ROOM_LABELS,
        may_work=_may_work,
        here=request.full_path.rstrip("?"),
    ), (422 if errors else 200)


# --- one visit --------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitRecord:
    """What the record of a visit done (or missed) says, as regulators ask for it."""

    site: str
    investigator: str
    run_by: str
    modality: str
    location: str
    started: str
    ended: str


def _record_of(session: Session, row: Booking, names: Mapping[int, str], zone: str) -> VisitRecord:
    activity = session.scalar(
        select(RemoteActivity).where(
            RemoteActivity.activity_type == TELEVISIT.name,
            RemoteActivity.record_table == Booking.__tablename__,
            RemoteActivity.record_id == str(row.id),
        )
    )
    site = session.get(Site, activity.site_id if activity else row.site_id)
    site_text = f"{site.site_number} · {site.name}" if site else "unknown"
    investigator = row.investigator_id or (activity.investigator_id if activity else None)
    if investigator is not None and investigator not in names:
        names = {**names, **_names(session, [investigator])}
    return VisitRecord(
        site=site_text,
        investigator=names.get(investigator, "none appointed")
        if investigator
        else "none appointed",
        run_by=names.get(row.run_by_id, "") if row.run_by_id else "",
        modality=MODALITY_LABELS[Modality.TELEHEALTH],
        location=record.LOCATION_TYPES.get(row.location_type or "", "")
        if row.status == BookingStatus.COMPLETED
        else "",
        started=_instant(row.started_at, zone),
        ended=_instant(row.ended_at, zone),
    )


@dataclass(frozen=True)
class Join:
    """The join link for the reader (only the assigned staff member, near the time), or
    what stands in the way, in words."""

    link: str | None
    note: str


def _join(row: Booking, now: datetime, staff_name: str) -> Join | None:
    if row.status not in LIVE:
        return None
    state = notifications.join_state(row, current_user, now)
    if state == "open":
        return Join(notifications.join_link(row, current_user, now), "")
    if state == "too_early":
        opens = row.starts_at - notifications.join_opens_before()
        return Join(
            None, f"The join link shows here from {_instant(opens, current_user.timezone)}."
        )
    if state == "room_pending":
        return Join(None, "The video room is not ready yet; the join link shows once it is.")
    if state == "not_yours":
        return Join(None, f"Only {staff_name}, who runs the visit, and the patient get the link.")
    return None


def _visit_page(row: Booking, refusal: Refusal | None = None, status: int = 200) -> tuple[str, int]:
    session, now, zone = _session(), utcnow(), current_user.timezone
    patient, visit = row.patient, row.planned_visit
    names = _names(session, [row.staff_id, row.run_by_id, row.investigator_id])
    deviations = list(
        session.scalars(
            select(ProtocolDeviation)
            .where(
                ProtocolDeviation.planned_visit_id == visit.id,
                policy.visible(current_user, ProtocolDeviation, session=session),
            )
            .order_by(ProtocolDeviation.recorded_at)
        )
    )
    done = row.status in (BookingStatus.COMPLETED, BookingStatus.NO_SHOW)
    works = _may_work(row.site_id)
    due = now >= row.starts_at
    return render_template(
        "visits/booking.html",
        row=row,
        patient=patient,
        visit=visit,
        staff_name=names.get(row.staff_id, ""),
        reader_time=_when(row.starts_at, row.ends_at, zone),
        reader_day=utc_to_local(row.starts_at, zone).date.isoformat(),
        patient_time=_when(row.starts_at, row.ends_at, patient.timezone),
        zone=zone,
        window=f"{_day_text(visit.window_first)} to {_day_text(visit.window_last)}",
        record=_record_of(session, row, names, zone) if done or row.started_at else None,
        deviations=deviations,
        join=_join(row, now, names.get(row.staff_id, "the assigned staff member")),
        may_start=works and row.status == BookingStatus.BOOKED,
        start_from=_instant(row.starts_at - record.EARLIEST_START, zone),
        may_start_now=now >= row.starts_at - record.EARLIEST_START,
        may_finish=works and row.status in LIVE and (due or row.status == BookingStatus.STARTED),
        may_retry=works and row.status in LIVE and row.room_status == RoomStatus.FAILED,
        works=works,
        due_at=_instant(row.starts_at, zone),
        location_types=record.LOCATION_TYPES,
        max_notes=record.MAX_NOTES,
        status_labels=STATUS_LABELS,
        room_labels=ROOM_LABELS,
        refusal=refusal or Refusal(),
    ), status


def _booking(booking_id: int, *, lock: bool = False) -> Booking:
    """The booking if the reader may see it (404 otherwise); locked for a change, so that
    two colleagues pressing the same button at once are served one after the other."""
    session = _session()
    query = select(Booking).where(
        Booking.id == booking_id, policy.visible(current_user, Booking, session=session)
    )
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise NotFound(f"Televisit {booking_id} was not found.")
    return found


@bp.get("/visits/bookings/<int:booking_id>")
@roles_required(*READERS)
def booking_page(booking_id: int) -> tuple[str, int]:
    return _visit_page(_booking(booking_id))


def _done(row: Booking, message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("visit_pages.booking_page", booking_id=row.id))


@bp.post("/visits/bookings/<int:booking_id>/start")
@roles_required(*WORKERS)
def start(booking_id: int) -> Response | tuple[str, int]:
    row = _booking(booking_id, lock=True)
    try:
        record.start(_session(), current_user, row, utcnow())
    except DomainError as exc:
        return _visit_page(row, refused("start", exc, {}, ()), exc.status)
    return _done(row, f"{row.planned_visit.name} of {row.patient.subject_number} started.")


@bp.post("/visits/bookings/<int:booking_id>/complete")
@roles_required(*WORKERS)
def complete(booking_id: int) -> Response | tuple[str, int]:
    row = _booking(booking_id, lock=True)
    values = {
        "notes": request.form.get("notes", ""),
        "location_type": request.form.get("location_type", ""),
    }
    if not values["location_type"]:
        problems = {"location_type": "Choose where the patient was."}
        return _visit_page(row, _field_errors("complete", values, problems), 422)
    try:
        record.complete(
            _session(),
            current_user,
            row,
            utcnow(),
            notes=values["notes"],
            location_type=values["location_type"],
        )
    except DomainError as exc:
        refusal = refused("complete", exc, values, ("notes", "location_type"))
        return _visit_page(row, refusal, exc.status)
    return _done(row, f"{row.planned_visit.name} of {row.patient.subject_number} completed.")


@bp.post("/visits/bookings/<int:booking_id>/no-show")
@roles_required(*WORKERS)
def no_show(booking_id: int) -> Response | tuple[str, int]:
    row = _booking(booking_id, lock=True)
    values = {"notes": request.form.get("notes", "")}
    if len(values["notes"]) > record.MAX_NOTES:
        problems = {"notes": f"Notes are limited to {record.MAX_NOTES} characters."}
        return _visit_page(row, _field_errors("no-show", values, problems), 422)
    try:
        record.no_show(_session(), current_user, row, utcnow(), notes=values["notes"])
    except DomainError as exc:
        return _visit_page(row, refused("no-show", exc, values, ("notes",)), exc.status)
    return _done(
        row,
        f"{row.patient.subject_number} did not join {row.planned_visit.name}: recorded as a "
        "no-show. The visit can be booked again while its window lasts.",
    )


@bp.post("/visits/bookings/<int:booking_id>/room")
@roles_required(*WORKERS)
def retry_room(booking_id: int) -> Response | tuple[str, int]:
    row = _booking(booking_id, lock=True)
    try:
        notifications.retry_room(_session(), row, utcnow(), actor=current_user)
    except DomainError as exc:
        return _visit_page(row, refused("room", exc, {}, ()), exc.status)
    flash(
        f"The video room of {row.patient.subject_number} is being made again; reload the "
        "page in a moment to see whether it is ready.",
        "success",
    )
    return redirect(_safe_next(url_for("visit_pages.booking_page", booking_id=row.id)))


# --- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviationRow:
    deviation: ProtocolDeviation
    subject: str
    visit: str
    occurred: str


def _deviations(session: Session, zone: str, limit: int = 50) -> list[DeviationRow]:
    rows = session.execute(
        select(ProtocolDeviation, Patient.subject_number, PlannedVisit.name)
        .join(Patient, Patient.id == ProtocolDeviation.patient_id)
        .join(PlannedVisit, PlannedVisit.id == ProtocolDeviation.planned_visit_id)
        .where(policy.visible(current_user, ProtocolDeviation, session=session))
        .order_by(ProtocolDeviation.recorded_at.desc(), ProtocolDeviation.id.desc())
        .limit(limit)
    )
    return [
        DeviationRow(d, subject, name, _instant(d.occurred_at, zone)) for d, subject, name in rows
    ]


def _room_problems(session: Session, now: datetime) -> list[Booking]:
    return list(
        session.scalars(
            select(Booking)
            .where(
                policy.visible(current_user, Booking, session=session),
                Booking.status.in_(LIVE),
                Booking.room_status != RoomStatus.READY,
                Booking.ends_at > now,
            )
            .options(joinedload(Booking.patient), joinedload(Booking.planned_visit))
            .order_by(Booking.starts_at, Booking.id)
        )
    )


def _patient_today(patient: Patient, now: datetime) -> date:
    return utc_to_local(now, patient.timezone).date


def _queue_page(refusal: Refusal | None = None, status: int = 200) -> tuple[str, int]:
    session, now, zone = _session(), utcnow(), current_user.timezone
    requests = list(
        session.scalars(
            select(UnscheduledRequest)
            .where(
                UnscheduledRequest.status == RequestStatus.OPEN,
                policy.visible(current_user, UnscheduledRequest, session=session),
            )
            .options(joinedload(UnscheduledRequest.patient))
            .order_by(UnscheduledRequest.requested_at, UnscheduledRequest.id)
        )
    )
    return render_template(
        "visits/queue.html",
        requests=requests,
        requested={r.id: _instant(r.requested_at, zone) for r in requests},
        today={r.id: _patient_today(r.patient, now) for r in requests},
        timedelta_week=7 * _DAY,
        deviations=_deviations(session, zone),
        rooms=[(b, _when(b.starts_at, b.ends_at, zone)) for b in _room_problems(session, now)],
        categories=unscheduled.CATEGORIES,
        modalities=MODALITY_LABELS,
        staff_roles=[(str(r), role_label(r)) for r in (Role.INVESTIGATOR, Role.SITE_STAFF)],
        room_labels=ROOM_LABELS,
        may_work=_may_work,
        zone=zone,
        refusal=refusal or Refusal(),
        here=url_for("visit_pages.queue"),
    ), status


@bp.get("/visits/queue")
@roles_required(*READERS)
def queue() -> tuple[str, int]:
    return _queue_page()


def _open_request(request_id: int) -> UnscheduledRequest:
    session = _session()
    found = session.scalar(
        select(UnscheduledRequest)
        .where(
            UnscheduledRequest.id == request_id,
            policy.visible(current_user, UnscheduledRequest, session=session),
        )
        .with_for_update()
    )
    if found is None:
        raise NotFound(f"Visit request {request_id} was not found.")
    return found


PLAN_FIELDS = ("first_day", "last_day", "duration_minutes", "modalities", "staff_role")


@bp.post("/visits/requests/<int:request_id>/plan")
@roles_required(*WORKERS)
def plan_request(request_id: int) -> Response | tuple[str, int]:
    found = _open_request(request_id)
    form = f"plan-{found.id}"
    chosen = request.form.getlist("modalities")
    values = {name: request.form.get(name, "").strip() for name in PLAN_FIELDS}
    values["modalities"] = ",".join(chosen)
    problems: dict[str, str] = {}
    days: dict[str, date | None] = {}
    for name, label in (("first_day", "First day"), ("last_day", "Last day")):
        errors: list[str] = []
        days[name] = _parse_date(values[name], label, errors)
        if errors:
            problems[name] = errors[0]
    duration = values["duration_minutes"]
    if not (duration.isascii() and duration.isdigit() and len(duration) <= 4):
        problems["duration_minutes"] = "Give the length in minutes, from 5 to 480."
    if not chosen:
        problems["modalities"] = "Choose at least one way the visit can be done."
    first, last = days["first_day"], days["last_day"]
    if problems or first is None or last is None:
        return _queue_page(_field_errors(form, values, problems), 422)
    try:
        visit = unscheduled.plan_for_request(
            _session(),
            current_user,
            found,
            utcnow(),
            first_day=first,
            last_day=last,
            duration_minutes=int(duration),
            modalities=chosen,
            staff_role=values["staff_role"] or Role.INVESTIGATOR,
        )
    except DomainError as exc:
        return _queue_page(refused(form, exc, values, PLAN_FIELDS), exc.status)
    flash(
        f"An unscheduled visit of {found.patient.subject_number} is planned from "
        f"{_day_text(visit.window_first)} to {_day_text(visit.window_last)}; it can be booked "
        "now.",
        "success",
    )
    return redirect(url_for("visit_pages.queue"))


@bp.post("/visits/requests/<int:request_id>/close")
@roles_required(*WORKERS)
def close_request(request_id: int) -> Response | tuple[str, int]:
    found = _open_request(request_id)
    form = f"close-{found.id}"
    values = {"reason": request.form.get("reason", "")}
    try:
        unscheduled.close_request(
            _session(), current_user, found, utcnow(), reason=values["reason"]
        )
    except DomainError as exc:
        return _queue_page(refused(form, exc, values, ("reason",)), exc.status)
    flash(f"The visit request of {found.patient.subject_number} is closed.", "success")
    return redirect(url_for("visit_pages.queue"))


# --- a patient's visits -------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRow:
    visit: PlannedVisit
    booking: Booking | None  # the booking that holds the visit (or the last one)
    when: str  # the booking's time on the reader's clock
    patient_when: str  # and on the patient's
    staff: str
    may_book: bool
    may_move: bool
    local_provider: bool  # a visit with the local provider can be recorded


def _patient(patient_id: int) -> Patient:
    return policy.get_visible(_session(), current_user, Patient, patient_id)


def _planned_rows(session: Session, patient: Patient) -> list[PlannedRow]:
    visits = list(
        session.scalars(
            select(PlannedVisit)
            .where(
                PlannedVisit.patient_id == patient.id,
                policy.visible(current_user, PlannedVisit, session=session),
            )
            .order_by(PlannedVisit.window_first, PlannedVisit.id)
        )
    )
    bookings: dict[int, Booking] = {}
    for row in session.scalars(
        select(Booking)
        .where(
            Booking.patient_id == patient.id,
            policy.visible(current_user, Booking, session=session),
        )
        .order_by(Booking.created_at, Booking.id)
    ):
        held = bookings.get(row.planned_visit_id)
        # The booking that holds the visit wins; otherwise the latest one.
        if held is None or held.status not in HOLDS_VISIT or row.status in HOLDS_VISIT:
            bookings[row.planned_visit_id] = row
    names = _names(session, [b.staff_id for b in bookings.values()])
    works = _may_work(patient.site_id)
    zone = current_user.timezone
    rows = []
    for visit in visits:
        held = bookings.get(visit.id)
        rows.append(
            PlannedRow(
                visit=visit,
                booking=held,
                when=_when(held.starts_at, held.ends_at, zone) if held else "",
                patient_when=_when(held.starts_at, held.ends_at, patient.timezone) if held else "",
                staff=names.get(held.staff_id, "") if held else "",
                may_book=works
                and visit.status == PlannedStatus.PLANNED
                and Modality.TELEHEALTH in visit.modalities,
                may_move=works and held is not None and held.status == BookingStatus.BOOKED,
                local_provider=works
                and Modality.LOCAL_PROVIDER in visit.modalities
                and visit.status not in (PlannedStatus.COMPLETED, PlannedStatus.CANCELLED),
            )
        )
    return rows


def _patient_page(
    patient: Patient, refusal: Refusal | None = None, status: int = 200
) -> tuple[str, int]:
    session, now = _session(), utcnow()
    today = _patient_today(patient, now)
    return render_template(
        "visits/patient.html",
        patient=patient,
        rows=_planned_rows(session, patient),
        works=_may_work(patient.site_id),
        zone=current_user.timezone,
        today=today,
        now_clock=utc_to_local(now, patient.timezone).time.strftime("%H:%M"),
        planned_labels=PLANNED_LABELS,
        status_labels=STATUS_LABELS,
        modalities=MODALITY_LABELS,
        refusal=refusal or Refusal(),
        max_reason=booking_service.MAX_REASON,
        max_results=record.MAX_NOTES,
    ), status


@bp.get("/visits/patients/<int:patient_id>")
@roles_required(*READERS)
def patient_visits(patient_id: int) -> tuple[str, int]:
    return _patient_page(_patient(patient_id))


@bp.post("/visits/bookings/<int:booking_id>/cancel")
@roles_required(*WORKERS)
def cancel(booking_id: int) -> Response | tuple[str, int]:
    row = _booking(booking_id, lock=True)
    values = {"reason": request.form.get("reason", "")}
    try:
        booking_service.cancel(_session(), current_user, row, values["reason"], utcnow())
    except DomainError as exc:
        refusal = refused(f"cancel-{row.id}", exc, values, ("reason",))
        return _patient_page(row.patient, refusal, exc.status)
    flash(
        f"{row.planned_visit.name} of {row.patient.subject_number} is cancelled; it can be "
        "booked again.",
        "success",
    )
    return redirect(url_for("visit_pages.patient_visits", patient_id=row.patient_id))


LOCAL_FIELDS = ("done_on", "done_time", "provider_name", "provider_address", "results")


@bp.post("/visits/planned/<int:visit_id>/local-provider")
@roles_required(*WORKERS)
def local_provider(visit_id: int) -> Response | tuple[str, int]:
    session = _session()
    visit = policy.get_visible(session, current_user, PlannedVisit, visit_id)
    patient = visit.patient
    form = f"local-{visit.id}"
    values = {name: request.form.get(name, "") for name in LOCAL_FIELDS}
    problems: dict[str, str] = {}
    errors: list[str] = []
    day = _parse_date(values["done_on"], "Date of the visit", errors)
    if errors:
        problems["done_on"] = errors[0]
    clock: time | None = None
    try:
        clock = parse_clock_time(values["done_time"])
    except ValueError:
        problems["done_time"] = "Give the time of the visit as HH:MM, e.g. 14:30."
    for name in ("provider_name", "provider_address", "results"):
        if len(values[name]) > MAX_FIELD:
            problems[name] = f"Keep it under {MAX_FIELD} characters."
    if problems or day is None or clock is None:
        return _patient_page(patient, _field_errors(form, values, problems), 422)
    try:
        record.record_local_provider_visit(
            session,
            current_user,
            visit,
            utcnow(),
            done_at=local_to_utc(day, clock, patient.timezone),
            provider_name=values["provider_name"],
            provider_address=values["provider_address"],
            results=values["results"],
        )
    except DomainError as exc:
        known = ("provider_name", "provider_address", "results", "done_at")
        refusal = refused(form, exc, values, known)
        # The service speaks of the instant; the form has a date and a time.
        if "done_at" in refusal.fields:
            refusal.fields["done_on"] = refusal.fields.pop("done_at")
        return _patient_page(patient, refusal, exc.status)
    flash(f"{visit.name} of {patient.subject_number} is recorded as done by {visit.provider_name}.",
          "success")  # fmt: skip
    return redirect(url_for("visit_pages.patient_visits", patient_id=patient.id))


# --- booking and moving on the patient's behalf -------------------------------------------


@dataclass(frozen=True)
class SlotChoice:
    value: str  # "<staff id>@<ISO start>"
    label: str  # on the patient's clock, with whom
    reader: str  # on the reader's clock, when it differs ("" otherwise)
    id: str


@dataclass(frozen=True)
class PickerDay:
    day: date
    free: int


def _slot_value(slot: Slot) -> str:
    return f"{slot.staff_id}@{slot.starts_at.isoformat()}"


def _read_slot(raw: str) -> tuple[int, datetime] | None:
    staff, _, starts = raw.partition("@")
    if not (staff.isascii() and staff.isdigit() and len(staff) < 12 and len(starts) < 40):
        return None
    try:
        at = datetime.fromisoformat(starts)
    except ValueError:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        return None
    return int(staff), at


def _picker(
    session: Session, visit: PlannedVisit, now: datetime, ignore: Booking | None
) -> tuple[list[PickerDay], dict[date, list[SlotChoice]]]:
    """The visit's free slots by day of the patient's window, on the patient's clock (and
    on the reader's, when the reader lives by another zone)."""
    zone, reader = visit.patient.timezone, current_user.timezone
    slots = booking_service.free_slots(session, visit, now, ignore=ignore)
    names = {u.id: u.display_name for u in booking_service.staff_for(session, visit)}
    by_day: dict[date, list[SlotChoice]] = {}
    day = visit.window_first
    while day <= visit.window_last:
        by_day[day] = []
        day += _DAY
    for n, slot in enumerate(slots):
        if ignore is not None and (slot.starts_at, slot.staff_id) == (
            ignore.starts_at,
            ignore.staff_id,
        ):
            continue  # moving a visit to the time it has is no move
        local = utc_to_local(slot.starts_at, zone).date
        who = names.get(slot.staff_id, "a member of the site")
        label = f"{_clock_span(slot.starts_at, slot.ends_at, zone)} with {who}"
        theirs = (
            "" if reader == zone else f"your time: {_when(slot.starts_at, slot.ends_at, reader)}"
        )
        by_day.setdefault(local, []).append(
            SlotChoice(_slot_value(slot), label, theirs, f"slot-{n}")
        )
    return [PickerDay(d, len(v)) for d, v in by_day.items()], by_day


def _chosen_day(days: list[PickerDay], errors: list[str]) -> date | None:
    raw = request.values.get("day")
    if raw:
        found = _parse_date(raw, "Day", errors)
        if found is not None and found not in {d.day for d in days}:
            errors.append("Day: choose a day of the visit's window.")
            found = None
        if found is not None:
            return found
    return next((d.day for d in days if d.free), None)


def _slot_page(
    template: str,
    visit: PlannedVisit,
    row: Booking | None,
    refusal: Refusal | None = None,
    status: int = 200,
    key: str | None = None,
) -> tuple[str, int]:
    session, now = _session(), utcnow()
    days, by_day = _picker(session, visit, now, row)
    errors: list[str] = []
    day = _chosen_day(days, errors)
    refusal = refusal or Refusal()
    if errors and not refusal:
        refusal = Refusal("slot", {}, {}, errors)
        status = 422
    if row is None:

        def day_url(d: date) -> str:
            return url_for(
                "visit_pages.book", patient_id=visit.patient_id, visit_id=visit.id, day=d
            )
    else:

        def day_url(d: date) -> str:
            return url_for("visit_pages.move", booking_id=row.id, day=d)

    return render_template(
        template,
        day_url=day_url,
        visit=visit,
        patient=visit.patient,
        row=row,
        days=days,
        day=day,
        choices=by_day.get(day, []) if day else [],
        current=_when(row.starts_at, row.ends_at, visit.patient.timezone) if row else "",
        zone=current_user.timezone,
        key=key or secrets.token_urlsafe(24),
        refusal=refusal,
        max_reason=booking_service.MAX_REASON,
    ), status


def _planned_visit(patient_id: int, visit_id: int) -> PlannedVisit:
    visit = policy.get_visible(_session(), current_user, PlannedVisit, visit_id)
    if visit.patient_id != patient_id:
        raise NotFound(f"PlannedVisit {visit_id} was not found.")
    return visit


def _slot_problem(raw: str) -> tuple[tuple[int, datetime] | None, dict[str, str]]:
    if not raw:
        return None, {"slot": "Choose a time."}
    chosen = _read_slot(raw)
    if chosen is None:
        return None, {"slot": "That time is not one of those offered; choose one from the list."}
    return chosen, {}


@bp.route("/visits/patients/<int:patient_id>/visits/<int:visit_id>/book", methods=["GET", "POST"])
@roles_required(*READERS)
def book(patient_id: int, visit_id: int) -> Response | tuple[str, int]:
    visit = _planned_visit(patient_id, visit_id)
    if request.method == "GET":
        return _slot_page("visits/book.html", visit, None)
    policy.require_role(current_user, *WORKERS)
    values = {"slot": request.form.get("slot", ""), "day": request.form.get("day", "")}
    key = request.form.get("idempotency_key", "")
    if not _KEY.match(key):
        refusal = Refusal("slot", values, {}, ["This form is out of date; choose the time again."])
        return _slot_page("visits/book.html", visit, None, refusal, 422)
    chosen, problems = _slot_problem(values["slot"])
    if chosen is None:
        refusal = _field_errors("slot", values, problems)
        return _slot_page("visits/book.html", visit, None, refusal, 422, key)
    try:
        done = booking_service.book(
            _session(), current_user, visit, chosen[0], chosen[1], utcnow(), idempotency_key=key
        )
    except DomainError as exc:
        refusal = refused("slot", exc, values, ("slot", "starts_at", "staff_id"))
        refusal.fields = (
            {"slot": [m for v in refusal.fields.values() for m in v]} if refusal.fields else {}
        )
        return _slot_page("visits/book.html", visit, None, refusal, exc.status, key)
    made = done.booking
    zone = visit.patient.timezone
    if done.created:
        flash(
            f"{visit.name} of {visit.patient.subject_number} is booked for "
            f"{_when(made.starts_at, made.ends_at, zone)} (the patient's time).",
            "success",
        )
    else:
        flash(f"{visit.name} was booked already by this form; nothing was changed.", "success")
    return redirect(url_for("visit_pages.patient_visits", patient_id=visit.patient_id))


@bp.route("/visits/bookings/<int:booking_id>/move", methods=["GET", "POST"])
@roles_required(*READERS)
def move(booking_id: int) -> Response | tuple[str, int]:
    if request.method == "GET":
        row = _booking(booking_id)
        return _slot_page("visits/move.html", row.planned_visit, row)
    policy.require_role(current_user, *WORKERS)
    row = _booking(booking_id, lock=True)
    visit = row.planned_visit
    values = {
        "slot": request.form.get("slot", ""),
        "day": request.form.get("day", ""),
        "reason": request.form.get("reason", ""),
    }
    chosen, problems = _slot_problem(values["slot"])
    if not values["reason"].strip():
        problems["reason"] = "Say why the visit moves."
    if chosen is None or problems:
        refusal = _field_errors("slot", values, problems)
        return _slot_page("visits/move.html", visit, row, refusal, 422)
    try:
        booking_service.reschedule(
            _session(), current_user, row, chosen[0], chosen[1], values["reason"], utcnow()
        )
    except DomainError as exc:
        refusal = refused("slot", exc, values, ("slot", "reason", "starts_at", "staff_id"))
        for other in ("starts_at", "staff_id"):
            if other in refusal.fields:
                refusal.fields.setdefault("slot", []).extend(refusal.fields.pop(other))
        return _slot_page("visits/move.html", visit, row, refusal, exc.status)
    flash(
        f"{visit.name} of {visit.patient.subject_number} moved to "
        f"{_when(row.starts_at, row.ends_at, visit.patient.timezone)} (the patient's time).",
        "success",
    )
    return redirect(url_for("visit_pages.patient_visits", patient_id=visit.patient_id))


# --- availability -----------------------------------------------------------------------

EXCEPTION_KINDS = {
    "off": "The whole day off",
    "hours_off": "Some hours off",
    "extra": "Extra hours",
}
HOURS_FIELDS = ("site_id", "weekday", "start_time", "end_time")
EXCEPTION_FIELDS = ("site_id", "day", "kind", "start_time", "end_time", "note")
HOLIDAY_FIELDS = ("site_id", "day", "name")


def _my_sites(session: Session) -> list[Site]:
    return list(
        session.scalars(
            select(Site)
            .where(Site.id.in_(current_user.site_ids))
            .order_by(Site.site_number, Site.id)
        )
    )


def _availability_page(refusal: Refusal | None = None, status: int = 200) -> tuple[str, int]:
    session, now = _session(), utcnow()
    sites = _my_sites(session)
    by_id = {s.id: s for s in sites}
    # "Upcoming" on the clock of each site: a day ago in UTC covers every zone.
    since = (now - _DAY).date()
    hours = list(
        session.scalars(
            select(StaffAvailability)
            .where(
                StaffAvailability.user_id == current_user.id,
                StaffAvailability.site_id.in_(by_id),
            )
            .order_by(
                StaffAvailability.site_id, StaffAvailability.weekday, StaffAvailability.start_time
            )
        )
    )
    exceptions = list(
        session.scalars(
            select(AvailabilityException)
            .where(
                AvailabilityException.user_id == current_user.id,
                AvailabilityException.site_id.in_(by_id),
                AvailabilityException.day >= since,
            )
            .order_by(AvailabilityException.day, AvailabilityException.start_time)
        )
    )
    holidays = list(
        session.scalars(
            select(SiteHoliday)
            .where(SiteHoliday.site_id.in_(by_id), SiteHoliday.day >= since)
            .order_by(SiteHoliday.day, SiteHoliday.site_id)
        )
    )
    return render_template(
        "visits/availability.html",
        sites=sites,
        by_id=by_id,
        hours=hours,
        exceptions=exceptions,
        holidays=holidays,
        weekdays=availability.WEEKDAYS,
        kinds=EXCEPTION_KINDS,
        may_holidays=current_user.role == Role.SITE_STAFF,
        refusal=refusal or Refusal(),
        max_note=availability.MAX_NOTE,
        max_name=availability.MAX_HOLIDAY_NAME,
    ), status


def _form_values(names: Iterable[str]) -> dict[str, str]:
    return {name: request.form.get(name, "")[:MAX_FIELD] for name in names}


def _chosen_site(session: Session, raw: str, problems: dict[str, str]) -> Site | None:
    sites = {str(s.id): s for s in _my_sites(session)}
    if len(sites) == 1 and not raw:
        return next(iter(sites.values()))
    found = sites.get(raw)
    if found is None:
        problems["site_id"] = "Choose one of your sites."
    return found


@bp.get("/visits/availability")
@roles_required(*WORKERS)
def availability_page() -> tuple[str, int]:
    return _availability_page()


def _availability_done(message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("visit_pages.availability_page"))


@bp.post("/visits/availability/hours")
@roles_required(*WORKERS)
def add_hours() -> Response | tuple[str, int]:
    session = _session()
    values = _form_values(HOURS_FIELDS)
    problems: dict[str, str] = {}
    site = _chosen_site(session, values["site_id"], problems)
    weekday = values["weekday"]
    if not (weekday.isascii() and weekday.isdigit() and int(weekday) < 7):
        problems["weekday"] = "Choose a day of the week."
    if problems or site is None:
        return _availability_page(_field_errors("hours", values, problems), 422)
    try:
        row = availability.add_weekly_hours(
            session,
            current_user,
            utcnow(),
            site=site,
            user_id=current_user.id,
            weekday=int(weekday),
            start_time=values["start_time"],
            end_time=values["end_time"],
        )
    except DomainError as exc:
        return _availability_page(refused("hours", exc, values, HOURS_FIELDS), exc.status)
    return _availability_done(
        f"Added {availability.WEEKDAYS[row.weekday]} {row.start_time}-{row.end_time} "
        f"at site {site.site_number}."
    )


_Own = TypeVar("_Own", StaffAvailability, AvailabilityException)


def _own_row(session: Session, model: type[_Own], row_id: int, what: str) -> _Own:
    """The reader's own row (hours or an exception) at one of their sites, else 404."""
    row = session.scalar(
        select(model).where(
            model.id == row_id,
            model.user_id == current_user.id,
            model.site_id.in_(current_user.site_ids),
        )
    )
    if row is None:
        raise NotFound(f"{what} not found.")
    return row


@bp.post("/visits/availability/hours/<int:row_id>/remove")
@roles_required(*WORKERS)
def remove_hours(row_id: int) -> Response | tuple[str, int]:
    session = _session()
    row = _own_row(session, StaffAvailability, row_id, f"Weekly hours {row_id} were")
    text = f"{availability.WEEKDAYS[row.weekday]} {row.start_time}-{row.end_time}"
    try:
        availability.remove_weekly_hours(session, current_user, utcnow(), row)
    except DomainError as exc:
        return _availability_page(Refusal("hours", {}, {}, [exc.message]), exc.status)
    return _availability_done(f"Removed {text}.")


@bp.post("/visits/availability/exceptions")
@roles_required(*WORKERS)
def add_exception() -> Response | tuple[str, int]:
    session = _session()
    values = _form_values(EXCEPTION_FIELDS)
    problems: dict[str, str] = {}
    site = _chosen_site(session, values["site_id"], problems)
    errors: list[str] = []
    day = _parse_date(values["day"], "Day", errors)
    if errors:
        problems["day"] = errors[0]
    kind = values["kind"]
    if kind not in EXCEPTION_KINDS:
        problems["kind"] = "Choose what changes on that day."
    elif kind != "off":
        for name, label in (("start_time", "start"), ("end_time", "end")):
            if not values[name].strip():
                problems[name] = f"Give the {label} of the hours, as HH:MM."
    if problems or site is None or day is None:
        return _availability_page(_field_errors("exception", values, problems), 422)
    whole_day = kind == "off"
    try:
        row = availability.add_exception(
            session,
            current_user,
            utcnow(),
            site=site,
            user_id=current_user.id,
            day=day,
            available=kind == "extra",
            start_time=None if whole_day else values["start_time"],
            end_time=None if whole_day else values["end_time"],
            note=values["note"],
        )
    except DomainError as exc:
        refusal = refused("exception", exc, values, EXCEPTION_FIELDS)
        return _availability_page(refusal, exc.status)
    return _availability_done(f"{EXCEPTION_KINDS[kind]} on {_day_text(row.day)} is recorded.")


@bp.post("/visits/availability/exceptions/<int:row_id>/remove")
@roles_required(*WORKERS)
def remove_exception(row_id: int) -> Response | tuple[str, int]:
    session = _session()
    row = _own_row(session, AvailabilityException, row_id, f"Availability exception {row_id} was")
    day = row.day
    try:
        availability.remove_exception(session, current_user, utcnow(), row)
    except DomainError as exc:
        return _availability_page(Refusal("exception", {}, {}, [exc.message]), exc.status)
    return _availability_done(f"The exception on {_day_text(day)} is removed.")


@bp.post("/visits/availability/holidays")
@roles_required(*WORKERS)
def add_holiday() -> Response | tuple[str, int]:
    session = _session()
    values = _form_values(HOLIDAY_FIELDS)
    problems: dict[str, str] = {}
    site = _chosen_site(session, values["site_id"], problems)
    errors: list[str] = []
    day = _parse_date(values["day"], "Day", errors)
    if errors:
        problems["day"] = errors[0]
    if problems or site is None or day is None:
        return _availability_page(_field_errors("holiday", values, problems), 422)
    try:
        row = availability.add_holiday(
            session, current_user, utcnow(), site=site, day=day, name=values["name"]
        )
    except DomainError as exc:
        return _availability_page(refused("holiday", exc, values, HOLIDAY_FIELDS), exc.status)
    return _availability_done(f"{row.name} on {_day_text(row.day)} is a holiday of the site.")


@bp.post("/visits/availability/holidays/<int:row_id>/remove")
@roles_required(*WORKERS)
def remove_holiday(row_id: int) -> Response | tuple[str, int]:
    session = _session()
    row = session.scalar(
        select(SiteHoliday).where(
            SiteHoliday.id == row_id, SiteHoliday.site_id.in_(current_user.site_ids)
        )
    )
    if row is None:
        raise NotFound(f"Holiday {row_id} was not found.")
    name = row.name
    try:
        availability.remove_holiday(session, current_user, utcnow(), row)
    except DomainError as exc:
        return _availability_page(Refusal("holiday", {}, {}, [exc.message]), exc.status)
    return _availability_done(f"{name} is no longer a holiday of the site.")


# --- the site's home and the patient's page ----------------------------------------------


def _home_panel(
    session: Session, viewer: User, now: datetime, _subject: Any
) -> dict[str, Any] | None:
    """How many visit requests wait at the viewer's sites: one count, none when zero."""
    if viewer.role not in SITE_ROLES:
        return None
    waiting = session.scalar(
        select(func.count(UnscheduledRequest.id)).where(
            UnscheduledRequest.status == RequestStatus.OPEN,
            policy.visible(viewer, UnscheduledRequest, session=session, now=now),
        )
    )
    return {"open": waiting} if waiting else None


def _patient_panel(
    session: Session, viewer: User, now: datetime, patient: Patient
) -> dict[str, Any] | None:
    """A link to the patient's visits (no statement: the page reads them)."""
    return {"patient": patient}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, WORKERS, "Televisits", "visit_pages.calendar", order=34)
    add_nav_item(app, WORKERS, "Visit queue", "visit_pages.queue", order=36)
    add_panel(app, "site.home", "visits/_home_panel.html", _home_panel, order=5)
    add_panel(app, "site.patient", "visits/_patient_panel.html", _patient_panel, order=5)
