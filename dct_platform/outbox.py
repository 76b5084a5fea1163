"""Reliable outgoing mail: queue in the business transaction, deliver from a job.

- `enqueue` adds the mail to the caller's transaction, so a rolled-back change sends
  nothing. A `dedup_key` (e.g. "ediary-reminder:occurrence-81") makes a second enqueue of
  the same mail a no-op, so reminders go out once however often a job computes them.
- `deliver_due` is run by the scheduler. Each message is claimed with a compare-and-set
  UPDATE and committed before the SMTP call, so two scheduler processes never send the same
  message; failures are retried with growing delays, then marked failed.
- A worker that dies between claim and result leaves a stale claim; it is released for a
  new attempt after `STALE_CLAIM`, so delivery is at least once in that rare case.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform.mail import MailDeliveryError, MailSettings, OutgoingMail, send_mail
from dct_platform.models import MailOutbox, OutboxStatus

log = logging.getLogger(__name__)

RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
STALE_CLAIM = timedelta(minutes=15)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, retrying {self.retrying}, failed {self.failed}, "
            f"released {self.released} stale claims"
        )


def enqueue(
    session: Session, now: datetime, mail: OutgoingMail, dedup_key: str | None = None
) -> bool:
    """Queue `mail`; False when a mail with the same `dedup_key` was queued before."""
    attachments = [
        {"filename": name, "content_type": ctype, "data": base64.b64encode(data).decode()}
        for name, ctype, data in mail.attachments
    ]
    row = MailOutbox(
        dedup_key=dedup_key,
        recipients=json.dumps(list(mail.to)),
        subject=mail.subject,
        text_body=mail.text,
        html_body=mail.html,
        attachments=json.dumps(attachments) if attachments else None,
        status=OutboxStatus.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    # A savepoint, so that a duplicate leaves the caller's transaction usable.
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def _as_mail(row: MailOutbox) -> OutgoingMail:
    attachments = [
        (a["filename"], a["content_type"], base64.b64decode(a["data"]))
        for a in json.loads(row.attachments or "[]")
    ]
    return OutgoingMail(
        to=json.loads(row.recipients),
        subject=row.subject,
        text=row.text_body,
        html=row.html_body,
        attachments=attachments,
    )


def _release_stale_claims(session: Session, now: datetime) -> int:
    result = cast(
        CursorResult[Any],
        session.execute(
            update(MailOutbox)
            .where(
                MailOutbox.status == OutboxStatus.SENDING, MailOutbox.claimed_at < now - STALE_CLAIM
            )
            .values(status=OutboxStatus.PENDING, claimed_by=None, claimed_at=None)
        ),
    )
    return result.rowcount or 0


def _claim(session: Session, message_id: int, worker: str, now: datetime) -> bool:
    result = cast(
        CursorResult[Any],
        session.execute(
            update(MailOutbox)
            .where(MailOutbox.id == message_id, MailOutbox.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.SENDING, claimed_by=worker, claimed_at=now)
        ),
    )
    session.commit()
    return result.rowcount == 1


def _record_failure(row: MailOutbox, now: datetime, error: str) -> OutboxStatus:
    row.attempts += 1
    row.last_error = error[:2000]
    row.claimed_by = row.claimed_at = None
    if row.attempts >= MAX_ATTEMPTS:
        row.status = OutboxStatus.FAILED
    else:
        row.status = OutboxStatus.PENDING
        row.next_attempt_at = now + RETRY_DELAYS[row.attempts - 1]
    return row.status


def deliver_due(
    session: Session, now: datetime, settings: MailSettings, worker: str, batch: int = 100
) -> DeliveryReport:
    """Send the messages that are due. Commits per message: an SMTP hand-over cannot be
    rolled back, so the database must record each outcome as it happens."""
    released = _release_stale_claims(session, now)
    session.commit()
    due = session.scalars(
        select(MailOutbox.id)
        .where(MailOutbox.status == OutboxStatus.PENDING, MailOutbox.next_attempt_at <= now)
        .order_by(MailOutbox.next_attempt_at, MailOutbox.id)
        .limit(batch)
    ).all()
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    for message_id in due:
        if not _claim(session, message_id, worker, now):
            continue  # another scheduler took it
        row = session.get(MailOutbox, message_id)
        assert row is not None
        try:
            row.message_id = send_mail(settings, _as_mail(row))
        except MailDeliveryError as exc:
            if exc.message_id:  # some recipients got it: never resend to them
                row.message_id, row.status, row.sent_at = exc.message_id, OutboxStatus.SENT, now
                row.last_error = str(exc)
                counts["sent"] += 1
            else:
                status = _record_failure(row, now, str(exc))
                counts["failed" if status is OutboxStatus.FAILED else "retrying"] += 1
                log.warning("mail %s not delivered (attempt %s): %s", row.id, row.attempts, exc)
        else:
            row.status, row.sent_at, row.attempts = OutboxStatus.SENT, now, row.attempts + 1
            counts["sent"] += 1
        session.commit()
    return DeliveryReport(released=released, **counts)
