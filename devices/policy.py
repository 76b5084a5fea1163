"""Who sees and acts on device data: the staff of the patient's current site, and the
trial's managers (read only)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from dct_platform import policy
from dct_platform.models import Patient
from dct_platform.models.users import SITE_ROLES
from dct_platform.policy import PolicyContext
from dct_platform.roles import Role
from devices.models import DeviceAlert

ACKNOWLEDGE_ALERT = policy.declare_action("devices.acknowledge-alert", "acknowledge")
# Who reads device data (readings, alerts, coverage): it is clinical data, so not the supply
# manager, who sees subject numbers for kits only.
DATA_READERS = (*SITE_ROLES, Role.TRIAL_MANAGER)


@policy.scope(DeviceAlert, *SITE_ROLES)
def _alerts_of_my_patients(ctx: PolicyContext) -> ColumnElement[bool]:
    # The site caring for the patient now acts on the device, whoever raised it before.
    return DeviceAlert.patient_id.in_(
        select(Patient.id).where(Patient.site_id.in_(ctx.actor.site_ids))
    )


@policy.scope(DeviceAlert, Role.TRIAL_MANAGER)
def _alerts_in_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return DeviceAlert.patient_id.in_(
        select(Patient.id).where(Patient.trial_id.in_(ctx.actor.trial_ids))
    )


@policy.rule(DeviceAlert, ACKNOWLEDGE_ALERT)
def _staff_of_the_patients_site(ctx: PolicyContext, alert: DeviceAlert) -> bool:
    return ctx.actor.role in SITE_ROLES and alert.patient.site_id in ctx.actor.site_ids
