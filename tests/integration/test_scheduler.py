"""Periodic jobs run once per slot, however many scheduler processes are started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform.extensions import db
from dct_platform.models import AuditEntry, JobRun, LoginThrottle, MailOutbox, OutboxStatus
from dct_platform.scheduler import (
    build_scheduler,
    register_job,
    registered_jobs,
    run_job,
    slot_for,
)
from tests.conftest import make_app
from tests.support.clock import TestClock
from tests.support.smtp import LoopbackSMTPServer
from tests.support.world import World

T0 = datetime(2026, 5, 1, 12, 0, 5, tzinfo=UTC)


def _calls_job(app: Flask, calls: list[datetime]) -> None:
    def job(session: Session, now: datetime) -> str:
        calls.append(now)
        return "did it"

    register_job(app, "test.counting", job, every=timedelta(minutes=5))


def test_two_scheduler_processes_run_a_slot_once(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    # A second app on the same database stands in for a second scheduler process.
    other = make_app(database_url, tmp_path / "other")
    calls: list[datetime] = []
    _calls_job(app, calls)
    _calls_job(other, calls)
    assert run_job(app, "test.counting", T0) is True
    assert run_job(other, "test.counting", T0 + timedelta(seconds=30)) is False
    assert run_job(other, "test.counting", T0 + timedelta(minutes=5)) is True
    assert len(calls) == 2
    with app.app_context():
        runs = db.session.scalars(select(JobRun).order_by(JobRun.id)).all()
        assert [r.outcome for r in runs] == ["did it", "did it"]
    with other.app_context():
        db.engine.dispose()


def test_a_failing_job_is_recorded_and_does_not_stop_the_next_slot(app: Flask) -> None:
    def broken(session: Session, now: datetime) -> str:
        raise RuntimeError("courier API down")

    register_job(app, "test.broken", broken, every=timedelta(minutes=1))
    assert run_job(app, "test.broken", T0) is True
    with app.app_context():
        run = db.session.scalar(select(JobRun).where(JobRun.job_id == "test.broken"))
        assert run.outcome == "failed: courier API down" and run.finished_at is not None
    assert run_job(app, "test.broken", T0 + timedelta(minutes=1)) is True


def test_core_housekeeping_job_purges_old_failures(app: Flask) -> None:
    with app.app_context():
        db.session.add_all(
            [
                LoginThrottle(
                    kind="user", key="a", window_start=T0 - timedelta(hours=2), failures=3
                ),
                LoginThrottle(
                    kind="user", key="b", window_start=T0 - timedelta(minutes=1), failures=3
                ),
                # Slowed down until a minute ago: kept a while longer, or the next batch of
                # guesses at "c" would start from zero.
                LoginThrottle(
                    kind="user",
                    key="c",
                    window_start=T0 - timedelta(hours=2),
                    failures=30,
                    next_allowed_at=T0 - timedelta(minutes=1),
                ),
            ]
        )
        db.session.commit()
    assert run_job(app, "core.housekeeping", T0) is True
    with app.app_context():
        assert set(db.session.scalars(select(LoginThrottle.key))) == {"b", "c"}


CORE_JOBS = {"core.housekeeping", "core.audit-verify", "core.audit-checkpoint", "core.mail-outbox"}


def test_every_core_job_is_scheduled_runs_on_the_apps_clock_and_records_its_outcome(
    app: Flask, world: World, clock: TestClock, smtp_server: LoopbackSMTPServer
) -> None:
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port)
    jobs = registered_jobs(app)
    scheduler = build_scheduler(app, blocking=False)
    assert {job.id for job in scheduler.get_jobs()} == set(jobs)
    # The scheduler's own log lines ("Running job ...") name each job by its id.
    assert {str(job).split(" (")[0] for job in scheduler.get_jobs()} == set(jobs)
    # Registration order: the checkpoint queues its mail before the outbox job sends it.
    core = [job_id for job_id in jobs if job_id.startswith("core.")]
    assert set(core) >= CORE_JOBS
    now = clock.freeze()
    with app.app_context():
        entries = list(db.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        db.session.remove()

    for job_id in core:
        assert run_job(app, job_id) is True, job_id

    with app.app_context():
        runs = {r.job_id: r for r in db.session.scalars(select(JobRun))}
        mails = list(db.session.scalars(select(MailOutbox)))
    assert set(runs) == set(core)
    for job_id, run in runs.items():
        assert run.started_at == now == run.finished_at, job_id
        assert run.slot == slot_for(jobs[job_id], now), job_id
        assert run.outcome and not run.outcome.startswith("failed"), (job_id, run.outcome)
    assert runs["core.housekeeping"].outcome.startswith("removed ")
    assert runs["core.audit-verify"].outcome == f"intact: {len(entries)} entries"
    assert runs["core.audit-checkpoint"].outcome == f"checkpoint at entry {entries[-1]}"
    assert runs["core.mail-outbox"].outcome.startswith(f"sent {len(mails)}, retrying 0, failed 0")
    assert mails and all(m.status is OutboxStatus.SENT for m in mails)
    received = smtp_server.wait_for(len(mails))
    checkpoint_mail = next(
        m
        for m in received
        if m.message["Subject"] == f"Audit trail checkpoint at entry {entries[-1]}"
    )
    assert checkpoint_mail.rcpt_tos == ["admin@example.org"]
