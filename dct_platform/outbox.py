"""Reliable outgoing mail: queue in the business transaction, deliver from a job.

- `enqueue` adds the mail to the caller's transaction, so a rolled-back change sends
  nothing. A `dedup_key` (e.g. "ediary:81:opens") makes a second enqueue of the same mail a
  no-op, so reminders go out once however often a job computes them. `enqueue_many` queues
  thousands in a few statements (`INSERT ... ON CONFLICT DO NOTHING`), with the same rule.
- `deliver_due` is run by the scheduler. It claims the due messages a group at a time with
  a compare-and-set UPDATE committed before any SMTP call, so two scheduler processes never
  send the same message, then sends them over one SMTP connection (`MailConnection`, opened
  once per run, reopened if the server drops it, QUIT at the end) and commits each outcome
  right after its SMTP hand-over: a mail handed over is never left without its record (bar
  a crash in between) and none is recorded as sent that was not. It goes on until nothing
  is due or its time budget is spent. Failures are retried with growing delays, then
  marked failed; when the server cannot be reached the run stops after the first failure
  and leaves the rest due, rather than spending an attempt (and a timeout) on each.
- A worker that dies between claim and result leaves a stale claim; it is released for a
  new attempt after `STALE_CLAIM`, so delivery is at least once in that rare case, as it
  is when the connection is lost after a message's DATA was started.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform.mail import MailConnection, MailDeliveryError, MailSettings, OutgoingMail
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
# Messages claimed by one compare-and-set UPDATE. Small, so that a second scheduler finds
# work beside the first and a run stopped by its budget gives little back.
GROUP = 50
# How long one run keeps claiming and sending; below the job's period (dct_platform/jobs.py).
BUDGET = timedelta(seconds=50)
# Rows per INSERT of `enqueue_many`.
INSERT_CHUNK = 1000


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    # Claimed but not attempted (the budget ran out, the server could not be reached):
    # handed back as due, without counting an attempt.
    left: int = 0
    connections: int = 0

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, retrying {self.retrying}, failed {self.failed}, "
            f"released {self.released} stale claims, left {self.left} due, "
            f"{self.connections} SMTP connection{'' if self.connections == 1 else 's'}"
        )


def _row_values(now: datetime, mail: OutgoingMail, dedup_key: str | None) -> dict[str, Any]:
    attachments = [
        {"filename": name, "content_type": ctype, "data": base64.b64encode(data).decode()}
        for name, ctype, data in mail.attachments
    ]
    return {
        "dedup_key": dedup_key,
        "recipients": json.dumps(list(mail.to)),
        "subject": mail.subject,
        "text_body": mail.text,
        "html_body": mail.html,
        "attachments": json.dumps(attachments) if attachments else None,
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }


def enqueue(
    session: Session, now: datetime, mail: OutgoingMail, dedup_key: str | None = None
) -> bool:
    """Queue `mail`; False when a mail with the same `dedup_key` was queued before."""
    row = MailOutbox(**_row_values(now, mail, dedup_key))
    # A savepoint, so that a duplicate leaves the caller's transaction usable.
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def enqueue_many(
    session: Session, now: datetime, mails: Iterable[tuple[OutgoingMail, str | None]]
) -> int:
    """Queue many mails in the caller's transaction, a few statements for thousands; a mail
    whose `dedup_key` was queued before (by an earlier run, or by another scheduler at the
    same time) is skipped by the database. Returns how many were queued."""
    dialect = session.get_bind().dialect.name
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    rows = [_row_values(now, mail, key) for mail, key in mails]
    if insert is None:  # another database: one savepoint per mail
        return sum(
            enqueue(session, now, OutgoingMail(**_mail_fields(r)), r["dedup_key"]) for r in rows
        )
    queued = 0
    statement = insert(MailOutbox).on_conflict_do_nothing().returning(MailOutbox.id)
    for start in range(0, len(rows), INSERT_CHUNK):
        queued += len(session.execute(statement, rows[start : start + INSERT_CHUNK]).all())
    return queued


def _mail_fields(row: Any) -> dict[str, Any]:
    """An OutgoingMail's fields from a stored (or about to be stored) outbox row."""
    attachments = [
        (a["filename"], a["content_type"], base64.b64decode(a["data"]))
        for a in json.loads(row["attachments"] or "[]")
    ]
    return {
        "to": json.loads(row["recipients"]),
        "subject": row["subject"],
        "text": row["text_body"],
        "html": row["html_body"],
        "attachments": attachments,
    }


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


_CLAIMED = (
    MailOutbox.id,
    MailOutbox.next_attempt_at,
    MailOutbox.attempts,
    MailOutbox.recipients,
    MailOutbox.subject,
    MailOutbox.text_body,
    MailOutbox.html_body,
    MailOutbox.attachments,
)


@dataclass(frozen=True)
class _Claimed:
    id: int
    next_attempt_at: datetime
    attempts: int
    stored: dict[str, Any]  # the columns an OutgoingMail is made of


def _claim_group(session: Session, now: datetime, worker: str, size: int) -> list[_Claimed] | None:
    """Claim up to `size` due messages and commit; None when nothing is due. An empty list
    means another scheduler claimed them first (look again)."""
    ids = session.scalars(
        select(MailOutbox.id)
        .where(MailOutbox.status == OutboxStatus.PENDING, MailOutbox.next_attempt_at <= now)
        .order_by(MailOutbox.next_attempt_at, MailOutbox.id)
        .limit(size)
    ).all()
    if not ids:
        session.commit()
        return None
    # Compare-and-set: only the rows still pending are ours, whoever else looked at them.
    claimed = session.execute(
        update(MailOutbox)
        .where(MailOutbox.id.in_(ids), MailOutbox.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.SENDING, claimed_by=worker, claimed_at=now)
        .returning(*_CLAIMED)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    rows = [_Claimed(r.id, r.next_attempt_at, r.attempts, dict(r._mapping)) for r in claimed]
    return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))


def _record_sent(
    session: Session, now: datetime, row: _Claimed, message_id: str, error: str | None = None
) -> None:
    session.execute(
        update(MailOutbox)
        .where(MailOutbox.id == row.id)
        .values(
            status=OutboxStatus.SENT,
            sent_at=now,
            attempts=row.attempts + 1,
            message_id=message_id,
            last_error=error,
        )
        .execution_options(synchronize_session=False)
    )


def _record_failure(
    session: Session, now: datetime, worker: str, row: _Claimed, error: str, *, final: bool
) -> OutboxStatus:
    attempts = row.attempts + 1
    if final or attempts >= MAX_ATTEMPTS:
        status, next_at = OutboxStatus.FAILED, row.next_attempt_at
    else:
        status, next_at = OutboxStatus.PENDING, now + RETRY_DELAYS[attempts - 1]
    session.execute(
        update(MailOutbox)
        .where(
            MailOutbox.id == row.id,
            MailOutbox.status == OutboxStatus.SENDING,
            MailOutbox.claimed_by == worker,
        )
        .values(
            status=status,
            attempts=attempts,
            last_error=error[:2000],
            next_attempt_at=next_at,
            claimed_by=None,
            claimed_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return status


def _give_back(session: Session, worker: str, ids: Sequence[int]) -> None:
    """Claimed messages that were not attempted: due again, no attempt counted."""
    if ids:
        session.execute(
            update(MailOutbox)
            .where(
                MailOutbox.id.in_(ids),
                MailOutbox.status == OutboxStatus.SENDING,
                MailOutbox.claimed_by == worker,
            )
            .values(status=OutboxStatus.PENDING, claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
    session.commit()


def deliver_due(
    session: Session,
    now: datetime,
    settings: MailSettings,
    worker: str,
    batch: int = GROUP,
    *,
    budget: timedelta = BUDGET,
    commit_every: int = 1,
) -> DeliveryReport:
    """Send the messages that are due, over one SMTP connection, until none is due or
    `budget` (wall-clock time) is spent; `batch` messages are claimed at a time.

    Each outcome is committed as soon as the SMTP server answered (`commit_every` > 1
    groups the commits, for measuring: a crash would then lose the record of up to that
    many mails handed over, which would be sent again once their claims go stale)."""
    deadline = time.monotonic() + budget.total_seconds()
    released = _release_stale_claims(session, now)
    session.commit()
    counts = {"sent": 0, "retrying": 0, "failed": 0, "left": 0}
    with MailConnection(settings) as smtp:
        unreachable = False
        while not unreachable and time.monotonic() < deadline:
            group = _claim_group(session, now, worker, batch)
            if group is None:
                break
            done = 0
            try:
                for row in group:
                    if unreachable or time.monotonic() >= deadline:
                        break
                    outcome, unreachable = _deliver_one(session, now, worker, smtp, row)
                    counts[outcome] += 1
                    done += 1
                    if done % commit_every == 0:
                        session.commit()
                session.commit()
            except BaseException:
                session.rollback()
                # Give back what was not attempted; what was is left to the stale claims.
                _give_back(session, worker, [row.id for row in group[done + 1 :]])
                raise
            left = [row.id for row in group[done:]]
            counts["left"] += len(left)
            _give_back(session, worker, left)
    return DeliveryReport(released=released, connections=smtp.connections, **counts)


def _deliver_one(
    session: Session, now: datetime, worker: str, smtp: MailConnection, row: _Claimed
) -> tuple[str, bool]:
    """Send one claimed message and record its outcome (flushed, not committed): which
    count it adds to, and whether the server could not be used any more."""
    try:
        message_id = smtp.send(OutgoingMail(**_mail_fields(row.stored)))
    except MailDeliveryError as exc:
        if exc.message_id:  # some recipients got it: never resend to them
            _record_sent(session, now, row, exc.message_id, str(exc))
            return "sent", False
        status = _record_failure(session, now, worker, row, str(exc), final=False)
        log.warning("mail %s not delivered (attempt %s): %s", row.id, row.attempts + 1, exc)
        return ("failed" if status is OutboxStatus.FAILED else "retrying"), exc.connection_failed
    except ValueError as exc:  # a header no server may get (injection): it never will
        _record_failure(session, now, worker, row, f"not sendable: {exc}", final=True)
        log.error("mail %s cannot be sent: %s", row.id, exc)
        return "failed", False
    _record_sent(session, now, row, message_id)
    return "sent", False
