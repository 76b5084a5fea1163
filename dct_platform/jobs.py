"""The core's own periodic jobs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from flask import Flask, current_app
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from dct_platform import audit, events, outbox
from dct_platform.audit import verify_chain
from dct_platform.audit_anchor import CheckpointStore
from dct_platform.mail import MailSettings, OutgoingMail
from dct_platform.models import JobRun, User
from dct_platform.roles import Role
from dct_platform.scheduler import register_job, worker_name
from dct_platform.services.accounts import purge_stale_auth_records
from dct_platform.services.web_sessions import purge_web_sessions

JOB_HISTORY = timedelta(days=30)
AUDIT_JOB = "core.audit-verify"
AUDIT_INTACT = "intact:"
AUDIT_BROKEN = "BROKEN at entry"
log = logging.getLogger(__name__)


def housekeeping(session: Session, now: datetime) -> str:
    window = timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"])
    removed = purge_stale_auth_records(session, now, window)
    removed += purge_web_sessions(session, now, max_age=timedelta(days=30))
    runs = cast(
        CursorResult[Any],
        session.execute(delete(JobRun).where(JobRun.started_at < now - JOB_HISTORY)),
    ).rowcount
    delivered = events.purge_delivered(session, now - JOB_HISTORY)
    return (
        f"removed {removed} stale token, session and sign-in rows, {runs or 0} old job runs, "
        f"{delivered} delivered events"
    )


def deliver_events(session: Session, now: datetime) -> str:
    return str(events.deliver_due(session, now, worker_name()))


# The outbox job runs every 15 s, so a mail queued by a request or a job (a diary
# reminder) leaves within about 15 s, and sends for at most 12 s a run, over one SMTP
# connection: ~270 mails/s to a loopback server (bench/reminders.py), so 10,000 reminders
# due in one minute are all handed over in four runs, under a minute. The budget stays
# below the period, so runs do not pile up; a run with nothing due costs two queries and
# opens no connection.
MAIL_PERIOD = timedelta(seconds=15)
MAIL_BUDGET = timedelta(seconds=12)


def deliver_mail(session: Session, now: datetime) -> str:
    settings = MailSettings.from_config(current_app.config)
    return str(outbox.deliver_due(session, now, settings, worker_name(), budget=MAIL_BUDGET))


def _mail_administrators(
    session: Session, now: datetime, subject: str, text: str, *, dedup_key: str
) -> None:
    """Queue one mail to every enabled administrator with an address, once per key."""
    admins = [
        e
        for e in session.scalars(
            select(User.email).where(
                User.role == Role.ADMIN, User.is_enabled, User.email.is_not(None)
            )
        )
        if e
    ]
    if admins:
        outbox.enqueue(
            session, now, OutgoingMail(to=admins, subject=subject, text=text), dedup_key=dedup_key
        )


def verify_audit_trail(session: Session, now: datetime) -> str:
    """Recompute the whole chain daily; a broken link alerts every administrator by mail,
    once per broken entry."""
    result = verify_chain(session, CheckpointStore.from_config(current_app.config))
    if result.ok:
        return f"{AUDIT_INTACT} {result.checked} entries"
    outcome = f"{AUDIT_BROKEN} {result.broken_seq}: {result.problem}"
    log.error("audit chain %s", outcome)
    _mail_administrators(
        session,
        now,
        "Audit trail verification failed",
        f"The audit trail's hash chain does not verify: {outcome}.\n"
        "Run `dct audit verify` and investigate before relying on the trail.",
        dedup_key=f"audit-chain-broken:{result.broken_seq}",
    )
    return outcome


def seal_audit_trail(session: Session, now: datetime) -> str:
    """Chain what transactions wrote since the last run (they write unchained)."""
    return f"sealed {audit.seal_all(session)} entries"


def checkpoint_audit_trail(session: Session, now: datetime) -> str:
    """Sign the chain's position outside the database and mail the administrators a copy:
    a rewrite of the trail inside the database then no longer verifies."""
    audit.seal_all(session)  # sign the newest position, not one left behind by the sealer
    checkpoint = CheckpointStore.from_config(current_app.config).append(session, now)
    if checkpoint is None:
        return "no new entries"
    _mail_administrators(
        session,
        now,
        f"Audit trail checkpoint at entry {checkpoint.seq}",
        f"Keep this line: `dct audit verify` proves the trail against it.\n\n{checkpoint.line()}\n",
        dedup_key=f"audit-checkpoint:{checkpoint.seq}",
    )
    return f"checkpoint at entry {checkpoint.seq}"


def init_app(app: Flask) -> None:
    register_job(app, "core.housekeeping", housekeeping, every=timedelta(hours=1))
    register_job(app, AUDIT_JOB, verify_audit_trail, every=timedelta(hours=24))
    register_job(app, "core.audit-seal", seal_audit_trail, every=timedelta(seconds=15))
    register_job(app, "core.audit-checkpoint", checkpoint_audit_trail, every=timedelta(minutes=15))
    # Before the outbox: mails that receivers queue go out in the same round.
    register_job(app, "core.events", deliver_events, every=timedelta(seconds=30))
    register_job(app, "core.mail-outbox", deliver_mail, every=MAIL_PERIOD)
