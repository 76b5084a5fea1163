"""Televisit reminders by e-mail, 24 hours and 1 hour before each booked visit, to the
patient (their language, times in their zone) and to the staff member running it.

The `visits.reminders` job runs every minute. `due_reminders` finds, in one query, the
booked visits with a reminder moment (start - 24 h, start - 1 h) within `LOOKBACK` before
now, with their patient's language, zone and address, the staff member's address and zone,
and whether each reminder was queued already; `queue_reminders` queues the mails through
the outbox (`outbox.enqueue_many`, `INSERT ... ON CONFLICT DO NOTHING`).

The rules:

* Each mail's `dedup_key` is `televisit:<booking id>:<start, UTC, %Y%m%dT%H%MZ>:<kind>:
  <recipient>`, kind `24h` or `1h`, recipient `patient` or `staff-<user id>`, unique in the
  outbox: a second run, or a second scheduler at the same time, queues nothing again. The
  start is part of the key, so a visit moved to another time is reminded again for its new
  time, while the old time's reminders are never due again (the booking no longer starts
  then). A cancelled visit is not booked, so gets none.
* A reminder is sent from its moment until `LOOKBACK` after it, so a scheduler that was
  down for a few minutes catches up; one whose moment passed longer ago is not sent late.
* A reminder is only sent when the visit was booked (or last changed: moved) at or before
  its moment, `Booking.updated_at` as booking.py sets it: a visit booked 20 hours ahead
  gets its confirmation and the 1 h reminder, not a "24 h" one right after the
  confirmation; one booked 30 minutes ahead gets only the confirmation.
* A recipient without an e-mail address (`PatientIdentity.email`, read here on purpose by
  this system job; `User.email` of the staff member) gets none.

The texts are in notifications.py with those of the invitations. Like them, a reminder
never carries the room's URL, only the way to it (the portal, where it shows shortly
before the visit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, exists, func, literal, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from dct_platform import outbox
from dct_platform.mail import OutgoingMail
from dct_platform.models import MailOutbox, Patient, PatientIdentity, User
from dct_platform.visits.models import Booking, BookingStatus, PlannedVisit
from dct_platform.visits.notifications import (
    DEFAULT_LANGUAGE,
    PATIENT,
    STAFF_TEXTS,
    TEXTS,
    join_opens_before,
    language_of,
    portal_link,
    public_base_url,
    staff_recipient,
    when,
)

JOB = "visits.reminders"
# A reminder due this long ago is still sent (the scheduler was down); older ones never.
LOOKBACK = timedelta(minutes=30)
DAY_BEFORE = "24h"
HOUR_BEFORE = "1h"
LEADS: dict[str, timedelta] = {DAY_BEFORE: timedelta(hours=24), HOUR_BEFORE: timedelta(hours=1)}
KEY_TIME_FORMAT = "%Y%m%dT%H%MZ"


def dedup_key(booking_id: int, starts_at: datetime, kind: str, recipient: str) -> str:
    """The outbox key of one reminder: per booking, start time, kind and recipient."""
    if kind not in LEADS:
        raise ValueError(f"kind must be one of {sorted(LEADS)}, not {kind!r}")
    if starts_at.tzinfo is None or starts_at.utcoffset() is None:
        raise ValueError(f"starts_at must be timezone-aware, got {starts_at!r}")
    return (
        f"televisit:{booking_id}:{starts_at.astimezone(UTC).strftime(KEY_TIME_FORMAT)}"
        f":{kind}:{recipient}"
    )


def _key_time(dialect: str) -> ColumnElement[Any] | None:
    """SQL for `Booking.starts_at` written as in `dedup_key`; None on a database whose
    date formatting we do not know (the outbox's unique key still keeps mails single)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", Booking.starts_at), 'YYYYMMDD"T"HH24MI"Z"')
    if dialect == "sqlite":
        # Stored as UTC text without offset (timeutil.UTCDateTime).
        return func.strftime(KEY_TIME_FORMAT, Booking.starts_at)
    return None


@dataclass(frozen=True)
class Due:
    booking_id: int
    kind: str
    recipient: str  # "patient" or "staff-<user id>"
    email: str
    language: str
    zone: str
    starts_at: datetime
    ends_at: datetime
    visit_name: str
    subject_number: str


def due_reminders(session: Session, now: datetime, lookback: timedelta = LOOKBACK) -> list[Due]:
    """The reminders due at `now` and not queued yet: one query, whatever their number."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    if lookback <= timedelta(0):
        raise ValueError(f"lookback must be positive, got {lookback}")
    since = now - lookback
    staff = aliased(User)
    key_time = _key_time(session.get_bind().dialect.name)

    def queued(kind: str, recipient: ColumnElement[Any]) -> ColumnElement[bool]:
        if key_time is None:
            return literal(False)
        key = (
            literal("televisit:")
            + sql_cast(Booking.id, String)
            + literal(":")
            + key_time
            + literal(f":{kind}:")
            + recipient
        )
        return exists().where(MailOutbox.dedup_key == key)

    patient_key: ColumnElement[Any] = literal(PATIENT)
    staff_key: ColumnElement[Any] = literal("staff-") + sql_cast(Booking.staff_id, String)
    flags = [
        queued(kind, recipient).label(f"q_{kind}_{who}")
        for kind in LEADS
        for who, recipient in (("patient", patient_key), ("staff", staff_key))
    ]
    # The moment start - lead lies in (since, now] when the start lies in (since + lead,
    # now + lead]: a range on the indexed start column.
    in_window = or_(
        *(
            (Booking.starts_at > since + lead) & (Booking.starts_at <= now + lead)
            for lead in LEADS.values()
        )
    )
    rows = session.execute(
        select(
            Booking.id,
            Booking.starts_at,
            Booking.ends_at,
            Booking.updated_at,
            Booking.staff_id,
            PlannedVisit.name.label("visit_name"),
            Patient.subject_number,
            Patient.timezone.label("patient_zone"),
            Patient.preferred_language,
            PatientIdentity.email.label("patient_email"),
            staff.email.label("staff_email"),
            staff.timezone.label("staff_zone"),
            *flags,
        )
        .join(Patient, Patient.id == Booking.patient_id)
        .join(PlannedVisit, PlannedVisit.id == Booking.planned_visit_id)
        .join(staff, staff.id == Booking.staff_id)
        .outerjoin(PatientIdentity, PatientIdentity.patient_id == Patient.id)
        .where(Booking.status == BookingStatus.BOOKED, Booking.starts_at > now, in_window)
        .order_by(Booking.starts_at, Booking.id)
    ).all()
    due: list[Due] = []
    for row in rows:
        for kind, lead in LEADS.items():
            moment = row.starts_at - lead
            if not (since < moment <= now and row.updated_at <= moment):
                continue
            recipients = (
                (
                    PATIENT,
                    row.patient_email,
                    language_of(row.preferred_language),
                    row.patient_zone,
                    getattr(row, f"q_{kind}_patient"),
                ),
                (
                    staff_recipient(row.staff_id),
                    row.staff_email,
                    DEFAULT_LANGUAGE,
                    row.staff_zone,
                    getattr(row, f"q_{kind}_staff"),
                ),
            )
            for recipient, email, language, zone, already in recipients:
                if already or not email or not email.strip():
                    continue
                due.append(
                    Due(
                        booking_id=row.id,
                        kind=kind,
                        recipient=recipient,
                        email=email.strip(),
                        language=language,
                        zone=zone,
                        starts_at=row.starts_at,
                        ends_at=row.ends_at,
                        visit_name=row.visit_name,
                        subject_number=row.subject_number,
                    )
                )
    return due


def reminder_mail(due: Due, *, base_url: str | None) -> OutgoingMail:
    """The reminder `due` in its recipient's language, times on their clock."""
    times = when(due.starts_at, due.ends_at, due.zone, due.language)
    minutes = int(join_opens_before().total_seconds() // 60)
    fields = {"day": times.day, "start": times.start, "end": times.end}
    if due.recipient == PATIENT:
        texts = TEXTS[due.language]
        link = portal_link(base_url)
    else:
        texts = STAFF_TEXTS
        link = base_url
        fields.update(visit=due.visit_name, subject=due.subject_number)
    join = (
        texts["join"].format(link=link, minutes=minutes)
        if link
        else texts["join_no_link"].format(minutes=minutes)
    )
    paragraphs = [
        texts.get("greeting", ""),
        texts[f"reminder_{due.kind}_body"].format(**fields),
        join,
        texts["zone"].format(zone=due.zone),
        texts["footer"],
    ]
    return OutgoingMail(
        to=[due.email],
        subject=texts[f"reminder_{due.kind}_subject"].format(**fields),
        text="\n\n".join(p for p in paragraphs if p),
    )


def queue_reminders(
    session: Session,
    now: datetime,
    *,
    base_url: str | None = None,
    lookback: timedelta = LOOKBACK,
) -> int:
    """Queue the reminders due at `now` (flushes, the caller commits); how many were
    queued. `base_url` is the platform's public address, for the link to the portal."""
    mails = (
        (
            reminder_mail(d, base_url=base_url),
            dedup_key(d.booking_id, d.starts_at, d.kind, d.recipient),
        )
        for d in due_reminders(session, now, lookback)
    )
    return outbox.enqueue_many(session, now, mails)


def job(session: Session, now: datetime) -> str:
    """The `visits.reminders` job (every minute)."""
    queued = queue_reminders(session, now, base_url=public_base_url())
    return f"queued {queued} televisit reminders"
