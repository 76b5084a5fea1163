"""The eDiary pages of site staff, investigators and trial managers: compliance per
patient and per site over a chosen period, with a chart and a line at the threshold; a
patient's diaries over a period; one entry with its answers and its corrections; and the
correction of one answer with a reason.

The pages only read and present: what may be seen is `policy.visible` (staff of another
site get 404), what may be corrected is `policy.can(..., CORRECT, ...)`, and a correction
is `entries.correct`, which checks the new answer and the reason and writes the audit
trail. Times of a diary are shown on the patient's clock, in the zone its window was
computed in (the zone they lived by that day), with the zone's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import Conflict, NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.i18n import current_language
from dct_platform.models import Patient, Site, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.navigation import add_nav_item
from dct_platform.roles import Role
from dct_platform.timeutil import format_local, utcnow
from dct_platform.timeutil import zone as timezone
from dct_platform.web.guards import roles_required
from devices import charts
from devices.ediary import answer_form, compliance, entries
from devices.ediary import occurrences as occ
from devices.ediary.compliance import Compliance
from devices.ediary.instruments import FORM_ERRORS, Instrument, Item, score_band, visible_items
from devices.ediary.models import ChangeRequest, Entry, Occurrence, Schedule
from devices.ediary.policy import CORRECT
from devices.ediary.schedules import as_window, instrument_of
from devices.policy import DATA_READERS

bp = Blueprint(
    "ediary",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/diary/static",
)

PERIODS = (7, 14, 30, 90)
DEFAULT_DAYS = 30
# The staff pages' own style sheet (the question controls the correction form shares with
# the patient's form), a file beside the templates.
SOURCES = {"portal": "Patient portal", "api": "App (API)"}


def _period() -> tuple[int, list[str]]:
    """The period asked for (`days`), or the default with a message for anything else."""
    raw = request.args.get("days", str(DEFAULT_DAYS))
    days = next((p for p in PERIODS if str(p) == raw), DEFAULT_DAYS)
    errors = (
        [] if raw == str(days) else [f"Choose a period of {', '.join(map(str, PERIODS))} days."]
    )
    return days, errors


@dataclass(frozen=True)
class Row:
    label: str
    patient_id: int | None
    figures: Compliance


def _threshold() -> float:
    return float(current_app.config["EDIARY_COMPLIANCE_PERCENT"]) / 100


def _sorted(rows: list[Row]) -> list[Row]:
    # Lowest first: the page is for finding who needs a call; none expected yet go last.
    return sorted(rows, key=lambda r: (r.figures.rate is None, r.figures.rate or 0, r.label))


@bp.get("/diary/compliance")
@roles_required(*DATA_READERS)
def compliance_page() -> tuple[str, int]:
    days, errors = _period()
    now = utcnow()
    start, session = now - timedelta(days=days), db.session()
    if current_user.role in SITE_ROLES:
        report = compliance.by_patient(
            session, policy.visible(current_user, Occurrence, session=session), start, now
        )
        numbers = dict(
            session.execute(
                select(Patient.id, Patient.subject_number).where(Patient.id.in_(report.rows))
            ).all()
        )
        rows = [Row(numbers[pid], pid, c) for pid, c in report.rows.items()]
        what = "patient"
    else:
        sites = {
            s.id: s
            for s in session.scalars(
                select(Site).where(policy.visible(current_user, Site, session=session))
            )
        }
        report = compliance.by_site(session, sites, start, now)
        rows = [Row(f"{sites[sid].site_number} · {sites[sid].name}", None, c)
                for sid, c in report.rows.items()]  # fmt: skip
        what = "site"
    rows = _sorted(rows)
    shown = [r for r in rows if r.figures.rate is not None][:40]
    chart = charts.bars(
        [r.label.split(" · ")[0] for r in shown],
        [round(100 * (r.figures.rate or 0), 1) for r in shown],
        "% on time",
        100,
        threshold=100 * _threshold(),
    )
    return render_template(
        "ediary/compliance.html",
        rows=rows,
        total=report.total(),
        chart=chart,
        charted=len(shown),
        threshold=_threshold(),
        days=days,
        periods=PERIODS,
        what=what,
        errors=errors,
    ), (422 if errors else 200)


# --- a patient's diaries ------------------------------------------------------------------

STATES = {
    "upcoming": "upcoming",
    "open": "still open",
    "late_window": "still open (late)",
    "missed": "missed",
}


@dataclass(frozen=True)
class DiaryRow:
    day: date
    title: str
    version: int
    state: str  # "on_time", "late", "missed", "open", "upcoming": the row's tag
    state_label: str
    submitted: str  # on the patient's clock, with the zone's abbreviation; "" if not
    zone: str
    score: float | None
    corrections: int
    entry_id: int | None


def _instruments() -> Callable[[Occurrence], Instrument]:
    """Each questionnaire version read once per request, however many diaries use it."""
    read: dict[int, Instrument] = {}

    def of(row: Occurrence) -> Instrument:
        version = row.schedule.instrument_version
        if version.id not in read:
            read[version.id] = instrument_of(version)
        return read[version.id]

    return of


def _state(row: Occurrence, entry: Entry | None, now: datetime) -> tuple[str, str]:
    found = occ.state_at(as_window(row), now, entry is not None)
    if entry is not None:
        return ("late", "late") if entry.late else ("on_time", "on time")
    return ("open" if found == "late_window" else found), STATES[found]


def _diary_rows(
    session: Session, patient: Patient, start: datetime, now: datetime
) -> list[DiaryRow]:
    """The patient's diaries that opened since `start` (and those written ahead), newest
    first, in one statement with their entries and how often each was corrected."""
    corrected = (
        select(ChangeRequest.entry_id, func.count().label("n"))
        .join(Entry, Entry.id == ChangeRequest.entry_id)
        .where(Entry.patient_id == patient.id)
        .group_by(ChangeRequest.entry_id)
        .subquery()
    )
    query = (
        select(Occurrence, Entry, corrected.c.n)
        .outerjoin(Entry, Entry.occurrence_id == Occurrence.id)
        .outerjoin(corrected, corrected.c.entry_id == Entry.id)
        .where(
            Occurrence.patient_id == patient.id,
            Occurrence.opens_at >= start,
            policy.visible(current_user, Occurrence, session=session),
        )
        .options(joinedload(Occurrence.schedule).joinedload(Schedule.instrument_version))
        .order_by(Occurrence.opens_at.desc(), Occurrence.id.desc())
    )
    instruments = _instruments()
    rows = []
    for row, entry, n in session.execute(query):
        instrument = instruments(row)
        state, label = _state(row, entry, now)
        rows.append(
            DiaryRow(
                day=row.local_date,
                title=instrument.title,
                version=instrument.version,
                state=state,
                state_label=label,
                submitted=format_local(entry.submitted_at, row.zone) if entry else "",
                zone=row.zone,
                score=entry.score if entry else None,
                corrections=n or 0,
                entry_id=entry.id if entry else None,
            )
        )
    return rows


@bp.get("/diary/patients/<int:patient_id>")
@roles_required(*DATA_READERS)
def patient_diary(patient_id: int) -> tuple[str, int]:
    session, now = db.session(), utcnow()
    patient = policy.get_visible(session, current_user, Patient, patient_id)
    days, errors = _period()
    rows = _diary_rows(session, patient, now - timedelta(days=days), now)
    return render_template(
        "ediary/patient_diary.html",
        patient=patient,
        rows=rows,
        days=days,
        periods=PERIODS,
        errors=errors,
    ), (422 if errors else 200)


# --- one entry -------------------------------------------------------------------------------


def answer_text(item: Item, value: object, zone: str) -> str:
    """An answer as staff read it: option labels, Yes/No, a number with its unit; "" for
    no answer."""
    language = current_language()
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if item.type in ("single_choice", "multiple_choice"):
        codes = value if isinstance(value, list) else [value]
        labels = []
        for code in codes:
            option = item.option(code)
            labels.append(
                answer_form.in_language(option.label, option.translations, language)
                if option is not None
                else str(code)
            )
        return ", ".join(labels)
    if item.type == "numeric" and isinstance(value, int | float):
        number = answer_form.number_text(value, language)
        return f"{number} {answer_form.unit_text(item.unit)}".strip()
    if item.type == "datetime" and isinstance(value, str):
        try:
            return format_local(datetime.fromisoformat(value), zone)
        except ValueError:
            return value
    return str(value)


def _question_text(instrument: Instrument, link_id: str) -> str:
    try:
        item = instrument.item(link_id)
    except KeyError:  # not a question of this version: say which id it was
        return link_id
    return answer_form.in_language(item.text, item.translations, current_language())


@dataclass(frozen=True)
class AnswerRow:
    link_id: str
    question: str
    answer: str  # "" when not answered
    asked: bool  # False: the other answers skip it


@dataclass(frozen=True)
class CorrectionRow:
    when: str
    who: str
    question: str
    old: str
    new: str
    reason: str


def _answers(instrument: Instrument, entry: Entry) -> list[AnswerRow]:
    asked = {item.link_id for item in visible_items(instrument, entry.answers)}
    return [
        AnswerRow(
            item.link_id,
            _question_text(instrument, item.link_id),
            answer_text(item, entry.answers.get(item.link_id), entry.occurrence.zone),
            item.link_id in asked,
        )
        for item in instrument.items
    ]


def _corrections(session: Session, instrument: Instrument, entry: Entry) -> list[CorrectionRow]:
    """The entry's corrections, newest first, with who made them (their name)."""
    found = list(
        session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.entry_id == entry.id)
            .order_by(ChangeRequest.requested_at.desc(), ChangeRequest.id.desc())
        )
    )
    names = dict(
        session.execute(
            select(User.id, User.display_name).where(
                User.id.in_({c.requested_by_id for c in found})
            )
        ).all()
    )
    zone = entry.occurrence.zone
    rows = []
    for change in found:
        try:
            item: Item | None = instrument.item(change.link_id)
        except KeyError:
            item = None
        rows.append(
            CorrectionRow(
                when=format_local(change.requested_at, current_user.timezone),
                who=names.get(change.requested_by_id, "unknown"),
                question=_question_text(instrument, change.link_id),
                old=answer_text(item, change.old_value, zone) if item else str(change.old_value),
                new=answer_text(item, change.new_value, zone) if item else str(change.new_value),
                reason=change.reason,
            )
        )
    return rows


def _window(row: Occurrence) -> str:
    """The window on the patient's clock: "2026-03-11 18:00 CET to 2026-03-12 00:00 CET"."""
    opens, closes = format_local(row.opens_at, row.zone), format_local(row.closes_at, row.zone)
    text = f"{opens} to {closes}"
    if row.late_until > row.closes_at:
        text += f", late entries until {format_local(row.late_until, row.zone)}"
    return text


def _visible_entry(session: Session, entry_id: int) -> tuple[Entry, Instrument]:
    entry = policy.get_visible(session, current_user, Entry, entry_id)
    return entry, instrument_of(entry.occurrence.schedule.instrument_version)


@bp.get("/diary/entries/<int:entry_id>")
@roles_required(*DATA_READERS)
def entry_page(entry_id: int) -> str:
    session = db.session()
    entry, instrument = _visible_entry(session, entry_id)
    row = entry.occurrence
    band = score_band(instrument, entry.score)
    return render_template(
        "ediary/entry.html",
        entry=entry,
        row=row,
        patient=row.patient,
        instrument=instrument,
        window=_window(row),
        submitted_local=format_local(entry.submitted_at, row.zone),
        submitted_utc=format_local(entry.submitted_at, "UTC"),
        source=SOURCES.get(entry.source, entry.source),
        score_band=band,
        answers=_answers(instrument, entry),
        corrections=_corrections(session, instrument, entry),
        may_correct=policy.can(current_user, CORRECT, entry, session=session),
    )


# --- correcting one answer -------------------------------------------------------------------


def _form_values(
    instrument: Instrument, answers: Mapping[str, Any], zone: str
) -> dict[str, list[str]]:
    """The recorded answers as the form's controls hold them, by link id."""
    values: dict[str, list[str]] = {}
    for item in instrument.items:
        answer = answers.get(item.link_id)
        if answer is None:
            continue
        if isinstance(answer, list):
            values[item.link_id] = [answer_form.form_value(a) for a in answer]
        elif item.type == "datetime" and isinstance(answer, str):
            values[item.link_id] = [_datetime_local(answer, zone)]
        else:
            values[item.link_id] = [answer_form.form_value(answer)]
    return values


def _datetime_local(answer: str, zone: str) -> str:
    """A stored date-time as a datetime-local control shows it, on the patient's clock."""
    try:
        return datetime.fromisoformat(answer).astimezone(timezone(zone)).strftime("%Y-%m-%dT%H:%M")
    except ValueError:
        return answer


def _posted_value(
    instrument: Instrument, item: Item, recorded: dict[str, list[str]], zone: str
) -> tuple[object, list[str]]:
    """The posted answer to `item`, typed as check_answers reads it (None: no answer), and
    what was sent, to show again. The other questions keep their recorded answers, so that
    the skip logic reads the form as the entry has it."""
    form: MultiDict[str, str] = MultiDict()
    for link_id, values in recorded.items():
        if link_id != item.link_id:
            for value in values:
                form.add(answer_form.field_name(link_id), value)
    for value in request.form.getlist(answer_form.field_name(item.link_id)):
        form.add(answer_form.field_name(item.link_id), value)
    answers, sent = answer_form.read_answers(instrument, form, zone)
    return answers.get(item.link_id), sent.get(item.link_id, [])


@dataclass(frozen=True)
class Problems:
    """A refused correction's messages: at the question, at the reason, and the rest."""

    answer: list[str]
    reason: list[str]
    general: list[str]


def _other_answer_problem(
    instrument: Instrument, other: str, changed: Mapping[str, object], message: str
) -> str:
    """Why another answer stands in the way: skip logic the new answer changes, in words."""
    if other == FORM_ERRORS:
        return message
    try:
        item = instrument.item(other)
    except KeyError:
        return message
    question = _question_text(instrument, other)
    if item not in visible_items(instrument, changed):
        return f"“{question}” has an answer, and would no longer be asked."
    if changed.get(other) is None:
        return f"“{question}” would then be asked, and has no answer."
    return f"“{question}”: {answer_form.problem_text(item, message, current_language())}"


def _problems(
    exc: ValidationFailed, instrument: Instrument, link_id: str, changed: Mapping[str, object]
) -> Problems:
    """The refusal's messages where the page shows them; `changed` is the entry's answers
    with the new one, as the service checked them."""
    fields = exc.details.get("fields") or {}
    by_answer: Mapping[str, list[str]] = fields.get("answers") or {}
    general = [
        _other_answer_problem(instrument, other, changed, message)
        for other, messages in by_answer.items()
        if other != link_id
        for message in messages
    ]
    if general:
        # The service corrects one answer at a time: one that other answers depend on
        # cannot change what is asked.
        general.insert(
            0, "This change does not fit the other answers of the entry (one answer is "
            "corrected at a time):"
        )  # fmt: skip
    for name, messages in fields.items():
        if name not in ("answers", "reason"):
            general.extend(messages)
    answer, reason = list(by_answer.get(link_id, [])), list(fields.get("reason") or [])
    if not (answer or reason or general):
        general.append(exc.message)
    return Problems(answer, reason, general)


def _correction_page(
    entry: Entry,
    instrument: Instrument,
    item: Item,
    values: Mapping[str, list[str]],
    reason: str = "",
    problems: Problems | None = None,
) -> str:
    problems = problems or Problems([], [], [])
    errors = {item.link_id: problems.answer} if problems.answer else None
    [question] = [
        q
        for q in answer_form.questions(instrument, current_language(), values, errors)
        if q.item.link_id == item.link_id
    ]
    row = entry.occurrence
    return render_template(
        "ediary/correct.html",
        entry=entry,
        row=row,
        patient=row.patient,
        instrument=instrument,
        question=question,
        recorded=answer_text(item, entry.answers.get(item.link_id), row.zone),
        reason=reason,
        reason_errors=problems.reason,
        general_errors=problems.general,
        max_reason=entries.MAX_REASON,
    )


def _askable_item(instrument: Instrument, entry: Entry, link_id: str) -> Item:
    try:
        item = instrument.item(link_id)
    except KeyError:
        raise NotFound(f"{instrument.title} has no question {link_id[:40]!r}.") from None
    if item not in visible_items(instrument, entry.answers):
        raise Conflict(
            "This question was not asked in this entry (the other answers skip it), so it "
            "has no answer to correct."
        )
    return item


@bp.route("/diary/entries/<int:entry_id>/corrections/<link_id>", methods=["GET", "POST"])
@roles_required(*DATA_READERS)
def correct(entry_id: int, link_id: str) -> Response | tuple[str, int]:
    session, now = db.session(), utcnow()
    entry, instrument = _visible_entry(session, entry_id)
    item = _askable_item(instrument, entry, link_id)
    # Readers who may not correct (the trial manager) get 403, not a form they cannot send.
    policy.authorize(current_user, CORRECT, entry, now=now)
    zone = entry.occurrence.zone
    recorded = _form_values(instrument, entry.answers, zone)
    if request.method == "GET":
        return _correction_page(entry, instrument, item, recorded), 200
    value, sent = _posted_value(instrument, item, recorded, zone)
    reason = request.form.get("reason", "")
    try:
        entries.correct(session, current_user, entry, item.link_id, value, reason, now)
    except ValidationFailed as exc:
        shown = {**recorded, item.link_id: sent}
        changed = {**entry.answers, item.link_id: value}
        problems = _problems(exc, instrument, item.link_id, changed)
        return _correction_page(entry, instrument, item, shown, reason, problems), 422
    flash("Answer corrected.", "success")
    return redirect(url_for("ediary.entry_page", entry_id=entry.id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(
        app, [*SITE_ROLES, Role.TRIAL_MANAGER], "Diary compliance", "ediary.compliance_page", 45
    )
