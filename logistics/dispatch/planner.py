"""A day's dispatch plan: read what to plan, solve it outside any transaction, write it
back in one short transaction.

`read_day` gathers the home visits whose window includes the day (open ones, and those
nurses hold for that day), the nurses of the providers that serve their sites, who may
do which (`qualification.reasons_against`), their hours and the patients' hours of the
day as minutes of one horizon (through the local-time helper, in each one's own zone),
and the travel times (great-circle at a configured speed; a matrix can be supplied).
`solve` calls the routing planner (OR-Tools). `write_plan` applies the plan to every
visit that has not changed since it was read (its version), holding no lock while the
solver runs: a visit a nurse accepted or declined meanwhile keeps what she did and waits
for the next run.

Visits nurses hold (assigned or accepted) are kept with them where possible: a re-plan
after a decline or a sick call moves only what it must.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.localtime import local_window, parse_clock_time
from dct_platform.models import Patient, PatientIdentity, Trial, User
from dct_platform.timeutil import to_local
from dct_platform.visits.models import PlannedStatus
from logistics import routing
from logistics.dispatch import home_visits
from logistics.dispatch.models import (
    HomeHealthProvider,
    HomeVisit,
    HomeVisitDecline,
    HomeVisitStatus,
    NurseAbsence,
    NurseHours,
    NurseLicence,
    NurseProfile,
    NurseTraining,
    PatientHomeLocation,
    ProviderContract,
)
from logistics.dispatch.qualification import (
    Contract,
    Licence,
    NurseFacts,
    VisitFacts,
    WeeklyShift,
    reasons_against,
    summarize,
)

CANDIDATES = (HomeVisitStatus.OPEN, HomeVisitStatus.ASSIGNED, HomeVisitStatus.ACCEPTED)
NO_LOCATION = "no home location recorded for the patient"
TravelFactory = Callable[[Sequence[tuple[float, float]]], routing.TravelTimes]


@dataclass(frozen=True)
class Settings:
    speed_kmh: float = 35.0
    road_factor: float = 1.3
    time_limit_s: float = 5.0


DEFAULTS = Settings()


@dataclass
class DayInput:
    """What `read_day` read: the problem, and what `write_plan` checks against."""

    day: date
    origin: datetime
    problem: routing.Problem
    versions: dict[int, int] = field(default_factory=dict)  # home visit id -> version
    nurses: dict[str, int] = field(default_factory=dict)  # key -> user id
    names: dict[int, str] = field(default_factory=dict)  # nurse user id -> name
    unplannable: dict[int, str] = field(default_factory=dict)  # visit id -> reason

    def at(self, minutes: float) -> datetime:
        return self.origin + timedelta(minutes=round(minutes))

    def minutes(self, instant: datetime) -> float:
        return (instant - self.origin).total_seconds() / 60


@dataclass(frozen=True)
class Outcome:
    day: date
    assigned: int
    moved: int
    kept: int
    unassigned: int
    stale: int
    travel_minutes: float

    def as_dict(self) -> dict[str, object]:
        return {
            "day": self.day.isoformat(),
            "assigned": self.assigned,
            "moved": self.moved,
            "kept": self.kept,
            "unassigned": self.unassigned,
            "stale": self.stale,
            "travel_minutes": round(self.travel_minutes),
        }


def _key(user_id: int) -> str:
    return f"n{user_id}"


def _visit_key(visit_id: int) -> str:
    return f"v{visit_id}"


def _visit_id(key: str) -> int:
    return int(key[1:])


# --- reading ----------------------------------------------------------------------------


def _nurse_facts(session: Session, provider_id: int | None) -> list[NurseFacts]:
    query = (
        select(NurseProfile, User)
        .join(User, User.id == NurseProfile.user_id)
        .join(HomeHealthProvider, HomeHealthProvider.id == NurseProfile.provider_id)
        .where(NurseProfile.is_active, User.is_enabled, HomeHealthProvider.is_active)
        .order_by(NurseProfile.user_id)
    )
    if provider_id is not None:
        query = query.where(NurseProfile.provider_id == provider_id)
    rows = session.execute(query).all()
    ids = [p.user_id for p, _ in rows]
    licences: dict[int, list[Licence]] = {i: [] for i in ids}
    for lic in session.scalars(select(NurseLicence).where(NurseLicence.nurse_id.in_(ids))):
        licences[lic.nurse_id].append(Licence(lic.region, lic.expires_on))
    trainings: dict[int, set[tuple[int, str]]] = {i: set() for i in ids}
    for t in session.scalars(select(NurseTraining).where(NurseTraining.nurse_id.in_(ids))):
        trainings[t.nurse_id].add((t.trial_id, t.protocol_version))
    shifts: dict[int, list[WeeklyShift]] = {i: [] for i in ids}
    for h in session.scalars(select(NurseHours).where(NurseHours.nurse_id.in_(ids))):
        shifts[h.nurse_id].append(
            WeeklyShift(
                h.weekday, parse_clock_time(h.start_time), parse_clock_time(h.end_time, end=True)
            )
        )
    absences: dict[int, list[tuple[date, date]]] = {i: [] for i in ids}
    for a in session.scalars(select(NurseAbsence).where(NurseAbsence.nurse_id.in_(ids))):
        absences[a.nurse_id].append((a.first_day, a.last_day))
    return [
        NurseFacts(
            user_id=p.user_id,
            name=u.display_name,
            provider_id=p.provider_id,
            zone=u.timezone,
            home=(p.latitude, p.longitude),
            skills=frozenset(p.skills),
            licences=tuple(licences[p.user_id]),
            trainings=frozenset(trainings[p.user_id]),
            postal_prefixes=tuple(p.postal_prefixes),
            radius_km=p.radius_km,
            shifts=tuple(shifts[p.user_id]),
            absences=tuple(absences[p.user_id]),
        )
        for p, u in rows
    ]


def _contracts(session: Session) -> list[Contract]:
    return [
        Contract(
            c.provider_id,
            c.site_id,
            frozenset(r.upper() for r in c.regions),
            c.valid_from,
            c.valid_to,
        )
        for c in session.scalars(select(ProviderContract))
    ]


def _visits_of_day(session: Session, day: date, provider_id: int | None) -> list[HomeVisit]:
    query = select(HomeVisit).where(
        HomeVisit.status.in_(CANDIDATES),
        HomeVisit.window_first <= day,
        HomeVisit.window_last >= day,
    )
    if provider_id is not None:
        query = query.where(
            HomeVisit.site_id.in_(
                select(ProviderContract.site_id).where(ProviderContract.provider_id == provider_id)
            )
        )
    return list(session.scalars(query.order_by(HomeVisit.window_last, HomeVisit.id)))


def _on_day(visit: HomeVisit, day: date) -> bool:
    """Open visits may go on any day of their window; held ones stay on their day."""
    if visit.status == HomeVisitStatus.OPEN or visit.planned_start is None:
        return True
    return to_local(visit.planned_start, visit.patient.timezone).date() == day


def _shifts_in_minutes(
    nurse: NurseFacts, day: date, inp: DayInput, not_before: float
) -> tuple[routing.Shift, ...]:
    out = []
    for shift in nurse.shifts:
        if shift.weekday != day.weekday() or any(a <= day <= b for a, b in nurse.absences):
            continue
        window = local_window(day, shift.start, shift.end, nurse.zone)
        start, end = max(inp.minutes(window.start), not_before), inp.minutes(window.end)
        if end > start:
            out.append((start, end))
    return tuple(sorted(out))


@dataclass(frozen=True)
class VisitToPlan:
    """A home visit as the planner sees it (`facts` None: no home location recorded)."""

    id: int
    version: int
    facts: VisitFacts | None
    zone: str  # the patient's
    day_start: time
    day_end: time
    duration: int
    window_last: date
    pinned_nurse_id: int | None = None
    held_by: int | None = None  # the nurse holding it (assigned or accepted)
    # The second nurse's part of a two-nurse visit: tied to its first part.
    partner_id: int | None = None
    link_kind: str | None = None
    min_gap: int | None = None
    max_gap: int | None = None


def read_day(
    session: Session,
    day: date,
    now: datetime,
    settings: Settings = DEFAULTS,
    *,
    provider_id: int | None = None,
    travel: TravelFactory | None = None,
) -> DayInput:
    """Everything the planner needs for `day` (a local date of the patients and nurses)."""
    visits = [v for v in _visits_of_day(session, day, provider_id) if _on_day(v, day)]
    patient_ids = {v.patient_id for v in visits}
    identities = {
        i.patient_id: i
        for i in session.scalars(
            select(PatientIdentity).where(PatientIdentity.patient_id.in_(patient_ids))
        )
    }
    places = {
        p.patient_id: p
        for p in session.scalars(
            select(PatientHomeLocation).where(PatientHomeLocation.patient_id.in_(patient_ids))
        )
    }
    versions = dict(
        session.execute(
            select(Trial.id, Trial.protocol_version)
            .join(Patient, Patient.trial_id == Trial.id)
            .where(Patient.id.in_(patient_ids))
        ).all()
    )
    declined: dict[int, set[int]] = {}
    for visit_id, nurse_id in session.execute(
        select(HomeVisitDecline.home_visit_id, HomeVisitDecline.nurse_id).where(
            HomeVisitDecline.home_visit_id.in_([v.id for v in visits])
        )
    ):
        declined.setdefault(visit_id, set()).add(nurse_id)
    to_plan = []
    for v in visits:
        place, ident = places.get(v.patient_id), identities.get(v.patient_id)
        facts = None
        if place is not None:
            facts = VisitFacts(
                visit_id=v.id,
                site_id=v.site_id,
                trial_id=v.patient.trial_id,
                protocol_version=versions.get(v.patient.trial_id, ""),
                skills=frozenset(v.skills),
                country=ident.country if ident else None,
                subdivision=ident.region if ident else None,
                postal_code=ident.postal_code if ident else None,
                location=(place.latitude, place.longitude),
                declined_by=frozenset(declined.get(v.id, ())),
            )
        to_plan.append(
            VisitToPlan(
                id=v.id,
                version=v.version,
                facts=facts,
                zone=v.patient.timezone,
                day_start=parse_clock_time(v.day_start),
                day_end=parse_clock_time(v.day_end, end=True),
                duration=v.duration_minutes,
                window_last=v.window_last,
                pinned_nurse_id=v.pinned_nurse_id,
                held_by=v.nurse_id if v.status != HomeVisitStatus.OPEN else None,
                partner_id=v.partner_id,
                link_kind=v.link_kind,
                min_gap=v.min_gap_minutes,
                max_gap=v.max_gap_minutes,
            )
        )
    make_travel = travel or (
        lambda pts: routing.GreatCircle(pts, settings.speed_kmh, settings.road_factor)
    )
    return build_day(
        day, now, _nurse_facts(session, provider_id), _contracts(session), to_plan, make_travel
    )


def build_day(
    day: date,
    now: datetime,
    nurses: Sequence[NurseFacts],
    contracts: Sequence[Contract],
    visits: Sequence[VisitToPlan],
    travel: TravelFactory,
) -> DayInput:
    """The routing problem of `day`: plain facts in, no database. Who may do which visit
    is `qualification.reasons_against`; hours and windows become minutes of one horizon
    through the local-time helper, each in its own zone."""
    origin = datetime.combine(day - timedelta(days=1), time(0), tzinfo=UTC)
    inp = DayInput(day, origin, routing.Problem(nurses=(), tasks=(), travel=routing.Matrix([])))
    not_before = max(inp.minutes(now), 0.0)
    points: list[tuple[float, float]] = []
    route_nurses = []
    for n in nurses:
        inp.names[n.user_id] = n.name
        shifts = _shifts_in_minutes(n, day, inp, not_before)
        if not shifts:
            continue
        key = _key(n.user_id)
        inp.nurses[key] = n.user_id
        points.append(n.home)
        route_nurses.append(
            routing.Nurse(key=key, skills=n.skills, start_location=len(points) - 1, shifts=shifts)
        )
    tasks: dict[int, routing.Task] = {}
    keep = {}
    for v in visits:
        inp.versions[v.id] = v.version
        if v.facts is None:
            inp.unplannable[v.id] = NO_LOCATION
            continue
        task_or_reason = _task(v, v.facts, day, nurses, contracts, inp, not_before, len(points))
        if isinstance(task_or_reason, str):
            inp.unplannable[v.id] = task_or_reason
            continue
        assert v.facts.location is not None
        points.append(v.facts.location)
        tasks[v.id] = task_or_reason
        if v.held_by is not None:
            keep[task_or_reason.key] = _key(v.held_by)
    links = _links(visits, tasks, inp)
    inp.problem = routing.Problem(
        nurses=tuple(route_nurses),
        tasks=tuple(t for i, t in tasks.items() if i not in inp.unplannable),
        travel=travel(points),
        links=links,
        keep={k: n for k, n in keep.items() if _visit_id(k) not in inp.unplannable},
    )
    return inp


def _links(
    visits: Sequence[VisitToPlan], tasks: dict[int, routing.Task], inp: DayInput
) -> tuple[routing.Link, ...]:
    """The two parts of a two-nurse visit go together or not at all: a part whose partner
    cannot be planned that day is left out with the partner's reason."""
    links = []
    for v in visits:
        if v.partner_id is None:
            continue
        first, second = v.partner_id, v.id
        if first in tasks and second in tasks:
            links.append(
                routing.Link(
                    first=tasks[first].key,
                    second=tasks[second].key,
                    kind="simultaneous" if v.link_kind == "simultaneous" else "sequential",
                    min_gap=float(v.min_gap or 0),
                    max_gap=None if v.max_gap is None else float(v.max_gap),
                )
            )
            continue
        for this, other in ((first, second), (second, first)):
            if this in tasks and this not in inp.unplannable:
                why = inp.unplannable.get(other, "it is not due that day")
                inp.unplannable[this] = f"its other part cannot be placed ({why})"[:300]
    return tuple(links)


def _task(
    v: VisitToPlan,
    facts: VisitFacts,
    day: date,
    nurses: Sequence[NurseFacts],
    contracts: Sequence[Contract],
    inp: DayInput,
    not_before: float,
    location: int,
) -> routing.Task | str:
    """The visit as a routing task, or why it cannot be one that day."""
    rejections = {n.user_id: reasons_against(n, facts, day, contracts) for n in nurses}
    eligible = frozenset(
        _key(i) for i, reasons in rejections.items() if not reasons and _key(i) in inp.nurses
    )
    pinned = _key(v.pinned_nurse_id) if v.pinned_nurse_id else None
    if pinned is not None and pinned not in eligible:
        assert v.pinned_nurse_id is not None
        name = inp.names.get(v.pinned_nurse_id, "the pinned nurse")
        why = "; ".join(rejections.get(v.pinned_nurse_id) or ["is not working that day"])
        return f"pinned to {name}, who {why}"
    if not eligible:
        return summarize({inp.names[i]: r for i, r in rejections.items() if r})
    window = local_window(day, v.day_start, v.day_end, v.zone)
    earliest = max(inp.minutes(window.start), not_before)
    latest = inp.minutes(window.end) - v.duration
    if latest < earliest:
        return "its hours that day are over"
    return routing.Task(
        key=_visit_key(v.id),
        location=location,
        earliest=earliest,
        latest=latest,
        hard_latest=latest,
        duration=v.duration,
        skills=facts.skills,
        eligible=eligible,
        pinned=pinned,
        # The last day of its window: leaving it out means a missed protocol visit.
        priority=1.0 + 9.0 / ((v.window_last - day).days + 1),
    )


def solve(inp: DayInput, settings: Settings = DEFAULTS) -> routing.Plan:
    """Runs with no session or transaction: pure computation."""
    return routing.plan(inp.problem, time_limit_s=settings.time_limit_s)


# --- writing ----------------------------------------------------------------------------


def write_plan(
    session: Session,
    inp: DayInput,
    plan: routing.Plan,
    now: datetime,
    actor: User | None = None,
    run_id: int | None = None,
) -> Outcome:
    """Apply `plan` to the visits unchanged since `read_day`; the caller commits."""
    visits = {
        v.id: v
        for v in session.scalars(select(HomeVisit).where(HomeVisit.id.in_(list(inp.versions))))
    }
    fresh = {
        i: v for i, v in visits.items() if v.version == inp.versions[i] and v.status in CANDIDATES
    }
    stale = len(inp.versions) - len(fresh)
    placed: dict[int, tuple[int, int, routing.Stop]] = {}
    for key, stops in plan.routes.items():
        for position, stop in enumerate(stops, start=1):
            placed[_visit_id(stop.task)] = (inp.nurses[key], position, stop)
    counts = {"assigned": 0, "moved": 0, "rescheduled": 0, "unassigned": 0}
    changed: list[tuple[HomeVisit, str, int | None]] = []
    what = f"Dispatch plan for {inp.day.isoformat()}"
    system = None if actor else home_visits.SYSTEM
    with audit.acting(session, actor, now, what=what, system=system):
        for visit_id, visit in fresh.items():
            if visit_id in placed:
                nurse_id, position, stop = placed[visit_id]
                change = _place(visit, nurse_id, position, stop, inp, now, run_id)
            else:
                reason = inp.unplannable.get(visit_id) or plan.unassigned.get(
                    _visit_key(visit_id), "not placed"
                )
                change = _leave_open(visit, reason, inp.day, now, run_id)
            if change is not None:
                counts[change[0]] += 1
                changed.append((visit, *change))
    for visit, kind, previous in changed:
        home_visits.record(session, visit, now)
        home_visits.emit(session, visit, now, kind, previous_nurse_id=previous)
    in_plan = sum(1 for i in fresh if i in placed)
    return Outcome(
        inp.day,
        assigned=counts["assigned"],
        moved=counts["moved"],
        kept=in_plan - counts["assigned"] - counts["moved"],
        unassigned=len(fresh) - in_plan,
        stale=stale,
        travel_minutes=plan.travel_total,
    )


def _place(
    visit: HomeVisit,
    nurse_id: int,
    position: int,
    stop: routing.Stop,
    inp: DayInput,
    now: datetime,
    run_id: int | None,
) -> tuple[str, int | None] | None:
    start, end = inp.at(stop.start), inp.at(stop.end)
    previous = visit.nurse_id if visit.status != HomeVisitStatus.OPEN else None
    if previous == nurse_id:
        kind = "rescheduled" if visit.planned_start != start else "kept"
    else:
        kind = "assigned" if previous is None else "moved"
    if kind != "kept" or visit.route_position != position or visit.attention:
        visit.nurse_id = nurse_id
        visit.planned_start, visit.planned_end = start, end
        visit.route_position = position
        visit.travel_minutes = round(stop.travel_before)
        visit.attention = None
        visit.plan_run_id = run_id
        if kind in ("assigned", "moved"):
            visit.status = HomeVisitStatus.ASSIGNED
            visit.accepted_at = None
        visit.updated_at = now
        visit.planned_visit.status = PlannedStatus.BOOKED
        visit.planned_visit.updated_at = now
    return (kind, previous) if kind != "kept" else None


def _leave_open(
    visit: HomeVisit, reason: str, day: date, now: datetime, run_id: int | None
) -> tuple[str, int | None] | None:
    if visit.window_last > day and visit.status == HomeVisitStatus.OPEN:
        reason = (
            f"not placed on {day.isoformat()} ({reason}); "
            f"its window runs until {visit.window_last.isoformat()}"
        )
    previous = visit.nurse_id if visit.status != HomeVisitStatus.OPEN else None
    if visit.status == HomeVisitStatus.OPEN and visit.attention == reason[:300]:
        return None
    visit.status = HomeVisitStatus.OPEN
    visit.nurse_id = None
    visit.planned_start = visit.planned_end = None
    visit.route_position = visit.travel_minutes = None
    visit.accepted_at = None
    visit.attention = reason[:300]
    visit.plan_run_id = run_id
    visit.updated_at = now
    if visit.planned_visit.status == PlannedStatus.BOOKED:
        visit.planned_visit.status = PlannedStatus.PLANNED
        visit.planned_visit.updated_at = now
    return ("unassigned", previous) if previous is not None else None
