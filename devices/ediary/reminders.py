"""Diary reminders by e-mail: one when a window opens and, when the schedule asks for it
(`remind_before_close_minutes`, stored as `Occurrence.remind_at`), one before it closes.

The `ediary.reminders` job runs every minute. `queue_reminders` finds, in one query, the
occurrences whose window opened (or whose `remind_at` passed) within `LOOKBACK`, that are
still open and have neither an entry nor an outcome, with their patient's language and
e-mail address, and queues the mails through the outbox (`outbox.enqueue_many`, a few
`INSERT ... ON CONFLICT DO NOTHING` for thousands). Each mail has the `dedup_key`
`ediary:<occurrence id>:opens` or `ediary:<occurrence id>:closing`, unique in the
outbox: a second run, or a second scheduler at the same time, queues nothing again. The
`LOOKBACK` lets a scheduler that was down for a few minutes catch up, without reminding
anyone of a window that opened long ago. The `core.mail-outbox` job sends the mails.

Who gets reminders: enrolled patients with an enabled portal account (someone who cannot
sign in cannot fill the diary in) and an e-mail address in their personal data
(`PatientIdentity.email`, read here on purpose by this system job, as the outbox needs the
address), for active schedules. A patient without either gets none.

What a reminder says: that a diary is open and when it closes, in the patient's preferred
language (English, German or Japanese; English otherwise) with the times on their own
clock (the occurrence's zone), and a link to the diary in the portal when
`PUBLIC_BASE_URL` (the address patients reach the platform at, e.g.
https://study.example.org) is configured, else "sign in to the study portal". An e-mail
can be read by others, so it names neither the study, the questionnaire nor the patient.
The texts are kept here in the three languages rather than in the gettext catalogues: a
job has no request to take a locale from, and these few strings are all it needs.
"""

# Japanese is written with full-width colons and brackets, which RUF001 takes for
# look-alikes of ASCII ones.
# ruff: noqa: RUF001

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from babel.dates import format_date, format_time
from flask import current_app
from sqlalchemy import String, exists, literal, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from dct_platform import outbox
from dct_platform.mail import OutgoingMail
from dct_platform.models import MailOutbox, Patient, PatientIdentity, User
from dct_platform.models.patients import PatientStatus
from dct_platform.timeutil import to_local
from devices.ediary.models import Entry, Occurrence, Schedule

JOB = "ediary.reminders"
# A reminder due this long ago is still sent (the scheduler was down); older ones never.
LOOKBACK = timedelta(minutes=15)
OPENS = "opens"
CLOSING = "closing"
DEFAULT_LANGUAGE = "en"


def dedup_key(occurrence_id: int, kind: str) -> str:
    return f"ediary:{occurrence_id}:{kind}"


# --- the texts --------------------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "opens_subject": "Your diary can be filled in now",
        "opens_body": "Your study diary is open {window}.",
        "closing_subject": "Reminder: your diary closes at {end}",
        "closing_body": "Your study diary has not been filled in yet. It is open until {end}.",
        "same_day": "on {day}, from {start} to {end}",
        "two_days": "from {start_day}, {start}, to {end_day}, {end}",
        "end_on_day": "{end} on {day}",
        "midnight": "midnight",
        "greeting": "Hello,",
        "link": "Fill it in here: {link}",
        "no_link": "Please sign in to the study portal to fill it in.",
        "zone": "Times are in your time zone ({zone}).",
        "footer": "This message was sent automatically. Please do not reply to it.",
    },
    "de": {
        "opens_subject": "Ihr Tagebuch kann jetzt ausgefüllt werden",
        "opens_body": "Ihr Studientagebuch ist {window} geöffnet.",
        "closing_subject": "Erinnerung: Ihr Tagebuch schließt um {end}",
        "closing_body": (
            "Ihr Studientagebuch ist noch nicht ausgefüllt. Es ist noch bis {end} geöffnet."
        ),
        "same_day": "am {day} von {start} bis {end}",
        "two_days": "von {start_day}, {start}, bis {end_day}, {end}",
        "end_on_day": "{end} am {day}",
        "midnight": "Mitternacht",
        "greeting": "Guten Tag,",
        "link": "Hier können Sie es ausfüllen: {link}",
        "no_link": "Bitte melden Sie sich im Studienportal an, um es auszufüllen.",
        "zone": "Die Zeiten gelten für Ihre Zeitzone ({zone}).",
        "footer": "Diese Nachricht wurde automatisch versandt. Bitte antworten Sie nicht darauf.",
    },
    "ja": {
        "opens_subject": "日誌の入力ができるようになりました",
        "opens_body": "治験日誌の入力期間は{window}です。",
        "closing_subject": "リマインダー：日誌の入力は{end}までです",
        "closing_body": "治験日誌はまだ入力されていません。入力期間は{end}までです。",
        "same_day": "{day} {start}から{end}まで",
        "two_days": "{start_day} {start}から{end_day} {end}まで",
        "end_on_day": "{day} {end}",
        "midnight": "24時",
        "greeting": "",
        "link": "こちらから入力してください：{link}",
        "no_link": "治験ポータルにログインして入力してください。",
        "zone": "時刻はお住まいのタイムゾーン（{zone}）で表示しています。",
        "footer": "このメールは自動送信されています。返信はできません。",
    },
}


def language_of(preferred: str | None) -> str:
    """The reminder's language: the patient's preferred one ("de", "de-CH") when its
    texts exist, English otherwise."""
    base = (preferred or "").split("-")[0].split("_")[0].lower()
    return base if base in TEXTS else DEFAULT_LANGUAGE


def _clock(instant: datetime, zone: str, language: str, *, closing: bool) -> tuple[date, str]:
    """The local date and clock time; a window closing at 00:00 closes at "midnight" at
    the end of the day before, as the portal says it."""
    local = to_local(instant, zone)
    if closing and local.time() == time(0):
        return local.date() - timedelta(days=1), TEXTS[language]["midnight"]
    return local.date(), str(format_time(local, "short", locale=language))


@lru_cache(maxsize=4096)
def _words(
    kind: str, language: str, zone: str, opens_at: datetime, closes_at: datetime
) -> tuple[str, str]:
    """Subject and first paragraph; the same for every patient sharing the window and
    zone, so thousands of reminders due in one minute format their times a few times."""
    texts = TEXTS[language]
    start_day, start = _clock(opens_at, zone, language, closing=False)
    end_day, end = _clock(closes_at, zone, language, closing=True)

    def day(d: date) -> str:
        return str(format_date(d, "full", locale=language))

    if kind == OPENS:
        if start_day == end_day:
            window = texts["same_day"].format(day=day(start_day), start=start, end=end)
        else:
            window = texts["two_days"].format(
                start_day=day(start_day), start=start, end_day=day(end_day), end=end
            )
        return texts["opens_subject"], texts["opens_body"].format(window=window)
    full_end = texts["end_on_day"].format(end=end, day=day(end_day))
    return texts["closing_subject"].format(end=end), texts["closing_body"].format(end=full_end)


def reminder_mail(
    kind: str,
    *,
    email: str,
    language: str,
    zone: str,
    opens_at: datetime,
    closes_at: datetime,
    link: str | None,
) -> OutgoingMail:
    texts = TEXTS[language]
    subject, first = _words(kind, language, zone, opens_at, closes_at)
    paragraphs = [
        texts["greeting"],
        first,
        texts["link"].format(link=link) if link else texts["no_link"],
        texts["zone"].format(zone=zone),
        texts["footer"],
    ]
    return OutgoingMail(to=[email], subject=subject, text="\n\n".join(p for p in paragraphs if p))


# --- the job ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    occurrence_id: int
    kind: str
    email: str
    language: str
    zone: str
    opens_at: datetime
    closes_at: datetime


def due_reminders(session: Session, now: datetime, lookback: timedelta = LOOKBACK) -> list[Due]:
    """The reminders due at `now` and not queued yet: one query, whatever their number."""
    since = now - lookback
    opening = (Occurrence.opens_at > since) & (Occurrence.opens_at <= now)
    closing = (
        (Occurrence.remind_at > since)
        & (Occurrence.remind_at <= now)
        # A reminder that would come with the opening one (the window is shorter than the
        # lead time) is left to the opening one.
        & (Occurrence.remind_at > Occurrence.opens_at)
    )
    key = sql_cast(Occurrence.id, String)
    opens_queued = exists().where(
        MailOutbox.dedup_key == literal("ediary:") + key + literal(f":{OPENS}")
    )
    closing_queued = exists().where(
        MailOutbox.dedup_key == literal("ediary:") + key + literal(f":{CLOSING}")
    )
    rows = session.execute(
        select(
            Occurrence.id,
            Occurrence.zone,
            Occurrence.opens_at,
            Occurrence.closes_at,
            Occurrence.remind_at,
            Patient.preferred_language,
            PatientIdentity.email,
            opens_queued.label("opens_queued"),
            closing_queued.label("closing_queued"),
        )
        .join(Schedule, Schedule.id == Occurrence.schedule_id)
        .join(Patient, Patient.id == Occurrence.patient_id)
        .join(User, User.id == Patient.user_id)
        .join(PatientIdentity, PatientIdentity.patient_id == Patient.id)
        .where(
            or_(opening, closing),
            Occurrence.closes_at > now,
            Occurrence.opens_at < Occurrence.closes_at,
            Occurrence.outcome.is_(None),
            ~exists().where(Entry.occurrence_id == Occurrence.id),
            Schedule.active,
            Patient.status == PatientStatus.ENROLLED,
            User.is_enabled,
            PatientIdentity.email.is_not(None),
            PatientIdentity.email != "",
        )
        .order_by(Occurrence.id)
    ).all()
    due: list[Due] = []
    for row in rows:
        kinds = []
        if since < row.opens_at <= now and not row.opens_queued:
            kinds.append(OPENS)
        remind_at = row.remind_at
        if (
            remind_at is not None
            and since < remind_at <= now
            and remind_at > row.opens_at
            and not row.closing_queued
        ):
            kinds.append(CLOSING)
        for kind in kinds:
            due.append(
                Due(
                    occurrence_id=row.id,
                    kind=kind,
                    email=row.email.strip(),
                    language=language_of(row.preferred_language),
                    zone=row.zone,
                    opens_at=row.opens_at,
                    closes_at=row.closes_at,
                )
            )
    return due


def diary_link(base_url: str | None, occurrence_id: int) -> str | None:
    base = (base_url or "").strip().rstrip("/")
    return f"{base}/portal/diary/{occurrence_id}" if base else None


def queue_reminders(
    session: Session,
    now: datetime,
    *,
    base_url: str | None = None,
    lookback: timedelta = LOOKBACK,
) -> int:
    """Queue the reminders due at `now` (flushes, the caller commits); how many were
    queued. `base_url` is the platform's public address, for the link to the diary."""
    mails = (
        (
            reminder_mail(
                d.kind,
                email=d.email,
                language=d.language,
                zone=d.zone,
                opens_at=d.opens_at,
                closes_at=d.closes_at,
                link=diary_link(base_url, d.occurrence_id),
            ),
            dedup_key(d.occurrence_id, d.kind),
        )
        for d in due_reminders(session, now, lookback)
    )
    return outbox.enqueue_many(session, now, mails)


def public_base_url() -> str | None:
    """`PUBLIC_BASE_URL` from the app's config, else from the environment."""
    configured = current_app.config.get("PUBLIC_BASE_URL")
    return configured or os.environ.get("PUBLIC_BASE_URL") or None


def job(session: Session, now: datetime) -> str:
    """The `ediary.reminders` job (every minute)."""
    queued = queue_reminders(session, now, base_url=public_base_url())
    return f"queued {queued} diary reminders"
