"""Home-nurse dispatch: assign a day's home visits to nurses and order their routes.

Pure Python in, pure Python out (no Flask, no database): build a `Problem` of `Nurse`s,
`Task`s, `Link`s and a `TravelTimes` source, call `plan`, and read the `Plan`'s routes and the
reasons for visits left unassigned. `check` lists any hard rule a plan breaks.
"""

from logistics.routing.model import (
    DEFAULT_DROP_PENALTY,
    DEFAULT_KEEP_PENALTY,
    Link,
    LinkKind,
    Nurse,
    Plan,
    Problem,
    Shift,
    Stop,
    Task,
)
from logistics.routing.reasons import check
from logistics.routing.solver import SearchOptions, plan
from logistics.routing.travel import GreatCircle, Matrix, TravelTimes

__all__ = [
    "DEFAULT_DROP_PENALTY",
    "DEFAULT_KEEP_PENALTY",
    "GreatCircle",
    "Link",
    "LinkKind",
    "Matrix",
    "Nurse",
    "Plan",
    "Problem",
    "SearchOptions",
    "Shift",
    "Stop",
    "Task",
    "TravelTimes",
    "check",
    "plan",
]
