"""Planning runs: queued by a dispatcher ("re-plan now") or by the housekeeping job, run by
the scheduler outside any open transaction.

A run is claimed with a conditional UPDATE (queued -> running), so two scheduler
processes never run the same one. For each day it reads in one short transaction, solves
with none open, and writes the plan in another short one; its progress ("day 2 of 3") is
committed as it goes, so the dispatcher's page can show it. A run that dies is failed by
the next claim after `STALE_AFTER`, and its visits keep what the last good run gave them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from dct_platform.errors import ValidationFailed
from dct_platform.models import User
from logistics.dispatch import planner
from logistics.dispatch.models import HomeVisit, HomeVisitStatus, PlanRun, PlanRunStatus

MAX_DAYS = 7
STALE_AFTER = timedelta(minutes=15)


def queue(
    session: Session,
    actor: User | None,
    now: datetime,
    first_day: date,
    days: int = 1,
    provider_id: int | None = None,
) -> PlanRun:
    """Queue a run, or return the one already waiting for the same days and provider."""
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed.on_field("days", f"Plan 1 to {MAX_DAYS} days at a time.")
    # Yesterday still, for a zone behind; past days are history, not plans.
    if not now.date() - timedelta(days=1) <= first_day <= now.date() + timedelta(days=365):
        raise ValidationFailed.on_field("first_day", "From yesterday to a year ahead.")
    waiting = session.scalar(
        select(PlanRun).where(
            PlanRun.status == PlanRunStatus.QUEUED,
            PlanRun.first_day == first_day,
            PlanRun.days == days,
            PlanRun.provider_id.is_(None)
            if provider_id is None
            else PlanRun.provider_id == provider_id,
        )
    )
    if waiting is not None:
        return waiting
    run = PlanRun(
        provider_id=provider_id,
        first_day=first_day,
        days=days,
        status=PlanRunStatus.QUEUED,
        requested_by_id=actor.id if actor else None,
        requested_at=now,
        summary={},
        progress="waiting for the planner",
    )
    session.add(run)
    session.flush()
    return run


def _claim(session: Session, now: datetime) -> PlanRun | None:
    session.execute(
        update(PlanRun)
        .where(PlanRun.status == PlanRunStatus.RUNNING, PlanRun.started_at < now - STALE_AFTER)
        .values(status=PlanRunStatus.FAILED, finished_at=now, error="the planner stopped")
    )
    candidate = session.scalar(
        select(PlanRun.id)
        .where(PlanRun.status == PlanRunStatus.QUEUED)
        .order_by(PlanRun.requested_at, PlanRun.id)
        .limit(1)
    )
    if candidate is None:
        session.commit()
        return None
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(PlanRun)
        .where(PlanRun.id == candidate, PlanRun.status == PlanRunStatus.QUEUED)
        .values(status=PlanRunStatus.RUNNING, started_at=now, progress="starting")
    )
    session.commit()
    if claimed.rowcount != 1:
        return None  # another process took it
    return session.get(PlanRun, candidate)


def _progress(session: Session, run: PlanRun, text: str, **summary: Any) -> None:
    run.progress = text[:200]
    if summary:
        run.summary = {**(run.summary or {}), **summary}
    session.commit()


def execute(
    session: Session,
    run: PlanRun,
    clock: Callable[[], datetime],
    settings: planner.Settings = planner.DEFAULTS,
) -> PlanRun:
    """Run a claimed run day by day; commits as it goes (see the module's notes)."""
    actor = session.get(User, run.requested_by_id) if run.requested_by_id else None
    outcomes: list[dict[str, object]] = []
    try:
        for n in range(run.days):
            day = run.first_day + timedelta(days=n)
            _progress(session, run, f"planning {day.isoformat()} (day {n + 1} of {run.days})")
            inp = planner.read_day(session, day, clock(), settings, provider_id=run.provider_id)
            session.commit()  # end the read transaction before the solver runs
            plan = planner.solve(inp, settings)
            outcome = planner.write_plan(session, inp, plan, clock(), actor, run.id)
            outcomes.append(outcome.as_dict())
            _progress(session, run, f"planned {day.isoformat()}", days=outcomes)
        run.status = PlanRunStatus.DONE
        run.finished_at = clock()
        _progress(session, run, "done", days=outcomes)
    except Exception as exc:  # the run must end failed, whatever broke
        session.rollback()
        run.status = PlanRunStatus.FAILED
        run.finished_at = clock()
        run.error = str(exc)[:500]
        _progress(session, run, "failed")
    return run


def run_queued(
    session: Session, clock: Callable[[], datetime], settings: planner.Settings, limit: int = 5
) -> int:
    """Claim and run queued runs, oldest first, up to `limit`."""
    done = 0
    while done < limit and (run := _claim(session, clock())) is not None:
        execute(session, run, clock, settings)
        done += 1
    return done


def queue_if_open(session: Session, now: datetime, days: int = 2) -> bool:
    """Queue a run for today and the next days when visits there still need a nurse and
    no run is waiting: new visits get planned without a dispatcher asking."""
    today = now.date()
    last = today + timedelta(days=days - 1)
    open_visit = session.scalar(
        select(HomeVisit.id)
        .where(
            HomeVisit.status == HomeVisitStatus.OPEN,
            HomeVisit.window_first <= last,
            HomeVisit.window_last >= today,
        )
        .limit(1)
    )
    waiting = session.scalar(
        select(PlanRun.id).where(PlanRun.status.in_((PlanRunStatus.QUEUED, PlanRunStatus.RUNNING)))
    )
    if open_visit is None or waiting is not None:
        return False
    queue(session, None, now, today, days)
    return True
