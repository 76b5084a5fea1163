"""Who sees and does what with shipments.

- Supply managers (and the unblinded supply manager) see every shipment of their trials,
  pseudonymously: subject number, site and city, never a name or street. They follow the
  courier and decide on temperature excursions.
- Site staff and investigators see the shipments of their sites' patients (the patient's
  site now: after a transfer the new site follows the kits) and request them; only an
  investigator of the patient's site releases one, with a signature.
- A patient sees their own shipments and confirms receipt of a delivery.
- Trial managers read the shipments of their trials.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from dct_platform import policy
from dct_platform.models import Patient
from dct_platform.models.users import SITE_ROLES
from dct_platform.policy import PolicyContext
from dct_platform.roles import Role
from logistics.shipments.models import Shipment
from logistics.supply.policy import SUPPLY_ROLES

REQUEST = policy.declare_action("logistics.request-shipment", "request a shipment for")
RELEASE = policy.declare_action("logistics.release-shipment", "release")
DISPOSE = policy.declare_action("logistics.dispose-excursion", "decide on the excursion of")
RECEIVE = policy.declare_action("logistics.confirm-receipt", "confirm receipt of")
RECONCILE = policy.declare_action("logistics.reconcile-return", "reconcile")


def _patients_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return Shipment.patient_id.in_(
        select(Patient.id).where(Patient.site_id.in_(ctx.actor.site_ids))
    )


@policy.scope(Shipment, *SUPPLY_ROLES, Role.TRIAL_MANAGER)
def _of_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Shipment.trial_id.in_(ctx.actor.trial_ids)


@policy.scope(Shipment, *SITE_ROLES)
def _of_my_sites_patients(ctx: PolicyContext) -> ColumnElement[bool]:
    return _patients_of_my_sites(ctx)


@policy.scope(Shipment, Role.PATIENT)
def _mine(ctx: PolicyContext) -> ColumnElement[bool]:
    return Shipment.patient_id.in_(select(Patient.id).where(Patient.user_id == ctx.actor.id))


@policy.rule(Patient, REQUEST)
def _request_for_my_sites_patient(ctx: PolicyContext, patient: Patient) -> bool:
    return ctx.actor.role in SITE_ROLES and patient.site_id in ctx.actor.site_ids


@policy.rule(Shipment, RELEASE)
def _investigator_of_the_patients_site(ctx: PolicyContext, shipment: Shipment) -> bool:
    return ctx.actor.role == Role.INVESTIGATOR and shipment.patient.site_id in ctx.actor.site_ids


@policy.rule(Shipment, DISPOSE)
def _supply_manager_of_the_trial(ctx: PolicyContext, shipment: Shipment) -> bool:
    return ctx.actor.role in SUPPLY_ROLES and shipment.trial_id in ctx.actor.trial_ids


@policy.rule(Shipment, RECONCILE)
def _supply_manager_reconciles(ctx: PolicyContext, shipment: Shipment) -> bool:
    return ctx.actor.role in SUPPLY_ROLES and shipment.trial_id in ctx.actor.trial_ids


@policy.rule(Shipment, RECEIVE)
def _the_patient(ctx: PolicyContext, shipment: Shipment) -> bool:
    return ctx.actor.role == Role.PATIENT and shipment.patient.user_id == ctx.actor.id
