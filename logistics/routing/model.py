"""The dispatch problem and the plan, as plain frozen dataclasses.

Times are minutes from the start of the planning horizon (the caller converts local times);
locations are indices understood by the problem's `TravelTimes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from logistics.routing.travel import TravelTimes

Shift = tuple[float, float]
LinkKind = Literal["simultaneous", "sequential"]

#: What leaving one visit unassigned costs, in minutes of travel, times its priority. Far above
#: any day's travel, so the planner drops a visit only when it cannot place it.
DEFAULT_DROP_PENALTY = 100_000.0
#: What moving an already-accepted visit to another nurse costs, in minutes of travel: a strong
#: preference that still yields when keeping it would force dropping another visit.
DEFAULT_KEEP_PENALTY = 1_000.0


@dataclass(frozen=True)
class Nurse:
    """One nurse's day: one vehicle, leaving `start_location` and returning to `end_location`
    (None: back to `start_location`) within each shift.

    Each shift is a separate tour from and back to home; overlapping or touching shifts are
    merged. `max_minutes` bounds the sum over shifts of the time from leaving to coming back.
    """

    key: str
    skills: frozenset[str]
    start_location: int
    shifts: tuple[Shift, ...]
    end_location: int | None = None
    max_minutes: float | None = None


@dataclass(frozen=True)
class Task:
    """One home visit.

    It may not start before `earliest`; starting after `latest` is lateness, which costs;
    starting after `hard_latest` (if given) is not allowed at all. `eligible` lists the nurses
    allowed (None: any nurse with the skills); `pinned` forces one nurse. Dropping the visit
    costs `priority` times the problem's drop penalty.
    """

    key: str
    location: int
    earliest: float
    latest: float
    duration: float
    skills: frozenset[str] = frozenset()
    eligible: frozenset[str] | None = None
    pinned: str | None = None
    hard_latest: float | None = None
    priority: float = 1.0


@dataclass(frozen=True)
class Link:
    """Two visits of one patient tied in time.

    `simultaneous`: both start at the same minute, by two different nurses (a two-nurse
    visit); the gaps are ignored. `sequential`: `second` starts between `min_gap` and
    `max_gap` (None: no upper limit) minutes after `first` starts. Either both are planned or
    neither is.
    """

    first: str
    second: str
    kind: LinkKind
    min_gap: float = 0.0
    max_gap: float | None = None


@dataclass(frozen=True)
class Problem:
    """A day (or any horizon) to plan.

    The objective is `travel_weight` x travel minutes + `lateness_weight` x total lateness
    minutes + `max_lateness_weight` x the largest lateness + priority x `drop_penalty` per
    unassigned visit + `keep_penalty` per kept visit moved to another nurse.

    `keep` maps visits already accepted to their nurse: a re-plan keeps them there unless that
    would force dropping a visit (a strong preference, not a hard rule). Keys of visits or
    nurses no longer in the problem are ignored.
    """

    nurses: tuple[Nurse, ...]
    tasks: tuple[Task, ...]
    travel: TravelTimes
    links: tuple[Link, ...] = ()
    lateness_weight: float = 1.0
    max_lateness_weight: float = 0.0
    travel_weight: float = 1.0
    keep: Mapping[str, str] = field(default_factory=dict)
    drop_penalty: float = DEFAULT_DROP_PENALTY
    keep_penalty: float = DEFAULT_KEEP_PENALTY


@dataclass(frozen=True)
class Stop:
    """A visit in a route: `travel_before` minutes from the previous stop of the same shift,
    or from the nurse's start location for the first visit of a shift."""

    task: str
    start: float
    end: float
    travel_before: float


@dataclass(frozen=True)
class Plan:
    """Routes per nurse (stops in time order; every nurse of the problem has an entry), the
    visits left out with a reason a dispatcher can act on, and the cost parts."""

    routes: dict[str, list[Stop]]
    unassigned: dict[str, str]
    travel_total: float
    lateness_total: float
    lateness_max: float
    objective: float
