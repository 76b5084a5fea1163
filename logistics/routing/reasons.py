"""The hard rules of dispatch, in plain Python: checked before solving, to tell a dispatcher
why a visit cannot be placed at all, and after solving, so no plan that breaks one leaves the
planner (`check`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from logistics.routing.model import Link, Nurse, Plan, Problem, Shift, Stop, Task

#: Minutes of slack when comparing times: the solver works in thousandths of a minute.
EPS = 1e-6

NO_ROOM = "could not be fitted into any qualified nurse's route"
LINKED = "linked visit could not be placed"
NOT_IN_HOURS = "no qualified nurse works in this window"
UNREACHABLE = "window cannot be reached in time"


@dataclass(frozen=True)
class Tour:
    """One shift of one nurse: a tour from `home` and back to `finish` within [start, end]."""

    nurse: Nurse
    start: float
    end: float
    home: int
    finish: int


def validate(problem: Problem) -> None:
    """Raise ValueError for input no plan can be made of (a programming error upstream)."""
    _unique("nurse", (nurse.key for nurse in problem.nurses))
    _unique("visit", (task.key for task in problem.tasks))
    for nurse in problem.nurses:
        for start, end in nurse.shifts:
            if end < start:
                raise ValueError(f"nurse {nurse.key}: a shift ends before it starts")
    for task in problem.tasks:
        if task.duration < 0 or task.latest < task.earliest:
            raise ValueError(f"visit {task.key}: negative duration or an empty window")
        if task.hard_latest is not None and task.hard_latest < task.earliest:
            raise ValueError(f"visit {task.key}: hard_latest before earliest")
    keys = {task.key for task in problem.tasks}
    for link in problem.links:
        if link.first not in keys or link.second not in keys or link.first == link.second:
            raise ValueError(f"link {link.first} -> {link.second}: unknown or identical visits")
        if link.kind == "sequential" and link.max_gap is not None and link.max_gap < link.min_gap:
            raise ValueError(f"link {link.first} -> {link.second}: max_gap below min_gap")


def _unique(what: str, keys: Iterable[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"two {what}s with key {key}")
        seen.add(key)


def merged_shifts(nurse: Nurse) -> list[Shift]:
    """Shifts in time order, overlapping or touching ones merged: a tour never spans a gap,
    and two tours of one nurse never share a minute."""
    merged: list[Shift] = []
    for start, end in sorted(nurse.shifts):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def tours(problem: Problem) -> list[Tour]:
    result = []
    for nurse in problem.nurses:
        finish = nurse.start_location if nurse.end_location is None else nurse.end_location
        for start, end in merged_shifts(nurse):
            result.append(Tour(nurse, start, end, nurse.start_location, finish))
    return result


def qualified(task: Task, nurse: Nurse) -> bool:
    return (
        task.skills <= nurse.skills
        and (task.eligible is None or nurse.key in task.eligible)
        and (task.pinned is None or task.pinned == nurse.key)
    )


def qualification_reason(task: Task, nurses: Mapping[str, Nurse]) -> str | None:
    """Why no nurse of the day may take the visit, whatever the time; None if one may."""
    if any(qualified(task, nurse) for nurse in nurses.values()):
        return None
    if task.pinned is not None:
        pinned = nurses.get(task.pinned)
        if pinned is None:
            return f"pinned nurse {task.pinned} is not on duty"
        missing = task.skills - pinned.skills
        if missing:
            return f"pinned nurse {task.pinned} lacks the skills: {_names(missing)}"
        return f"pinned nurse {task.pinned} is not eligible for this visit"
    skilled = [nurse for nurse in nurses.values() if task.skills <= nurse.skills]
    if not skilled:
        return f"no nurse has the skills: {_names(task.skills)}"
    if task.skills:
        return f"no eligible nurse has the skills: {_names(task.skills)}"
    return "no eligible nurse is on duty"


def _names(skills: Iterable[str]) -> str:
    return ", ".join(sorted(skills, key=str.casefold))


def works_in_window(task: Task, tour: Tour) -> bool:
    """The shift leaves room for the visit somewhere in its window, travel aside."""
    begin = max(tour.start, task.earliest)
    latest_start = task.hard_latest if task.hard_latest is not None else float("inf")
    return begin <= latest_start + EPS and begin + task.duration <= tour.end + EPS


def reachable(task: Task, tour: Tour, problem: Problem) -> bool:
    """A tour holding only this visit keeps every rule: reach it from home, start it inside
    the window, and be back before the shift ends (and within the nurse's maximum)."""
    there = problem.travel.minutes(tour.home, task.location)
    back = problem.travel.minutes(task.location, tour.finish)
    start = max(task.earliest, tour.start + there)
    if task.hard_latest is not None and start > task.hard_latest + EPS:
        return False
    limit = tour.nurse.max_minutes
    if limit is not None and there + task.duration + back > limit + EPS:
        return False
    return start + task.duration + back <= tour.end + EPS


def precheck(
    problem: Problem, all_tours: list[Tour]
) -> tuple[dict[str, list[int]], dict[str, str]]:
    """For each visit, the tours (indices into `all_tours`) that could take it alone, or the
    reason none can, linked visits of an impossible one included."""
    nurses = {nurse.key: nurse for nurse in problem.nurses}
    candidates: dict[str, list[int]] = {}
    reasons: dict[str, str] = {}
    for task in problem.tasks:
        reason = qualification_reason(task, nurses)
        if reason is not None:
            reasons[task.key] = reason
            continue
        fitting = [i for i, tour in enumerate(all_tours) if qualified(task, tour.nurse)]
        fitting = [i for i in fitting if works_in_window(task, all_tours[i])]
        if not fitting:
            reasons[task.key] = NOT_IN_HOURS
            continue
        fitting = [i for i in fitting if reachable(task, all_tours[i], problem)]
        if not fitting:
            reasons[task.key] = UNREACHABLE
            continue
        candidates[task.key] = fitting
    for link in problem.links:
        if link.kind == "simultaneous" and link.first in candidates and link.second in candidates:
            both = {
                all_tours[i].nurse.key for i in candidates[link.first] + candidates[link.second]
            }
            if len(both) < 2:
                for key in (link.first, link.second):
                    reasons[key] = "needs two different nurses, but only one qualifies"
                    del candidates[key]
    for key in linked_closure(problem.links, set(reasons)) - set(reasons):
        reasons[key] = LINKED
        candidates.pop(key, None)
    return candidates, reasons


def linked_closure(links: Iterable[Link], keys: set[str]) -> set[str]:
    """The visits tied to `keys` through links, directly or through other linked visits."""
    partners: dict[str, set[str]] = defaultdict(set)
    for link in links:
        partners[link.first].add(link.second)
        partners[link.second].add(link.first)
    result = set(keys)
    frontier = list(keys)
    while frontier:
        for other in partners[frontier.pop()] - result:
            result.add(other)
            frontier.append(other)
    return result


def check(problem: Problem, plan: Plan) -> list[str]:
    """Every broken hard rule of the plan, in words; empty if it keeps them all."""
    return [message for _, message in violations(problem, plan)]


def violations(problem: Problem, plan: Plan) -> list[tuple[str, str]]:
    """Broken hard rules as (visit key, message); lateness is a cost, never a violation."""
    tasks = {task.key: task for task in problem.tasks}
    nurses = {nurse.key: nurse for nurse in problem.nurses}
    found: list[tuple[str, str]] = []
    starts: dict[str, tuple[str, float]] = {}
    for nurse_key, stops in plan.routes.items():
        nurse = nurses.get(nurse_key)
        for stop in stops:
            task = tasks.get(stop.task)
            if task is None:
                found.append((stop.task, f"{stop.task}: no such visit"))
            elif stop.task in starts:
                found.append((stop.task, f"{stop.task}: planned twice"))
            elif nurse is None:
                found.append((stop.task, f"{stop.task}: no such nurse {nurse_key}"))
            else:
                starts[stop.task] = (nurse_key, stop.start)
                found += [(stop.task, m) for m in _stop_violations(task, nurse, stop)]
        if nurse is not None:
            found += _tour_violations(problem, nurse, [s for s in stops if s.task in tasks])
    for key in tasks:
        if key in starts and key in plan.unassigned:
            found.append((key, f"{key}: both planned and unassigned"))
        elif key not in starts and key not in plan.unassigned:
            found.append((key, f"{key}: neither planned nor unassigned"))
    for link in problem.links:
        found += _link_violations(link, starts)
    return found


def _stop_violations(task: Task, nurse: Nurse, stop: Stop) -> list[str]:
    found = []
    if not task.skills <= nurse.skills:
        found.append(f"{task.key}: {nurse.key} lacks skills {_names(task.skills - nurse.skills)}")
    if task.eligible is not None and nurse.key not in task.eligible:
        found.append(f"{task.key}: {nurse.key} is not eligible")
    if task.pinned is not None and task.pinned != nurse.key:
        found.append(f"{task.key}: pinned to {task.pinned}, given to {nurse.key}")
    if stop.start < task.earliest - EPS:
        found.append(f"{task.key}: starts at {stop.start}, before {task.earliest}")
    if task.hard_latest is not None and stop.start > task.hard_latest + EPS:
        found.append(f"{task.key}: starts at {stop.start}, after {task.hard_latest}")
    if abs(stop.end - stop.start - task.duration) > EPS:
        found.append(f"{task.key}: lasts {stop.end - stop.start}, needs {task.duration}")
    return found


def _tour_violations(problem: Problem, nurse: Nurse, stops: list[Stop]) -> list[tuple[str, str]]:
    """Each stop inside a shift, reachable from the one before (or home), home reachable
    after the last, and the nurse's maximum minutes kept."""
    tasks = {task.key: task for task in problem.tasks}
    shifts = merged_shifts(nurse)
    by_shift: dict[int, list[Stop]] = defaultdict(list)
    found: list[tuple[str, str]] = []
    for stop in stops:
        inside = [
            i for i, (s, e) in enumerate(shifts) if s - EPS <= stop.start and stop.end <= e + EPS
        ]
        if inside:
            by_shift[inside[0]].append(stop)
        else:
            found.append((stop.task, f"{stop.task}: outside {nurse.key}'s hours"))
    finish = nurse.start_location if nurse.end_location is None else nurse.end_location
    worked = 0.0
    for index, shift_stops in sorted(by_shift.items()):
        shift_start, shift_end = shifts[index]
        shift_stops.sort(key=lambda s: s.start)
        here, free_at = nurse.start_location, shift_start
        leave: float | None = None
        for stop in shift_stops:
            location = tasks[stop.task].location
            travel = problem.travel.minutes(here, location)
            if leave is None:
                leave = stop.start - travel
            if stop.start + EPS < free_at + travel:
                found.append((stop.task, f"{stop.task}: {nurse.key} cannot be there in time"))
            if abs(stop.travel_before - travel) > EPS:
                found.append(
                    (stop.task, f"{stop.task}: travel_before {stop.travel_before} != {travel}")
                )
            here, free_at = location, stop.end
        back = free_at + problem.travel.minutes(here, finish)
        last = shift_stops[-1].task
        if back > shift_end + EPS:
            found.append((last, f"{last}: {nurse.key} is back after the shift ends"))
        worked += back - (leave if leave is not None else shift_start)
    if nurse.max_minutes is not None and worked > nurse.max_minutes + EPS and stops:
        last = max(stops, key=lambda s: s.start).task
        found.append((last, f"{last}: {nurse.key} works {worked} > {nurse.max_minutes} minutes"))
    return found


def _link_violations(link: Link, starts: Mapping[str, tuple[str, float]]) -> list[tuple[str, str]]:
    first, second = starts.get(link.first), starts.get(link.second)
    names = f"{link.first} and {link.second}"
    if first is None and second is None:
        return []
    if first is None or second is None:
        return [(link.first, f"{names}: only one of two linked visits planned")]
    gap = second[1] - first[1]
    if link.kind == "simultaneous":
        if abs(gap) > EPS:
            return [(link.first, f"{names}: must start together, {gap} minutes apart")]
        if first[0] == second[0]:
            return [(link.first, f"{names}: two-nurse visit given to one nurse")]
        return []
    upper = float("inf") if link.max_gap is None else link.max_gap
    if not link.min_gap - EPS <= gap <= upper + EPS:
        return [(link.first, f"{names}: {gap} minutes apart, not in [{link.min_gap}, {upper}]")]
    return []
