"""Which site, and which investigator, was responsible for a patient at a given time.

Every remote activity records this at the time it happened (a reading's effective time, a
visit's start), so that per-site views stay right after a patient is transferred. The
patient's time zone has the same kind of history (`timezone_at`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from dct_platform.errors import NotFound
from dct_platform.models import PatientSiteAssignment, PatientTimezonePeriod, SiteInvestigatorPeriod


@dataclass(frozen=True)
class Responsibility:
    patient_id: int
    site_id: int
    investigator_id: int | None


_Period = type[PatientSiteAssignment] | type[PatientTimezonePeriod] | type[SiteInvestigatorPeriod]


def _covers(model: _Period, at: datetime) -> ColumnElement[bool]:
    # Periods are half-open, [valid_from, valid_to), so a hand-over instant has one owner.
    return and_(model.valid_from <= at, or_(model.valid_to.is_(None), model.valid_to > at))


def owning_site_id_at(session: Session, patient_id: int, at: datetime) -> int:
    site_id = session.scalar(
        select(PatientSiteAssignment.site_id).where(
            PatientSiteAssignment.patient_id == patient_id, _covers(PatientSiteAssignment, at)
        )
    )
    if site_id is None:
        raise NotFound(f"Patient {patient_id} was not assigned to any site at {at.isoformat()}.")
    return site_id


def timezone_at(session: Session, patient_id: int, at: datetime) -> str:
    """The IANA zone the patient lived by at `at`: schedule and show a past occurrence in
    this zone, not in today's, so it stays where it was when the patient saw it."""
    name = session.scalar(
        select(PatientTimezonePeriod.timezone).where(
            PatientTimezonePeriod.patient_id == patient_id, _covers(PatientTimezonePeriod, at)
        )
    )
    if name is None:
        raise NotFound(f"Patient {patient_id} had no time zone recorded at {at.isoformat()}.")
    return name


def investigator_id_at(session: Session, site_id: int, at: datetime) -> int | None:
    return session.scalar(
        select(SiteInvestigatorPeriod.investigator_id).where(
            SiteInvestigatorPeriod.site_id == site_id, _covers(SiteInvestigatorPeriod, at)
        )
    )


def responsibility_at(session: Session, patient_id: int, at: datetime) -> Responsibility:
    site_id = owning_site_id_at(session, patient_id, at)
    return Responsibility(patient_id, site_id, investigator_id_at(session, site_id, at))


def responsibilities_at(
    session: Session, pairs: list[tuple[int, datetime]]
) -> dict[tuple[int, datetime], int]:
    """Owning site for many (patient, time) pairs in one query, for batch ingestion: the
    periods are grouped by patient and each time is found by bisection."""
    if not pairs:
        return {}
    periods: dict[int, list[tuple[datetime, datetime | None, int]]] = {}
    for patient_id, site_id, valid_from, valid_to in session.execute(
        select(
            PatientSiteAssignment.patient_id,
            PatientSiteAssignment.site_id,
            PatientSiteAssignment.valid_from,
            PatientSiteAssignment.valid_to,
        )
        .where(PatientSiteAssignment.patient_id.in_({p for p, _ in pairs}))
        .order_by(PatientSiteAssignment.patient_id, PatientSiteAssignment.valid_from)
    ):
        periods.setdefault(patient_id, []).append((valid_from, valid_to, site_id))
    starts = {pid: [start for start, _, _ in rows] for pid, rows in periods.items()}
    found: dict[tuple[int, datetime], int] = {}
    for patient_id, at in pairs:
        rows = periods.get(patient_id)
        if not rows:
            continue
        # The last period starting at or before `at`; periods never overlap.
        i = bisect_right(starts[patient_id], at) - 1
        if i >= 0:
            valid_from, valid_to, site_id = rows[i]
            if valid_to is None or at < valid_to:
                found[(patient_id, at)] = site_id
    return found
