"""Which site, and which investigator, was responsible for a patient at a given time.

Every remote activity records this at the time it happened (a reading's effective time, a
visit's start), so that per-site views stay right after a patient is transferred. The
patient's time zone has the same kind of history (`timezone_at`).
"""

from __future__ import annotations

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
    """Owning site for many (patient, time) pairs in one query, for batch ingestion."""
    if not pairs:
        return {}
    patient_ids = {p for p, _ in pairs}
    rows = session.execute(
        select(
            PatientSiteAssignment.patient_id,
            PatientSiteAssignment.site_id,
            PatientSiteAssignment.valid_from,
            PatientSiteAssignment.valid_to,
        ).where(PatientSiteAssignment.patient_id.in_(patient_ids))
    ).all()
    found: dict[tuple[int, datetime], int] = {}
    for patient_id, at in pairs:
        for row in rows:
            if (
                row.patient_id == patient_id
                and row.valid_from <= at
                and (row.valid_to is None or row.valid_to > at)
            ):
                found[(patient_id, at)] = row.site_id
                break
    return found
