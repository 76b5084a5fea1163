"""Periodic jobs: a registry filled by the core and feature packages, run by APScheduler.

Exactly-once across processes does not rely on running one scheduler: each run first claims
its time slot with a row whose (job, slot) key is unique, so a second scheduler started by
mistake finds the slot taken and does nothing. Jobs that act on items (reminders, alerts)
must also claim each item in the database (e.g. `UPDATE ... WHERE sent_at IS NULL`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform.extensions import db
from dct_platform.models import JobRun
from dct_platform.timeutil import utcnow

log = logging.getLogger(__name__)

JobFn = Callable[[Session, datetime], str | None]


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    func: JobFn
    every: timedelta


def register_job(app: Flask, job_id: str, func: JobFn, *, every: timedelta) -> None:
    """Called from an `init_app`. `func(session, now)` only flushes; the runner commits."""
    jobs: dict[str, JobSpec] = app.extensions.setdefault("dct_jobs", {})
    if job_id in jobs:
        raise ValueError(f"job {job_id!r} is registered twice")
    jobs[job_id] = JobSpec(job_id, func, every)


def registered_jobs(app: Flask) -> dict[str, JobSpec]:
    return dict(app.extensions.get("dct_jobs", {}))


def slot_for(spec: JobSpec, now: datetime) -> str:
    period = int(spec.every.total_seconds())
    start = int(now.timestamp()) // period * period
    return datetime.fromtimestamp(start, tz=now.tzinfo).isoformat()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(app: Flask, job_id: str, now: datetime | None = None) -> bool:
    """Run one job for the slot containing `now` unless another process has claimed it.

    Returns True when this call ran the job.
    """
    spec = registered_jobs(app)[job_id]
    with app.app_context():
        now = now or utcnow()
        session = db.session()
        run = JobRun(
            job_id=job_id, slot=slot_for(spec, now), claimed_by=worker_name(), started_at=now
        )
        session.add(run)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            log.info("job %s slot %s already claimed; skipping", job_id, run.slot)
            return False
        try:
            outcome = spec.func(session, now)
            run.finished_at = utcnow()
            run.outcome = (outcome or "ok")[:500]
            session.commit()
        except Exception as exc:
            session.rollback()
            log.exception("job %s failed", job_id)
            # The claim was committed before the job ran, so `run` survives the rollback.
            run.finished_at = utcnow()
            run.outcome = f"failed: {exc}"[:500]
            session.commit()
    return True


def build_scheduler(app: Flask, *, blocking: bool) -> BaseScheduler:
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    )
    for spec in registered_jobs(app).values():
        scheduler.add_job(
            run_job,
            "interval",
            seconds=int(spec.every.total_seconds()),
            args=[app, spec.job_id],
            id=spec.job_id,
            # APScheduler's log lines name a job by its name: the id, not "run_job".
            name=spec.job_id,
            max_instances=1,
            coalesce=True,
            next_run_time=utcnow(),
        )
    return scheduler
