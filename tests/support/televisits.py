"""Televisit notifications under test: book, move and cancel through the booking service,
deliver the events and the outbox as the jobs would, read the mails and their invitations
back, and watch the video provider's requests as they arrive."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from icalendar import Calendar
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from dct_platform import audit, events
from dct_platform.extensions import db
from dct_platform.models import MailOutbox, User
from dct_platform.scheduler import run_job
from dct_platform.timeutil import utcnow
from dct_platform.visits import booking
from dct_platform.visits.models import Booking, PlannedVisit
from dct_platform.visits.slots import Slot
from tests.support.loopback_http import LoopbackHTTPServer, RecordedRequest, ScriptedResponse
from tests.support.smtp import LoopbackSMTPServer, ReceivedMail


def edit(app: Flask, model: type[Any], key: int, **values: object) -> None:
    """Change a record as a test set-up step (on the audit trail, as the system)."""
    with app.app_context():
        s = db.session()
        row = s.get(model, key)
        assert row is not None
        with audit.acting(s, None, utcnow(), system="test", what="test set-up"):
            for name, value in values.items():
                setattr(row, name, value)
        s.commit()


def slots(app: Flask, patient_id: int, now: datetime) -> list[Slot]:
    with app.app_context():
        visit = db.session.scalars(
            select(PlannedVisit).where(PlannedVisit.patient_id == patient_id)
        ).one()
        return booking.free_slots(db.session(), visit, now)


def slot_after(app: Flask, patient_id: int, now: datetime, after: datetime) -> Slot:
    """The first free slot starting at `after` or later."""
    found = [s for s in slots(app, patient_id, now) if s.starts_at >= after]
    assert found, f"no free slot after {after} in the visit window"
    return found[0]


def _actor(username: str) -> User:
    return db.session.scalars(select(User).where(User.username == username)).one()


def book(app: Flask, username: str, patient_id: int, slot: Slot, now: datetime) -> int:
    """Book and commit; the booking's id."""
    with app.app_context():
        s = db.session()
        visit = s.scalars(select(PlannedVisit).where(PlannedVisit.patient_id == patient_id)).one()
        done = booking.book(s, _actor(username), visit, slot.staff_id, slot.starts_at, now)
        s.commit()
        return done.booking.id


def move(app: Flask, username: str, booking_id: int, slot: Slot, now: datetime) -> None:
    with app.app_context():
        s = db.session()
        row = s.get(Booking, booking_id)
        assert row is not None
        booking.reschedule(s, _actor(username), row, slot.staff_id, slot.starts_at, "Clash", now)
        s.commit()


def cancel(app: Flask, username: str, booking_id: int, now: datetime) -> None:
    with app.app_context():
        s = db.session()
        row = s.get(Booking, booking_id)
        assert row is not None
        booking.cancel(s, _actor(username), row, "Feeling better", now)
        s.commit()


def load(app: Flask, booking_id: int) -> Booking:
    """The booking with its patient and staff member, detached for plain reading."""
    with app.app_context():
        row = db.session.get(Booking, booking_id)
        assert row is not None
        _ = (row.patient, row.staff, row.planned_visit)
        db.session.expunge_all()
        return row


def deliver_events(app: Flask, now: datetime) -> events.DeliveryReport:
    """One run of the `core.events` job's work at `now`."""
    with app.app_context():
        report = events.deliver_due(db.session(), now, "test-worker")
        db.session.remove()
        return report


def outbox_keys(app: Flask) -> list[str | None]:
    with app.app_context():
        return list(db.session.scalars(select(MailOutbox.dedup_key).order_by(MailOutbox.id)))


def send_outbox(app: Flask, smtp: LoopbackSMTPServer, now: datetime) -> list[ReceivedMail]:
    """The `core.mail-outbox` job at `now` against `smtp`; every mail received so far."""
    app.config.update(SMTP_HOST=smtp.host, SMTP_PORT=smtp.port)
    with app.app_context():
        pending = db.session.scalar(
            select(func.count(MailOutbox.id)).where(MailOutbox.sent_at.is_(None))
        )
    expected = len(smtp.messages) + (pending or 0)
    # A distinct minute, so that the scheduler's per-slot claim never refuses the run.
    assert run_job(app, "core.mail-outbox", now)
    return smtp.wait_for(expected)


def body(mail: ReceivedMail) -> str:
    part = mail.message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


@dataclass(frozen=True)
class Invitation:
    content_type: str
    method_param: str | None
    calendar: Calendar

    @property
    def event(self) -> Any:
        (event,) = self.calendar.walk("VEVENT")
        return event


def invitation(mail: ReceivedMail) -> Invitation:
    """The mail's .ics attachment, parsed back with icalendar."""
    (part,) = list(mail.message.iter_attachments())
    raw = part.get_payload(decode=True)
    assert isinstance(raw, bytes)
    return Invitation(
        content_type=part.get_content_type(),
        method_param=part.get_param("method"),  # type: ignore[arg-type]
        calendar=Calendar.from_ical(raw),
    )


# --- watching the video provider --------------------------------------------------------------


class ObservingHTTPServer(LoopbackHTTPServer):
    """A loopback server that calls `on_request(request)` as each request arrives, before
    answering it: the moment to look at the database as the caller left it."""

    def __init__(self, on_request: Callable[[RecordedRequest], None]) -> None:
        super().__init__()
        self._on_request = on_request

    def _take_response(self, request: RecordedRequest) -> ScriptedResponse:
        self._on_request(request)
        return super()._take_response(request)


@dataclass(frozen=True)
class Probe:
    """What another connection saw of the booking while the provider was being called."""

    room_status: str | None  # None: the booking row was not visible (not committed)
    writable: bool  # the row (SQLite: the database) could be locked at once
    detail: str = ""


def probe_booking(database_url: str, booking_id: int) -> Probe:
    """Read the booking from a connection of its own and try to lock it without waiting:
    on SQLite the database's write lock (BEGIN IMMEDIATE, no busy timeout), on PostgreSQL
    the row (FOR UPDATE NOWAIT)."""
    url = make_url(database_url)
    query = "SELECT room_status FROM televisit_bookings WHERE id = "
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", timeout=0, isolation_level=None)
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                row = conn.execute(query + "?", (booking_id,)).fetchone()
                return Probe(row[0] if row else None, False, str(exc))
            row = conn.execute(query + "?", (booking_id,)).fetchone()
            conn.execute("ROLLBACK")
            return Probe(row[0] if row else None, True)
        finally:
            conn.close()
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(query + ":id"), {"id": booking_id}).first()
            conn.rollback()
            try:
                conn.execute(text(query + ":id FOR UPDATE NOWAIT"), {"id": booking_id})
            except OperationalError as exc:
                return Probe(row[0] if row else None, False, str(exc.orig))
            finally:
                conn.rollback()
            return Probe(row[0] if row else None, True)
    finally:
        engine.dispose()
