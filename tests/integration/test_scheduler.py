"""Periodic jobs run once per slot, however many scheduler processes are started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform.extensions import db
from dct_platform.models import JobRun, LoginThrottle
from dct_platform.scheduler import build_scheduler, register_job, run_job
from tests.conftest import make_app

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


def test_scheduler_has_every_registered_job(app: Flask) -> None:
    scheduler = build_scheduler(app, blocking=False)
    assert "core.housekeeping" in {job.id for job in scheduler.get_jobs()}
