"""The patient's diary in the portal: what is due now (and how long until it closes), what
comes next, what was recently missed or done; the form of one diary; and the diary's
summary on the patient's home (`diary_summary`, a template global).

Every entry goes through `devices.ediary.entries.submit`, the one write path the API uses
too: the server's clock decides whether the window is open, and the form's hidden client
id, made when the form is shown, stores a double submit or a resend after a dropped
connection once.

Times are the patient's own. What is still to come or open now is shown on the clock the
patient lives by now (`Patient.timezone`), so that a traveller reads the hour at which the
window really closes where they are; what is over is shown in the zone its window was
computed in, the one the patient lived by then (README, "Time").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, cast

from babel.dates import format_date, format_time, format_timedelta
from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import Conflict, NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.i18n import current_language
from dct_platform.models import Patient
from dct_platform.navigation import add_nav_item
from dct_platform.roles import Role
from dct_platform.timeutil import timezones_by_region, utcnow
from dct_platform.timeutil import zone as timezone
from dct_platform.web.guards import roles_required
from devices.ediary import answer_form, entries
from devices.ediary import occurrences as occ
from devices.ediary.instruments import FORM_ERRORS, Instrument
from devices.ediary.models import Entry, Occurrence, Schedule
from devices.ediary.schedules import as_window, instrument_of
from patient_portal.views import _me
from patient_portal.zones import zone_label

bp = Blueprint(
    "portal_diary",
    __name__,
    url_prefix="/portal/diary",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# The diaries the list shows: those whose time ended in the last week (missed or done),
# and those opening in the next two days (the occurrences job writes two days ahead).
RECENT = timedelta(days=7)
AHEAD = timedelta(days=2)
OPEN_STATES = ("open", "late_window")


# --- times in words ----------------------------------------------------------------------------


def _language() -> str:
    return current_language()


def _day(day: date) -> str:
    return str(format_date(day, "full", locale=_language()))


def _clock(instant: datetime, zone: str, *, closing: bool = False) -> tuple[date, str]:
    """The local date and clock time of `instant`. A window closing at 00:00 closes at the
    end of the day before: "midnight" of that day, not 00:00 of the next."""
    local = instant.astimezone(timezone(zone))
    if closing and local.time() == time(0):
        return local.date() - timedelta(days=1), cast(str, _("midnight"))
    return local.date(), str(format_time(local, "short", locale=_language()))


def _today(now: datetime, zone: str) -> date:
    return now.astimezone(timezone(zone)).date()


def _duration(delta: timedelta) -> str:
    """How long, rounded down to the minute ("2 hours 40 minutes"): a deadline is never
    said to be later than it is."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return cast(str, _("less than a minute"))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts: list[tuple[int, Literal["day", "hour", "minute"]]] = [
        (days, "day"),
        (hours, "hour"),
        (0 if days else minutes, "minute"),
    ]
    return " ".join(
        str(
            format_timedelta(
                timedelta(**{unit + "s": amount}),
                granularity=unit,
                threshold=10**6,
                locale=_language(),
            )
        )
        for amount, unit in parts
        if amount
    )


def _open_until(instant: datetime, zone: str, today: date) -> str:
    day, clock = _clock(instant, zone, closing=True)
    if day == today:
        return cast(str, _("Open until %(time)s today.", time=clock))
    return cast(str, _("Open until %(time)s on %(day)s.", time=clock, day=_day(day)))


def _late_until(instant: datetime, zone: str, today: date) -> str:
    day, clock = _clock(instant, zone, closing=True)
    if day == today:
        return cast(
            str,
            _(
                "The usual time is over, but you can still fill it in until %(time)s today. "
                "It will be marked as late.",
                time=clock,
            ),
        )
    return cast(
        str,
        _(
            "The usual time is over, but you can still fill it in until %(time)s on "
            "%(day)s. It will be marked as late.",
            time=clock,
            day=_day(day),
        ),
    )


def _opens(instant: datetime, zone: str, today: date) -> str:
    day, clock = _clock(instant, zone)
    if day == today:
        return cast(str, _("Opens at %(time)s today.", time=clock))
    if day == today + timedelta(days=1):
        return cast(str, _("Opens at %(time)s tomorrow.", time=clock))
    return cast(str, _("Opens at %(time)s on %(day)s.", time=clock, day=_day(day)))


def _saved(instant: datetime, zone: str) -> str:
    day, clock = _clock(instant, zone)
    return cast(str, _("Saved on %(day)s at %(time)s.", day=_day(day), time=clock))


def _zone_name(zone: str) -> str:
    countries = {
        name: country for zones in timezones_by_region().values() for name, country in zones
    }
    return zone_label(get_locale(), zone, countries.get(zone))


# --- the patient's diaries -----------------------------------------------------------------


@dataclass(frozen=True)
class DiaryRow:
    id: int
    title: str
    day: str  # the date it is for, written out
    state: occ.State
    when: str  # opens, open until, late until, saved: a sentence
    time_left: str  # "Closes in ..." while it can be filled in
    late: bool
    deadline: datetime  # when it can no longer be filled in

    @property
    def url(self) -> str:
        return url_for("portal_diary.fill", occurrence_id=self.id)


@dataclass
class Diary:
    due: list[DiaryRow] = field(default_factory=list)
    coming: list[DiaryRow] = field(default_factory=list)
    missed: list[DiaryRow] = field(default_factory=list)
    done: list[DiaryRow] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.due or self.coming or self.missed or self.done)


def _instruments() -> Callable[[Occurrence], Instrument]:
    """Each questionnaire version read once per request, however many diaries use it."""
    read: dict[int, Instrument] = {}

    def of(row: Occurrence) -> Instrument:
        version = row.schedule.instrument_version
        if version.id not in read:
            read[version.id] = instrument_of(version)
        return read[version.id]

    return of


def title_of(instrument: Instrument) -> str:
    return answer_form.in_language(instrument.title, instrument.title_translations, _language())


def _rows(
    session: Session, patient: Patient, *conditions: Any
) -> list[tuple[Occurrence, Entry | None]]:
    query = (
        select(Occurrence, Entry)
        .outerjoin(Entry, Entry.occurrence_id == Occurrence.id)
        .where(
            Occurrence.patient_id == patient.id,
            policy.visible(current_user, Occurrence),
            *conditions,
        )
        .options(joinedload(Occurrence.schedule).joinedload(Schedule.instrument_version))
        .order_by(Occurrence.opens_at, Occurrence.id)
    )
    return [(row, entry) for row, entry in session.execute(query)]


def _row(
    row: Occurrence, entry: Entry | None, patient: Patient, now: datetime, instrument: Instrument
) -> DiaryRow:
    state = occ.state_at(as_window(row), now, entry is not None)
    # Still to come or open: on the patient's clock now. Over: on the clock it was open on.
    zone = patient.timezone if state in ("upcoming", *OPEN_STATES) else row.zone
    today = _today(now, zone)
    time_left = ""
    if state == "open":
        when = _open_until(row.closes_at, zone, today)
        time_left = _("Closes in %(duration)s.", duration=_duration(row.closes_at - now))
    elif state == "late_window":
        when = _late_until(row.late_until, zone, today)
        time_left = _("Closes in %(duration)s.", duration=_duration(row.late_until - now))
    elif state == "upcoming":
        when = _opens(row.opens_at, zone, today)
    elif state == "done" and entry is not None:
        when = _saved(entry.submitted_at, zone)
    else:
        when = cast(str, _("Not filled in."))
    return DiaryRow(
        id=row.id,
        title=title_of(instrument),
        day=_day(row.local_date),
        state=state,
        when=when,
        time_left=time_left,
        late=bool(entry is not None and entry.late),
        deadline=row.late_until if state == "late_window" else row.closes_at,
    )


def load_diary(session: Session, patient: Patient, now: datetime) -> Diary:
    """The patient's diaries around `now`, sorted into the list's sections, in one
    statement whatever their number (the occurrences with their entries, schedules and
    questionnaire versions)."""
    instruments = _instruments()
    diary = Diary()
    for row, entry in _rows(
        session, patient, Occurrence.late_until > now - RECENT, Occurrence.opens_at < now + AHEAD
    ):
        shown = _row(row, entry, patient, now, instruments(row))
        if shown.state in OPEN_STATES:
            diary.due.append(shown)
        elif shown.state == "upcoming":
            diary.coming.append(shown)
        elif shown.state == "missed":
            diary.missed.insert(0, shown)  # the latest first
        else:
            diary.done.insert(0, shown)
    # The one that closes first is the one to fill in first.
    diary.due.sort(key=lambda r: r.deadline)
    return diary


def diary_summary(patient: Patient) -> Diary:
    """The home page's summary (a template global, so that the home view stays the core's)."""
    return load_diary(db.session(), patient, utcnow())


# --- pages ----------------------------------------------------------------------------------


@bp.get("/")
@roles_required(Role.PATIENT)
def index() -> str:
    patient, session, now = _me(), db.session(), utcnow()
    diary = load_diary(session, patient, now)
    saved = None
    wanted = request.args.get("saved", "")
    if wanted.isdigit():
        saved = next((r for r in diary.done if r.id == int(wanted)), None)
        if saved is None:  # saved longer ago than the list reaches: still say thank you
            found = _rows(session, patient, Occurrence.id == int(wanted), Entry.id.is_not(None))
            if found:
                saved = _row(*found[0], patient, now, _instruments()(found[0][0]))
    return render_template(
        "portal/diary.html",
        diary=diary,
        saved=saved,
        zone_name=_zone_name(patient.timezone),
    )


def _own(session: Session, patient: Patient, occurrence_id: int) -> tuple[Occurrence, Entry | None]:
    found = _rows(session, patient, Occurrence.id == occurrence_id)
    if not found:
        raise NotFound(_l("This diary was not found. Please go back to your diary list."))
    return found[0]


def _new_client_id() -> str:
    return secrets.token_urlsafe(16)


def _form_page(
    row: Occurrence,
    patient: Patient,
    instrument: Instrument,
    now: datetime,
    *,
    client_id: str,
    sent: dict[str, list[str]] | None = None,
    errors: dict[str, list[str]] | None = None,
) -> str:
    shown = _row(row, None, patient, now, instrument)
    questions = answer_form.questions(instrument, _language(), sent, errors)
    return render_template(
        "portal/diary_form.html",
        row=shown,
        questions=questions,
        in_error=[q for q in questions if q.errors],
        form_errors=answer_form.form_errors(errors or {}, instrument),
        client_id=client_id,
        submitted=sent is not None,
    )


def _over_page(
    row: Occurrence, entry: Entry | None, patient: Patient, now: datetime, instrument: Instrument
) -> str:
    """The page of a diary that cannot be filled in (now): not open yet, over, or done."""
    shown = _row(row, entry, patient, now, instrument)
    return render_template("portal/diary_closed.html", row=shown, site=patient.site)


@bp.route("/<int:occurrence_id>", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def fill(occurrence_id: int) -> Response | tuple[str, int]:
    patient, session, now = _me(), db.session(), utcnow()
    row, entry = _own(session, patient, occurrence_id)
    instrument = _instruments()(row)
    if request.method == "GET":
        if entry is not None or occ.state_at(as_window(row), now, False) not in OPEN_STATES:
            return _over_page(row, entry, patient, now, instrument), 200
        return _form_page(row, patient, instrument, now, client_id=_new_client_id()), 200

    answers, sent = answer_form.read_answers(instrument, request.form, patient.timezone)
    client_id = request.form.get("client_id", "").strip()
    if not 0 < len(client_id) <= entries.MAX_CLIENT_ID:
        client_id = _new_client_id()  # a form without one (tampered, very old): the
        # database still keeps one entry per diary
    try:
        entries.submit(
            session,
            current_user,
            patient,
            row.id,
            answers,
            now,
            client_id=client_id,
            device_time=request.form.get("device_time") or None,
            source="portal",
        )
    except ValidationFailed as exc:
        fields = exc.details.get("fields", {})
        if "answers" in fields:
            page = _form_page(
                row, patient, instrument, now, client_id=client_id, sent=sent,
                errors=fields["answers"],
            )  # fmt: skip
            return page, 422
        if "occurrence_id" in fields:  # the window is not open (any more)
            return _over_page(row, None, patient, now, instrument), 422
        raise
    except Conflict:
        done = session.scalar(select(Entry).where(Entry.occurrence_id == row.id))
        if done is not None:
            # Filled in already, from another tab or device: it is saved, say so.
            return _over_page(row, done, patient, now, instrument), 409
        # The client id went with another diary (a copied page): a new one, and again.
        page = _form_page(
            row, patient, instrument, now, client_id=_new_client_id(), sent=sent,
            errors={FORM_ERRORS: ["resend"]},
        )  # fmt: skip
        return page, 409
    return redirect(url_for("portal_diary.index", saved=row.id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, [Role.PATIENT], _l("My diary"), "portal_diary.index", order=20)
    app.jinja_env.globals["diary_summary"] = diary_summary
