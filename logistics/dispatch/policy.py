"""Who sees and does what in home-nurse dispatch.

- A mobile nurse sees the home visits assigned to her (and their patients, pseudonymous),
  nothing of her colleagues'. She sees a patient's address and home location only for a
  visit of hers, from the start of the day before the visit (patient's local date) until
  the visit ends (checked out, or the end of its day).
- A provider's coordinator (a role of this package) dispatches that provider's nurses and
  sees the home visits of the sites the provider serves, and their patients pseudonymously.
- Site staff and investigators see their sites' home visits and dispatch them; trial
  managers read those of their trials.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, false, select

from dct_platform import policy
from dct_platform.models import Patient, PatientIdentity
from dct_platform.models.users import SITE_ROLES
from dct_platform.policy import PolicyContext
from dct_platform.roles import Role, declare_role
from dct_platform.timeutil import to_local
from logistics.dispatch.models import (
    HELD_BY_NURSE,
    HomeVisit,
    HomeVisitStatus,
    NurseProfile,
    PatientHomeLocation,
    ProviderContract,
    ProviderCoordinator,
)

COORDINATOR = declare_role("logistics.provider_coordinator", "Home-health coordinator")
DISPATCH = policy.declare_action("logistics.dispatch", "dispatch")
WORK = policy.declare_action("logistics.work-visit", "work on")
SEE_ADDRESS = policy.declare_action("logistics.see-address", "see the home address of")

DISPATCHERS = (*SITE_ROLES, COORDINATOR)


def coordinator_provider(ctx: PolicyContext) -> ColumnElement[int]:
    return (
        select(ProviderCoordinator.provider_id)
        .where(ProviderCoordinator.user_id == ctx.actor.id)
        .scalar_subquery()
    )


def _served_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return HomeVisit.site_id.in_(
        select(ProviderContract.site_id).where(
            ProviderContract.provider_id == coordinator_provider(ctx)
        )
    )


@policy.scope(HomeVisit, Role.NURSE)
def _assigned_to_me(ctx: PolicyContext) -> ColumnElement[bool]:
    return HomeVisit.nurse_id == ctx.actor.id


@policy.scope(HomeVisit, COORDINATOR)
def _of_served_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return _served_sites(ctx)


@policy.scope(HomeVisit, *SITE_ROLES)
def _of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return HomeVisit.site_id.in_(ctx.actor.site_ids)


@policy.scope(HomeVisit, Role.TRIAL_MANAGER)
def _of_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return HomeVisit.patient_id.in_(
        select(Patient.id).where(Patient.trial_id.in_(ctx.actor.trial_ids))
    )


@policy.scope(Patient, Role.NURSE)
def _patients_of_my_visits(ctx: PolicyContext) -> ColumnElement[bool]:
    return Patient.id.in_(select(HomeVisit.patient_id).where(HomeVisit.nurse_id == ctx.actor.id))


@policy.scope(Patient, COORDINATOR)
def _patients_with_served_visits(ctx: PolicyContext) -> ColumnElement[bool]:
    return Patient.id.in_(select(HomeVisit.patient_id).where(_served_sites(ctx)))


@policy.scope(NurseProfile, Role.NURSE)
def _my_profile(ctx: PolicyContext) -> ColumnElement[bool]:
    return NurseProfile.user_id == ctx.actor.id


@policy.scope(NurseProfile, COORDINATOR)
def _my_providers_nurses(ctx: PolicyContext) -> ColumnElement[bool]:
    return NurseProfile.provider_id == coordinator_provider(ctx)


@policy.scope(NurseProfile, *SITE_ROLES)
def _nurses_serving_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return NurseProfile.provider_id.in_(
        select(ProviderContract.provider_id).where(ProviderContract.site_id.in_(ctx.actor.site_ids))
    )


@policy.scope(PatientHomeLocation, *SITE_ROLES)
def _locations_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return PatientHomeLocation.patient_id.in_(
        select(Patient.id).where(Patient.site_id.in_(ctx.actor.site_ids))
    )


@policy.scope(PatientIdentity, Role.NURSE)
@policy.scope(PatientHomeLocation, Role.NURSE)
def _no_address_in_lists(ctx: PolicyContext) -> ColumnElement[bool]:
    # Lists never carry a nurse's patients' addresses: she reads one through the
    # SEE_ADDRESS rule, for one visit at a time.
    return false()


def address_open(visit: HomeVisit, zone: str, now: datetime) -> bool:
    """The time the assigned nurse may read the address: from 00:00 of the day before the
    visit (patient's local date) until the visit is over."""
    if visit.planned_start is None or visit.status not in (*HELD_BY_NURSE,):
        return False
    visit_day = to_local(visit.planned_start, zone).date()
    today = to_local(now, zone).date()
    return visit_day - timedelta(days=1) <= today <= visit_day


@policy.rule(HomeVisit, SEE_ADDRESS)
def _assigned_nurse_near_the_day(ctx: PolicyContext, visit: HomeVisit) -> bool:
    if ctx.actor.role in SITE_ROLES:
        return visit.site_id in ctx.actor.site_ids
    if ctx.actor.role != Role.NURSE or visit.nurse_id != ctx.actor.id:
        return False
    return address_open(visit, visit.patient.timezone, ctx.now)


@policy.rule(HomeVisit, WORK)
def _assigned_nurse(ctx: PolicyContext, visit: HomeVisit) -> bool:
    return ctx.actor.role == Role.NURSE and visit.nurse_id == ctx.actor.id


@policy.rule(HomeVisit, DISPATCH)
def _dispatcher(ctx: PolicyContext, visit: HomeVisit) -> bool:
    if ctx.actor.role in SITE_ROLES:
        return visit.site_id in ctx.actor.site_ids
    if ctx.actor.role != COORDINATOR or ctx.session is None:
        return False
    return (
        ctx.session.scalar(
            select(ProviderContract.id).where(
                ProviderContract.site_id == visit.site_id,
                ProviderContract.provider_id
                == select(ProviderCoordinator.provider_id)
                .where(ProviderCoordinator.user_id == ctx.actor.id)
                .scalar_subquery(),
            )
        )
        is not None
    )


def finished(visit: HomeVisit) -> bool:
    return visit.status in (
        HomeVisitStatus.COMPLETED,
        HomeVisitStatus.CANCELLED,
        HomeVisitStatus.MISSED,
    )
