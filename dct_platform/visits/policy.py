"""Who sees what of visits: the patient their own; the staff of the patient's current
site their patients' visits, bookings and requests; the trial manager those of their
trials (read only: booking and recording are for the patient and the site)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from dct_platform import policy
from dct_platform.models import Patient
from dct_platform.models.users import SITE_ROLES
from dct_platform.policy import PolicyContext
from dct_platform.roles import Role
from dct_platform.visits.models import (
    Booking,
    PlannedVisit,
    ProtocolDeviation,
    UnscheduledRequest,
)

_MODELS = (PlannedVisit, Booking, UnscheduledRequest, ProtocolDeviation)


def _of_patients(model: type, patients: ColumnElement[bool]) -> ColumnElement[bool]:
    column = model.patient_id  # type: ignore[attr-defined]
    return column.in_(select(Patient.id).where(patients))  # type: ignore[no-any-return]


for _model in _MODELS:

    @policy.scope(_model, *SITE_ROLES)
    def _of_my_sites(ctx: PolicyContext, model: type = _model) -> ColumnElement[bool]:
        return _of_patients(model, Patient.site_id.in_(ctx.actor.site_ids))

    @policy.scope(_model, Role.TRIAL_MANAGER)
    def _in_my_trials(ctx: PolicyContext, model: type = _model) -> ColumnElement[bool]:
        return _of_patients(model, Patient.trial_id.in_(ctx.actor.trial_ids))

    @policy.scope(_model, Role.PATIENT)
    def _mine(ctx: PolicyContext, model: type = _model) -> ColumnElement[bool]:
        return _of_patients(model, Patient.user_id == ctx.actor.id)
