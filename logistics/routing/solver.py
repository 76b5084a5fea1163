"""Assign visits to nurses and order their routes: a link-aware ruin-and-recreate search in
Python, alternating with OR-Tools' vehicle routing.

Each shift of each nurse is one vehicle (a tour from home and back). Times are integers inside
(thousandths of a minute; travel rounded up, upper limits rounded down, so a plan feasible
inside is feasible in true minutes) and are read back as minutes.

Why two engines: OR-Tools' local search is fast and strong on routes, but its filters do not
see constraints between routes (a two-nurse visit, a sequence with a gap): with many links it
spends most of its time on moves its constraint solver then rejects, and on the benchmark it
stayed far from the published costs. The Python search keeps exact start times under every
link (each visit as early as travel, windows and links allow, updated incrementally when a
visit is inserted) and removes and re-inserts groups of related visits, linked pairs together;
OR-Tools then improves the routes with the linked visits' start times held fixed, which turns
links into plain time windows its filters understand. The time is cut into rounds of both;
each phase starts from the best plan so far, so the result never gets worse, and a small day
stops early once nothing improves. The plan is finally re-checked in plain Python and any visit
that breaks a hard rule goes to `unassigned` (which should never happen, but the dispatcher
must never see such a plan).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from logistics.routing.model import Plan, Problem, Stop, Task
from logistics.routing.reasons import (
    LINKED,
    NO_ROOM,
    Tour,
    linked_closure,
    precheck,
    tours,
    validate,
    violations,
)

#: Solver time units per minute: fine enough for distances given to a thousandth.
SCALE = 1000
#: OR-Tools cost units per weighted solver time unit, so fractional weights survive rounding.
COST_SCALE = 100
#: Seconds kept back from the time limit for reading the solution and checking it.
READ_BACK_S = 0.05
#: Places of a pair's first visit after which the second's best place is sought.
PAIR_TRIES = 4
#: Visits taken out per ruin step: at least this many, at most this many (or a third).
RUIN_MIN, RUIN_MAX = 3, 15
#: Steps without a new best (at least, and per visit) after which a search stops early.
STALE_MIN, STALE_PER_VISIT = 2000, 500

FIRST_SOLUTION = routing_enums_pb2.FirstSolutionStrategy
METAHEURISTIC = routing_enums_pb2.LocalSearchMetaheuristic


@dataclass(frozen=True)
class SearchOptions:
    """How the time is spent; the defaults suit both the benchmark and the platform (tuned on
    the benchmark, see bench/hhcrsp.py)."""

    #: The time is cut into rounds; each runs the Python search, then OR-Tools from its best.
    #: Every round restarts the annealing temperature, which helps leave a local optimum.
    rounds: int = 6
    #: Share of each round for the Python search, with and without links between visits.
    lns_share_links: float = 0.8
    lns_share_plain: float = 0.5
    #: Annealing temperature at the start and end of a round, in weighted minutes.
    hot: float = 50.0
    cold: float = 0.05
    #: OR-Tools' first solution when it cannot start from the Python search's routes.
    first_solution: str = "PATH_CHEAPEST_ARC"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    seed: int = 1


def plan(problem: Problem, time_limit_s: float = 5.0, options: SearchOptions | None = None) -> Plan:
    """The best plan found within `time_limit_s` seconds of wall time, set-up included.

    Raises ValueError for malformed input (duplicate keys, links to unknown visits, empty
    windows); everything else that cannot be planned lands in `Plan.unassigned`.
    """
    deadline = time.monotonic() + time_limit_s - READ_BACK_S
    options = options or SearchOptions()
    validate(problem)
    all_tours = tours(problem)
    candidates, unassigned = precheck(problem, all_tours)
    placed: dict[int, list[tuple[str, float]]] = {}
    if candidates:
        instance = _Instance(problem, all_tours, candidates)
        placed, dropped = _search(instance, deadline, options)
        for key in dropped:
            unassigned[key] = NO_ROOM
        for key in linked_closure(problem.links, set(dropped)) - set(unassigned):
            unassigned[key] = LINKED
    return _checked_plan(problem, all_tours, placed, unassigned)


def _search(
    instance: _Instance, deadline: float, options: SearchOptions
) -> tuple[dict[int, list[tuple[str, float]]], list[str]]:
    """Python search first, OR-Tools polish after; visits per tour as (key, start minute)."""
    rng = random.Random(options.seed)  # noqa: S311 - a search, not a secret
    share = options.lns_share_links if instance.edge_list else options.lns_share_plain
    began = time.monotonic()
    total = max(0.0, deadline - began)
    best = _construct(instance, rng)
    rounds = max(1, options.rounds)
    stale = 0
    for done in range(rounds):
        begin, end = began + total * done / rounds, began + total * (done + 1) / rounds
        best, stale = _improve(instance, best, begin + (end - begin) * share, rng, options, stale)
        if stale >= _stale_limit(instance):
            # Nothing left to find (a small day): a short polish, and done.
            end = min(end, time.monotonic() + 0.1)
        if time.monotonic() < end - 0.05:
            polished = _RoutingModel(instance, options, best).solve(end)
            if polished is not None and polished.cost() < best.cost() - 1e-9:
                best, stale = polished, 0
        if stale >= _stale_limit(instance):
            break
    return best.placed(), best.dropped()


def _stale_limit(instance: _Instance) -> int:
    """Ruin-and-recreate steps without a new best after which the search stops early."""
    return max(STALE_MIN, STALE_PER_VISIT * instance.n)


class _Instance:
    """The problem in solver units. Node i < n is a candidate visit; n + v and n + V + v are
    tour v's start and end."""

    def __init__(self, problem: Problem, all_tours: list[Tour], candidates: dict[str, list[int]]):
        self.problem = problem
        self.tours = all_tours
        self.tasks = [task for task in problem.tasks if task.key in candidates]
        self.n, self.v = len(self.tasks), len(all_tours)
        self.node_of = {task.key: node for node, task in enumerate(self.tasks)}
        self.origin = min([t.start for t in all_tours] + [t.earliest for t in self.tasks])
        self.horizon = self.at(max(tour.end for tour in all_tours))
        self.allowed = [candidates[task.key] for task in self.tasks]
        self._times()
        self._travel()
        self._links()
        self._nurses()
        self._costs()

    def at(self, minutes: float) -> int:
        return round((minutes - self.origin) * SCALE)

    def at_or_before(self, minutes: float) -> int:
        """For upper limits: rounding up could let a visit start a hair too late."""
        return math.floor((minutes - self.origin) * SCALE + 1e-6)

    def _times(self) -> None:
        tasks, horizon = self.tasks, self.horizon
        self.earliest = [_ceil((t.earliest - self.origin) * SCALE) for t in tasks]
        self.latest = [self.at(t.latest) for t in tasks]
        self.upper = [
            horizon if t.hard_latest is None else min(horizon, self.at_or_before(t.hard_latest))
            for t in tasks
        ]
        self.duration = [_ceil(t.duration * SCALE) for t in tasks]
        self.tour_start = [_ceil((t.start - self.origin) * SCALE) for t in self.tours]
        self.tour_end = [self.at_or_before(t.end) for t in self.tours]

    def _travel(self) -> None:
        """Scaled travel between nodes, rounded up; an unused tour (start straight to end)
        travels nothing."""
        travel = self.problem.travel
        locations = [task.location for task in self.tasks]
        locations += [tour.home for tour in self.tours] + [tour.finish for tour in self.tours]
        distinct = sorted(set(locations))
        scaled = {(a, b): _ceil(travel.minutes(a, b) * SCALE) for a in distinct for b in distinct}
        self.travel = [[scaled[a, b] for b in locations] for a in locations]
        for vehicle in range(self.v):
            self.travel[self.n + vehicle][self.n + self.v + vehicle] = 0
        self.travel_to = [list(column) for column in zip(*self.travel, strict=True)]

    def _links(self) -> None:
        """Links as difference constraints start[b] >= start[a] + w, kept per node both ways;
        simultaneous partners must also be with different nurses."""
        self.edge_list: list[tuple[int, int, int]] = []
        for link in self.problem.links:
            a, b = self.node_of.get(link.first), self.node_of.get(link.second)
            if a is None or b is None:
                continue
            if link.kind == "simultaneous":
                self.edge_list += [(a, b, 0), (b, a, 0)]
                continue
            self.edge_list.append((a, b, _ceil(link.min_gap * SCALE)))
            if link.max_gap is not None:
                self.edge_list.append((b, a, -math.floor(link.max_gap * SCALE + 1e-6)))
        self.out_edges: list[list[tuple[int, int]]] = [[] for _ in range(self.n)]
        self.in_edges: list[list[tuple[int, int]]] = [[] for _ in range(self.n)]
        for a, b, w in self.edge_list:
            self.out_edges[a].append((b, w))
            self.in_edges[b].append((a, w))
        self.together: list[list[int]] = [[] for _ in range(self.n)]
        for link in self.problem.links:
            a, b = self.node_of.get(link.first), self.node_of.get(link.second)
            if link.kind == "simultaneous" and a is not None and b is not None:
                self.together[a].append(b)
                self.together[b].append(a)
        self.units = _components(self.n, self.edge_list)

    def _nurses(self) -> None:
        keys = sorted({tour.nurse.key for tour in self.tours})
        index = {key: i for i, key in enumerate(keys)}
        self.nurse_of = [index[tour.nurse.key] for tour in self.tours]
        self.tours_of: list[list[int]] = [[] for _ in keys]
        for vehicle, nurse in enumerate(self.nurse_of):
            self.tours_of[nurse].append(vehicle)
        self.limit: list[int | None] = [None] * len(keys)
        for tour in self.tours:
            if tour.nurse.max_minutes is not None:
                self.limit[index[tour.nurse.key]] = math.floor(
                    tour.nurse.max_minutes * SCALE + 1e-6
                )
        self.limited = any(limit is not None for limit in self.limit)
        self.keep = [-1] * self.n
        for task_key, nurse_key in self.problem.keep.items():
            if task_key in self.node_of and nurse_key in index:
                self.keep[self.node_of[task_key]] = index[nurse_key]

    def _costs(self) -> None:
        """Costs in weighted solver time units (minutes x SCALE x weight)."""
        problem = self.problem
        self.w_travel = problem.travel_weight
        self.w_late = problem.lateness_weight
        self.w_max = problem.max_lateness_weight
        self.keep_cost = problem.keep_penalty * SCALE
        self.drop_cost = [problem.drop_penalty * t.priority * SCALE for t in self.tasks]
        self.related = self._relatedness()

    def _relatedness(self) -> list[list[int]]:
        """For each visit, the others nearest in place and time, nearest first (for the ruin
        step: removing related visits together frees room that can be reused)."""
        travel, earliest = self.travel, self.earliest
        related = []
        for i in range(self.n):
            distance = [travel[i][j] + abs(earliest[i] - earliest[j]) for j in range(self.n)]
            related.append(sorted((j for j in range(self.n) if j != i), key=distance.__getitem__))
        return related


def _components(n: int, edges: list[tuple[int, int, int]]) -> list[list[int]]:
    """Visits tied by links, as groups inserted and removed together."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, _ in edges:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


class _State:
    """Routes with their least start times: every visit as early as travel, windows and
    links allow. Inserting a visit only pushes times later, so it is evaluated by pushing
    the change through the routes and links it touches."""

    def __init__(self, instance: _Instance) -> None:
        self.inst = instance
        self.routes: list[list[int]] = [[] for _ in range(instance.v)]
        self.vehicle = [-1] * instance.n
        self.index = [0] * instance.n
        self.start = list(instance.earliest)
        self.late_max = 0

    def copy(self) -> _State:
        other = _State.__new__(_State)
        other.inst = self.inst
        other.routes = [route[:] for route in self.routes]
        other.vehicle = self.vehicle[:]
        other.index = self.index[:]
        other.start = self.start[:]
        other.late_max = self.late_max
        return other

    # --- cost -------------------------------------------------------------------------------

    def cost(self) -> float:
        inst = self.inst
        travel, start, latest = inst.travel, self.start, inst.latest
        total_travel, late_sum, late_max, extra = 0, 0, 0, 0.0
        for v, route in enumerate(self.routes):
            prev = inst.n + v
            nurse = inst.nurse_of[v]
            for x in route:
                total_travel += travel[prev][x]
                late = start[x] - latest[x]
                if late > 0:
                    late_sum += late
                    late_max = max(late_max, late)
                if inst.keep[x] >= 0 and inst.keep[x] != nurse:
                    extra += inst.keep_cost
                prev = x
            if route:
                total_travel += travel[prev][inst.n + inst.v + v]
        for x in range(inst.n):
            if self.vehicle[x] < 0:
                extra += inst.drop_cost[x]
        return inst.w_travel * total_travel + inst.w_late * late_sum + inst.w_max * late_max + extra

    def placed(self) -> dict[int, list[tuple[str, float]]]:
        inst = self.inst
        return {
            v: [(inst.tasks[x].key, self.start[x] / SCALE + inst.origin) for x in route]
            for v, route in enumerate(self.routes)
            if route
        }

    def dropped(self) -> list[str]:
        return [task.key for x, task in enumerate(self.inst.tasks) if self.vehicle[x] < 0]

    # --- full schedule ----------------------------------------------------------------------

    def reschedule(self) -> bool:
        """Least start times from scratch; False if the routes cannot keep every rule."""
        inst = self.inst
        travel, duration, start = inst.travel, inst.duration, self.start
        vehicle = self.vehicle
        for route in self.routes:
            for x in route:
                start[x] = inst.earliest[x]
        edges = [(a, b, w) for a, b, w in inst.edge_list if vehicle[a] >= 0 and vehicle[b] >= 0]
        for _ in range(len(edges) + 2):
            for v, route in enumerate(self.routes):
                t, prev = inst.tour_start[v], inst.n + v
                for x in route:
                    arrive = t + travel[prev][x]
                    if arrive > start[x]:
                        start[x] = arrive
                    t, prev = start[x] + duration[x], x
            moved = False
            for a, b, w in edges:
                if start[a] + w > start[b]:
                    start[b] = start[a] + w
                    moved = True
            if not moved:
                return self._within_limits()
        return False

    def _within_limits(self) -> bool:
        inst = self.inst
        start, late_max = self.start, 0
        for v, route in enumerate(self.routes):
            if not route:
                continue
            for x in route:
                if start[x] > inst.upper[x]:
                    return False
                late_max = max(late_max, start[x] - inst.latest[x])
            last = route[-1]
            back = start[last] + inst.duration[last] + inst.travel[last][inst.n + inst.v + v]
            if back > inst.tour_end[v]:
                return False
        self.late_max = late_max
        if inst.limited:
            return all(self._nurse_ok(nurse, {}, -1, -1, -1) for nurse in range(len(inst.limit)))
        return True

    def _nurse_ok(self, nurse: int, new: dict[int, int], x: int, xv: int, xp: int) -> bool:
        """The nurse's minutes from leaving to coming back, over her tours, within her limit,
        with `new` start times and `x` inserted at position `xp` of tour `xv` (if x >= 0)."""
        inst = self.inst
        limit = inst.limit[nurse]
        if limit is None:
            return True
        worked = 0
        for v in inst.tours_of[nurse]:
            route = self.routes[v]
            if v == xv:
                route = [*route[:xp], x, *route[xp:]]
            if not route:
                continue
            first, last = route[0], route[-1]
            leave = new.get(first, self.start[first]) - inst.travel[inst.n + v][first]
            back = (
                new.get(last, self.start[last])
                + inst.duration[last]
                + inst.travel[last][inst.n + inst.v + v]
            )
            worked += back - leave
        return worked <= limit

    # --- insertion --------------------------------------------------------------------------

    def best_insertion(
        self, x: int, rng: random.Random, blink: float
    ) -> tuple[float, int, int, dict[int, int]] | None:
        """The cheapest feasible place for visit x as (cost added, tour, position, new start
        times), skipping a few places at random (`blink`) for diversity."""
        found = self.best_insertions(x, 1, rng, blink)
        return found[0] if found else None

    def best_insertions(
        self, x: int, count: int, rng: random.Random, blink: float
    ) -> list[tuple[float, int, int, dict[int, int]]]:
        """The `count` cheapest feasible places for x, cheapest first. Places are tried in
        order of a cheap lower bound (detour and x's own lateness), so the full evaluation
        stops at the first whose bound cannot beat the ones kept."""
        kept: list[tuple[float, int, int, dict[int, int]]] = []
        worst = self.inst.drop_cost[x]
        for bound, v, p, s, fixed in sorted(self._places(x)):
            if bound >= worst:
                break
            if blink and rng.random() < blink:
                continue
            pushed = self._push(x, v, p, s, fixed, worst)
            if pushed is None:
                continue
            kept.append((pushed[0], v, p, pushed[1]))
            if len(kept) >= count:
                kept.sort(key=lambda place: place[0])
                del kept[count:]
                worst = kept[-1][0]
        kept.sort(key=lambda place: place[0])
        return kept

    def _places(self, x: int) -> list[tuple[float, int, int, int, float]]:
        """Every place for x as (lower bound, tour, position, start at x, travel cost). The
        bound counts the detour and the lateness x and the visit after it are sure to get."""
        inst, start = self.inst, self.start
        travel, duration, latest = inst.travel, inst.duration, inst.latest
        n, late_max, dx, lx = inst.n, self.late_max, inst.duration[x], inst.latest[x]
        w_travel, w_late, w_max = inst.w_travel, inst.w_late, inst.w_max
        floor = max(inst.earliest[x], self._linked_earliest(x))
        to_x, from_x = inst.travel_to[x], travel[x]
        keep = inst.keep[x]
        places = []
        for v in inst.allowed[x]:
            if inst.together[x] and not self._may_join(x, v):
                continue
            route = self.routes[v]
            extra = inst.keep_cost if keep >= 0 and keep != inst.nurse_of[v] else 0.0
            prev, t = n + v, inst.tour_start[v]
            p = 0
            for nxt in route:
                s = t + to_x[prev]
                if s < floor:
                    s = floor
                fixed = w_travel * (to_x[prev] + from_x[nxt] - travel[prev][nxt]) + extra
                bound = fixed
                late = s - lx
                if late > 0:
                    bound += w_late * late
                    if late > late_max:
                        bound += w_max * (late - late_max)
                # The visit after x starts at least this late.
                late = s + dx + from_x[nxt] - latest[nxt]
                if late > 0:
                    was = start[nxt] - latest[nxt]
                    if late > was:
                        bound += w_late * (late - was if was > 0 else late)
                places.append((bound, v, p, s, fixed))
                prev, t = nxt, start[nxt] + duration[nxt]
                p += 1
            s = t + to_x[prev]
            if s < floor:
                s = floor
            fixed = w_travel * (to_x[prev] + from_x[n + inst.v + v] - travel[prev][n + inst.v + v])
            fixed += extra
            bound = fixed
            late = s - lx
            if late > 0:
                bound += w_late * late
                if late > late_max:
                    bound += w_max * (late - late_max)
            places.append((bound, v, p, s, fixed))
        return places

    def _linked_earliest(self, x: int) -> int:
        start, vehicle = self.start, self.vehicle
        s = 0
        for y, w in self.inst.in_edges[x]:
            if vehicle[y] >= 0 and start[y] + w > s:
                s = start[y] + w
        return s

    def _may_join(self, x: int, v: int) -> bool:
        """A two-nurse visit's halves go to different nurses."""
        inst = self.inst
        nurse = inst.nurse_of[v]
        return all(
            self.vehicle[y] < 0 or inst.nurse_of[self.vehicle[y]] != nurse for y in inst.together[x]
        )

    def _push(
        self, x: int, v: int, p: int, s: int, fixed: float, limit: float
    ) -> tuple[float, dict[int, int]] | None:
        """Cost and new start times if x starts at s at position p of tour v: push every later
        visit of the touched routes and every linked visit as far as needed. None if a rule
        breaks (a hard window, a shift end, the nurse's limit, or links that cannot hold) or
        the cost (`fixed` plus the added lateness) reaches `limit`: lateness only grows while
        pushing, so the search stops as soon as it does. (The search's hot loop.)"""
        inst = self.inst
        n, ends = inst.n, inst.n + inst.v
        travel, duration, upper, latest = inst.travel, inst.duration, inst.upper, inst.latest
        out_edges, tour_end = inst.out_edges, inst.tour_end
        routes, vehicle, index, start = self.routes, self.vehicle, self.index, self.start
        w_late, w_max, late_max = inst.w_late, inst.w_max, self.late_max
        route_v = routes[v]
        before = route_v[p - 1] if p else -1
        after = route_v[p] if p < len(route_v) else ends + v
        late = s - latest[x]
        late_sum = late if late > 0 else 0
        top = late if late > late_max else late_max
        cost = fixed + w_late * late_sum + w_max * (top - late_max)
        if cost >= limit:
            return None
        new = {x: s}
        stack = [x]
        budget = 4 * n + 16
        while stack:
            budget -= 1
            if budget < 0:
                return None
            i = stack.pop()
            si = new[i]
            if si > upper[i]:
                return None
            if i == x:
                j, vi = after, v
            elif i == before:
                j, vi = x, v
            else:
                vi = vehicle[i]
                route = routes[vi]
                k = index[i] + 1
                j = route[k] if k < len(route) else ends + vi
            t = si + duration[i] + travel[i][j]
            if j >= n:
                if t > tour_end[vi]:
                    return None
            else:
                old = new.get(j)
                if old is None:
                    old = start[j]
                if t > old:
                    new[j] = t
                    stack.append(j)
                    late = t - latest[j]
                    if late > 0:
                        was = old - latest[j]
                        late_sum += late - was if was > 0 else late
                        if late > top:
                            top = late
                        cost = fixed + w_late * late_sum + w_max * (top - late_max)
                        if cost >= limit:
                            return None
            for y, w in out_edges[i]:
                if vehicle[y] < 0 and y != x:
                    continue
                t = si + w
                old = new.get(y)
                if old is None:
                    old = start[y]
                if t > old:
                    new[y] = t
                    stack.append(y)
                    late = t - latest[y]
                    if late > 0:
                        was = old - latest[y]
                        late_sum += late - was if was > 0 else late
                        if late > top:
                            top = late
                        cost = fixed + w_late * late_sum + w_max * (top - late_max)
                        if cost >= limit:
                            return None
        if inst.limited:
            touched = {inst.nurse_of[v]} | {inst.nurse_of[vehicle[i]] for i in new if i != x}
            if not all(self._nurse_ok(nurse, new, x, v, p) for nurse in touched):
                return None
        return cost, new

    def insert(self, x: int, v: int, p: int, new: dict[int, int]) -> tuple[dict[int, int], int]:
        """Put x at position p of tour v with the start times `new` from `_push`; returns
        what `undo` needs."""
        saved = ({i: self.start[i] for i in new}, self.late_max)
        route = self.routes[v]
        route.insert(p, x)
        self.vehicle[x] = v
        for k in range(p, len(route)):
            self.index[route[k]] = k
        latest = self.inst.latest
        for i, s in new.items():
            self.start[i] = s
            if s - latest[i] > self.late_max:
                self.late_max = s - latest[i]
        return saved

    def undo(self, x: int, v: int, p: int, saved: tuple[dict[int, int], int]) -> None:
        """Take back the last `insert` (of x at position p of tour v)."""
        route = self.routes[v]
        del route[p]
        self.vehicle[x] = -1
        for k in range(p, len(route)):
            self.index[route[k]] = k
        for i, s in saved[0].items():
            self.start[i] = s
        self.late_max = saved[1]

    def remove(self, nodes: set[int]) -> None:
        """Take visits out; call `reschedule` after (start times may now move earlier)."""
        for v in {self.vehicle[x] for x in nodes if self.vehicle[x] >= 0}:
            route = [x for x in self.routes[v] if x not in nodes]
            self.routes[v] = route
            for k, x in enumerate(route):
                self.index[x] = k
        for x in nodes:
            self.vehicle[x] = -1

    def insert_unit(self, unit: Sequence[int], rng: random.Random, blink: float) -> bool:
        """Insert linked visits; if one finds no place, none stays. A pair is placed jointly:
        the second visit's best place is sought after each of the first's few best places,
        since where the first goes fixes when the second can start."""
        if len(unit) == 2:
            return self._insert_pair(unit[0], unit[1], rng, blink)
        done: list[tuple[int, int, int, tuple[dict[int, int], int]]] = []
        for x in unit:
            found = self.best_insertion(x, rng, blink)
            if found is None:
                for y, v, p, saved in reversed(done):
                    self.undo(y, v, p, saved)
                return False
            _, v, p, new = found
            done.append((x, v, p, self.insert(x, v, p, new)))
        return True

    def _insert_pair(self, a: int, b: int, rng: random.Random, blink: float) -> bool:
        """Both visits of a pair at their cheapest joint places, or neither."""
        best: tuple[float, tuple[int, int, dict[int, int]], tuple[int, int, dict[int, int]]]
        best = (math.inf, (0, 0, {}), (0, 0, {}))
        for cost_a, v, p, new in self.best_insertions(a, PAIR_TRIES, rng, blink):
            if cost_a >= best[0]:
                break
            saved = self.insert(a, v, p, new)
            found = self.best_insertion(b, rng, blink)
            if found is not None and cost_a + found[0] < best[0]:
                best = (cost_a + found[0], (v, p, new), found[1:])
            self.undo(a, v, p, saved)
        if best[0] == math.inf:
            return False
        self.insert(a, *best[1])
        self.insert(b, *best[2])
        return True


def _unit_order(instance: _Instance, unit: list[int]) -> list[int]:
    return sorted(unit, key=lambda x: (instance.earliest[x], len(instance.allowed[x])))


def _construct(instance: _Instance, rng: random.Random) -> _State:
    """Greedy insertion, visits with the earliest windows and fewest nurses first."""
    state = _State(instance)
    units = sorted(
        (_unit_order(instance, unit) for unit in instance.units),
        key=lambda u: (min(len(instance.allowed[x]) for x in u) > 2, instance.earliest[u[0]]),
    )
    for unit in units:
        state.insert_unit(unit, rng, 0.0)
    return state


def _improve(
    instance: _Instance,
    state: _State,
    deadline: float,
    rng: random.Random,
    options: SearchOptions,
    stale: int,
) -> tuple[_State, int]:
    """Ruin and recreate (string removals around a seed visit, greedy reinsertion with
    blinks), accepted by simulated annealing. Returns the best state seen and the steps since
    the last new best (`stale` before this call included), stopping early at the limit."""
    if instance.n < 2:
        return state, _stale_limit(instance)
    limit = _stale_limit(instance)
    best, best_cost = state, state.cost()
    current, current_cost = state, best_cost
    began = time.monotonic()
    span = max(deadline - began, 1e-6)
    hot, cold = options.hot * SCALE, options.cold * SCALE
    unit_of = {x: unit for unit in instance.units for x in unit}
    while True:
        now = time.monotonic()
        if now >= deadline or stale >= limit:
            return best, stale
        stale += 1
        temperature = hot * (cold / hot) ** ((now - began) / span)
        candidate = current.copy()
        removed = _ruin(instance, candidate, rng, unit_of)
        candidate.remove(removed)
        if not candidate.reschedule():
            continue
        pending = [x for x in range(instance.n) if candidate.vehicle[x] < 0]
        for unit in _recreate_order(instance, pending, rng, unit_of):
            candidate.insert_unit(unit, rng, 0.01)
        cost = candidate.cost()
        if cost < current_cost - temperature * math.log(rng.random() or 1e-12):
            current, current_cost = candidate, cost
            if cost < best_cost - 1e-9:
                best, best_cost, stale = candidate, cost, 0


def _ruin(
    instance: _Instance, state: _State, rng: random.Random, unit_of: dict[int, list[int]]
) -> set[int]:
    """Strings of consecutive visits from routes near a random seed visit, with their
    linked visits."""
    routed = [x for route in state.routes for x in route]
    if not routed:
        return set()
    size = rng.randint(RUIN_MIN, max(RUIN_MIN, min(len(routed) // 3, RUIN_MAX)))
    seed = rng.choice(routed)
    removed: set[int] = set()
    ruined: set[int] = set()
    for y in (seed, *instance.related[seed]):
        if len(removed) >= size:
            break
        v = state.vehicle[y]
        if v < 0 or v in ruined:
            continue
        ruined.add(v)
        route = state.routes[v]
        length = rng.randint(1, min(len(route), max(1, size - len(removed)), 10))
        first = rng.randint(max(0, state.index[y] - length + 1), state.index[y])
        removed.update(route[first : first + length])
    return {z for x in removed for z in unit_of[x]}


def _recreate_order(
    instance: _Instance, pending: list[int], rng: random.Random, unit_of: dict[int, list[int]]
) -> list[list[int]]:
    """The removed visits' groups in the order to re-insert them, varied from step to step
    (greedy insertion depends on the order; varying it widens the search)."""
    units = {id(unit_of[x]): unit_of[x] for x in pending}
    ordered = [_unit_order(instance, unit) for unit in units.values()]
    how = rng.random()
    if how < 0.4:
        rng.shuffle(ordered)
    elif how < 0.7:
        ordered.sort(key=lambda u: instance.earliest[u[0]])
    elif how < 0.85:
        ordered.sort(key=lambda u: -instance.latest[u[0]])
    else:
        ordered.sort(key=lambda u: min(len(instance.allowed[x]) for x in u))
    # Linked groups are the hardest to place: first, while routes still have room.
    ordered.sort(key=lambda u: len(u) == 1)
    return ordered


class _RoutingModel:
    """OR-Tools' routing on the instance, starting from a Python state, with linked visits'
    start times held where the state has them."""

    def __init__(self, instance: _Instance, options: SearchOptions, state: _State) -> None:
        self.inst = instance
        self.options = options
        self.state = state
        n, v = instance.n, instance.v
        self.manager = pywrapcp.RoutingIndexManager(
            n + 2 * v, v, list(range(n, n + v)), list(range(n + v, n + 2 * v))
        )
        self.routing = pywrapcp.RoutingModel(self.manager)
        self._add_costs()
        self.time = self._add_time()
        self._add_max_minutes()
        self._add_links()
        self._add_eligibility_and_drops()

    def _add_costs(self) -> None:
        inst = self.inst
        weight = COST_SCALE * inst.w_travel
        base = [[round(weight * value) for value in row] for row in inst.travel]
        kept = {x: nurse for x, nurse in enumerate(inst.keep) if nurse >= 0}
        if not kept:
            self.routing.SetArcCostEvaluatorOfAllVehicles(self.routing.RegisterTransitMatrix(base))
            return
        # A kept visit costs extra on arcs into it for any nurse but its own; nurses without
        # kept visits share one matrix.
        penalty = round(COST_SCALE * inst.keep_cost)
        evaluators: dict[int, int] = {}
        for vehicle, nurse in enumerate(inst.nurse_of):
            owner = nurse if nurse in kept.values() else -1
            if owner not in evaluators:
                others = [x for x, keeper in kept.items() if keeper != owner]
                matrix = [row[:] for row in base]
                for row in matrix:
                    for x in others:
                        row[x] += penalty
                evaluators[owner] = self.routing.RegisterTransitMatrix(matrix)
            self.routing.SetArcCostEvaluatorOfVehicle(evaluators[owner], vehicle)

    def _add_time(self) -> Any:
        inst, state = self.inst, self.state
        service = inst.duration + [0] * (2 * inst.v)
        transit = [[service[a] + value for value in row] for a, row in enumerate(inst.travel)]
        evaluator = self.routing.RegisterTransitMatrix(transit)
        self.routing.AddDimension(evaluator, inst.horizon, inst.horizon, False, "time")
        dimension = self.routing.GetDimensionOrDie("time")
        coefficient = round(COST_SCALE * inst.w_late)
        # Lateness may not grow beyond the state's largest: the global max is not a cost
        # OR-Tools' filters can see, so it is held as a bound instead.
        cap = state.late_max if inst.w_max > 0 else inst.horizon
        linked = {a for a, _, _ in inst.edge_list} | {b for _, b, _ in inst.edge_list}
        for x in range(inst.n):
            index = self.manager.NodeToIndex(x)
            if x in linked and state.vehicle[x] >= 0:
                dimension.CumulVar(index).SetRange(state.start[x], state.start[x])
            else:
                upper = min(inst.upper[x], inst.latest[x] + cap)
                dimension.CumulVar(index).SetRange(inst.earliest[x], max(upper, inst.earliest[x]))
            if coefficient > 0:
                dimension.SetCumulVarSoftUpperBound(index, inst.latest[x], coefficient)
        for vehicle in range(inst.v):
            start, end = self.routing.Start(vehicle), self.routing.End(vehicle)
            window = (inst.tour_start[vehicle], inst.tour_end[vehicle])
            dimension.CumulVar(start).SetRange(*window)
            dimension.CumulVar(end).SetRange(*window)
            # Leave home as late and come back as early as the visits allow.
            self.routing.AddVariableMaximizedByFinalizer(dimension.CumulVar(start))
            self.routing.AddVariableMinimizedByFinalizer(dimension.CumulVar(end))
        return dimension

    def _add_max_minutes(self) -> None:
        inst, solver = self.inst, self.routing.solver()
        for nurse, limit in enumerate(inst.limit):
            if limit is None:
                continue
            vehicles = inst.tours_of[nurse]
            if len(vehicles) == 1:
                self.time.SetSpanUpperBoundForVehicle(limit, vehicles[0])
                continue
            spans = [
                self.time.CumulVar(self.routing.End(v)) - self.time.CumulVar(self.routing.Start(v))
                for v in vehicles
            ]
            solver.Add(solver.Sum(spans) <= limit)

    def _add_links(self) -> None:
        """Linked visits placed by the state have fixed times, which keeps their links; the
        constraints below are for the rest (and two-nurse visits' different nurses). They hold
        only when both visits are planned (big-M on the active flags)."""
        inst, solver, routing = self.inst, self.routing.solver(), self.routing
        big = 2 * inst.horizon
        for a, b, w in inst.edge_list:
            ia, ib = self.manager.NodeToIndex(a), self.manager.NodeToIndex(b)
            both_off = 2 - routing.ActiveVar(ia) - routing.ActiveVar(ib)
            solver.Add(self.time.CumulVar(ib) - self.time.CumulVar(ia) >= w - big * both_off)
        for a in range(inst.n):
            for b in inst.together[a]:
                if a < b:
                    self._different_nurses(a, b)

    def _different_nurses(self, a: int, b: int) -> None:
        inst, solver, routing = self.inst, self.routing.solver(), self.routing
        ia, ib = self.manager.NodeToIndex(a), self.manager.NodeToIndex(b)
        # Nurse of each vehicle, with -1 (unperformed) mapped to a distinct dummy each.
        nurse_a = solver.Element([-1, *inst.nurse_of], routing.VehicleVar(ia) + 1)
        nurse_b = solver.Element([-2, *inst.nurse_of], routing.VehicleVar(ib) + 1)
        solver.Add(nurse_a != nurse_b)

    def _add_eligibility_and_drops(self) -> None:
        inst = self.inst
        for x in range(inst.n):
            index = self.manager.NodeToIndex(x)
            if len(inst.allowed[x]) < inst.v:
                # -1 keeps the visit droppable. (SetAllowedVehiclesForIndex rejects Python
                # lists in OR-Tools 9.15's bindings.)
                self.routing.VehicleVar(index).SetValues([-1, *inst.allowed[x]])
            self.routing.AddDisjunction([index], max(1, round(COST_SCALE * inst.drop_cost[x])))

    def solve(self, deadline: float) -> _State | None:
        """The polished routes as a state (least start times recomputed), or None."""
        parameters = pywrapcp.DefaultRoutingSearchParameters()
        parameters.first_solution_strategy = FIRST_SOLUTION.Value.Value(self.options.first_solution)
        parameters.local_search_metaheuristic = METAHEURISTIC.Value.Value(
            self.options.metaheuristic
        )
        seconds = max(0.01, deadline - time.monotonic())
        parameters.time_limit.FromMilliseconds(max(1, round(seconds * 1000)))
        routes = [[self.manager.NodeToIndex(x) for x in route] for route in self.state.routes]
        initial = self.routing.ReadAssignmentFromRoutes(routes, True)
        if initial is None:
            solution = self.routing.SolveWithParameters(parameters)
        else:
            solution = self.routing.SolveFromAssignmentWithParameters(initial, parameters)
        if solution is None:
            return None
        return self._read(solution)

    def _read(self, solution: Any) -> _State | None:
        """The routes as a state; linked visits only planned together (OR-Tools may drop one
        of a pair: its link constraints hold only when both are planned)."""
        inst = self.inst
        state = _State(inst)
        for v in range(inst.v):
            index = solution.Value(self.routing.NextVar(self.routing.Start(v)))
            while not self.routing.IsEnd(index):
                x = self.manager.IndexToNode(index)
                state.vehicle[x] = v
                state.index[x] = len(state.routes[v])
                state.routes[v].append(x)
                index = solution.Value(self.routing.NextVar(index))
        state.remove(
            {x for unit in inst.units if min(state.vehicle[y] for y in unit) < 0 for x in unit}
        )
        return state if state.reschedule() else None


def _ceil(value: float) -> int:
    """Round up, forgiving the float noise of scaling (38.471 * 1000 = 38471.000000000004)."""
    return math.ceil(value - 1e-6)


def _checked_plan(
    problem: Problem,
    all_tours: list[Tour],
    placed: dict[int, list[tuple[str, float]]],
    unassigned: dict[str, str],
) -> Plan:
    """Assemble the plan; while it breaks a hard rule, unassign the offending visits (and
    their linked visits) and check again. Dropping a visit only removes stops, so this ends."""
    placed = {vehicle: list(stops) for vehicle, stops in placed.items()}
    unassigned = dict(unassigned)
    while True:
        result = _assemble(problem, all_tours, placed, unassigned)
        broken = violations(problem, result)
        if not broken:
            return result
        for key, message in broken:
            unassigned.setdefault(key, f"left out: the plan found broke a rule ({message})")
        for key in linked_closure(problem.links, {key for key, _ in broken}):
            unassigned.setdefault(key, LINKED)
        for vehicle, stops in placed.items():
            placed[vehicle] = [stop for stop in stops if stop[0] not in unassigned]


def _assemble(
    problem: Problem,
    all_tours: list[Tour],
    placed: dict[int, list[tuple[str, float]]],
    unassigned: dict[str, str],
) -> Plan:
    tasks = {task.key: task for task in problem.tasks}
    routes: dict[str, list[Stop]] = {nurse.key: [] for nurse in problem.nurses}
    travel_total = 0.0
    for vehicle, visits in sorted(placed.items()):
        tour = all_tours[vehicle]
        stops, travelled = _tour_stops(problem, tour, [(tasks[k], s) for k, s in visits])
        routes[tour.nurse.key].extend(stops)
        travel_total += travelled
    for stops in routes.values():
        stops.sort(key=lambda stop: stop.start)
    lateness = [
        max(0.0, stop.start - tasks[stop.task].latest)
        for stops in routes.values()
        for stop in stops
    ]
    lateness_total, lateness_max = sum(lateness), max(lateness, default=0.0)
    objective = (
        problem.travel_weight * travel_total
        + problem.lateness_weight * lateness_total
        + problem.max_lateness_weight * lateness_max
        + sum(problem.drop_penalty * tasks[key].priority for key in unassigned if key in tasks)
        + problem.keep_penalty * _moved(problem, routes)
    )
    return Plan(routes, dict(unassigned), travel_total, lateness_total, lateness_max, objective)


def _tour_stops(
    problem: Problem, tour: Tour, visits: Sequence[tuple[Task, float]]
) -> tuple[list[Stop], float]:
    """Stops of one tour in route order with their travel, and the tour's travel including
    the way back."""
    stops = []
    here, travelled = tour.home, 0.0
    for task, start in visits:
        leg = problem.travel.minutes(here, task.location)
        stops.append(Stop(task.key, start, start + task.duration, leg))
        travelled += leg
        here = task.location
    if stops:
        travelled += problem.travel.minutes(here, tour.finish)
    return stops, travelled


def _moved(problem: Problem, routes: dict[str, list[Stop]]) -> int:
    planned_with = {stop.task: nurse for nurse, stops in routes.items() for stop in stops}
    return sum(
        1
        for task, nurse in problem.keep.items()
        if task in planned_with and nurse in routes and planned_with[task] != nurse
    )
