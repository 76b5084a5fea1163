"""The pages of home-nurse dispatch.

The nurse's, phone first:

* `/nurse/visits` (`dispatch.nurse_day`, `?day=`): her visits of a day in route order, and
  her other days below;
* `/nurse/visits/<id>` (`dispatch.nurse_visit`): one visit and what she does there, step by
  step: accept or decline, check in (with the phone's location when it gives one), tick
  the procedures, record vitals, notes and samples, hand the samples over, check out.

The dispatcher's (site staff and investigators of the site, the provider's coordinator):

* `/dispatch` (`dispatch.board`, `?day=`): the day's plan as a timeline per nurse, the
  visits the planner could not place with its reasons (pin one to a nurse), and "re-plan
  now" with the progress of the latest planning runs;
* `/dispatch/visits/<id>` (`dispatch.visit_record`): the visit's record, with pinning and
  cancelling.

The pages only read (`queries`) and present. Every change is one service call
(`nurse_work`, `home_visits`, `runs`) that checks its rules and writes the audit trail. A
refused form shows its page again with the messages, what was typed, and the service's
status; the request's transaction then rolls back, so nothing of it is stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import DomainError, Forbidden, ValidationFailed
from dct_platform.extensions import db
from dct_platform.localtime import local_to_utc, utc_to_local
from dct_platform.models import Site, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.navigation import add_nav_item, set_home
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from dct_platform.web.guards import roles_required
from dct_platform.web.refusal import Refusal, refused
from logistics.dispatch import home_visits, nurse_work, queries, runs
from logistics.dispatch.models import (
    HELD_BY_NURSE,
    PLANNABLE,
    HomeVisit,
    HomeVisitDecline,
    HomeVisitStatus,
    PatientHomeLocation,
    PlanRunStatus,
)
from logistics.dispatch.policy import COORDINATOR, DISPATCH, DISPATCHERS, SEE_ADDRESS
from logistics.routing.travel import kilometres

bp = Blueprint(
    "dispatch",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dispatch/static",
)

NURSES = (Role.NURSE,)
# The trial manager reads a visit's record; only dispatchers see the board and change.
RECORD_READERS = (*DISPATCHERS, Role.TRIAL_MANAGER)

STATUS_LABELS = {
    HomeVisitStatus.OPEN: "needs a nurse",
    HomeVisitStatus.ASSIGNED: "assigned, not accepted yet",
    HomeVisitStatus.ACCEPTED: "accepted",
    HomeVisitStatus.IN_PROGRESS: "in progress",
    HomeVisitStatus.COMPLETED: "completed",
    HomeVisitStatus.CANCELLED: "cancelled",
    HomeVisitStatus.MISSED: "missed",
}
# The timeline's blocks are narrow.
SHORT_LABELS = {
    **STATUS_LABELS,
    HomeVisitStatus.OPEN: "open",
    HomeVisitStatus.ASSIGNED: "assigned",
    HomeVisitStatus.COMPLETED: "done",
}
# The nurse reads her own visits: "assigned" is a question to her.
NURSE_STATUS_LABELS = {**STATUS_LABELS, HomeVisitStatus.ASSIGNED: "new: accept or decline"}
RUN_LABELS = {
    PlanRunStatus.QUEUED: "waiting",
    PlanRunStatus.RUNNING: "planning",
    PlanRunStatus.DONE: "done",
    PlanRunStatus.FAILED: "failed",
}
VITAL_LABELS = {
    "systolic_bp": "Blood pressure, systolic",
    "diastolic_bp": "Blood pressure, diastolic",
    "heart_rate": "Heart rate",
    "temperature": "Temperature",
    "spo2": "Oxygen saturation (SpO₂)",
    "respiratory_rate": "Breathing rate",
    "weight": "Weight",
}
ACTIVE_RUNS = (PlanRunStatus.QUEUED, PlanRunStatus.RUNNING)
CANCELLABLE = (HomeVisitStatus.OPEN, HomeVisitStatus.ASSIGNED, HomeVisitStatus.ACCEPTED)
PINNABLE = (*PLANNABLE, HomeVisitStatus.ACCEPTED)
MAX_FIELD = 10_000  # longer text is cut here; every service refuses far less
# Days a page accepts: any trial's, never near the limits of `date`, where a day's
# arithmetic (or its UTC instant) would overflow.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
# The timeline: one grid column per five minutes; static/dispatch.css has a class for every
# start column and span a day can need (column 1 is the nurse's name).
SLOT_MINUTES = 5
SLOTS_PER_HOUR = 60 // SLOT_MINUTES
DAY_SLOTS = 24 * SLOTS_PER_HOUR
DEFAULT_HOURS = (7, 19)
_DAY = timedelta(days=1)


# --- small helpers ----------------------------------------------------------------------


def _session() -> Session:
    return db.session()


def _day_text(day: date) -> str:
    return day.strftime("%a %d %b %Y")


def _short_day(day: date) -> str:
    return day.strftime("%a %d %b")


def _clock(at: datetime, zone: str) -> str:
    return f"{utc_to_local(at, zone).time:%H:%M}"


def _span(starts: datetime, ends: datetime | None, zone: str) -> str:
    """ "09:30-10:00 CET" on a clock in `zone`."""
    a = utc_to_local(starts, zone)
    if ends is None:
        return f"{a.time:%H:%M} {a.abbreviation}"
    b = utc_to_local(ends, zone)
    end = f"{b.time:%H:%M}" if b.date == a.date else f"{_short_day(b.date)} {b.time:%H:%M}"
    if a.abbreviation != b.abbreviation:
        return f"{a.time:%H:%M} {a.abbreviation}-{end} {b.abbreviation}"
    return f"{a.time:%H:%M}-{end} {a.abbreviation}"


def _when(starts: datetime | None, ends: datetime | None, zone: str) -> str:
    if starts is None:
        return ""
    return f"{_day_text(utc_to_local(starts, zone).date)}, {_span(starts, ends, zone)}"


def _instant(at: datetime | None, zone: str) -> str:
    if at is None:
        return ""
    local = utc_to_local(at, zone)
    return f"{_day_text(local.date)} {local.time:%H:%M} {local.abbreviation}"


def _window(visit: HomeVisit) -> str:
    if visit.window_first == visit.window_last:
        return _day_text(visit.window_first)
    return f"{_day_text(visit.window_first)} to {_day_text(visit.window_last)}"


def _minutes(value: int | None) -> str:
    if value is None:
        return ""
    hours, minutes = divmod(value, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}


def _local_day(raw: str | None, today: date, errors: list[str]) -> date:
    """The page's day (`?day=`), or `today` with a message when it is not a usable date."""
    try:
        day = queries.parse_day((raw or "").strip() or None, today)
    except ValidationFailed as exc:
        errors.append(f"Day: {exc.message} For example {today.isoformat()}.")
        return today
    if not FIRST_DAY <= day <= LAST_DAY:
        errors.append(f"Day: choose a date from {FIRST_DAY} to {LAST_DAY}.")
        return today
    return day


def _form_values(names: Iterable[str]) -> dict[str, str]:
    return {name: request.form.get(name, "")[:MAX_FIELD] for name in names}


def _coordinates(values: Mapping[str, str]) -> tuple[float | None, float | None]:
    """The phone's location from the hidden fields (both empty when it gave none)."""

    def number(text: str) -> float | None:
        text = text.strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise ValidationFailed(
                "The location your phone gave could not be read; try again."
            ) from None

    return number(values.get("latitude", "")), number(values.get("longitude", ""))


# --- the nurse's day ------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    visit: HomeVisit
    time: str  # "09:30-10:00 CET" on her clock
    travel: str  # "12 min" from the previous stop (or her home base)


def _stop(visit: HomeVisit, zone: str) -> Stop:
    span = _span(visit.planned_start, visit.planned_end, zone) if visit.planned_start else ""
    return Stop(visit, span, _minutes(visit.travel_minutes))


@bp.get("/nurse/visits")
@roles_required(*NURSES)
def nurse_day() -> tuple[str, int]:
    session, now, zone = _session(), utcnow(), current_user.timezone
    today = utc_to_local(now, zone).date
    errors: list[str] = []
    day = _local_day(request.args.get("day"), today, errors)
    stops = [_stop(v, zone) for v in queries.nurse_day(session, current_user, day)]
    shown = {s.visit.id for s in stops}
    others: dict[date, list[Stop]] = {}
    for visit in queries.nurse_upcoming(session, current_user, now):
        if visit.id in shown or visit.planned_start is None:
            continue
        others.setdefault(utc_to_local(visit.planned_start, zone).date, []).append(
            _stop(visit, zone)
        )
    return render_template(
        "dispatch/nurse_day.html",
        day=day,
        day_text=_day_text(day),
        today=today,
        zone=zone,
        stops=stops,
        others=sorted(others.items()),
        day_names={d: _day_text(d) for d in others},
        errors=errors,
        travel_total=_minutes(sum(s.visit.travel_minutes or 0 for s in stops)),
        previous_day=(day - _DAY).isoformat() if day > FIRST_DAY else None,
        next_day=(day + _DAY).isoformat() if day < LAST_DAY else None,
        status_labels=NURSE_STATUS_LABELS,
    ), (422 if errors else 200)


# --- the nurse's visit ------------------------------------------------------------------


def _my_visit(visit_id: int) -> HomeVisit:
    """Her visit (404 for anyone else's). The service locks it for a change."""
    session = _session()
    query = select(HomeVisit).where(
        HomeVisit.id == visit_id,
        policy.visible(current_user, HomeVisit, session=session, now=utcnow()),
    )
    found = session.scalar(query)
    if found is None:
        abort(404)
    return found


def _address_note(visit: HomeVisit, now: datetime) -> str:
    """When the address shows, as the nurse reads it while it does not."""
    if visit.status in HELD_BY_NURSE and visit.planned_start is not None:
        zone = visit.patient.timezone
        visit_day = utc_to_local(visit.planned_start, zone).date
        if utc_to_local(now, zone).date > visit_day:
            shown = _day_text(visit_day)
            return f"The address was shown until the end of the visit's day ({shown})."
        return (
            f"The address shows here from {_day_text(visit_day - _DAY)}, the day before the visit."
        )
    if visit.status in (HomeVisitStatus.COMPLETED, HomeVisitStatus.CANCELLED):
        return "The address is no longer shown: the visit is over."
    return "The address shows here from the day before the visit."


@dataclass(frozen=True)
class VitalField:
    name: str  # the service's name ("heart_rate"); the control is "vital_<name>"
    label: str
    unit: str
    low: float  # what can be stored at all
    high: float
    normal: str  # "50-100 bpm"; empty when any value that can be stored is normal
    value: str
    out_of_range: bool


def _vital_fields(visit: HomeVisit, refusal: Refusal) -> list[VitalField]:
    found = []
    for name, (unit, (low, high), (n_low, n_high)) in nurse_work.VITALS.items():
        stored = (visit.vitals or {}).get(name)
        value = refusal.value("findings", f"vital_{name}", "" if stored is None else f"{stored:g}")
        found.append(
            VitalField(
                name=name,
                label=VITAL_LABELS.get(name, name.replace("_", " ").capitalize()),
                unit=unit,
                low=low,
                high=high,
                normal="" if (n_low, n_high) == (low, high) else f"{n_low:g}-{n_high:g} {unit}",
                value=value,
                out_of_range=stored is not None and not (n_low <= stored <= n_high),
            )
        )
    return found


def _nurse_visit_page(
    visit: HomeVisit, refusal: Refusal | None = None, status: int = 200
) -> tuple[str, int]:
    session, now, zone = _session(), utcnow(), current_user.timezone
    refusal = refusal or Refusal()
    address = queries.address(session, current_user, visit, now)
    done = {p.code: p for p in visit.done_procedures}
    pending = [s for s in visit.samples if s.handed_over_at is None]
    in_progress = visit.status == HomeVisitStatus.IN_PROGRESS
    day = utc_to_local(visit.planned_start, zone).date if visit.planned_start else None
    return render_template(
        "dispatch/nurse_visit.html",
        visit=visit,
        patient=visit.patient,
        zone=zone,
        time=_when(visit.planned_start, visit.planned_end, zone),
        patient_time=(
            _span(visit.planned_start, visit.planned_end, visit.patient.timezone)
            if visit.planned_start and visit.patient.timezone != zone
            else ""
        ),
        window=_window(visit),
        duration=_minutes(visit.duration_minutes),
        travel=_minutes(visit.travel_minutes),
        back=url_for("dispatch.nurse_day", day=day.isoformat() if day else None),
        address=address,
        address_note=None if address else _address_note(visit, now),
        done=done,
        done_at={code: _clock(p.done_at, zone) for code, p in done.items()},
        not_ticked=[p.get("label") or p["code"] for p in visit.procedures if p["code"] not in done],
        vitals=_vital_fields(visit, refusal),
        pending=pending,
        sample_times={s.id: _instant(s.collected_at, zone) for s in visit.samples},
        handed_times={s.id: _instant(s.handed_over_at, zone) for s in visit.samples},
        checked_in=_instant(visit.checked_in_at, zone),
        checked_out=_instant(visit.checked_out_at, zone),
        may_accept=visit.status == HomeVisitStatus.ASSIGNED,
        may_decline=visit.status in (HomeVisitStatus.ASSIGNED, HomeVisitStatus.ACCEPTED),
        may_check_in=visit.status == HomeVisitStatus.ACCEPTED,
        in_progress=in_progress,
        may_hand_over=bool(pending),
        status_labels=NURSE_STATUS_LABELS,
        max_text=nurse_work.MAX_TEXT,
        max_notes=nurse_work.MAX_NOTES,
        notes_value=refusal.value("findings", "notes", visit.notes or ""),
        abnormal_checked=(
            refusal.value("findings", "abnormal") == "yes"
            if refusal.has("findings")
            else visit.findings_abnormal
        ),
        refusal=refusal,
    ), status


@bp.get("/nurse/visits/<int:visit_id>")
@roles_required(*NURSES)
def nurse_visit(visit_id: int) -> tuple[str, int]:
    return _nurse_visit_page(_my_visit(visit_id))


Step = Callable[[Session, HomeVisit, dict[str, str]], str]


def _nurse_step(
    visit_id: int,
    form: str,
    names: tuple[str, ...],
    step: Step,
    *,
    known: Mapping[str, str] | None = None,
    anchor: str | None = None,
) -> Response | tuple[str, int]:
    """One step of her visit: the service call `step` makes (it returns what to tell her),
    then back to the visit, or the page again with the refusal."""
    visit = _my_visit(visit_id)
    values = _form_values(names)
    try:
        message = step(_session(), visit, values)
    except DomainError as exc:
        fields = known if known is not None else {n: n for n in names}
        return _nurse_visit_page(visit, refused(form, exc, values, fields), exc.status)
    flash(message, "success")
    return redirect(url_for("dispatch.nurse_visit", visit_id=visit.id, _anchor=anchor))


def _title(visit: HomeVisit) -> str:
    return f"{visit.planned_visit.name} of {visit.patient.subject_number}"


@bp.post("/nurse/visits/<int:visit_id>/accept")
@roles_required(*NURSES)
def nurse_accept(visit_id: int) -> Response | tuple[str, int]:
    def step(session: Session, visit: HomeVisit, _values: dict[str, str]) -> str:
        nurse_work.accept(session, current_user, visit, utcnow())
        return f"You accepted {_title(visit)}."

    return _nurse_step(visit_id, "accept", (), step)


@bp.post("/nurse/visits/<int:visit_id>/decline")
@roles_required(*NURSES)
def nurse_decline(visit_id: int) -> Response | tuple[str, int]:
    visit = _my_visit(visit_id)
    values = _form_values(("reason",))
    title = _title(visit)
    try:
        nurse_work.decline(_session(), current_user, visit, values["reason"], utcnow())
    except DomainError as exc:
        refusal = refused("decline", exc, values, {"reason": "reason"})
        return _nurse_visit_page(visit, refusal, exc.status)
    # The visit is no longer hers: back to her day.
    flash(f"You declined {title}; it goes back to the dispatcher.", "success")
    return redirect(url_for("dispatch.nurse_day"))


@bp.post("/nurse/visits/<int:visit_id>/check-in")
@roles_required(*NURSES)
def nurse_check_in(visit_id: int) -> Response | tuple[str, int]:
    def step(session: Session, visit: HomeVisit, values: dict[str, str]) -> str:
        lat, lon = _coordinates(values)
        nurse_work.check_in(session, current_user, visit, utcnow(), lat, lon)
        where = " with your location" if lat is not None else " (no location from the phone)"
        return f"Checked in at {_clock(utcnow(), current_user.timezone)}{where}."

    return _nurse_step(
        visit_id, "check-in", ("latitude", "longitude"), step, known={}, anchor="procedures"
    )


@bp.post("/nurse/visits/<int:visit_id>/procedures")
@roles_required(*NURSES)
def nurse_tick(visit_id: int) -> Response | tuple[str, int]:
    def step(session: Session, visit: HomeVisit, values: dict[str, str]) -> str:
        done = nurse_work.tick(session, current_user, visit, values["code"], utcnow())
        labels = {p["code"]: p.get("label", p["code"]) for p in visit.procedures}
        return f"Done: {labels.get(done.code, done.code)}."

    return _nurse_step(visit_id, "tick", ("code",), step, known={}, anchor="procedures")


@bp.post("/nurse/visits/<int:visit_id>/findings")
@roles_required(*NURSES)
def nurse_findings(visit_id: int) -> Response | tuple[str, int]:
    names = tuple(f"vital_{n}" for n in nurse_work.VITALS)

    def step(session: Session, visit: HomeVisit, values: dict[str, str]) -> str:
        nurse_work.record_findings(
            session,
            current_user,
            visit,
            utcnow(),
            # A decimal comma, as phones in many countries type it, is a decimal point.
            vitals={n: values[f"vital_{n}"].strip().replace(",", ".") for n in nurse_work.VITALS},
            notes=values["notes"],
            abnormal=values["abnormal"] == "yes",
        )
        flagged = " The findings are flagged abnormal." if visit.findings_abnormal else ""
        return f"Vitals and notes saved.{flagged}"

    known = {f"vitals.{n}": f"vital_{n}" for n in nurse_work.VITALS} | {"notes": "notes"}
    return _nurse_step(
        visit_id, "findings", (*names, "notes", "abnormal"), step, known=known, anchor="findings"
    )


@bp.post("/nurse/visits/<int:visit_id>/samples")
@roles_required(*NURSES)
def nurse_sample(visit_id: int) -> Response | tuple[str, int]:
    def step(session: Session, visit: HomeVisit, values: dict[str, str]) -> str:
        sample = nurse_work.collect_sample(
            session, current_user, visit, values["barcode"], values["kind"], utcnow()
        )
        return f"Sample {sample.barcode} ({sample.kind}) recorded."

    return _nurse_step(visit_id, "sample", ("barcode", "kind"), step, anchor="samples")


@bp.post("/nurse/visits/<int:visit_id>/hand-over")
@roles_required(*NURSES)
def nurse_hand_over(visit_id: int) -> Response | tuple[str, int]:
    def step(session: Session, visit: HomeVisit, values: dict[str, str]) -> str:
        given = nurse_work.hand_over(
            session,
            current_user,
            visit,
            utcnow(),
            values["courier"],
            values["courier_reference"],
        )
        count = f"{len(given)} sample{'s' if len(given) != 1 else ''}"
        return f"{count} handed over to {values['courier'].strip()}."

    return _nurse_step(
        visit_id, "hand-over", ("courier", "courier_reference"), step, anchor="samples"
    )


@bp.post("/nurse/visits/<int:visit_id>/check-out")
@roles_required(*NURSES)
def nurse_check_out(visit_id: int) -> Response | tuple[str, int]:
    def step(session: Session, visit: HomeVisit, values: dict[str, str]) -> str:
        lat, lon = _coordinates(values)
        nurse_work.check_out(session, current_user, visit, utcnow(), lat, lon)
        return f"Checked out: {_title(visit)} is completed."

    return _nurse_step(visit_id, "check-out", ("latitude", "longitude"), step, known={})


# --- the dispatcher's board -------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A visit on a nurse's row: grid columns from the row's first hour."""

    visit: HomeVisit
    column: int
    span: int
    travel_column: int
    travel_span: int
    start: str  # "09:30"
    time: str  # "09:30-10:00 CET"


@dataclass
class Row:
    nurse_id: int
    name: str
    blocks: list[Block] = field(default_factory=list)
    travel: int = 0


@dataclass(frozen=True)
class Timeline:
    first_hour: int
    hours: list[tuple[int, str]]  # (grid column, "09:00")
    rows: list[Row]
    count: int


def _minute_of_day(at: datetime, day: date, zone: str) -> int:
    """Minutes from the day's local midnight, clamped to the day."""
    local = utc_to_local(at, zone)
    if local.date < day:
        return 0
    if local.date > day:
        return 24 * 60
    return local.time.hour * 60 + local.time.minute


def _timeline(
    day: date, zone: str, visits: list[HomeVisit], nurses: list[tuple[int, str]]
) -> Timeline:
    placed = []
    for v in visits:
        if v.planned_start is None or v.nurse_id is None:
            continue
        start = _minute_of_day(v.planned_start, day, zone)
        end = _minute_of_day(v.planned_end or v.planned_start, day, zone)
        placed.append((v, start, max(end, start + SLOT_MINUTES)))
    first = min([DEFAULT_HOURS[0] * 60, *(s for _, s, _ in placed)]) // 60
    last = math.ceil(max([DEFAULT_HOURS[1] * 60, *(e for _, _, e in placed)]) / 60)
    last = min(max(last, first + 1), 24)
    rows = {uid: Row(uid, name) for uid, name in nurses}
    others = _names(_session(), (v.nurse_id for v, _, _ in placed if v.nurse_id not in rows))
    ends: dict[int, int] = {}  # each row's first free column so far
    for v, start, end in sorted(placed, key=lambda p: (p[1], p[0].id)):
        assert v.nurse_id is not None and v.planned_start is not None
        row = rows.setdefault(v.nurse_id, Row(v.nurse_id, others.get(v.nurse_id, "another nurse")))
        column = 2 + (start - first * 60) // SLOT_MINUTES
        span = min(max(1, math.ceil((end - start) / SLOT_MINUTES)), DAY_SLOTS)
        # The travel bar ends at the visit and never covers the visit before it.
        travel = math.ceil((v.travel_minutes or 0) / SLOT_MINUTES)
        travel_column = min(column, max(2, column - travel, ends.get(v.nurse_id, 2)))
        ends[v.nurse_id] = max(ends.get(v.nurse_id, 2), column + span)
        row.blocks.append(
            Block(
                visit=v,
                column=column,
                span=span,
                travel_column=travel_column,
                travel_span=column - travel_column,
                start=_clock(v.planned_start, zone),
                time=_span(v.planned_start, v.planned_end, zone),
            )
        )
        row.travel += v.travel_minutes or 0
    hours = [(2 + (h - first) * SLOTS_PER_HOUR, f"{h:02d}:00") for h in range(first, last)]
    return Timeline(first, hours, list(rows.values()), len(placed))


def _board_day(errors: list[str]) -> date:
    today = utc_to_local(utcnow(), current_user.timezone).date
    raw = request.form.get("board_day") if request.method == "POST" else None
    return _local_day(raw if raw is not None else request.args.get("day"), today, errors)


def _runs_context(session: Session, zone: str) -> dict[str, Any]:
    found = queries.latest_runs(session, current_user)
    return {
        "runs": found,
        "run_labels": RUN_LABELS,
        "run_active": any(r.status in ACTIVE_RUNS for r in found),
        "run_times": {r.id: _instant(r.requested_at, zone) for r in found},
        "run_names": _names(session, (r.requested_by_id for r in found)),
    }


def _board_page(
    day: date,
    refusal: Refusal | None = None,
    status: int = 200,
    errors: list[str] | None = None,
) -> tuple[str, int]:
    session, now, zone = _session(), utcnow(), current_user.timezone
    refusal = refusal or Refusal()
    errors = errors or []
    try:
        queries.dispatch_scope(session, current_user)
    except Forbidden as exc:
        # A coordinator whose provider is not set yet lands here: the page says so, and
        # every form would be refused.
        return render_template("dispatch/board.html", unassigned=str(exc.message)), (
            status if status >= 400 else 200
        )
    start = local_to_utc(day, time(0), zone)
    end = local_to_utc(day + _DAY, time(0), zone)
    visits = [
        v
        for v in queries.visible(
            session, current_user, now, first_day=day - _DAY, last_day=day + _DAY
        )
        if v.planned_start is not None
        and start <= v.planned_start < end
        and v.status != HomeVisitStatus.CANCELLED
    ]
    nurses = [(n.user_id, n.user.display_name) for n in queries.nurses_for(session, current_user)]
    attention = queries.needing_attention(session, current_user, now)
    pinned = _names(session, (v.pinned_nurse_id for v in attention))
    return render_template(
        "dispatch/board.html",
        unassigned=None,
        day=day,
        day_text=_day_text(day),
        zone=zone,
        timeline=_timeline(day, zone, visits, nurses),
        attention=attention,
        windows={v.id: _window(v) for v in attention},
        pinned=pinned,
        nurses=nurses,
        short_labels=SHORT_LABELS,
        previous_day=(day - _DAY).isoformat() if day > FIRST_DAY else None,
        next_day=(day + _DAY).isoformat() if day < LAST_DAY else None,
        today=utc_to_local(now, zone).date.isoformat(),
        max_days=runs.MAX_DAYS,
        errors=errors,
        refusal=refusal,
        **_runs_context(session, zone),
    ), status


@bp.get("/dispatch")
@roles_required(*DISPATCHERS)
def board() -> tuple[str, int]:
    errors: list[str] = []
    day = _board_day(errors)
    return _board_page(day, errors=errors, status=422 if errors else 200)


@bp.get("/dispatch/runs")
@roles_required(*DISPATCHERS)
def run_progress() -> tuple[str, int]:
    """The latest runs alone: the board's script reloads this while a run is active."""
    return render_template(
        "dispatch/_runs.html", **_runs_context(_session(), current_user.timezone)
    ), 200


def _dispatchable(visit_id: int) -> HomeVisit:
    session = _session()
    query = select(HomeVisit).where(
        HomeVisit.id == visit_id,
        policy.visible(current_user, HomeVisit, session=session, now=utcnow()),
    )
    found = session.scalar(query)
    if found is None:
        abort(404)
    return found


def _safe_next(default: str) -> str:
    """Back to the page the form was on, if it is one of the dispatcher's pages."""
    target = request.form.get("next", "")
    if target.startswith("/dispatch") and "//" not in target and "\\" not in target:
        return target
    return default


@bp.post("/dispatch/visits/<int:visit_id>/pin")
@roles_required(*DISPATCHERS)
def pin(visit_id: int) -> Response | tuple[str, int]:
    session = _session()
    visit = _dispatchable(visit_id)
    values = _form_values(("nurse_id", "board_day", "next"))
    form = f"pin-{visit.id}"
    raw = values["nurse_id"].strip()
    nurse: User | None = None
    try:
        if raw:
            usable = raw.isascii() and raw.isdigit() and len(raw) <= 9
            found = session.get(User, int(raw)) if usable else None
            if found is None:
                raise ValidationFailed.on_field("nurse_id", "Choose one of the nurses listed.")
            nurse = found
        home_visits.pin(session, current_user, visit, nurse, utcnow())
    except DomainError as exc:
        refusal = refused(form, exc, values, {"nurse_id": "nurse_id"})
        if values["next"].startswith("/dispatch/visits/"):
            return _record_page(visit, refusal, exc.status)
        errors: list[str] = []
        return _board_page(_board_day(errors), refusal, exc.status, errors)
    subject = visit.patient.subject_number
    if nurse is None:
        flash(f"{_title(visit)} is no longer pinned; the planner chooses the nurse.", "success")
    else:
        flash(
            f"{visit.planned_visit.name} of {subject} is pinned to {nurse.display_name}. "
            "The next planning run gives it to her, or says why it cannot.",
            "success",
        )
    return redirect(_safe_next(url_for("dispatch.board", day=values["board_day"] or None)))


@bp.post("/dispatch/replan")
@roles_required(*DISPATCHERS)
def replan() -> Response | tuple[str, int]:
    session, now = _session(), utcnow()
    values = _form_values(("day", "days", "board_day"))
    errors: list[str] = []
    board_day = _board_day(errors)
    problems: dict[str, list[str]] = {}
    day_errors: list[str] = []
    first = _local_day(values["day"], board_day, day_errors)
    if day_errors or not values["day"].strip():
        problems["day"] = day_errors or ["Choose the first day to plan."]
    raw_days = values["days"].strip()
    days = int(raw_days) if raw_days.isascii() and raw_days.isdigit() and len(raw_days) < 3 else 0
    if not 1 <= days <= runs.MAX_DAYS:
        problems["days"] = [f"Plan 1 to {runs.MAX_DAYS} days at a time."]
    if problems:
        return _board_page(board_day, Refusal("replan", values, problems, []), 422, errors)
    try:
        provider_id = queries.dispatch_scope(session, current_user)
        run = runs.queue(session, current_user, now, first, days, provider_id=provider_id)
    except DomainError as exc:
        refusal = refused("replan", exc, values, {"days": "days", "first_day": "day"})
        return _board_page(board_day, refusal, exc.status, errors)
    span = _day_text(first) + (f" and the {days - 1} days after" if days > 2 else "")
    if days == 2:
        span += " and the day after"
    flash(f"Planning run {run.id} is queued for {span}; its progress shows below.", "success")
    return redirect(url_for("dispatch.board", day=board_day.isoformat(), _anchor="replan"))


# --- the visit's record ---------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a check-in or check-out was recorded, as the reader may read it."""

    point: str  # "52.52000, 13.40500": for those who may see the address only
    distance: str  # "40 m from the patient's home"


def _place(
    lat: float | None, lon: float | None, home: PatientHomeLocation | None, show_point: bool
) -> Place | None:
    if lat is None or lon is None:
        return None
    distance = ""
    if home is not None:
        metres = 1000 * kilometres((lat, lon), (home.latitude, home.longitude))
        distance = (
            f"{metres / 1000:.1f} km from the patient's home"
            if metres >= 1000
            else f"{round(metres / 10) * 10:.0f} m from the patient's home"
        )
    return Place(f"{lat:.5f}, {lon:.5f}" if show_point else "", distance)


def _record_page(
    visit: HomeVisit, refusal: Refusal | None = None, status: int = 200
) -> tuple[str, int]:
    session, now, zone = _session(), utcnow(), current_user.timezone
    refusal = refusal or Refusal()
    may_dispatch = current_user.role in DISPATCHERS and policy.can(
        current_user, DISPATCH, visit, session=session, now=now
    )
    # A check-in's point is where the patient lives: shown to those who may see the
    # address (the site), the distance from the home to everyone.
    show_point = policy.can(current_user, SEE_ADDRESS, visit, session=session, now=now)
    home = session.get(PatientHomeLocation, visit.patient_id)
    declines = list(
        session.scalars(
            select(HomeVisitDecline)
            .where(HomeVisitDecline.home_visit_id == visit.id)
            .order_by(HomeVisitDecline.declined_at)
        )
    )
    done = {p.code: p for p in visit.done_procedures}
    names = _names(
        session,
        [
            visit.nurse_id,
            visit.pinned_nurse_id,
            visit.investigator_id,
            *(p.done_by_id for p in done.values()),
            *(d.nurse_id for d in declines),
        ],
    )
    site = session.get(Site, visit.site_id)
    nurses = (
        [(n.user_id, n.user.display_name) for n in queries.nurses_for(session, current_user)]
        if may_dispatch and visit.status in PINNABLE
        else []
    )
    vitals = [
        (f, (visit.vitals or {})[f.name])
        for f in _vital_fields(visit, Refusal())
        if f.name in (visit.vitals or {})
    ]
    return render_template(
        "dispatch/visit_record.html",
        visit=visit,
        patient=visit.patient,
        site=site,
        zone=zone,
        window=_window(visit),
        time=_when(visit.planned_start, visit.planned_end, zone),
        patient_time=(
            _when(visit.planned_start, visit.planned_end, visit.patient.timezone)
            if visit.planned_start
            else ""
        ),
        names=names,
        accepted=_instant(visit.accepted_at, zone),
        checked_in=_instant(visit.checked_in_at, zone),
        checked_out=_instant(visit.checked_out_at, zone),
        in_place=_place(visit.checked_in_lat, visit.checked_in_lon, home, show_point),
        out_place=_place(visit.checked_out_lat, visit.checked_out_lon, home, show_point),
        done=done,
        done_at={code: _instant(p.done_at, zone) for code, p in done.items()},
        vitals=vitals,
        samples=visit.samples,
        sample_times={
            s.id: (_instant(s.collected_at, zone), _instant(s.handed_over_at, zone))
            for s in visit.samples
        },
        declines=declines,
        decline_times={d.id: _instant(d.declined_at, zone) for d in declines},
        duration=_minutes(visit.duration_minutes),
        travel=_minutes(visit.travel_minutes),
        status_labels=STATUS_LABELS,
        may_pin=bool(nurses),
        nurses=nurses,
        may_cancel=may_dispatch and visit.status in CANCELLABLE,
        may_board=current_user.role in DISPATCHERS,
        board_day=(
            utc_to_local(visit.planned_start, zone).date.isoformat()
            if visit.planned_start
            else None
        ),
        max_reason=home_visits.MAX_REASON,
        refusal=refusal,
    ), status


@bp.get("/dispatch/visits/<int:visit_id>")
@roles_required(*RECORD_READERS)
def visit_record(visit_id: int) -> tuple[str, int]:
    return _record_page(_dispatchable(visit_id))


@bp.post("/dispatch/visits/<int:visit_id>/cancel")
@roles_required(*DISPATCHERS)
def cancel(visit_id: int) -> Response | tuple[str, int]:
    session, now = _session(), utcnow()
    visit = _dispatchable(visit_id)
    values = _form_values(("reason",))
    try:
        # `home_visits.cancel` leaves the question of who may to its callers.
        policy.authorize(current_user, DISPATCH, visit, now=now)
        home_visits.cancel(session, current_user, visit, values["reason"], now)
    except DomainError as exc:
        refusal = refused("cancel", exc, values, {"reason": "reason"})
        return _record_page(visit, refusal, exc.status)
    flash(f"{_title(visit)} is cancelled; the planned visit can be booked again.", "success")
    return redirect(url_for("dispatch.visit_record", visit_id=visit.id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, list(NURSES), "My visits", "dispatch.nurse_day", order=10)
    add_nav_item(app, [*SITE_ROLES, COORDINATOR], "Home visits", "dispatch.board", order=38)
    set_home(app, COORDINATOR, "dispatch.board")
