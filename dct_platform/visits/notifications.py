"""After a televisit is booked, moved or cancelled: its video room, the calendar invitations,
and who may join when.

Two receivers of `BOOKING_CHANGED` (booking.py emits it in the booking's transaction; they
run after commit, each in its own session, retried by the event system when they raise):

* `visits.room` creates the room of a live booking that has none. The booking is read and
  that transaction ended before the provider is called, so no lock (on SQLite: not the
  database's single write lock) is held while waiting for an outside service; the result
  is written in a second, short transaction. The provider gets `booking-<id>` as its
  reference (the HTTP provider sends it as the Idempotency-Key), so a delivery repeated
  after a crash gets the room already made, not a second one. A failure counts
  `room_attempts`, keeps a short `room_error` (never a URL) and is re-raised for the event
  system to retry; after `ROOM_MAX_ATTEMPTS` the room is `failed`, staff see it as pending
  and can `retry_room`.
* `visits.invitation` queues a mail with an iCalendar attachment to the patient (in their
  language, times in their zone, the zone named) and to the staff member running the visit
  (English, their zone): a REQUEST when booked or moved (SEQUENCE = `Booking.sequence`), a
  CANCEL when cancelled; the UID `televisit-<id>@<host>` is the same for all of them, so
  calendar apps replace the event they have. The outbox `dedup_key`
  `televisit:<id>:<sequence>:<recipient>` (recipient `patient` or `staff-<user id>`) makes a
  repeated delivery queue nothing. An event older than the booking's current sequence
  sends nothing: the newer change's own event sends the state that is current.

Neither mail nor invitation carries the room's URL: only the patient and the assigned staff
member may see it, and only around the visit's time (`join_link`), so the mail says to sign
in to the portal, where the link shows shortly before the visit.

The texts are kept here in English, German and Japanese rather than in the gettext
catalogues, as for diary reminders (devices/ediary/reminders.py): a receiver has no request
to take a locale from. A mail names neither the study nor the patient; the staff one names
the visit and the pseudonymous subject number.
"""

# Japanese is written with full-width colons and brackets, which RUF001 takes for
# look-alikes of ASCII ones.
# ruff: noqa: RUF001

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any, Literal
from urllib.parse import urlsplit

from babel.dates import format_date, format_time
from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, events, outbox
from dct_platform.errors import Conflict, Forbidden
from dct_platform.mail import OutgoingMail
from dct_platform.models import PatientIdentity, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.outbound import OutboundError
from dct_platform.timeutil import to_local
from dct_platform.visits import calendar
from dct_platform.visits.booking import BOOKING_CHANGED, LIVE
from dct_platform.visits.models import Booking, BookingStatus, RoomStatus
from dct_platform.visits.rooms import Room, provider_from_config

log = logging.getLogger(__name__)

ROOM_RECEIVER = "visits.room"
INVITATION_RECEIVER = "visits.invitation"
# One per delivery attempt of one event, so a room that never comes gives up when the
# event system would (about ten hours with its delays); a move's event adds its own tries.
ROOM_MAX_ATTEMPTS = events.MAX_ATTEMPTS
MAX_ROOM_ERROR = 300

BOOKED = "booked"
MOVED = "moved"
CANCELLED = "cancelled"
ROOM_RETRY = "room-retry"
# A staff member the visit was moved away from (to a colleague).
RELEASED = "released"
CHANGES = frozenset({BOOKED, MOVED, CANCELLED, ROOM_RETRY})

PORTAL_VISITS_PATH = "/portal/visits"
DEFAULT_UID_HOST = "dct-platform"
DEFAULT_ORGANIZER = "no-reply@dct.invalid"
DEFAULT_LANGUAGE = "en"
PATIENT = "patient"

JOIN_OPENS_BEFORE = timedelta(minutes=15)
JOIN_CLOSES_AFTER = timedelta(minutes=30)

JoinState = Literal["too_early", "open", "over", "room_pending", "not_yours", "cancelled"]


# --- the texts --------------------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "booked_subject": "Your video visit on {day} at {start}",
        "booked_body": "Your video visit is booked for {day}, {start} to {end}.",
        "moved_subject": "Your video visit has moved to {day} at {start}",
        "moved_body": "Your video visit has been moved. It is now on {day}, {start} to {end}.",
        "cancelled_subject": "Your video visit on {day} at {start} is cancelled",
        "cancelled_body": "Your video visit on {day}, {start} to {end}, has been cancelled.",
        "questions": "If you have questions, please contact your study team.",
        "reminder_24h_subject": "Reminder: your video visit on {day} at {start}",
        "reminder_24h_body": "This is a reminder of your video visit on {day}, {start} to {end}.",
        "reminder_1h_subject": "Your video visit starts at {start}",
        "reminder_1h_body": "Your video visit starts in about an hour, at {start} ({day}).",
        "join": (
            "To join, sign in to the study portal: {link}\n"
            "The link to the video call shows there {minutes} minutes before the visit."
        ),
        "join_no_link": (
            "To join, sign in to the study portal. The link to the video call shows there "
            "{minutes} minutes before the visit."
        ),
        "calendar_add": "Open the attached file to add the visit to your calendar.",
        "calendar_update": "Open the attached file to update the visit in your calendar.",
        "calendar_remove": "Open the attached file to remove the visit from your calendar.",
        "title": "Video visit",
        "attendee": "Participant",
        "organizer": "Study team",
        "greeting": "Hello,",
        "zone": "Times are in your time zone ({zone}).",
        "footer": "This message was sent automatically. Please do not reply to it.",
    },
    "de": {
        "booked_subject": "Ihr Videotermin am {day} um {start}",
        "booked_body": "Ihr Videotermin ist gebucht: am {day} von {start} bis {end}.",
        "moved_subject": "Ihr Videotermin wurde verschoben auf {day}, {start}",
        "moved_body": (
            "Ihr Videotermin wurde verschoben. Er findet jetzt am {day} von {start} bis {end} "
            "statt."
        ),
        "cancelled_subject": "Ihr Videotermin am {day} um {start} wurde abgesagt",
        "cancelled_body": "Ihr Videotermin am {day} von {start} bis {end} wurde abgesagt.",
        "questions": "Bei Fragen wenden Sie sich bitte an Ihr Studienteam.",
        "reminder_24h_subject": "Erinnerung: Ihr Videotermin am {day} um {start}",
        "reminder_24h_body": (
            "Wir erinnern Sie an Ihren Videotermin am {day} von {start} bis {end}."
        ),
        "reminder_1h_subject": "Ihr Videotermin beginnt um {start}",
        "reminder_1h_body": "Ihr Videotermin beginnt in etwa einer Stunde, um {start} ({day}).",
        "join": (
            "Zur Teilnahme melden Sie sich im Studienportal an: {link}\n"
            "Der Link zum Videogespräch erscheint dort {minutes} Minuten vor dem Termin."
        ),
        "join_no_link": (
            "Zur Teilnahme melden Sie sich im Studienportal an. Der Link zum Videogespräch "
            "erscheint dort {minutes} Minuten vor dem Termin."
        ),
        "calendar_add": (
            "Mit der angehängten Datei können Sie den Termin in Ihren Kalender übernehmen."
        ),
        "calendar_update": "Die angehängte Datei aktualisiert den Termin in Ihrem Kalender.",
        "calendar_remove": (
            "Mit der angehängten Datei können Sie den Termin aus Ihrem Kalender entfernen."
        ),
        "title": "Videotermin",
        "attendee": "Teilnehmer/in",
        "organizer": "Studienteam",
        "greeting": "Guten Tag,",
        "zone": "Die Zeiten gelten für Ihre Zeitzone ({zone}).",
        "footer": "Diese Nachricht wurde automatisch versandt. Bitte antworten Sie nicht darauf.",
    },
    "ja": {
        "booked_subject": "ビデオ診察のご予約：{day} {start}",
        "booked_body": "ビデオ診察のご予約を承りました：{day} {start}から{end}まで。",
        "moved_subject": "ビデオ診察の日時が変更されました：{day} {start}",
        "moved_body": (
            "ビデオ診察の日時が変更されました。新しい日時は{day} {start}から{end}までです。"
        ),
        "cancelled_subject": "ビデオ診察（{day} {start}）はキャンセルされました",
        "cancelled_body": "{day} {start}から{end}までのビデオ診察はキャンセルされました。",
        "questions": "ご不明な点は治験チームにお問い合わせください。",
        "reminder_24h_subject": "リマインダー：ビデオ診察 {day} {start}",
        "reminder_24h_body": "{day} {start}から{end}までのビデオ診察のお知らせです。",
        "reminder_1h_subject": "ビデオ診察は{start}に始まります",
        "reminder_1h_body": "ビデオ診察はあと約1時間、{start}に始まります（{day}）。",
        "join": (
            "参加するには治験ポータルにログインしてください：{link}\n"
            "ビデオ通話のリンクは診察の{minutes}分前に表示されます。"
        ),
        "join_no_link": (
            "参加するには治験ポータルにログインしてください。"
            "ビデオ通話のリンクは診察の{minutes}分前に表示されます。"
        ),
        "calendar_add": "添付のファイルを開くと、カレンダーに予定を追加できます。",
        "calendar_update": "添付のファイルを開くと、カレンダーの予定が更新されます。",
        "calendar_remove": "添付のファイルを開くと、カレンダーから予定を削除できます。",
        "title": "ビデオ診察",
        "attendee": "参加者",
        "organizer": "治験チーム",
        "greeting": "",
        "zone": "時刻はお住まいのタイムゾーン（{zone}）で表示しています。",
        "footer": "このメールは自動送信されています。返信はできません。",
    },
}

# Staff read the platform in English; the mail names the visit and the subject number.
STAFF_TEXTS: dict[str, str] = {
    "booked_subject": "Televisit booked: {visit}, {subject}, {day} {start}",
    "booked_body": "{visit} of patient {subject} is booked with you for {day}, {start} to {end}.",
    "moved_subject": "Televisit moved: {visit}, {subject}, now {day} {start}",
    "moved_body": (
        "{visit} of patient {subject} has been moved. It is now on {day}, {start} to {end}."
    ),
    "cancelled_subject": "Televisit cancelled: {visit}, {subject}, {day} {start}",
    "cancelled_body": (
        "{visit} of patient {subject} on {day}, {start} to {end}, has been cancelled."
    ),
    "released_subject": "Televisit no longer with you: {visit}, {subject}",
    "released_body": "{visit} of patient {subject} is no longer booked with you.",
    "reminder_24h_subject": "Reminder: televisit {visit}, {subject}, {day} {start}",
    "reminder_24h_body": "Reminder: {visit} of patient {subject} is on {day}, {start} to {end}.",
    "reminder_1h_subject": "Televisit at {start}: {visit}, {subject}",
    "reminder_1h_body": (
        "{visit} of patient {subject} starts in about an hour, at {start} ({day})."
    ),
    "join": (
        "Join from the platform: {link}\n"
        "The link to the video call shows on the visit {minutes} minutes before it starts."
    ),
    "join_no_link": (
        "Join from the platform: the link to the video call shows on the visit {minutes} "
        "minutes before it starts."
    ),
    "calendar_add": "The attached file adds the visit to your calendar.",
    "calendar_update": "The attached file updates the visit in your calendar.",
    "calendar_remove": "The attached file removes the visit from your calendar.",
    "title": "Televisit {visit}, {subject}",
    "organizer": "DCT Platform",
    "zone": "Times are in your time zone ({zone}).",
    "footer": "This message was sent automatically. Please do not reply to it.",
}


def language_of(preferred: str | None) -> str:
    """The mail's language: the patient's preferred one ("de", "de-CH") when its texts
    exist, English otherwise."""
    base = (preferred or "").split("-")[0].split("_")[0].lower()
    return base if base in TEXTS else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class When:
    """A visit's time as one recipient reads it."""

    day: str
    start: str
    end: str


def when(starts_at: datetime, ends_at: datetime, zone: str, language: str) -> When:
    """Date and clock times of the visit on the recipient's clock, in their language."""
    start, end = to_local(starts_at, zone), to_local(ends_at, zone)
    return When(
        day=str(format_date(start.date(), "full", locale=language)),
        start=str(format_time(start, "short", locale=language)),
        end=str(format_time(end, "short", locale=language)),
    )


# --- settings ---------------------------------------------------------------------------------


def public_base_url() -> str | None:
    """`PUBLIC_BASE_URL` (the address people reach the platform at) from the app's config,
    else from the environment; None when neither is set. Raises ValueError when it is not
    an absolute http(s) URL, which calendar apps and mail readers could not open."""
    raw = current_app.config.get("PUBLIC_BASE_URL") or os.environ.get("PUBLIC_BASE_URL") or ""
    base = str(raw).strip().rstrip("/")
    if not base:
        return None
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"PUBLIC_BASE_URL must be an absolute http(s) URL, not {base!r}")
    return base


def portal_link(base_url: str | None) -> str | None:
    """Where the patient finds their visits (and, near the time, the join link)."""
    return f"{base_url}{PORTAL_VISITS_PATH}" if base_url else None


def calendar_uid(booking_id: int, base_url: str | None) -> str:
    """The one UID of every invitation, update and cancellation of the booking."""
    host = urlsplit(base_url).hostname if base_url else None
    return f"televisit-{booking_id}@{host or DEFAULT_UID_HOST}"


def staff_recipient(user_id: int) -> str:
    return f"staff-{user_id}"


def invitation_key(booking_id: int, sequence: int, recipient: str) -> str:
    """The outbox `dedup_key` of the invitation (or cancellation) at `sequence`."""
    return f"televisit:{booking_id}:{sequence}:{recipient}"


def join_opens_before() -> timedelta:
    """How long before its start a visit's join link shows: the current app's
    `VISIT_JOIN_OPENS_MINUTES` (visits/__init__.py sets it), else `JOIN_OPENS_BEFORE`.
    Mails, reminders and pages all say the same time this way."""
    raw = current_app.config.get("VISIT_JOIN_OPENS_MINUTES") if has_app_context() else None
    if raw is None:
        return JOIN_OPENS_BEFORE
    try:
        minutes = int(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"VISIT_JOIN_OPENS_MINUTES must be a whole number of minutes, not {raw!r}"
        ) from None
    if minutes < 0:
        raise ValueError(f"VISIT_JOIN_OPENS_MINUTES cannot be negative, got {minutes}")
    return timedelta(minutes=minutes)


def _organizer_email() -> str:
    address = parseaddr(str(current_app.config.get("MAIL_FROM") or ""))[1]
    return address or DEFAULT_ORGANIZER


def _paragraphs(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)


# --- the video room ---------------------------------------------------------------------------


def _payload(event: events.Event) -> tuple[int, str, int]:
    payload = event.payload
    booking_id, change, sequence = (
        payload.get("booking_id"),
        payload.get("change"),
        payload.get("sequence"),
    )
    if not isinstance(booking_id, int) or isinstance(booking_id, bool):
        raise ValueError(f"event {event.id} ({event.name}) has no integer booking_id: {payload}")
    if change not in CHANGES:
        raise ValueError(
            f"event {event.id} ({event.name}) has change {change!r}, not one of {sorted(CHANGES)}"
        )
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise ValueError(f"event {event.id} ({event.name}) has no valid sequence: {payload}")
    return booking_id, change, sequence


def _booking(session: Session, booking_id: int, *, lock: bool = False) -> Booking:
    query = select(Booking).where(Booking.id == booking_id)
    if lock:
        # Fresh values, not the ones this session read before its last commit; and, on
        # PostgreSQL, one writer per booking (a retry's event may run beside the first).
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalars(query).one_or_none()
    if found is None:
        raise LookupError(f"televisit booking {booking_id} does not exist")
    return found


def _needs_room(booking: Booking) -> bool:
    return booking.status in LIVE and booking.room_status == RoomStatus.PENDING


def booking_ref(booking_id: int) -> str:
    """The reference the provider gets: stable per booking, so a second call for it gets
    the same room from an idempotent provider."""
    return f"booking-{booking_id}"


def _failure_reason(exc: Exception) -> str:
    # Short and without URLs: staff read it on the booking. The full error is in the log
    # and in the event delivery's last_error.
    if isinstance(exc, OutboundError):
        if exc.status is None:
            return "the video provider could not be reached"
        return f"the video provider answered {exc.status}"
    return "the video provider settings are invalid (VIDEO_PROVIDER, VIDEO_*)"


@events.receiver(BOOKING_CHANGED, ROOM_RECEIVER)
def create_room(session: Session, event: events.Event, now: datetime) -> None:
    """The `visits.room` receiver: a room for a live booking still waiting for one."""
    booking_id, _change, _sequence = _payload(event)
    booking = _booking(session, booking_id)
    if not _needs_room(booking):
        return
    ref, starts_at, ends_at = booking_ref(booking.id), booking.starts_at, booking.ends_at
    # Ends the read before the outside call: nothing of ours is locked while we wait.
    session.commit()
    try:
        room = _call_provider(ref, starts_at, ends_at)
    except (OutboundError, ValueError) as exc:
        log.warning("no video room for booking %s yet: %s", booking_id, exc)
        _record_failure(session, booking_id, now, _failure_reason(exc))
        raise
    _store_room(session, booking_id, room, now)


def _call_provider(ref: str, starts_at: datetime, ends_at: datetime) -> Room:
    provider = provider_from_config(current_app.config)
    try:
        return provider.create_room(booking_ref=ref, starts_at=starts_at, ends_at=ends_at)
    finally:
        close = getattr(provider, "close", None)
        if callable(close):
            close()


def _store_room(session: Session, booking_id: int, room: Room, now: datetime) -> None:
    booking = _booking(session, booking_id, lock=True)
    # Another delivery may have stored a room meanwhile (the first one stays: it may have
    # been shown already), or the visit was cancelled while the provider answered.
    if not _needs_room(booking):
        return
    what = f"Video room of televisit of {booking.patient.subject_number}"
    with audit.acting(session, None, now, what=what, system=ROOM_RECEIVER):
        booking.room_url = room.url
        booking.room_provider = room.provider
        booking.room_status = RoomStatus.READY
        booking.room_error = None
    session.commit()


def _record_failure(session: Session, booking_id: int, now: datetime, reason: str) -> None:
    # Its own committed write: the receiver's exception rolls back whatever is open.
    session.rollback()
    booking = _booking(session, booking_id, lock=True)
    if not _needs_room(booking):
        session.commit()
        return
    attempts = booking.room_attempts + 1
    what = f"Video room of televisit of {booking.patient.subject_number} not created"
    with audit.acting(session, None, now, what=what, system=ROOM_RECEIVER):
        booking.room_attempts = attempts
        booking.room_error = reason[:MAX_ROOM_ERROR]
        if attempts >= ROOM_MAX_ATTEMPTS:
            booking.room_status = RoomStatus.FAILED
    session.commit()


def retry_room(
    session: Session, booking: Booking, now: datetime, *, actor: User | None = None
) -> None:
    """Try again to create the room of a live booking whose room failed or is still
    pending: its attempts start from zero and `BOOKING_CHANGED` is emitted with the change
    "room-retry" (which the invitation receiver ignores). Flushes; the caller commits.

    `actor` is the staff member who asked (None for a system process); only staff of the
    booking's site may. Raises Conflict for a booking that is not live or has its room.
    """
    if actor is not None and not (actor.role in SITE_ROLES and booking.site_id in actor.site_ids):
        raise Forbidden("Only the staff of the patient's site can retry the video room.")
    if booking.status not in LIVE:
        raise Conflict(
            f"A visit that is {booking.status.value.replace('_', ' ')} needs no video room."
        )
    if booking.room_status == RoomStatus.READY:
        raise Conflict("This visit has its video room already.")
    what = f"Retry the video room of televisit of {booking.patient.subject_number}"
    with audit.acting(session, actor, now, what=what, system=None if actor else ROOM_RECEIVER):
        booking.room_status = RoomStatus.PENDING
        booking.room_attempts = 0
        booking.room_error = None
    events.emit(
        session,
        BOOKING_CHANGED,
        now,
        {"booking_id": booking.id, "change": ROOM_RETRY, "sequence": booking.sequence},
        subject=f"booking:{booking.id}",
    )


# --- the invitations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    key: str  # "patient" or "staff-<user id>", part of the dedup key
    email: str
    language: str
    zone: str
    is_patient: bool
    name: str


def _patient_recipient(session: Session, booking: Booking) -> Recipient | None:
    # Read on purpose by this system receiver: the outbox needs the address.
    email = session.scalar(
        select(PatientIdentity.email).where(PatientIdentity.patient_id == booking.patient_id)
    )
    if not email or not email.strip():
        return None
    patient = booking.patient
    language = language_of(patient.preferred_language)
    return Recipient(
        key=PATIENT,
        email=email.strip(),
        language=language,
        zone=patient.timezone,
        is_patient=True,
        name=TEXTS[language]["attendee"],
    )


def _staff_recipient(user: User | None) -> Recipient | None:
    if user is None or not user.email or not user.email.strip():
        return None
    return Recipient(
        key=staff_recipient(user.id),
        email=user.email.strip(),
        language=DEFAULT_LANGUAGE,
        zone=user.timezone,
        is_patient=False,
        name=user.display_name,
    )


def invitation_mail(
    booking: Booking,
    recipient: Recipient,
    kind: str,
    now: datetime,
    *,
    base_url: str | None,
    organizer: str,
) -> OutgoingMail:
    """The mail, with its .ics, telling `recipient` the visit was booked, moved or
    cancelled (`kind`), or, for a staff member it was moved away from, RELEASED."""
    if kind not in (BOOKED, MOVED, CANCELLED, RELEASED):
        raise ValueError(f"no invitation mail for {kind!r}")
    if kind == RELEASED and recipient.is_patient:
        raise ValueError("only a staff member is released from a visit")
    method: calendar.Method = "REQUEST" if kind in (BOOKED, MOVED) else "CANCEL"
    times = when(booking.starts_at, booking.ends_at, recipient.zone, recipient.language)
    minutes = int(join_opens_before().total_seconds() // 60)
    if recipient.is_patient:
        texts = TEXTS[recipient.language]
        link = portal_link(base_url)
        fields: dict[str, Any] = {"day": times.day, "start": times.start, "end": times.end}
        title = texts["title"]
        organizer_name = texts["organizer"]
    else:
        texts = STAFF_TEXTS
        link = base_url
        fields = {
            "day": times.day,
            "start": times.start,
            "end": times.end,
            "visit": booking.planned_visit.name,
            "subject": booking.patient.subject_number,
        }
        title = texts["title"].format(**fields)
        organizer_name = texts["organizer"]
    join = (
        texts["join"].format(link=link, minutes=minutes)
        if link
        else texts["join_no_link"].format(minutes=minutes)
    )
    ics_note = {BOOKED: "calendar_add", MOVED: "calendar_update"}.get(kind, "calendar_remove")
    body = _paragraphs(
        texts.get("greeting", ""),
        texts[f"{kind}_body"].format(**fields),
        join if method == "REQUEST" else texts.get("questions", ""),
        texts[ics_note],
        texts["zone"].format(zone=recipient.zone) if kind != RELEASED else "",
        texts["footer"],
    )
    ics = calendar.invitation(
        calendar.CalendarVisit(
            uid=calendar_uid(booking.id, base_url),
            sequence=booking.sequence,
            title=title,
            description=join,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            zone=recipient.zone,
            organizer_email=organizer,
            organizer_name=organizer_name,
            attendees=((recipient.name, recipient.email),),
            url=link,
        ),
        method=method,
        now=now,
    )
    filename = "invite.ics" if method == "REQUEST" else "cancel.ics"
    return OutgoingMail(
        to=[recipient.email],
        subject=texts[f"{kind}_subject"].format(**fields),
        text=body,
        attachments=[(filename, f"text/calendar; method={method}; charset=UTF-8", ics)],
    )


@events.receiver(BOOKING_CHANGED, INVITATION_RECEIVER)
def send_invitations(session: Session, event: events.Event, now: datetime) -> None:
    """The `visits.invitation` receiver: queue the patient's and the staff member's mails
    for the change, once each (outbox dedup keys)."""
    booking_id, change, sequence = _payload(event)
    if change == ROOM_RETRY:
        return  # nothing the patient or the staff member need hear about
    booking = _booking(session, booking_id)
    if booking.sequence != sequence:
        return  # superseded: the newer change's own event tells the current state
    if booking.status not in (BookingStatus.BOOKED, BookingStatus.CANCELLED):
        return  # started, done or missed: no calendar entry to change any more
    if booking.ends_at <= now:
        return  # a delivery so late the visit is over helps nobody
    if (booking.status == BookingStatus.CANCELLED) != (change == CANCELLED):
        return  # cannot happen at one sequence; never tell people the wrong thing
    kind = change
    base_url, organizer = public_base_url(), _organizer_email()
    mails: list[tuple[OutgoingMail, str | None]] = []
    for recipient, recipient_kind in _invitation_recipients(session, booking, event, kind):
        mail = invitation_mail(
            booking, recipient, recipient_kind, now, base_url=base_url, organizer=organizer
        )
        mails.append((mail, invitation_key(booking.id, booking.sequence, recipient.key)))
    outbox.enqueue_many(session, now, mails)


def _invitation_recipients(
    session: Session, booking: Booking, event: events.Event, kind: str
) -> Iterable[tuple[Recipient, str]]:
    patient = _patient_recipient(session, booking)
    if patient is not None:
        yield patient, kind
    staff = _staff_recipient(booking.staff)
    if staff is not None:
        yield staff, kind
    # A move to another staff member takes the visit out of the first one's calendar,
    # when the event names them (booking.py's "moved" payload: previous_staff_id).
    previous = event.payload.get("previous_staff_id")
    if kind == MOVED and isinstance(previous, int) and previous != booking.staff_id:
        released = _staff_recipient(session.get(User, previous))
        if released is not None:
            yield released, RELEASED


# --- joining ----------------------------------------------------------------------------------


def join_state(
    booking: Booking,
    viewer: User,
    now: datetime,
    *,
    opens_before: timedelta | None = None,
    closes_after: timedelta = JOIN_CLOSES_AFTER,
) -> JoinState:
    """What `viewer` can do about joining the visit at `now`, for pages to say so:
    "not_yours" (neither the patient nor the assigned staff member), "cancelled",
    "over" (done, missed, or past `closes_after` after its end), "too_early" (before
    `opens_before`, by default `join_opens_before()`, ahead of its start), "room_pending"
    (no room yet), else "open"."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    if opens_before is None:
        opens_before = join_opens_before()
    if opens_before < timedelta(0) or closes_after < timedelta(0):
        raise ValueError("opens_before and closes_after cannot be negative")
    # The staff member first: a page listing a staff member's visits loads no patients.
    mine = booking.staff_id == viewer.id or booking.patient.user_id == viewer.id
    if not mine or not viewer.is_enabled:
        return "not_yours"
    if booking.status == BookingStatus.CANCELLED:
        return "cancelled"
    if booking.status not in LIVE or now > booking.ends_at + closes_after:
        return "over"
    if now < booking.starts_at - opens_before:
        return "too_early"
    if booking.room_status != RoomStatus.READY or not booking.room_url:
        return "room_pending"
    return "open"


def join_link(
    booking: Booking,
    viewer: User,
    now: datetime,
    *,
    opens_before: timedelta | None = None,
    closes_after: timedelta = JOIN_CLOSES_AFTER,
) -> str | None:
    """The room's URL for the patient's own account or the assigned staff member, from
    `opens_before` (by default `join_opens_before()`) ahead of the start to `closes_after`
    after the end of a booked or started visit with its room ready; None for anyone else
    and at any other time."""
    state = join_state(booking, viewer, now, opens_before=opens_before, closes_after=closes_after)
    return booking.room_url if state == "open" else None
