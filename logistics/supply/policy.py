"""Who sees kits, and who sees which treatment arm a kit holds.

Kits are blinded. Supply managers see every kit of their trials, and site staff and
investigators the kits held for their sites' patients, by kit number, lot, expiry and
status: never the arm. Only the unblinded supply manager (a role of this package, given
trials like a supply manager) may see it, through `kit_view`. Couriers will get kit
numbers only, through the shipments they carry.

The arm is also kept out of reach below the policy: `Kit.arm` is deferred and raises when
read unasked, and the audit trail redacts it (`logistics.supply.models`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NotRequired, TypedDict

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import object_session

from dct_platform import policy
from dct_platform.models import Patient, Site, Trial, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.policy import PolicyContext
from dct_platform.roles import Assignment, Role, declare_role
from logistics.supply.models import Depot, DepotKind, Kit, Product

UNBLINDED = declare_role(
    "logistics.unblinded_supply", "Unblinded supply manager", Assignment.TRIALS
)
SEE_ARM = policy.declare_action("logistics.see-arm", "see the treatment arm of")

SUPPLY_ROLES = (Role.SUPPLY_MANAGER, UNBLINDED)


class KitView(TypedDict):
    id: int
    kit_number: str
    product_id: int
    product_code: str
    lot: str
    expiry_date: date
    depot_id: int
    status: str
    patient_id: int | None
    arm: NotRequired[str]  # only for those who may see it


def kit_view(actor: User, kit: Kit, now: datetime) -> KitView:
    """What `actor` may read of a kit they can see (load it through `policy.visible`):
    its public fields, and the arm only if the actor may see it."""
    view = KitView(
        id=kit.id,
        kit_number=kit.kit_number,
        product_id=kit.product_id,
        product_code=kit.product.code,
        lot=kit.lot,
        expiry_date=kit.expiry_date,
        depot_id=kit.depot_id,
        status=kit.status.value,
        patient_id=kit.patient_id,
    )
    if policy.can(actor, SEE_ARM, kit, now=now):
        view["arm"] = _arm_of(kit)
    return view


def _arm_of(kit: Kit) -> str:
    # Read on purpose, in its own statement: `Kit.arm` raises when loaded by accident.
    session = object_session(kit)
    assert session is not None, "a kit read from the database"
    arm = session.scalar(select(Kit.arm).where(Kit.id == kit.id))
    assert arm is not None, "every kit is packed for an arm"
    return arm


@policy.rule(Kit, SEE_ARM)
def _unblinded_in_my_trials(ctx: PolicyContext, kit: Kit) -> bool:
    return ctx.actor.role == UNBLINDED and kit.trial_id in ctx.actor.trial_ids


@policy.scope(Kit, *SUPPLY_ROLES)
def _kits_of_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Kit.trial_id.in_(ctx.actor.trial_ids)


@policy.scope(Kit, *SITE_ROLES)
def _kits_held_for_my_patients(ctx: PolicyContext) -> ColumnElement[bool]:
    # The patient's site now: after a transfer, the new site follows the kits.
    return Kit.patient_id.in_(select(Patient.id).where(Patient.site_id.in_(ctx.actor.site_ids)))


@policy.scope(Product, *SUPPLY_ROLES)
def _products_of_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Product.trial_id.in_(ctx.actor.trial_ids)


@policy.scope(Product, *SITE_ROLES)
def _products_of_my_sites_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Product.trial_id.in_(select(Site.trial_id).where(Site.id.in_(ctx.actor.site_ids)))


@policy.scope(Depot, *SUPPLY_ROLES)
def _central_depots_and_my_trials_pharmacies(ctx: PolicyContext) -> ColumnElement[bool]:
    # Central depots serve many trials and hold nothing of a patient: every supply
    # manager may know them.
    return or_(
        Depot.kind == DepotKind.CENTRAL,
        Depot.site_id.in_(select(Site.id).where(Site.trial_id.in_(ctx.actor.trial_ids))),
    )


@policy.scope(Depot, *SITE_ROLES)
def _my_sites_pharmacies(ctx: PolicyContext) -> ColumnElement[bool]:
    return Depot.site_id.in_(ctx.actor.site_ids)


# The core grants trials, sites and pseudonymous patients to its own trial roles only; the
# unblinded supply manager works on the same records as a supply manager.
@policy.scope(Trial, UNBLINDED)
def _trials_held(ctx: PolicyContext) -> ColumnElement[bool]:
    return Trial.id.in_(ctx.actor.trial_ids)


@policy.scope(Site, UNBLINDED)
def _sites_of_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Site.trial_id.in_(ctx.actor.trial_ids)


@policy.scope(Patient, UNBLINDED)
def _patients_of_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    # Pseudonymous subject records only, as for supply managers: no PatientIdentity scope.
    return Patient.trial_id.in_(ctx.actor.trial_ids)
