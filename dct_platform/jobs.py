"""The core's own periodic jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import delete
from sqlalchemy.orm import Session

from dct_platform import outbox
from dct_platform.mail import MailSettings
from dct_platform.models import JobRun
from dct_platform.scheduler import register_job, worker_name
from dct_platform.services.accounts import purge_stale_auth_records

JOB_HISTORY = timedelta(days=30)


def housekeeping(session: Session, now: datetime) -> str:
    window = timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"])
    removed = purge_stale_auth_records(session, now, window)
    runs = session.execute(delete(JobRun).where(JobRun.started_at < now - JOB_HISTORY)).rowcount
    return f"removed {removed} stale token and sign-in failure rows, {runs or 0} old job runs"


def deliver_mail(session: Session, now: datetime) -> str:
    settings = MailSettings.from_config(current_app.config)
    return str(outbox.deliver_due(session, now, settings, worker_name()))


def init_app(app: Flask) -> None:
    register_job(app, "core.housekeeping", housekeeping, every=timedelta(hours=1))
    register_job(app, "core.mail-outbox", deliver_mail, every=timedelta(minutes=1))
