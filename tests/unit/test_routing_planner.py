"""The home-nurse route planner (logistics.routing): hard rules never broken, clear reasons for
visits it cannot place, re-plans that keep accepted visits, linked visits, and one benchmark
instance scored by the benchmark's own checker.

The rules are checked here by `independent_violations`, written apart from the planner's own
`check`, so a mistake shared by both would have to be made twice.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logistics.routing import (
    GreatCircle,
    Link,
    Matrix,
    Nurse,
    Plan,
    Problem,
    SearchOptions,
    Stop,
    Task,
    check,
    plan,
)

ROOT = Path(__file__).resolve().parents[2]
HHCRSP = ROOT / ".." / "shared" / "benchmarks" / "hhcrsp"
EPS = 1e-6
QUICK = 0.3


def grid(points: list[tuple[float, float]]) -> Matrix:
    """Travel minutes = straight-line distance between points on a plane."""
    return Matrix([[math.dist(a, b) for b in points] for a in points])


def independent_violations(problem: Problem, result: Plan) -> list[str]:
    tasks = {t.key: t for t in problem.tasks}
    nurses = {n.key: n for n in problem.nurses}
    minutes = problem.travel.minutes
    found: list[str] = []
    starts: dict[str, tuple[str, float]] = {}
    for nurse_key, stops in result.routes.items():
        nurse = nurses[nurse_key]
        for stop in stops:
            task = tasks[stop.task]
            if stop.task in starts:
                found.append(f"{stop.task} planned twice")
            starts[stop.task] = (nurse_key, stop.start)
            if not task.skills <= nurse.skills:
                found.append(f"{stop.task}: {nurse_key} lacks skills")
            if task.eligible is not None and nurse_key not in task.eligible:
                found.append(f"{stop.task}: {nurse_key} not eligible")
            if task.pinned is not None and task.pinned != nurse_key:
                found.append(f"{stop.task}: pinned elsewhere")
            if stop.start < task.earliest - EPS:
                found.append(f"{stop.task}: starts before its window")
            if task.hard_latest is not None and stop.start > task.hard_latest + EPS:
                found.append(f"{stop.task}: starts after hard_latest")
            if abs(stop.end - stop.start - task.duration) > EPS:
                found.append(f"{stop.task}: wrong duration")
        found += shift_violations(nurse, [(tasks[s.task], s) for s in stops], minutes)
    for key in tasks:
        if (key in starts) == (key in result.unassigned):
            found.append(f"{key}: must be either planned or unassigned")
    for link in problem.links:
        first, second = starts.get(link.first), starts.get(link.second)
        if (first is None) != (second is None):
            found.append(f"{link.first}/{link.second}: only one of a linked pair planned")
        elif first is not None and second is not None:
            gap = second[1] - first[1]
            if link.kind == "simultaneous":
                if abs(gap) > EPS or first[0] == second[0]:
                    found.append(f"{link.first}/{link.second}: not together by two nurses")
            elif gap < link.min_gap - EPS or (
                link.max_gap is not None and gap > link.max_gap + EPS
            ):
                found.append(f"{link.first}/{link.second}: gap {gap}")
    return found


def shift_violations(nurse: Nurse, visits: list[tuple[Task, Stop]], minutes) -> list[str]:
    """Each visit inside one shift; travel from home, between visits and back inside it; the
    nurse's maximum minutes. The tests' shifts never overlap, so each visit has one shift."""
    found = []
    finish = nurse.start_location if nurse.end_location is None else nurse.end_location
    worked = 0.0
    for shift_start, shift_end in nurse.shifts:
        inside = sorted(
            (v for v in visits if shift_start - EPS <= v[1].start and v[1].end <= shift_end + EPS),
            key=lambda v: v[1].start,
        )
        if not inside:
            continue
        here, free = nurse.start_location, shift_start
        leave = inside[0][1].start - minutes(here, inside[0][0].location)
        for task, stop in inside:
            if stop.start + EPS < free + minutes(here, task.location):
                found.append(f"{task.key}: not reachable in time")
            here, free = task.location, stop.end
        back = free + minutes(here, finish)
        if back > shift_end + EPS:
            found.append(f"{nurse.key}: back after the shift")
        worked += back - leave
    in_shifts = sum(
        1
        for _, stop in visits
        if any(s - EPS <= stop.start and stop.end <= e + EPS for s, e in nurse.shifts)
    )
    if in_shifts != len(visits):
        found.append(f"{nurse.key}: a visit outside the shifts")
    if nurse.max_minutes is not None and worked > nurse.max_minutes + EPS:
        found.append(f"{nurse.key}: works {worked} minutes")
    return found


# --- random small days --------------------------------------------------------------------

SKILLS = ("wound care", "phlebotomy", "ECG")


@st.composite
def days(draw: st.DrawFn) -> Problem:
    n_nurses = draw(st.integers(2, 4))
    n_tasks = draw(st.integers(3, 10))
    coordinate = st.floats(0, 40, allow_nan=False)
    points = draw(st.lists(st.tuples(coordinate, coordinate), min_size=5, max_size=8))
    location = st.integers(0, len(points) - 1)
    nurse_keys = [f"n{i}" for i in range(n_nurses)]
    nurses = []
    for key in nurse_keys:
        first = draw(st.integers(0, 300))
        shifts = [(float(first), float(first + draw(st.integers(60, 300))))]
        if draw(st.booleans()):
            later = shifts[0][1] + draw(st.integers(30, 120))
            shifts.append((later, later + draw(st.integers(60, 200))))
        nurses.append(
            Nurse(
                key=key,
                skills=frozenset(draw(st.sets(st.sampled_from(SKILLS)))),
                start_location=draw(location),
                end_location=draw(st.none() | location),
                shifts=tuple(shifts),
                max_minutes=draw(st.none() | st.floats(60, 400)),
            )
        )
    tasks = []
    for i in range(n_tasks):
        earliest = float(draw(st.integers(0, 600)))
        latest = earliest + draw(st.integers(0, 120))
        tasks.append(
            Task(
                key=f"t{i}",
                location=draw(location),
                earliest=earliest,
                latest=latest,
                duration=float(draw(st.integers(5, 60))),
                skills=frozenset(draw(st.sets(st.sampled_from(SKILLS), max_size=2))),
                eligible=draw(st.none() | st.frozensets(st.sampled_from(nurse_keys))),
                pinned=draw(st.none() | st.none() | st.sampled_from(nurse_keys)),
                hard_latest=draw(st.none() | st.just(latest + draw(st.integers(0, 60)))),
            )
        )
    links = []
    # Mostly separate pairs; sometimes chains (a visit in two links) or contradictions.
    for _ in range(draw(st.integers(0, 3))):
        a, b = draw(st.lists(st.integers(0, n_tasks - 1), min_size=2, max_size=2, unique=True))
        low = float(draw(st.integers(0, 90)))
        kind = draw(st.sampled_from(["simultaneous", "sequential"]))
        links.append(Link(f"t{a}", f"t{b}", kind, low, low + draw(st.integers(0, 120))))
    keep = draw(
        st.dictionaries(st.sampled_from([t.key for t in tasks]), st.sampled_from(nurse_keys))
    )
    return Problem(
        nurses=tuple(nurses),
        tasks=tuple(tasks),
        links=tuple(links),
        travel=grid(points),
        max_lateness_weight=draw(st.sampled_from([0.0, 1.0])),
        keep=keep,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days())
def test_random_days_never_break_a_hard_rule(problem: Problem) -> None:
    result = plan(problem, time_limit_s=QUICK)
    assert independent_violations(problem, result) == []
    assert check(problem, result) == []
    assert set(result.routes) == {n.key for n in problem.nurses}
    assert all(reason for reason in result.unassigned.values())


# --- reasons ------------------------------------------------------------------------------


def one_nurse_day(*tasks: Task, skills: frozenset[str] = frozenset({"wound care"})) -> Problem:
    nurse = Nurse("ana", skills, start_location=0, shifts=((480.0, 960.0),))
    return Problem(nurses=(nurse,), tasks=tasks, travel=grid([(0, 0), (10, 0), (200, 0)]))


def test_a_visit_nobody_has_the_skills_for_says_which_skills() -> None:
    task = Task("ecg", 1, 500, 600, 30, skills=frozenset({"phlebotomy", "ECG"}))
    result = plan(one_nurse_day(task), time_limit_s=QUICK)
    assert result.unassigned == {"ecg": "no nurse has the skills: ECG, phlebotomy"}
    assert result.routes == {"ana": []}


def test_a_window_outside_every_shift_says_so() -> None:
    task = Task("dawn", 1, 60, 90, 30, hard_latest=120)
    result = plan(one_nurse_day(task), time_limit_s=QUICK)
    assert result.unassigned == {"dawn": "no qualified nurse works in this window"}


def test_a_window_too_far_to_reach_says_so() -> None:
    # 200 minutes away: leaving at 08:00 she arrives after the window's hard end.
    task = Task("far", 2, 480, 540, 30, hard_latest=600)
    result = plan(one_nurse_day(task), time_limit_s=QUICK)
    assert result.unassigned == {"far": "window cannot be reached in time"}


def test_a_visit_pinned_to_someone_unqualified_says_who() -> None:
    task = Task("w", 1, 500, 600, 30, skills=frozenset({"ECG"}), pinned="ana")
    helper = Nurse("bo", frozenset({"ECG"}), 0, ((480.0, 960.0),))
    problem = one_nurse_day(task)
    problem = Problem((*problem.nurses, helper), problem.tasks, problem.travel)
    result = plan(problem, time_limit_s=QUICK)
    assert result.unassigned == {"w": "pinned nurse ana lacks the skills: ECG"}


def test_visits_that_do_not_all_fit_are_dropped_with_a_reason() -> None:
    # Three one-hour visits that must all start between 09:00 and 09:30 for one nurse.
    tasks = [Task(f"v{i}", 1, 540, 570, 60, hard_latest=570) for i in range(3)]
    result = plan(one_nurse_day(*tasks), time_limit_s=QUICK)
    assert len(result.routes["ana"]) == 1
    assert set(result.unassigned.values()) == {
        "could not be fitted into any qualified nurse's route"
    }
    assert independent_violations(one_nurse_day(*tasks), result) == []


def test_the_partner_of_an_impossible_linked_visit_is_left_out_too() -> None:
    possible = Task("a", 1, 500, 600, 30)
    impossible = Task("b", 1, 500, 600, 30, skills=frozenset({"ECG"}))
    problem = one_nurse_day(possible, impossible)
    problem = Problem(
        problem.nurses, problem.tasks, problem.travel, links=(Link("a", "b", "sequential", 0, 60),)
    )
    result = plan(problem, time_limit_s=QUICK)
    assert result.unassigned == {
        "a": "linked visit could not be placed",
        "b": "no nurse has the skills: ECG",
    }


def test_malformed_input_is_refused() -> None:
    task = Task("a", 1, 500, 600, 30)
    with pytest.raises(ValueError, match="two visits"):
        plan(one_nurse_day(task, task), time_limit_s=QUICK)
    problem = one_nurse_day(task)
    with pytest.raises(ValueError, match="unknown"):
        plan(
            Problem(
                problem.nurses,
                problem.tasks,
                problem.travel,
                links=(Link("a", "zz", "simultaneous"),),
            )
        )


# --- re-planning, links, shifts ---------------------------------------------------------------


def two_nurse_town(**changes: object) -> Problem:
    """Ana lives at 0, Bo at 3; visits at 1 and 2, each nearer one of them."""
    points = [(0, 0), (10, 0), (30, 0), (40, 0)]
    nurses = (
        Nurse("ana", frozenset({"wound care"}), 0, ((480.0, 960.0),)),
        Nurse("bo", frozenset({"wound care"}), 3, ((480.0, 960.0),)),
    )
    tasks = (
        Task("near-ana", 1, 540, 600, 30, skills=frozenset({"wound care"})),
        Task("near-bo", 2, 540, 600, 30, skills=frozenset({"wound care"})),
    )
    fields: dict[str, object] = {"nurses": nurses, "tasks": tasks, "travel": grid(points)}
    fields.update(changes)
    return Problem(**fields)  # type: ignore[arg-type]


def nurse_of(result: Plan) -> dict[str, str]:
    return {stop.task: nurse for nurse, stops in result.routes.items() for stop in stops}


def test_a_replan_keeps_accepted_visits_with_their_nurse() -> None:
    assert nurse_of(plan(two_nurse_town(), time_limit_s=QUICK)) == {
        "near-ana": "ana",
        "near-bo": "bo",
    }
    # Accepted the other way round: a longer drive for both, but they keep what they accepted.
    swapped = {"near-ana": "bo", "near-bo": "ana"}
    result = plan(two_nurse_town(keep=swapped), time_limit_s=QUICK)
    assert nurse_of(result) == swapped
    assert result.unassigned == {}


def test_a_kept_visit_moves_when_its_nurse_can_no_longer_do_it() -> None:
    # Bo now starts after both visits' hard ends: keeping them with him is impossible.
    tasks = tuple(
        Task(key, location, 540, 600, 30, skills=frozenset({"wound care"}), hard_latest=620)
        for key, location in (("near-ana", 1), ("near-bo", 2))
    )
    late_bo = Nurse("bo", frozenset({"wound care"}), 3, ((800.0, 960.0),))
    problem = two_nurse_town(tasks=tasks, keep={"near-ana": "bo", "near-bo": "bo"})
    problem = Problem((problem.nurses[0], late_bo), tasks, problem.travel, keep=problem.keep)
    result = plan(problem, time_limit_s=QUICK)
    assert result.unassigned == {}
    assert nurse_of(result) == {"near-ana": "ana", "near-bo": "ana"}
    assert independent_violations(problem, result) == []


def test_a_two_nurse_visit_starts_together_with_two_nurses() -> None:
    tasks = (
        Task("lift-1", 1, 540, 600, 30, skills=frozenset({"wound care"})),
        Task("lift-2", 1, 540, 600, 30, skills=frozenset({"wound care"})),
    )
    problem = two_nurse_town(tasks=tasks, links=(Link("lift-1", "lift-2", "simultaneous"),))
    result = plan(problem, time_limit_s=QUICK)
    assert result.unassigned == {}
    starts = {stop.task: stop.start for stops in result.routes.values() for stop in stops}
    assert starts["lift-1"] == starts["lift-2"]
    assert set(nurse_of(result).values()) == {"ana", "bo"}
    assert independent_violations(problem, result) == []


def test_a_sequence_keeps_its_gap_even_for_one_nurse() -> None:
    tasks = (
        Task("dose", 1, 540, 560, 10, skills=frozenset({"wound care"})),
        Task("check", 2, 540, 700, 10, skills=frozenset({"wound care"})),
    )
    problem = two_nurse_town(
        nurses=(Nurse("ana", frozenset({"wound care"}), 0, ((480.0, 960.0),)),),
        tasks=tasks,
        links=(Link("dose", "check", "sequential", 90, 120),),
    )
    result = plan(problem, time_limit_s=QUICK)
    starts = {stop.task: stop.start for stop in result.routes["ana"]}
    assert 90 - EPS <= starts["check"] - starts["dose"] <= 120 + EPS
    assert independent_violations(problem, result) == []


def test_visits_stay_inside_the_shifts_never_in_the_break() -> None:
    nurse = Nurse("ana", frozenset(), 0, ((480.0, 720.0), (780.0, 1020.0)), max_minutes=400)
    tasks = tuple(Task(f"v{i}", 1 + i % 2, 480, 1000, 45) for i in range(6))
    problem = Problem((nurse,), tasks, grid([(0, 0), (10, 0), (0, 10)]))
    result = plan(problem, time_limit_s=QUICK)
    assert independent_violations(problem, result) == []
    for stop in result.routes["ana"]:
        assert stop.end <= 720 + EPS or stop.start >= 780 - EPS


def test_check_reports_a_broken_plan() -> None:
    problem = one_nurse_day(Task("w", 1, 500, 600, 30, skills=frozenset({"ECG"})))
    broken = Plan({"ana": [Stop("w", 400, 430, 10)]}, {}, 20, 0, 0, 20)
    problems = check(problem, broken)
    assert any("lacks skills ECG" in p for p in problems)
    assert any("before 500" in p for p in problems)


def test_an_empty_day_is_an_empty_plan() -> None:
    result = plan(one_nurse_day(), time_limit_s=QUICK)
    assert result == Plan({"ana": []}, {}, 0.0, 0.0, 0.0, 0.0)


def test_great_circle_travel() -> None:
    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    travel = GreatCircle([paris, london], speed_kmh=60, road_factor=1.0)
    assert travel.kilometres(0, 1) == pytest.approx(343.5, abs=1.0)
    assert travel.minutes(0, 1) == pytest.approx(343.5, abs=1.0)
    assert GreatCircle([paris, london], 60).minutes(1, 0) == pytest.approx(1.3 * 343.5, abs=1.5)
    assert travel.minutes(0, 0) == 0
    with pytest.raises(ValueError):
        GreatCircle([(95.0, 0.0)], 30)
    with pytest.raises(ValueError):
        Matrix([[0, 1]])


def test_lateness_is_allowed_but_costs() -> None:
    # Two visits at the same minute far apart: one of them is late, none is dropped.
    tasks = (Task("a", 1, 540, 540, 30), Task("b", 2, 540, 540, 30))
    problem = Problem(
        (Nurse("ana", frozenset(), 0, ((480.0, 960.0),)),),
        tasks,
        grid([(0, 0), (10, 0), (50, 0)]),
        max_lateness_weight=1.0,
    )
    result = plan(problem, time_limit_s=QUICK)
    assert result.unassigned == {}
    assert result.lateness_total > 0
    assert result.lateness_max == result.lateness_total
    assert result.objective == pytest.approx(
        result.travel_total + result.lateness_total + result.lateness_max
    )


# --- the benchmark ------------------------------------------------------------------------


def load_bench() -> tuple[ModuleType, ModuleType]:
    if not (HHCRSP / "score.py").exists():
        pytest.skip(f"the hhcrsp benchmark is not at {HHCRSP.resolve()}")
    spec = importlib.util.spec_from_file_location("bench_hhcrsp", ROOT / "bench" / "hhcrsp.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_hhcrsp", bench)
    spec.loader.exec_module(bench)
    return bench, bench.load_scorer()


def test_a_benchmark_instance_is_solved_feasibly() -> None:
    bench, scorer = load_bench()
    instance = json.loads((HHCRSP / "instances" / "InstanzCPLEX_HCSRP_10_1.json").read_text())
    problem = bench.to_problem(instance)
    assert any(link.kind == "simultaneous" for link in problem.links)
    assert any(link.kind == "sequential" for link in problem.links)
    solution, _ = bench.solve(instance, time_limit_s=2.0)
    result = scorer.score(instance, solution)
    assert result["feasible"], result["errors"]
    assert result["cost"] <= 218.199 * 1.05


def test_search_options_are_honoured() -> None:
    problem = two_nurse_town()
    result = plan(problem, time_limit_s=QUICK, options=SearchOptions(rounds=1, seed=7))
    assert nurse_of(result) == {"near-ana": "ana", "near-bo": "bo"}
