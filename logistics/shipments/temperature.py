"""Whether a shipment's temperature readings show an excursion. Pure rules, no database.

Two rules, after the product's stability data:

* Hard limit: any reading below `hard_min_c` or above `hard_max_c` is an excursion at once.
* Time out of range: the time spent outside [min_c, max_c] (both limits inclusive: a
  reading exactly at a limit is in range) longer than `excursion_minutes`.

The time out of range is CUMULATIVE over the whole trip, not one continuous stretch:
stability budgets are granted for the product, so three 20-minute stretches of a 30-minute
budget use it up as surely as one hour does.

Readings are points, the temperature between them unknown. Conservatively, the interval
between two consecutive readings counts as out of range when either end is out of range
(the product may have left the range just after a good reading); a gap between readings
is counted in full, however long, since nothing shows the product came back in range.
The last reading opens no interval: a lone reading out of range counts 0 minutes. Input
may come in any order and with repeats: it is sorted, and of several readings at one
instant the one farthest out of range is kept.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


class Rule(enum.StrEnum):
    HARD_LIMIT = "hard_limit"
    TIME_OUT_OF_RANGE = "time_out_of_range"


@dataclass(frozen=True, slots=True)
class Range:
    min_c: float
    max_c: float
    hard_min_c: float
    hard_max_c: float
    excursion_minutes: int

    def distance_out(self, celsius: float) -> float:
        """How far outside [min_c, max_c] the value is; 0 inside (limits included)."""
        return max(self.min_c - celsius, celsius - self.max_c, 0.0)

    def beyond_hard_limit(self, celsius: float) -> bool:
        return celsius < self.hard_min_c or celsius > self.hard_max_c

    def severity(self, celsius: float) -> tuple[bool, float, float]:
        """Orders readings from least to most serious: any reading beyond a hard limit is
        worse than every one within them (a frozen fridge product at -1 °C is lost, one at
        12 °C may not be), then the distance out of range; ties broken so that the order of
        the input never changes the answer."""
        return (self.beyond_hard_limit(celsius), self.distance_out(celsius), celsius)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    # The reading farthest out of range, and its time.
    worst_c: float
    worst_at: datetime
    # Cumulative, rounded up: a finding of the time rule always shows more than allowed.
    minutes_out_of_range: int
    # The first reading out of range (for the hard rule: the first beyond the hard limit).
    first_at: datetime

    def describe(self, limits: Range) -> str:
        if self.rule is Rule.HARD_LIMIT:
            return (
                f"A reading of {self.worst_c:g} °C is beyond the hard limits "
                f"({limits.hard_min_c:g} to {limits.hard_max_c:g} °C)."
            )
        return (
            f"{self.minutes_out_of_range} minutes outside {limits.min_c:g} to "
            f"{limits.max_c:g} °C in all, more than the {limits.excursion_minutes} allowed."
        )


def _clean(
    readings: Iterable[tuple[datetime, float]], limits: Range
) -> list[tuple[datetime, float]]:
    worst: dict[datetime, float] = {}
    for at, celsius in readings:
        if math.isnan(celsius):
            continue  # no measurement; the device API refuses these anyway
        known = worst.get(at)
        if known is None or limits.severity(celsius) > limits.severity(known):
            worst[at] = celsius
    return sorted(worst.items())


def minutes_out_of_range(series: list[tuple[datetime, float]], limits: Range) -> float:
    """Cumulative minutes out of range of a cleaned (sorted, one per instant) series."""
    total = 0.0
    for (at, celsius), (next_at, next_celsius) in itertools.pairwise(series):
        if limits.distance_out(celsius) > 0 or limits.distance_out(next_celsius) > 0:
            total += (next_at - at).total_seconds() / 60
    return total


def find_excursion(readings: Iterable[tuple[datetime, float]], limits: Range) -> Finding | None:
    """The excursion that `readings` (time, °C) show against `limits`, or None."""
    series = _clean(readings, limits)
    out = [(at, c) for at, c in series if limits.distance_out(c) > 0]
    if not out:
        return None
    # The earliest of equally bad readings.
    worst_at, worst_c = max(out, key=lambda p: (limits.severity(p[1]), -p[0].timestamp()))
    # Rounded to the microsecond's order, so float noise neither adds a minute nor breaks
    # the exactly-allowed case.
    minutes = round(minutes_out_of_range(series, limits), 6)
    shown = math.ceil(minutes)
    hard = [at for at, c in out if limits.beyond_hard_limit(c)]
    if hard:
        return Finding(Rule.HARD_LIMIT, worst_c, worst_at, shown, hard[0])
    if minutes > limits.excursion_minutes:
        return Finding(Rule.TIME_OUT_OF_RANGE, worst_c, worst_at, shown, out[0][0])
    return None
