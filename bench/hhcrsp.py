"""Home-nurse routing benchmark: the planner on the Mankowska et al. (2014) home health care
routing and scheduling instances, against their published solutions.

    python bench/hhcrsp.py INSTANCE.json SOLUTION.json [--time-limit 9]
    python bench/hhcrsp.py [--all] [--time-limit 9] [--sizes 10,25]

Each instance becomes the same `Problem` the platform builds: one nurse per caregiver (skills =
abilities, one long shift from and back to the office, location 0), one visit per service a
patient needs (window = the patient's, lateness allowed), a link per synchronised pair, and the
instance's distance matrix as travel minutes. The weights mirror the benchmark's cost,
(distance + total tardiness + max tardiness) / 3, and `logistics.routing.plan` solves it.

The first form writes the solution in the published format, for
`../shared/benchmarks/hhcrsp/score.py INSTANCE SOLUTION`. The second solves every instance,
scores each with that score.py and prints instance, our cost, the published cost, the gap,
the seconds spent and feasibility, then the mean gap, how many are feasible, the slowest run
and the instances where we beat the published cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "logistics" not in sys.modules:
    # The package's __init__ wires the Flask app and its tables; the planner needs none of
    # that, and the benchmark should not pay for it (or depend on it).
    _package = ModuleType("logistics")
    _package.__path__ = [str(ROOT / "logistics")]
    sys.modules["logistics"] = _package

from logistics.routing import Link, Matrix, Nurse, Plan, Problem, Task, plan  # noqa: E402

BENCH = ROOT / ".." / "shared" / "benchmarks" / "hhcrsp"
#: Caregivers have no working hours in the benchmark: one shift far longer than any day.
UNBOUNDED = (0.0, 10_000.0)


def task_key(patient: str, service: str) -> str:
    return f"{patient}|{service}"


def to_problem(instance: dict[str, Any]) -> Problem:
    nurses = tuple(
        Nurse(
            key=carer["id"],
            skills=frozenset(carer["abilities"]),
            start_location=0,
            end_location=0,
            shifts=(UNBOUNDED,),
        )
        for carer in instance["caregivers"]
    )
    default = {service["id"]: service["default_duration"] for service in instance["services"]}
    tasks: list[Task] = []
    links: list[Link] = []
    for number, patient in enumerate(instance["patients"], start=1):
        opens, closes = patient["time_window"]
        keys = []
        for need in patient["required_caregivers"]:
            key = task_key(patient["id"], need["service"])
            keys.append(key)
            tasks.append(
                Task(
                    key=key,
                    location=number,
                    earliest=float(opens),
                    latest=float(closes),
                    duration=float(need.get("duration", default[need["service"]])),
                    skills=frozenset({need["service"]}),
                )
            )
        links += _links(patient.get("synchronization"), keys)
    return Problem(
        nurses=nurses,
        tasks=tuple(tasks),
        links=tuple(links),
        travel=Matrix(instance["distances"]),
        travel_weight=1.0,
        lateness_weight=1.0,
        # The default drop penalty (100 000 minutes a visit) dwarfs any plan's lateness here,
        # so every visit is served.
        max_lateness_weight=1.0,
    )


def _links(sync: dict[str, Any] | None, keys: list[str]) -> list[Link]:
    if not sync or len(keys) != 2:
        return []
    if sync["type"] == "simultaneous":
        return [Link(keys[0], keys[1], "simultaneous")]
    low, high = sync["distance"]
    return [Link(keys[0], keys[1], "sequential", float(low), float(high))]


def to_solution(result: Plan) -> dict[str, Any]:
    routes = []
    for carer, stops in result.routes.items():
        locations = []
        for stop in stops:
            patient, service = stop.task.split("|")
            locations.append(
                {
                    "patient": patient,
                    "service": service,
                    "arrival_time": round(stop.start, 3),
                    "departure_time": round(stop.end, 3),
                }
            )
        routes.append({"caregiver_id": carer, "locations": locations})
    return {"routes": routes, "unassigned": result.unassigned}


def solve(instance: dict[str, Any], time_limit_s: float) -> tuple[dict[str, Any], float]:
    """The solution in the published format and the seconds it took, set-up included."""
    began = time.monotonic()
    result = plan(to_problem(instance), time_limit_s=time_limit_s)
    return to_solution(result), time.monotonic() - began


def load_scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hhcrsp_score", BENCH / "score.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(BENCH / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def published_costs(scorer: ModuleType) -> dict[str, float]:
    costs = {}
    for path in sorted((BENCH / "solutions").glob("sol-*.json")):
        name = path.name[len("sol-") :].rsplit("-", 1)[0]
        instance = json.loads((BENCH / "instances" / f"{name}.json").read_text())
        costs[name] = scorer.score(instance, json.loads(path.read_text()))["cost"]
    return costs


def instance_order(path: Path) -> tuple[int, int]:
    parts = path.stem.split("_")
    return int(parts[-2]), int(parts[-1])


def run_all(time_limit_s: float, sizes: set[int] | None) -> None:
    scorer = load_scorer()
    published = published_costs(scorer)
    paths = sorted((BENCH / "instances").glob("*.json"), key=instance_order)
    paths = [p for p in paths if sizes is None or instance_order(p)[0] in sizes]
    print(f"{'instance':28} {'ours':>10} {'published':>10} {'gap %':>7} {'s':>6}  feasible")
    gaps, seconds, feasible, beaten = [], [], 0, []
    for path in paths:
        instance = json.loads(path.read_text())
        solution, took = solve(instance, time_limit_s)
        result = scorer.score(instance, solution)
        ours, theirs = result["cost"], published[path.stem]
        gap = 100.0 * (ours - theirs) / theirs
        gaps.append(gap)
        seconds.append(took)
        feasible += bool(result["feasible"])
        if result["feasible"] and ours < theirs - 1e-3:
            beaten.append(path.stem)
        print(
            f"{path.stem:28} {ours:10.3f} {theirs:10.3f} {gap:7.2f} {took:6.2f}  "
            f"{result['feasible']}{'' if result['feasible'] else ' ' + str(result['errors'][:3])}",
            flush=True,
        )
    print(
        f"mean gap {statistics.fmean(gaps):.2f}%  feasible {feasible}/{len(paths)}  "
        f"max seconds {max(seconds):.2f}"
    )
    print(f"beaten ({len(beaten)}): {', '.join(beaten) or '-'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("instance", nargs="?", type=Path)
    parser.add_argument("solution", nargs="?", type=Path)
    parser.add_argument("--all", action="store_true", help="solve and score every instance")
    parser.add_argument("--time-limit", type=float, default=9.0, help="seconds per instance")
    parser.add_argument("--sizes", help="only these patient counts, e.g. 10,25")
    args = parser.parse_args(argv)
    if args.instance is not None:
        if args.solution is None:
            parser.error("give both INSTANCE and SOLUTION, or neither")
        instance = json.loads(args.instance.read_text())
        solution, took = solve(instance, args.time_limit)
        args.solution.write_text(json.dumps(solution, indent=1))
        print(f"wrote {args.solution} in {took:.2f} s")
        return
    sizes = {int(size) for size in args.sizes.split(",")} if args.sizes else None
    run_all(args.time_limit, sizes)


if __name__ == "__main__":
    main()
