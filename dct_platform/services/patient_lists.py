"""The patient list as staff search it: one query for the pages and the API, so both find,
filter, sort and page the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session, joinedload

from dct_platform import policy
from dct_platform.models import Patient, PatientIdentity, User
from dct_platform.models.patients import PatientStatus

SORTS: dict[str, tuple[ColumnElement[Any], ...]] = {
    "subject": (Patient.subject_number.asc(),),
    "-subject": (Patient.subject_number.desc(),),
    "status": (Patient.status.asc(), Patient.subject_number.asc()),
    "enrolled": (Patient.created_at.asc(), Patient.id.asc()),
    "-enrolled": (Patient.created_at.desc(), Patient.id.desc()),
}
DEFAULT_SORT = "subject"
MAX_PAGE_SIZE = 100
MAX_QUERY = 100


@dataclass(frozen=True)
class PatientCriteria:
    q: str = ""
    status: PatientStatus | None = None
    site_id: int | None = None
    sort: str = DEFAULT_SORT
    page: int = 1
    page_size: int = 25


@dataclass(frozen=True)
class PatientPage:
    patients: list[Patient]
    total: int
    criteria: PatientCriteria

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.criteria.page_size))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(session: Session, actor: User, q: str, now: datetime | None) -> ColumnElement[bool]:
    pattern = f"%{_escape_like(q.lower())}%"
    by_number = func.lower(Patient.subject_number).like(pattern, escape="\\")
    # Names are personal data: searched only where the actor may see the identity record,
    # so a search cannot reveal a name the actor could not read.
    by_name = exists(
        select(PatientIdentity.patient_id).where(
            PatientIdentity.patient_id == Patient.id,
            policy.visible(actor, PatientIdentity, session=session, now=now),
            or_(
                func.lower(PatientIdentity.given_name).like(pattern, escape="\\"),
                func.lower(PatientIdentity.family_name).like(pattern, escape="\\"),
                func.lower(PatientIdentity.given_name + " " + PatientIdentity.family_name).like(
                    pattern, escape="\\"
                ),
            ),
        )
    )
    return or_(by_number, by_name)


def find_patients(
    session: Session, actor: User, criteria: PatientCriteria, now: datetime | None = None
) -> PatientPage:
    """The actor's visible patients matching `criteria`, one page of them and the total."""
    conditions = [policy.visible(actor, Patient, session=session, now=now)]
    q = criteria.q.strip()[:MAX_QUERY]
    if q:
        conditions.append(_matches(session, actor, q, now))
    if criteria.status is not None:
        conditions.append(Patient.status == criteria.status)
    if criteria.site_id is not None:
        conditions.append(Patient.site_id == criteria.site_id)
    total = session.scalar(select(func.count(Patient.id)).where(*conditions)) or 0
    size = min(max(criteria.page_size, 1), MAX_PAGE_SIZE)
    order = SORTS.get(criteria.sort, SORTS[DEFAULT_SORT])
    patients = list(
        session.scalars(
            select(Patient)
            .where(*conditions)
            .order_by(*order)
            .offset((max(criteria.page, 1) - 1) * size)
            .limit(size)
            .options(joinedload(Patient.site))
        )
    )
    return PatientPage(patients, total, criteria)
