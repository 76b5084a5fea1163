"""Home visits from the protocol schedule: created, kept in step with their planned visit,
cancelled, and marked missed when their window closes.

A planned visit whose modalities include a home nurse gets a home visit once its window
is within the planning horizon, as long as nothing else holds it (a televisit booked
instead keeps it). The home visit copies what its protocol visit needs at home
(`HomeVisitRequirement`: skills, procedures, the hours of the day); an unscheduled visit
the site agreed to do at home gets the same from the site's request. While a nurse holds
the home visit, its planned visit is booked, so nobody books a televisit for it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, events, policy
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.localtime import local_to_utc, parse_clock_time
from dct_platform.models import User
from dct_platform.services import activities
from dct_platform.visits.models import Modality, PlannedStatus, PlannedVisit
from dct_platform.visits.planning import local_day
from logistics.dispatch.models import (
    HELD_BY_NURSE,
    PLANNABLE,
    HomeVisit,
    HomeVisitRequirement,
    HomeVisitStatus,
    NurseProfile,
)
from logistics.dispatch.policy import DISPATCH

HOME_VISIT = activities.register_type("home_visit", "Home-nurse visit", "logistics")
# Payload: {"home_visit_id", "change": assigned|moved|cancelled|declined|completed|missed,
# "nurse_id" (who holds it now), "previous_nurse_id" (who held it before, if another)}.
CHANGED = events.declare("logistics.home-visit-changed", "A home visit changed hands or state")
SYSTEM = "logistics.dispatch"
DEFAULT_DAY = ("08:00", "18:00")
FINISHED = (HomeVisitStatus.COMPLETED, HomeVisitStatus.CANCELLED, HomeVisitStatus.MISSED)
MAX_REASON = 500


def _requirement(session: Session, visit: PlannedVisit) -> HomeVisitRequirement | None:
    if visit.definition_id is None:
        return None
    return session.get(HomeVisitRequirement, visit.definition_id)


def create_for(
    session: Session,
    visit: PlannedVisit,
    now: datetime,
    *,
    actor: User | None = None,
    skills: Sequence[str] | None = None,
    procedures: Sequence[dict[str, str]] | None = None,
) -> HomeVisit:
    """The home visit of `visit` (made once; a second call returns the first), with the
    second nurse's part when the protocol visit needs one."""
    existing = session.scalar(
        select(HomeVisit).where(HomeVisit.planned_visit_id == visit.id, HomeVisit.part == 1)
    )
    if existing is not None:
        return existing
    if Modality.HOME_NURSE not in visit.modalities:
        raise ValidationFailed.on_field("planned_visit_id", f"{visit.name} is not done at home.")
    if visit.status != PlannedStatus.PLANNED:
        raise Conflict(f"{visit.name} is {visit.status.value} already.")
    need = _requirement(session, visit)
    day_start, day_end = (need.day_start, need.day_end) if need else DEFAULT_DAY

    def part(
        number: int, minutes: int, needs: Sequence[str], steps: Sequence[dict[str, str]]
    ) -> HomeVisit:
        return HomeVisit(
            planned_visit_id=visit.id,
            part=number,
            patient_id=visit.patient_id,
            site_id=visit.patient.site_id,
            status=HomeVisitStatus.OPEN,
            window_first=visit.window_first,
            window_last=visit.window_last,
            day_start=day_start,
            day_end=day_end,
            duration_minutes=minutes,
            skills=sorted(set(needs)),
            procedures=list(steps),
            created_at=now,
            updated_at=now,
        )

    first = part(
        1,
        visit.duration_minutes,
        skills if skills is not None else (need.skills if need else []),
        procedures if procedures is not None else (need.procedures if need else []),
    )
    what = f"Home visit for {visit.name} of {visit.patient.subject_number}"
    with audit.acting(session, actor, now, what=what, system=None if actor else SYSTEM):
        session.add(first)
        session.flush()
        companion = need.companion if need else None
        second = None
        if companion:
            second = part(
                2,
                int(companion.get("duration") or visit.duration_minutes),
                companion.get("skills") or [],
                companion.get("procedures") or [],
            )
            second.partner_id = first.id
            second.link_kind = companion["kind"]
            second.min_gap_minutes = companion.get("min_gap")
            second.max_gap_minutes = companion.get("max_gap")
            session.add(second)
            session.flush()
    for made in (first, second):
        if made is not None:
            record(session, made, now)
    return first


def lock(session: Session, home: HomeVisit) -> None:
    """Lock every part of the home visit, always in part order (so that two people acting
    on the two parts of a two-nurse visit queue instead of deadlocking), and re-read it:
    a change then decides on the visit as committed, not as read a moment before. A double
    tap or a phone's retry finds the first step done; the last of two nurses to check out
    sees the other's check-out; a visit pinned to someone else meanwhile is no longer hers."""
    session.execute(
        select(HomeVisit.id)
        .where(HomeVisit.planned_visit_id == home.planned_visit_id)
        .order_by(HomeVisit.part)
        .with_for_update()
    )
    session.refresh(home)


def parts_of(session: Session, home: HomeVisit) -> list[HomeVisit]:
    """Every part of the home visit's planned visit (one, or two for a two-nurse visit)."""
    return list(
        session.scalars(
            select(HomeVisit)
            .where(HomeVisit.planned_visit_id == home.planned_visit_id)
            .order_by(HomeVisit.part)
        )
    )


def create_due(session: Session, now: datetime, horizon: timedelta) -> int:
    """Home visits for planned home-nurse visits whose window opens within `horizon`."""
    today = now.date()
    candidates = session.scalars(
        select(PlannedVisit)
        .outerjoin(HomeVisit, HomeVisit.planned_visit_id == PlannedVisit.id)
        .where(
            HomeVisit.id.is_(None),
            PlannedVisit.status == PlannedStatus.PLANNED,
            PlannedVisit.window_first <= today + horizon,
            PlannedVisit.window_last >= today - timedelta(days=1),
        )
        .order_by(PlannedVisit.window_first, PlannedVisit.id)
    )
    made = 0
    for visit in candidates:
        if Modality.HOME_NURSE not in visit.modalities:
            continue
        if local_day(session, visit.patient_id, now) > visit.window_last:
            continue
        create_for(session, visit, now)
        made += 1
    return made


def release_taken(session: Session, now: datetime) -> int:
    """Open home visits whose planned visit was taken otherwise (a televisit booked,
    cancelled from the schedule): cancelled, so nobody dispatches them."""
    stale = list(
        session.scalars(
            select(HomeVisit)
            .join(PlannedVisit, PlannedVisit.id == HomeVisit.planned_visit_id)
            .where(
                HomeVisit.status == HomeVisitStatus.OPEN,
                PlannedVisit.status != PlannedStatus.PLANNED,
            )
        )
    )
    for home in stale:
        why = f"its planned visit is {home.planned_visit.status.value}"
        _close(session, None, home, HomeVisitStatus.CANCELLED, now, why)
    return len(stale)


def cancel(
    session: Session, actor: User, home: HomeVisit, reason: str | None, now: datetime
) -> HomeVisit:
    """The site or dispatcher cancels a home visit (every part of it); the nurse who held
    it is told."""
    lock(session, home)
    policy.authorize(actor, DISPATCH, home, now=now)
    why = (reason or "").strip()
    if not why or len(why) > MAX_REASON:
        raise ValidationFailed.on_field("reason", f"Say why (up to {MAX_REASON} characters).")
    if home.status in FINISHED:
        raise Conflict(f"This home visit is {home.status.value} already.")
    parts = parts_of(session, home)
    if any(p.status == HomeVisitStatus.IN_PROGRESS for p in parts):
        raise Conflict("The nurse has checked in; she checks out to end the visit.")
    for each in parts:
        if each.status not in FINISHED:
            _close(session, actor, each, HomeVisitStatus.CANCELLED, now, why)
    planned = home.planned_visit
    with audit.acting(session, actor, now, why, what=f"Free {planned.name} for another booking"):
        planned.status = PlannedStatus.PLANNED
        planned.updated_at = now
    return home


def mark_missed(session: Session, now: datetime) -> int:
    """Home visits not done by the end of their window (patient's calendar)."""
    candidates = session.scalars(
        select(HomeVisit).where(
            HomeVisit.status.in_(
                (HomeVisitStatus.OPEN, HomeVisitStatus.ASSIGNED, HomeVisitStatus.ACCEPTED)
            ),
            HomeVisit.window_last < now.date() + timedelta(days=1),
        )
    )
    missed = 0
    for home in candidates:
        if local_day(session, home.patient_id, now) <= home.window_last:
            continue
        _close(session, None, home, HomeVisitStatus.MISSED, now, "its window closed")
        planned = home.planned_visit
        with audit.acting(session, None, now, what="Window closed", system=SYSTEM):
            planned.status = PlannedStatus.MISSED
            planned.updated_at = now
        missed += 1
    return missed


def _close(
    session: Session,
    actor: User | None,
    home: HomeVisit,
    status: HomeVisitStatus,
    now: datetime,
    why: str,
) -> None:
    held_by = home.nurse_id if home.status in HELD_BY_NURSE else None
    what = f"Home visit {status.value}"
    with audit.acting(session, actor, now, why, what=what, system=None if actor else SYSTEM):
        home.status = status
        home.cancel_reason = why[:MAX_REASON] if status == HomeVisitStatus.CANCELLED else None
        home.updated_at = now
    record(session, home, now)
    emit(session, home, now, status.value, previous_nurse_id=held_by)


def emit(
    session: Session,
    home: HomeVisit,
    now: datetime,
    change: str,
    previous_nurse_id: int | None = None,
) -> None:
    payload = {"home_visit_id": home.id, "change": change, "nurse_id": home.nurse_id}
    if previous_nurse_id is not None and previous_nurse_id != home.nurse_id:
        payload["previous_nurse_id"] = previous_nurse_id
    events.emit(session, CHANGED, now, payload, subject=f"home-visit:{home.id}")


def record(session: Session, home: HomeVisit, now: datetime) -> None:
    """The home visit's remote activity, with the nurse as the data's originator."""
    start = home.checked_in_at or home.planned_start
    if start is None:  # not planned yet: the earliest it can happen
        opens = local_to_utc(
            home.window_first, parse_clock_time(home.day_start), home.patient.timezone
        )
        start = max(opens, home.created_at)
    activities.record_activity(
        session,
        now,
        activity_type=HOME_VISIT,
        patient=home.patient,
        occurred_at=start,
        ends_at=home.checked_out_at or home.planned_end,
        record_table=HomeVisit.__tablename__,
        record_id=home.id,
        status=home.status.value,
        summary=f"{home.planned_visit.name} at home",
        originator=activities.Originator.NURSE,
        originator_user_id=home.nurse_id,
        modality=Modality.HOME_NURSE.value,
        location_type="patient_home",
    )


def window_days(home: HomeVisit) -> list[date]:
    days, day = [], home.window_first
    while day <= home.window_last:
        days.append(day)
        day += timedelta(days=1)
    return days


def pin(
    session: Session, actor: User, home: HomeVisit, nurse: User | None, now: datetime
) -> HomeVisit:
    """A dispatcher pins the visit to a nurse (or unpins it with None); the next planning
    run gives it to her or says why it cannot."""
    lock(session, home)
    policy.authorize(actor, DISPATCH, home, now=now)
    if home.status not in PLANNABLE and home.status != HomeVisitStatus.ACCEPTED:
        raise Conflict(f"This home visit is {home.status.value.replace('_', ' ')}.")
    if nurse is not None:
        profile = session.get(NurseProfile, nurse.id)
        if profile is None or not profile.is_active or not nurse.is_enabled:
            raise ValidationFailed.on_field("nurse_id", "Not an active mobile nurse.")
        mine = policy.visible(actor, NurseProfile, session=session, now=now)
        if (
            session.scalar(
                select(NurseProfile.user_id).where(NurseProfile.user_id == nurse.id, mine)
            )
            is None
        ):
            raise ValidationFailed.on_field("nurse_id", "You do not dispatch this nurse.")
    what = f"Pin home visit to {nurse.display_name}" if nurse else "Unpin home visit"
    with audit.acting(session, actor, now, what=what):
        home.pinned_nurse_id = nurse.id if nurse else None
        home.updated_at = now
    return home
