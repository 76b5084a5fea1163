"""The dispatch network's records: providers and their contracts with sites, coordinators,
nurse profiles (licences, training, hours, absences), what a protocol visit needs at
home, and where a patient's home is.

Each change is audited; callers pass the acting user (or a `system` name for seeds and
imports) and `now`, and commit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.localtime import parse_clock_time
from dct_platform.models import Site, Trial, User
from dct_platform.roles import Role
from logistics.dispatch import runs
from logistics.dispatch.models import (
    HELD_BY_NURSE,
    HomeHealthProvider,
    HomeVisit,
    HomeVisitRequirement,
    NurseAbsence,
    NurseHours,
    NurseLicence,
    NurseProfile,
    NurseTraining,
    PatientHomeLocation,
    ProviderContract,
    ProviderCoordinator,
)
from logistics.dispatch.policy import COORDINATOR
from logistics.routing.travel import is_place

Hours = tuple[int, str, str]  # weekday (0 Monday), "HH:MM", "HH:MM"


def point(lat: float, lon: float) -> tuple[float, float]:
    """A latitude and longitude someone entered, refused (422 on `latitude`) unless it is a
    place on Earth."""
    if not is_place(lat, lon):
        raise ValidationFailed.on_field("latitude", "Not a place on Earth.")
    return lat, lon


def _clock(field: str, value: str, end: bool = False) -> str:
    try:
        parse_clock_time(value, end=end)
    except ValueError:
        raise ValidationFailed.on_field(field, "A time as HH:MM.") from None
    return value


def create_provider(
    session: Session, actor: User | None, now: datetime, name: str, *, email: str | None = None,
    phone: str | None = None, system: str | None = None,
) -> HomeHealthProvider:  # fmt: skip
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed.on_field("name", "A name of up to 200 characters.")
    if session.scalar(select(HomeHealthProvider.id).where(HomeHealthProvider.name == name)):
        raise Conflict(f"A provider named {name} exists.")
    provider = HomeHealthProvider(
        name=name, email=email, phone=phone, is_active=True, created_at=now, updated_at=now
    )
    with audit.acting(session, actor, now, what=f"Add provider {name}", system=system):
        session.add(provider)
        session.flush()
    return provider


def add_contract(
    session: Session, actor: User | None, now: datetime, provider: HomeHealthProvider,
    site: Site, *, regions: Iterable[str] = (), valid_from: date, valid_to: date | None = None,
    reference: str | None = None, system: str | None = None,
) -> ProviderContract:  # fmt: skip
    if valid_to is not None and valid_to < valid_from:
        raise ValidationFailed.on_field("valid_to", "The contract ends before it starts.")
    contract = ProviderContract(
        provider_id=provider.id,
        site_id=site.id,
        regions=sorted({r.strip().upper() for r in regions}),
        reference=reference,
        valid_from=valid_from,
        valid_to=valid_to,
        created_at=now,
        updated_at=now,
    )
    what = f"Contract of {provider.name} with site {site.site_number}"
    with audit.acting(session, actor, now, what=what, system=system):
        session.add(contract)
        session.flush()
    return contract


def add_coordinator(
    session: Session, actor: User | None, now: datetime, provider: HomeHealthProvider,
    user: User, *, system: str | None = None,
) -> ProviderCoordinator:  # fmt: skip
    if user.role != COORDINATOR:
        raise ValidationFailed.on_field("user_id", "The account must have the coordinator role.")
    row = ProviderCoordinator(user_id=user.id, provider_id=provider.id)
    with audit.acting(session, actor, now, what=f"Coordinator of {provider.name}", system=system):
        session.add(row)
        session.flush()
    return row


def set_nurse_profile(
    session: Session, actor: User | None, now: datetime, nurse: User,
    provider: HomeHealthProvider, *, home: tuple[float, float], skills: Sequence[str],
    postal_prefixes: Sequence[str] = (), radius_km: float | None = None,
    languages: Sequence[str] = (), system: str | None = None,
) -> NurseProfile:  # fmt: skip
    if nurse.role != Role.NURSE:
        raise ValidationFailed.on_field("user_id", "The account must have the nurse role.")
    if radius_km is not None and not (math.isfinite(radius_km) and radius_km > 0):
        raise ValidationFailed.on_field("radius_km", "A positive distance.")
    if not postal_prefixes and radius_km is None:
        raise ValidationFailed.on_field("postal_prefixes", "Give postal areas or a radius.")
    lat, lon = point(*home)
    profile = session.get(NurseProfile, nurse.id) or NurseProfile(user_id=nurse.id, created_at=now)
    what = f"Nurse profile of {nurse.display_name}"
    with audit.acting(session, actor, now, what=what, system=system):
        profile.provider_id = provider.id
        profile.latitude, profile.longitude = lat, lon
        profile.skills = sorted({s.strip() for s in skills if s.strip()})
        profile.postal_prefixes = sorted({p.strip().upper() for p in postal_prefixes if p.strip()})
        profile.radius_km = radius_km
        profile.languages = sorted({x.strip() for x in languages if x.strip()})
        profile.is_active = True
        profile.updated_at = now
        session.add(profile)
        session.flush()
    return profile


def add_licence(
    session: Session, actor: User | None, now: datetime, profile: NurseProfile, region: str,
    number: str, expires_on: date, *, system: str | None = None,
) -> NurseLicence:  # fmt: skip
    licence = NurseLicence(
        nurse_id=profile.user_id, region=region.strip().upper(), number=number.strip(),
        expires_on=expires_on, created_at=now, updated_at=now,
    )  # fmt: skip
    with audit.acting(session, actor, now, what=f"Licence {licence.region}", system=system):
        session.add(licence)
        session.flush()
    return licence


def add_training(
    session: Session, actor: User | None, now: datetime, profile: NurseProfile, trial: Trial,
    protocol_version: str, completed_on: date, *, system: str | None = None,
) -> NurseTraining:  # fmt: skip
    training = NurseTraining(
        nurse_id=profile.user_id, trial_id=trial.id, protocol_version=protocol_version,
        completed_on=completed_on,
    )  # fmt: skip
    what = f"Training on {trial.protocol_number} v{protocol_version}"
    with audit.acting(session, actor, now, what=what, system=system):
        session.add(training)
        session.flush()
    return training


def set_hours(
    session: Session, actor: User | None, now: datetime, profile: NurseProfile,
    hours: Iterable[Hours], *, system: str | None = None,
) -> list[NurseHours]:  # fmt: skip
    """Replace her weekly hours (in her zone)."""
    rows = []
    for weekday, start, end in hours:
        if not 0 <= weekday <= 6:
            raise ValidationFailed.on_field("weekday", "0 (Monday) to 6 (Sunday).")
        rows.append(
            NurseHours(
                nurse_id=profile.user_id, weekday=weekday, start_time=_clock("start_time", start),
                end_time=_clock("end_time", end, end=True),
            )
        )  # fmt: skip
    with audit.acting(session, actor, now, what="Weekly hours", system=system):
        mine = select(NurseHours).where(NurseHours.nurse_id == profile.user_id)
        for old in session.scalars(mine):
            session.delete(old)
        session.add_all(rows)
        session.flush()
    return rows


def add_absence(
    session: Session, actor: User | None, now: datetime, profile: NurseProfile, first_day: date,
    last_day: date, reason: str | None = None, *, system: str | None = None,
) -> NurseAbsence:  # fmt: skip
    """Leave or a sick call. Visits she holds on those days are re-planned at once (a run
    is queued): they move to colleagues, everything else stays where it is."""
    if last_day < first_day:
        raise ValidationFailed.on_field("last_day", "The absence ends before it starts.")
    absence = NurseAbsence(
        nurse_id=profile.user_id, first_day=first_day, last_day=last_day, reason=reason,
        created_at=now, updated_at=now,
    )  # fmt: skip
    with audit.acting(session, actor, now, reason, what="Absence", system=system):
        session.add(absence)
        session.flush()
    held = session.scalar(
        select(HomeVisit.id)
        .where(
            HomeVisit.nurse_id == profile.user_id,
            HomeVisit.status.in_(HELD_BY_NURSE),
            HomeVisit.window_last >= first_day,
        )
        .limit(1)
    )
    if held is not None:
        start = max(first_day, now.date())
        days = min((last_day - start).days + 1, runs.MAX_DAYS)
        if days > 0:
            runs.queue(session, actor, now, start, days)
    return absence


def set_requirement(
    session: Session, actor: User | None, now: datetime, definition_id: int, *,
    skills: Sequence[str], procedures: Sequence[dict[str, str]], day_start: str = "08:00",
    day_end: str = "18:00", companion: dict[str, Any] | None = None, system: str | None = None,
) -> HomeVisitRequirement:  # fmt: skip
    """What the protocol visit needs at home; `companion` a second nurse's part (see
    `HomeVisitRequirement.companion`)."""
    row = session.get(HomeVisitRequirement, definition_id) or HomeVisitRequirement(
        definition_id=definition_id, created_at=now
    )
    with audit.acting(session, actor, now, what="Home-visit requirements", system=system):
        row.skills = _skills(skills)
        row.procedures = _procedures(procedures)
        row.day_start = _clock("day_start", day_start)
        row.day_end = _clock("day_end", day_end, end=True)
        row.companion = _companion(companion) if companion else None
        row.updated_at = now
        session.add(row)
        session.flush()
    return row


def _skills(skills: Iterable[str]) -> list[str]:
    return sorted({s.strip() for s in skills if s.strip()})


def _procedures(procedures: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    codes = [p.get("code", "").strip() for p in procedures]
    if any(not c for c in codes) or len(set(codes)) != len(codes):
        raise ValidationFailed.on_field("procedures", "Each procedure needs its own code.")
    return [{"code": p["code"].strip(), "label": p.get("label") or p["code"]} for p in procedures]


def _companion(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec.get("kind")
    if kind not in ("simultaneous", "sequential"):
        raise ValidationFailed.on_field("companion.kind", "simultaneous or sequential.")
    duration = int(spec.get("duration") or 0)
    if not 5 <= duration <= 480:
        raise ValidationFailed.on_field("companion.duration", "5 to 480 minutes.")
    min_gap, max_gap = int(spec.get("min_gap") or 0), spec.get("max_gap")
    if kind == "sequential" and (min_gap < 0 or (max_gap is not None and int(max_gap) < min_gap)):
        raise ValidationFailed.on_field("companion.max_gap", "A gap from min_gap to max_gap.")
    return {
        "kind": kind,
        "duration": duration,
        "skills": _skills(spec.get("skills") or []),
        "procedures": _procedures(spec.get("procedures") or []),
        "min_gap": min_gap if kind == "sequential" else 0,
        "max_gap": (None if max_gap is None else int(max_gap)) if kind == "sequential" else 0,
    }


def set_home_location(
    session: Session, actor: User | None, now: datetime, patient_id: int, latitude: float,
    longitude: float, access_notes: str | None = None, *, system: str | None = None,
) -> PatientHomeLocation:  # fmt: skip
    lat, lon = point(latitude, longitude)
    row = session.get(PatientHomeLocation, patient_id) or PatientHomeLocation(
        patient_id=patient_id, created_at=now
    )
    with audit.acting(session, actor, now, what="Home location", system=system):
        row.latitude, row.longitude = lat, lon
        row.access_notes = access_notes
        row.updated_at = now
        session.add(row)
        session.flush()
    return row
