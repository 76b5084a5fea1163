"""What the nurse's and the dispatcher's pages and the API read: the visits a person may
see, a nurse's day in route order, the visits that need attention, and a patient's
address when the rules let the reader see it. Reads only; the policy decides the scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from dct_platform import policy
from dct_platform.errors import Forbidden, ValidationFailed
from dct_platform.localtime import local_to_utc
from dct_platform.models import PatientIdentity, User
from dct_platform.roles import Role
from logistics.dispatch.models import (
    HomeHealthProvider,
    HomeVisit,
    HomeVisitStatus,
    NurseProfile,
    PatientHomeLocation,
    PlanRun,
    ProviderCoordinator,
)
from logistics.dispatch.policy import COORDINATOR, DISPATCHERS, SEE_ADDRESS

_WITH = (joinedload(HomeVisit.patient), joinedload(HomeVisit.planned_visit))
OPEN_OR_HELD = (
    HomeVisitStatus.OPEN,
    HomeVisitStatus.ASSIGNED,
    HomeVisitStatus.ACCEPTED,
    HomeVisitStatus.IN_PROGRESS,
)


@dataclass(frozen=True)
class Address:
    line1: str | None
    line2: str | None
    postal_code: str | None
    city: str | None
    country: str | None
    latitude: float | None
    longitude: float | None
    access_notes: str | None

    @property
    def one_line(self) -> str:
        parts = [self.line1, self.line2, " ".join(p for p in (self.postal_code, self.city) if p)]
        return ", ".join(p for p in parts if p)

    @property
    def directions_url(self) -> str | None:
        """A maps link the phone opens in its own navigation app."""
        if self.latitude is not None and self.longitude is not None:
            return (
                "https://www.openstreetmap.org/directions?route=%3B"
                f"{self.latitude:.5f}%2C{self.longitude:.5f}"
            )
        return None


#: Planned visits first in time order, then the rest by the end of their window.
LIST_ORDER = (
    HomeVisit.planned_start.is_(None),
    HomeVisit.planned_start,
    HomeVisit.window_last,
    HomeVisit.id,
)


def visible_query(
    session: Session,
    actor: User,
    now: datetime,
    *,
    first_day: date | None = None,
    last_day: date | None = None,
    statuses: Iterable[HomeVisitStatus] | None = None,
    site_id: int | None = None,
) -> Select[HomeVisit]:
    """The home visits `actor` may see whose window overlaps the days given, as a
    statement a caller can count, order and page."""
    query = select(HomeVisit).where(policy.visible(actor, HomeVisit, session=session, now=now))
    if first_day is not None:
        query = query.where(HomeVisit.window_last >= first_day)
    if last_day is not None:
        query = query.where(HomeVisit.window_first <= last_day)
    if statuses:
        query = query.where(HomeVisit.status.in_(list(statuses)))
    if site_id is not None:
        query = query.where(HomeVisit.site_id == site_id)
    return query


def visible(
    session: Session,
    actor: User,
    now: datetime,
    *,
    first_day: date | None = None,
    last_day: date | None = None,
    statuses: tuple[HomeVisitStatus, ...] | None = None,
    site_id: int | None = None,
    limit: int = 500,
) -> list[HomeVisit]:
    """The first `limit` of `visible_query`, in `LIST_ORDER`, loaded for the pages."""
    query = visible_query(
        session, actor, now, first_day=first_day, last_day=last_day, statuses=statuses,
        site_id=site_id,
    )  # fmt: skip
    return list(session.scalars(query.options(*_WITH).order_by(*LIST_ORDER).limit(limit)).unique())


def nurse_day(session: Session, nurse: User, day: date) -> list[HomeVisit]:
    """Her visits planned on `day` (her local date), in route order."""
    start = local_to_utc(day, datetime.min.time(), nurse.timezone)
    end = local_to_utc(day + timedelta(days=1), datetime.min.time(), nurse.timezone)
    return list(
        session.scalars(
            select(HomeVisit)
            .where(
                HomeVisit.nurse_id == nurse.id,
                HomeVisit.planned_start >= start,
                HomeVisit.planned_start < end,
                HomeVisit.status != HomeVisitStatus.CANCELLED,
            )
            .options(*_WITH)
            .order_by(HomeVisit.planned_start, HomeVisit.id)
        ).unique()
    )


def nurse_upcoming(session: Session, nurse: User, now: datetime, days: int = 14) -> list[HomeVisit]:
    """Her visits from now on (the rest of today first), in time order."""
    return list(
        session.scalars(
            select(HomeVisit)
            .where(
                HomeVisit.nurse_id == nurse.id,
                HomeVisit.status.in_(OPEN_OR_HELD),
                HomeVisit.planned_start < now + timedelta(days=days),
            )
            .options(*_WITH)
            .order_by(HomeVisit.planned_start, HomeVisit.id)
        ).unique()
    )


def needing_attention(session: Session, actor: User, now: datetime) -> list[HomeVisit]:
    """Open visits the planner could not place (with its reason), soonest deadline first."""
    return [
        v for v in visible(session, actor, now, statuses=(HomeVisitStatus.OPEN,)) if v.attention
    ]


def address(session: Session, actor: User, visit: HomeVisit, now: datetime) -> Address | None:
    """The patient's address and home point, or None when the rules do not let `actor`
    see them now (a nurse: only for her visit, from the day before it until it ends)."""
    if not policy.can(actor, SEE_ADDRESS, visit, session=session, now=now):
        return None
    identity = session.get(PatientIdentity, visit.patient_id)
    place = session.get(PatientHomeLocation, visit.patient_id)
    return Address(
        line1=identity.address_line1 if identity else None,
        line2=identity.address_line2 if identity else None,
        postal_code=identity.postal_code if identity else None,
        city=identity.city if identity else None,
        country=identity.country if identity else None,
        latitude=place.latitude if place else None,
        longitude=place.longitude if place else None,
        access_notes=place.access_notes if place else None,
    )


def dispatch_scope(session: Session, actor: User) -> int | None:
    """The provider a dispatcher plans for: a coordinator's own; site staff plan the
    whole network serving their sites (None). Refuses other roles."""
    if actor.role == COORDINATOR:
        provider_id = session.scalar(
            select(ProviderCoordinator.provider_id).where(ProviderCoordinator.user_id == actor.id)
        )
        if provider_id is None:
            raise Forbidden("Your account is not a coordinator of any provider yet.")
        return provider_id
    if actor.role not in DISPATCHERS:
        raise Forbidden("Only dispatchers plan home visits.")
    return None


def nurses_for(session: Session, actor: User) -> list[NurseProfile]:
    """The nurses a dispatcher may pin visits to and sees on the plan."""
    query = (
        select(NurseProfile)
        .join(User, User.id == NurseProfile.user_id)
        .join(HomeHealthProvider, HomeHealthProvider.id == NurseProfile.provider_id)
        .where(
            policy.visible(actor, NurseProfile, session=session),
            NurseProfile.is_active,
            User.is_enabled,
        )
        .options(joinedload(NurseProfile.user), joinedload(NurseProfile.provider))
        .order_by(User.display_name)
    )
    return list(session.scalars(query).unique())


def latest_runs(session: Session, actor: User, limit: int = 5) -> list[PlanRun]:
    provider_id = dispatch_scope(session, actor)
    query = select(PlanRun)
    if provider_id is not None:
        query = query.where(PlanRun.provider_id == provider_id)
    return list(session.scalars(query.order_by(PlanRun.id.desc()).limit(limit)))


def parse_day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed.on_field("day", "A date as YYYY-MM-DD.") from None


def is_nurse(actor: User) -> bool:
    return actor.role == Role.NURSE
