"""The patient's visits in the portal: what is booked (and when the link to join shows),
what is still to book and in which days, what is over; booking, moving and cancelling a
televisit; and asking for a visit outside the schedule.

Every change goes through the visit services the API uses too (`visits.booking`,
`visits.unscheduled`): they check that the patient acts for themselves, audit the change
and refuse a time that is no longer free. The booking form carries an idempotency key made
when the form is shown, so a double tap or a resend after a dropped connection books once.

Times are the patient's own: slots are grouped by the day they fall on where the patient
lives now (`Patient.timezone`), in the patient's language, and each time says its zone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, cast

from babel import Locale
from babel.dates import (
    format_date,
    format_interval,
    format_skeleton,
    format_time,
    format_timedelta,
    get_timezone_location,
    get_timezone_name,
)
from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, joinedload
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import Conflict, NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.i18n import current_language
from dct_platform.models import Patient
from dct_platform.navigation import add_nav_item
from dct_platform.roles import Role, role_label
from dct_platform.timeutil import timezones_by_region, utcnow
from dct_platform.timeutil import zone as timezone
from dct_platform.visits import booking as booking_service
from dct_platform.visits import notifications, unscheduled
from dct_platform.visits.booking import MAX_REASON
from dct_platform.visits.models import (
    Booking,
    BookingStatus,
    Modality,
    PlannedStatus,
    PlannedVisit,
    RequestStatus,
    UnscheduledRequest,
)
from dct_platform.visits.notifications import JoinState
from dct_platform.visits.slots import Slot
from dct_platform.web.guards import roles_required
from patient_portal.views import _me
from patient_portal.zones import zone_label

bp = Blueprint(
    "portal_visits",
    __name__,
    url_prefix="/portal/visits",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

MAX_KEY = 80  # Booking.idempotency_key
Errors = dict[str, list[str]]


# --- times in words ----------------------------------------------------------------------------


def _language() -> str:
    return current_language()


def _local(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(timezone(zone))


def _day(day: date) -> str:
    return str(format_date(day, "full", locale=_language()))


def _short_day(day: date, today: date) -> str:
    """A short day ("Mon, Nov 30" in English), with the year when it is not this one."""
    skeleton = "MMMEd" if day.year == today.year else "yMMMEd"
    return str(format_skeleton(skeleton, day, locale=_language()))


def _clock(instant: datetime, zone: str) -> str:
    return str(format_time(_local(instant, zone), "short", locale=_language()))


def _interval(starts: datetime, ends: datetime, zone: str) -> str:
    """A span of time as the patient's language writes it ("9:00 to 9:30 AM" in English,
    with the locale's own dash and spacing)."""
    pattern = Locale.parse(_language()).time_formats["short"].pattern
    skeleton = "hm" if "h" in pattern else "Hm"
    return str(
        format_interval(
            _local(starts, zone), _local(ends, zone), skeleton, tzinfo=timezone(zone),
            locale=_language(),
        )
    )  # fmt: skip


def _zone_time(zone: str) -> str:
    """The zone as a clock reads it ("Germany (Berlin) Time", "日本時間"), from CLDR."""
    tz = timezone(zone)
    if zone == "UTC" or zone.startswith("Etc/"):
        return str(get_timezone_name(tz, "long", locale=_language()))
    return str(get_timezone_location(tz, locale=_language()))


def _zone_name(zone: str) -> str:
    countries = {
        name: country for zones in timezones_by_region().values() for name, country in zones
    }
    return zone_label(get_locale(), zone, countries.get(zone))


def _today(now: datetime, zone: str) -> date:
    return _local(now, zone).date()


def _duration(minutes: int) -> str:
    return str(
        format_timedelta(
            timedelta(minutes=minutes), granularity="minute", threshold=10**6,
            locale=_language(),
        )
    )  # fmt: skip


MODALITIES = {
    Modality.TELEHEALTH: _l("By video"),
    Modality.HOME_NURSE: _l("At home, with a nurse"),
    Modality.LOCAL_PROVIDER: _l("With your local doctor"),
    Modality.ON_SITE: _l("At your study site"),
}


def _how(modality: Modality | str | None) -> str:
    label = MODALITIES.get(Modality(modality)) if modality else None
    return str(label) if label else ""


# --- settings --------------------------------------------------------------------------------


def _min_notice() -> timedelta:
    return timedelta(minutes=int(current_app.config["VISIT_MIN_NOTICE_MINUTES"]))


def _join_opens() -> timedelta:
    return timedelta(minutes=int(current_app.config["VISIT_JOIN_OPENS_MINUTES"]))


# --- joining ---------------------------------------------------------------------------------


def join_state(booking: Booking, now: datetime) -> tuple[JoinState, str | None]:
    """Whether the signed-in patient can join `booking` now, and the link when they can:
    the rule is notifications.py's, the opening time the app's setting."""
    opens = _join_opens()
    state = notifications.join_state(booking, current_user, now, opens_before=opens)
    link = notifications.join_link(booking, current_user, now, opens_before=opens)
    return state, link


# --- the patient's visits --------------------------------------------------------------------


@dataclass(frozen=True)
class UpcomingRow:
    id: int
    name: str
    day: str
    time: str
    zone: str
    with_whom: str
    how: str
    status: str
    join: JoinState
    join_url: str | None
    join_note: str
    changeable: bool


@dataclass(frozen=True)
class ToBookRow:
    id: int
    name: str
    between: str
    how: str
    duration: str


@dataclass(frozen=True)
class PastRow:
    name: str
    when: str
    how: str
    status: str
    outcome: Literal["completed", "missed", "no_show"]
    at: datetime  # for sorting, the latest first


@dataclass
class Visits:
    upcoming: list[UpcomingRow] = field(default_factory=list)
    to_book: list[ToBookRow] = field(default_factory=list)
    past: list[PastRow] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # open requests, in words


def _with_whom(booking: Booking) -> str:
    staff = booking.staff
    return cast(
        str, _("With %(name)s, %(role)s", name=staff.display_name, role=role_label(staff.role))
    )


def _upcoming(booking: Booking, patient: Patient, now: datetime) -> UpcomingRow:
    zone = patient.timezone
    state, url = join_state(booking, now)
    started = booking.status == BookingStatus.STARTED
    return UpcomingRow(
        id=booking.id,
        name=booking.planned_visit.name,
        day=_day(_local(booking.starts_at, zone).date()),
        time=_interval(booking.starts_at, booking.ends_at, zone),
        zone=_zone_time(zone),
        with_whom=_with_whom(booking),
        how=_how(Modality.TELEHEALTH),
        status=str(_("In progress") if started else _("Booked")),
        join=state,
        join_url=url,
        join_note=_join_note(state, booking.starts_at, now),
        changeable=booking.status == BookingStatus.BOOKED and now < booking.starts_at,
    )


def _to_book(visit: PlannedVisit, today: date) -> ToBookRow:
    first, last = _short_day(visit.window_first, today), _short_day(visit.window_last, today)
    modes = [m for m in visit.modalities if m in set(Modality)]
    how = Modality.TELEHEALTH if Modality.TELEHEALTH in modes else next(iter(modes), None)
    return ToBookRow(
        id=visit.id,
        name=visit.name,
        between=cast(str, _("Book between %(first)s and %(last)s", first=first, last=last)),
        how=_how(how),
        duration=_duration(visit.duration_minutes),
    )


def _mine(model: type) -> ColumnElement[bool]:
    return policy.visible(current_user, model)


def load_visits(session: Session, patient: Patient, now: datetime) -> Visits:
    """The patient's visits around `now`, sorted into the page's sections."""
    zone, visits = patient.timezone, Visits()
    today = _today(now, zone)
    bookings = session.scalars(
        select(Booking)
        .where(
            Booking.patient_id == patient.id,
            _mine(Booking),
            Booking.status.in_(
                [BookingStatus.BOOKED, BookingStatus.STARTED, BookingStatus.NO_SHOW]
            ),
        )
        .options(joinedload(Booking.staff), joinedload(Booking.planned_visit))
        .order_by(Booking.starts_at, Booking.id)
    )
    for booking in bookings:
        if booking.status == BookingStatus.NO_SHOW:
            day = _day(_local(booking.starts_at, zone).date())
            visits.past.append(
                PastRow(
                    name=booking.planned_visit.name,
                    when=cast(
                        str,
                        _("%(day)s, %(time)s", day=day, time=_clock(booking.starts_at, zone)),
                    ),
                    how=_how(Modality.TELEHEALTH),
                    status=str(_("You did not join")),
                    outcome="no_show",
                    at=booking.starts_at,
                )
            )
        else:
            visits.upcoming.append(_upcoming(booking, patient, now))

    planned = session.scalars(
        select(PlannedVisit)
        .where(
            PlannedVisit.patient_id == patient.id,
            _mine(PlannedVisit),
            PlannedVisit.status.in_(
                [PlannedStatus.PLANNED, PlannedStatus.COMPLETED, PlannedStatus.MISSED]
            ),
        )
        .order_by(PlannedVisit.window_first, PlannedVisit.id)
    )
    for visit in planned:
        if visit.status == PlannedStatus.PLANNED:
            if visit.window_last >= today:
                visits.to_book.append(_to_book(visit, today))
        elif visit.status == PlannedStatus.COMPLETED:
            done = visit.done_at or datetime.combine(visit.target_date, datetime.min.time(), UTC)
            visits.past.append(
                PastRow(
                    name=visit.name,
                    when=_day(_local(done, zone).date()),
                    how=_how(visit.modality),
                    status=str(_("Done")),
                    outcome="completed",
                    at=done,
                )
            )
        else:
            first = _short_day(visit.window_first, today)
            last = _short_day(visit.window_last, today)
            visits.past.append(
                PastRow(
                    name=visit.name,
                    when=cast(str, _("Was due between %(first)s and %(last)s", first=first,
                                     last=last)),
                    how="",
                    status=str(_("Missed")),
                    outcome="missed",
                    at=datetime.combine(visit.window_last, datetime.min.time(), UTC),
                )
            )  # fmt: skip
    visits.past.sort(key=lambda row: row.at, reverse=True)

    for asked in session.scalars(
        select(UnscheduledRequest.requested_at)
        .where(
            UnscheduledRequest.patient_id == patient.id,
            _mine(UnscheduledRequest),
            UnscheduledRequest.status == RequestStatus.OPEN,
        )
        .order_by(UnscheduledRequest.requested_at)
    ):
        visits.requests.append(
            cast(
                str,
                _(
                    "You asked for a visit on %(day)s. Your site will contact you.",
                    day=_day(_local(asked, zone).date()),
                ),
            )
        )
    return visits


# --- slots -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotChoice:
    id: str
    value: str
    label: str
    checked: bool


@dataclass(frozen=True)
class SlotDay:
    id: str
    day: str
    slots: list[SlotChoice]


def _slot_value(slot: Slot) -> str:
    return f"{slot.staff_id}.{int(slot.starts_at.timestamp())}"


def _parse_slot(value: str) -> tuple[int, datetime] | None:
    staff, _dot, stamp = value.partition(".")
    if not (staff.isdigit() and stamp.isdigit()) or len(value) > 40:
        return None
    try:
        return int(staff), datetime.fromtimestamp(int(stamp), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def slot_days(slots: Iterable[Slot], zone: str, chosen: str = "") -> list[SlotDay]:
    """The slots by the patient's local day; one choice per start time (whoever of the
    staff is free then: the patient chooses a time, not a person)."""
    days: dict[date, list[SlotChoice]] = {}
    seen: set[datetime] = set()
    n = 0
    for slot in slots:
        if slot.starts_at in seen:
            continue
        seen.add(slot.starts_at)
        value = _slot_value(slot)
        days.setdefault(_local(slot.starts_at, zone).date(), []).append(
            SlotChoice(f"slot-{n}", value, _clock(slot.starts_at, zone), value == chosen)
        )
        n += 1
    return [
        SlotDay(f"slot-day-{i}", _day(day), choices)
        for i, (day, choices) in enumerate(sorted(days.items()))
    ]


def _new_key() -> str:
    return secrets.token_urlsafe(16)


# --- pages -----------------------------------------------------------------------------------


def _own_visit(session: Session, patient: Patient, planned_id: int) -> PlannedVisit:
    visit = session.scalar(
        select(PlannedVisit).where(
            PlannedVisit.id == planned_id,
            PlannedVisit.patient_id == patient.id,
            _mine(PlannedVisit),
        )
    )
    if visit is None:
        raise NotFound(_l("This visit was not found. Please go back to your visits."))
    return visit


def _own_booking(session: Session, patient: Patient, booking_id: int) -> Booking:
    found = session.scalar(
        select(Booking)
        .where(
            Booking.id == booking_id,
            Booking.patient_id == patient.id,
            _mine(Booking),
        )
        .options(joinedload(Booking.staff), joinedload(Booking.planned_visit))
    )
    if found is None:
        raise NotFound(_l("This visit was not found. Please go back to your visits."))
    return found


def _index() -> Response:
    return redirect(url_for("portal_visits.index"))


def _booked_message(booking: Booking, zone: str, moved: bool = False) -> str:
    day = _day(_local(booking.starts_at, zone).date())
    time = _clock(booking.starts_at, zone)
    if moved:
        return cast(str, _("Your visit is moved to %(day)s at %(time)s.", day=day, time=time))
    return cast(str, _("Your visit is booked for %(day)s at %(time)s.", day=day, time=time))


def _join_note(state: JoinState, starts_at: datetime, now: datetime) -> str:
    if state == "too_early":
        minutes = int(_join_opens().total_seconds() // 60)
        return cast(
            str,
            ngettext(
                "The link to join appears here %(num)d minute before your visit.",
                "The link to join appears here %(num)d minutes before your visit.",
                minutes,
            ),
        )
    if state == "room_pending":
        return cast(
            str, _("The video room is being prepared. Please reload this page in a minute.")
        )
    if state == "over":
        return cast(str, _("The time for this visit is over."))
    if state == "open" and now < starts_at:
        return cast(str, _("You can join now. Your visit starts soon."))
    return ""


# --- forms -----------------------------------------------------------------------------------

ASK_CATEGORIES = {"side_effect": _l("A side effect"), "other": _l("Something else")}
assert set(ASK_CATEGORIES) == set(unscheduled.CATEGORIES), "the service's categories changed"
# A second tap on "Ask for a visit" within this time, with the same words, asks once.
ASK_REPEAT = timedelta(minutes=10)


@dataclass
class Form:
    """What the patient sent (to show again) and the messages for each field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: Errors = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # field -> its label, for the summary
    problems: list[str] = field(default_factory=list)  # about the whole form

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    @property
    def summary(self) -> list[tuple[str, str, str]]:
        """(the control's id, its label, message) of every field in error."""
        anchors = {"slot": "slot-0", "category": "category-0"}
        return [
            (anchors.get(name, name), self.labels.get(name, ""), message)
            for name, messages in self.errors.items()
            for message in messages
        ]


def _reason(form: Form, text: str, missing: str) -> str:
    reason = text.strip()
    form.values["reason"] = text
    if not reason:
        form.error("reason", missing)
    elif len(reason) > MAX_REASON:
        form.error(
            "reason", cast(str, _("Please keep it under %(num)d characters.", num=MAX_REASON))
        )
    return reason


def _read_slot(form: Form, missing: str) -> tuple[int, datetime] | None:
    chosen = request.form.get("slot", "")
    form.values["slot"] = chosen
    parsed = _parse_slot(chosen)
    if parsed is None:
        form.error("slot", missing)
    return parsed


def _read_key() -> str:
    key = request.form.get("idempotency_key", "").strip()
    # A form without one (tampered, very old): a new key still books once per submit.
    return key if 0 < len(key) <= MAX_KEY else _new_key()


# --- pages -----------------------------------------------------------------------------------


def _picker(
    visit: PlannedVisit,
    patient: Patient,
    now: datetime,
    *,
    form: Form,
    key: str = "",
    moving: Booking | None = None,
    taken: bool = False,
) -> str:
    zone = patient.timezone
    slots = booking_service.free_slots(
        db.session(), visit, now, min_notice=_min_notice(), ignore=moving
    )
    if moving is not None:  # its own time is not a new one
        slots = [s for s in slots if s.starts_at != moving.starts_at]
    form.labels.update(
        slot=cast(str, _("Choose a new time") if moving else _("Choose a time")),
        reason=cast(str, _("Why do you want to change the time?")),
    )
    if taken:
        form.problems.append(
            cast(str, _("Sorry, that time was just taken. Please choose another time."))
        )
    today = _today(now, zone)
    return render_template(
        "portal/visits_book.html",
        visit=visit,
        between=_to_book(visit, today).between,
        duration=_duration(visit.duration_minutes),
        how=_how(Modality.TELEHEALTH),
        days=slot_days(slots, zone, form.values.get("slot", "")),
        zone_name=_zone_name(zone),
        site=patient.site,
        form=form,
        key=key,
        moving=_upcoming(moving, patient, now) if moving else None,
        max_reason=MAX_REASON,
    )


@bp.get("/")
@roles_required(Role.PATIENT)
def index() -> str:
    patient, now = _me(), utcnow()
    return render_template(
        "portal/visits.html",
        visits=load_visits(db.session(), patient, now),
        zone_name=_zone_name(patient.timezone),
        ask=_ask_form(),
        categories=ASK_CATEGORIES,
        max_details=unscheduled.MAX_DETAILS,
    )


@bp.route("/<int:planned_id>/book", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def book(planned_id: int) -> Response | tuple[str, int]:
    patient, session, now = _me(), db.session(), utcnow()
    visit = _own_visit(session, patient, planned_id)
    if request.method == "GET":
        if visit.status != PlannedStatus.PLANNED:
            return _not_bookable(visit)
        return _picker(visit, patient, now, form=Form(), key=_new_key()), 200

    form, key = Form(), _read_key()
    chosen = _read_slot(form, cast(str, _("Choose a time.")))
    if chosen is None:
        if visit.status != PlannedStatus.PLANNED:
            return _not_bookable(visit)
        return _picker(visit, patient, now, form=form, key=key), 422
    try:
        # The key first: a form sent twice returns the booking the first one made.
        done = booking_service.book(
            session, current_user, visit, chosen[0], chosen[1], now, idempotency_key=key,
            min_notice=_min_notice(),
        )  # fmt: skip
    except (Conflict, ValidationFailed):
        session.refresh(visit)
        if visit.status != PlannedStatus.PLANNED:  # booked meanwhile, in another tab
            return _not_bookable(visit)
        form.values.pop("slot", None)
        return _picker(visit, patient, now, form=form, key=key, taken=True), 409
    flash(_booked_message(done.booking, patient.timezone), "success")
    return _index()


def _not_bookable(visit: PlannedVisit) -> Response:
    if visit.status == PlannedStatus.BOOKED:
        flash(_("This visit is booked already. You can change its time below."), "info")
    else:
        flash(_("This visit can no longer be booked."), "info")
    return _index()


def _unchangeable(found: Booking) -> Response:
    if found.status == BookingStatus.CANCELLED:
        flash(_("This visit is cancelled."), "info")
    else:
        flash(_("This visit can no longer be changed here. Please call your study site."), "info")
    return _index()


def _changeable(found: Booking, now: datetime) -> bool:
    return found.status == BookingStatus.BOOKED and now < found.starts_at


@bp.route("/booking/<int:booking_id>/reschedule", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def reschedule(booking_id: int) -> Response | tuple[str, int]:
    patient, session, now = _me(), db.session(), utcnow()
    found = _own_booking(session, patient, booking_id)
    visit = found.planned_visit
    if not _changeable(found, now):
        return _unchangeable(found)
    if request.method == "GET":
        return _picker(visit, patient, now, form=Form(), moving=found), 200

    form = Form()
    chosen = _read_slot(form, cast(str, _("Choose a new time.")))
    reason = _reason(
        form, request.form.get("reason", ""), _("Please say why you want to change the time.")
    )
    if form.errors or chosen is None:
        return _picker(visit, patient, now, form=form, moving=found), 422
    if chosen == (found.staff_id, found.starts_at):  # sent twice: moved already
        flash(_booked_message(found, patient.timezone, moved=True), "success")
        return _index()
    try:
        booking_service.reschedule(
            session, current_user, found, chosen[0], chosen[1], reason, now,
            min_notice=_min_notice(),
        )  # fmt: skip
    except (Conflict, ValidationFailed):
        session.refresh(found)
        if not _changeable(found, now):
            return _unchangeable(found)
        form.values.pop("slot", None)
        return _picker(visit, patient, now, form=form, moving=found, taken=True), 409
    flash(_booked_message(found, patient.timezone, moved=True), "success")
    return _index()


@bp.route("/booking/<int:booking_id>/cancel", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def cancel(booking_id: int) -> Response | tuple[str, int]:
    patient, session, now = _me(), db.session(), utcnow()
    found = _own_booking(session, patient, booking_id)
    if not _changeable(found, now):
        return _unchangeable(found)
    form = Form(labels={"reason": cast(str, _("Why do you want to cancel?"))})
    status = 200
    if request.method == "POST":
        reason = _reason(
            form, request.form.get("reason", ""), _("Please say why you want to cancel.")
        )
        if not form.errors:
            try:
                booking_service.cancel(session, current_user, found, reason, now)
            except (Conflict, ValidationFailed):
                session.refresh(found)
                return _unchangeable(found)
            flash(_("Your visit is cancelled. You can book a new time below."), "success")
            return _index()
        status = 422
    return render_template(
        "portal/visits_cancel.html",
        row=_upcoming(found, patient, now),
        form=form,
        max_reason=MAX_REASON,
    ), status


def _ask_form() -> Form:
    return Form(
        labels={
            "category": cast(str, _("What is it about?")),
            "details": cast(str, _("Details")),
        }
    )


@bp.route("/ask", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def ask() -> Response | tuple[str, int]:
    patient, session, now = _me(), db.session(), utcnow()
    form, status = _ask_form(), 200
    if request.method == "POST":
        category = request.form.get("category", "")
        details = request.form.get("details", "")
        form.values.update(category=category, details=details)
        if category not in ASK_CATEGORIES:
            form.error("category", cast(str, _("Choose what your request is about.")))
        if len(details.strip()) > unscheduled.MAX_DETAILS:
            form.error(
                "details",
                cast(
                    str,
                    _("Please keep it under %(num)d characters.", num=unscheduled.MAX_DETAILS),
                ),
            )
        if not form.errors:
            if not _asked_just_now(session, patient, now, category, details):
                unscheduled.request_visit(
                    session, current_user, patient, now, category=category, details=details
                )
            flash(_("Your site has your request and will contact you."), "success")
            return _index()
        status = 422
    return render_template(
        "portal/visits_ask.html",
        ask=form,
        categories=ASK_CATEGORIES,
        max_details=unscheduled.MAX_DETAILS,
        site=patient.site,
    ), status


def _asked_just_now(
    session: Session, patient: Patient, now: datetime, category: str, details: str
) -> bool:
    """The same request, still open, sent a moment ago: a second tap, or a resend."""
    earlier = session.scalars(
        select(UnscheduledRequest.details).where(
            UnscheduledRequest.patient_id == patient.id,
            UnscheduledRequest.status == RequestStatus.OPEN,
            UnscheduledRequest.category == category,
            UnscheduledRequest.requested_at > now - ASK_REPEAT,
        )
    )
    return any((d or "") == details.strip() for d in earlier)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, [Role.PATIENT], _l("My visits"), "portal_visits.index", order=30)
