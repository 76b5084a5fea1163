"""Travel times between location indices, behind one small interface so a road-network
service can replace the straight-line estimate without touching the planner."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

EARTH_RADIUS_KM = 6371.0088


def is_place(latitude: float, longitude: float) -> bool:
    """A latitude and longitude in degrees that name a point on Earth."""
    return (
        math.isfinite(latitude)
        and math.isfinite(longitude)
        and -90 <= latitude <= 90
        and -180 <= longitude <= 180
    )


def kilometres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (latitude, longitude) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@runtime_checkable
class TravelTimes(Protocol):
    """Minutes to travel from one location index to another."""

    def minutes(self, origin: int, destination: int) -> float: ...


class Matrix:
    """A supplied square matrix of travel minutes, `minutes[origin][destination]`."""

    def __init__(self, minutes: Sequence[Sequence[float]]) -> None:
        size = len(minutes)
        if any(len(row) != size for row in minutes):
            raise ValueError("the travel matrix must be square")
        if any(value < 0 or not math.isfinite(value) for row in minutes for value in row):
            raise ValueError("travel minutes must be finite and not negative")
        self._minutes = [[float(value) for value in row] for row in minutes]

    def __len__(self) -> int:
        return len(self._minutes)

    def minutes(self, origin: int, destination: int) -> float:
        return self._minutes[origin][destination]


class GreatCircle:
    """Straight-line (haversine) distance stretched by `road_factor` (roads are rarely
    straight; 1.3 is a common urban detour factor) at `speed_kmh`."""

    def __init__(
        self,
        points: Sequence[tuple[float, float]],
        speed_kmh: float,
        road_factor: float = 1.3,
    ) -> None:
        if speed_kmh <= 0:
            raise ValueError("speed must be positive")
        if road_factor < 1:
            raise ValueError("the road factor cannot shorten the straight line")
        for lat, lon in points:
            if not is_place(lat, lon):
                raise ValueError(f"not a latitude/longitude pair: {lat}, {lon}")
        self._points = list(points)
        self._minutes_per_km = road_factor * 60.0 / speed_kmh

    def __len__(self) -> int:
        return len(self._points)

    def kilometres(self, origin: int, destination: int) -> float:
        return kilometres(self._points[origin], self._points[destination])

    def minutes(self, origin: int, destination: int) -> float:
        return self.kilometres(origin, destination) * self._minutes_per_km
