"""Who may do a home visit: the rules, as plain Python over plain facts.

A nurse may be given a visit only if her provider serves the patient's site (and region)
under a contract on the visit day, she holds every skill the visit needs, a licence valid
that day for the patient's region, training on the trial's protocol version in force,
the patient lives in her territory, she works that day (her weekly hours, in her zone)
and is not absent, and she has not declined this visit before. The planner asks
`reasons_against` for every pair it considers; the dispatcher's page shows the same words
when nobody qualifies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, time

from logistics.routing.travel import kilometres


@dataclass(frozen=True)
class Licence:
    region: str  # "DE" (the country) or "US-NY" (a subdivision)
    expires_on: date


@dataclass(frozen=True)
class WeeklyShift:
    weekday: int  # 0 Monday
    start: time
    end: time  # time(0) with a start after it: until midnight


@dataclass(frozen=True)
class NurseFacts:
    user_id: int
    name: str
    provider_id: int
    zone: str
    home: tuple[float, float]  # latitude, longitude
    skills: frozenset[str]
    licences: tuple[Licence, ...] = ()
    trainings: frozenset[tuple[int, str]] = frozenset()  # (trial id, protocol version)
    postal_prefixes: tuple[str, ...] = ()
    radius_km: float | None = None
    shifts: tuple[WeeklyShift, ...] = ()
    absences: tuple[tuple[date, date], ...] = ()  # both days included


@dataclass(frozen=True)
class Contract:
    provider_id: int
    site_id: int
    regions: frozenset[str] = frozenset()  # empty: wherever the site's patients live
    valid_from: date = date.min
    valid_to: date | None = None


@dataclass(frozen=True)
class VisitFacts:
    visit_id: int
    site_id: int
    trial_id: int
    protocol_version: str
    skills: frozenset[str]
    country: str | None
    subdivision: str | None  # "NY", "BY": the patient's region code within the country
    postal_code: str | None
    location: tuple[float, float] | None
    declined_by: frozenset[int] = field(default_factory=frozenset)


def region_codes(country: str | None, subdivision: str | None) -> frozenset[str]:
    """The codes a licence or contract may name for a patient's home: the country, and
    the country's subdivision ("US", "US-NY")."""
    if not country:
        return frozenset()
    country = country.strip().upper()
    codes = {country}
    if subdivision and subdivision.strip():
        sub = subdivision.strip().upper()
        codes.add(sub if sub.startswith(f"{country}-") else f"{country}-{sub}")
    return frozenset(codes)


def works_on(nurse: NurseFacts, day: date) -> list[WeeklyShift]:
    """Her shifts on that local date of hers; none on a day she is absent."""
    if any(first <= day <= last for first, last in nurse.absences):
        return []
    return [s for s in nurse.shifts if s.weekday == day.weekday()]


def in_territory(nurse: NurseFacts, visit: VisitFacts) -> bool:
    postal = (visit.postal_code or "").replace(" ", "").upper()
    if postal and any(postal.startswith(p.replace(" ", "").upper()) for p in nurse.postal_prefixes):
        return True
    if nurse.radius_km is not None and visit.location is not None:
        return kilometres(nurse.home, visit.location) <= nurse.radius_km
    return False


def contract_covers(
    contracts: Iterable[Contract], nurse: NurseFacts, visit: VisitFacts, day: date
) -> bool:
    regions = region_codes(visit.country, visit.subdivision)
    for c in contracts:
        if c.provider_id != nurse.provider_id or c.site_id != visit.site_id:
            continue
        if not (c.valid_from <= day and (c.valid_to is None or day <= c.valid_to)):
            continue
        if not c.regions or c.regions & regions:
            return True
    return False


def reasons_against(
    nurse: NurseFacts, visit: VisitFacts, day: date, contracts: Iterable[Contract]
) -> list[str]:
    """Every rule the nurse fails for this visit on this day, in words; empty: she may."""
    reasons = []
    if nurse.user_id in visit.declined_by:
        reasons.append("declined this visit")
    if not contract_covers(contracts, nurse, visit, day):
        reasons.append("her provider does not serve this site or region")
    if missing := visit.skills - nurse.skills:
        reasons.append("lacks " + ", ".join(sorted(missing)))
    regions = region_codes(visit.country, visit.subdivision)
    if not any(lic.region.upper() in regions and lic.expires_on >= day for lic in nurse.licences):
        reasons.append(
            "no licence valid for " + (", ".join(sorted(regions)) or "an unknown region")
        )
    if (visit.trial_id, visit.protocol_version) not in nurse.trainings:
        reasons.append(f"not trained on protocol version {visit.protocol_version}")
    if not in_territory(nurse, visit):
        reasons.append("outside her territory")
    if not works_on(nurse, day):
        reasons.append("not working that day")
    return reasons


def summarize(rejections: dict[str, list[str]]) -> str:
    """Why nobody qualifies, from each nurse's reasons: the reasons shared by all first,
    then the nearest miss."""
    if not rejections:
        return "no nurse of a provider serving this site"
    shared = set.intersection(*(set(r) for r in rejections.values()))
    if shared:
        return "no qualified nurse: every nurse " + "; ".join(sorted(shared))
    name, reasons = min(rejections.items(), key=lambda item: (len(item[1]), item[0]))
    return f"no qualified nurse (nearest: {name}, who {'; '.join(reasons)})"
