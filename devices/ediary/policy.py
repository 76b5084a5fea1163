"""Who sees and does what with diaries: the patient fills their own; the staff of the
patient's current site read them and correct them with a reason; the trial manager reads."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from dct_platform import policy
from dct_platform.models import Patient
from dct_platform.models.users import SITE_ROLES
from dct_platform.policy import PolicyContext
from dct_platform.roles import Role
from devices.ediary.models import Entry, Occurrence

SUBMIT = policy.declare_action("ediary.submit", "fill in the diary of")
CORRECT = policy.declare_action("ediary.correct", "correct")


def _my_patients(ctx: PolicyContext) -> ColumnElement[bool]:
    return Patient.site_id.in_(ctx.actor.site_ids)


@policy.scope(Entry, *SITE_ROLES)
def _entries_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return Entry.patient_id.in_(select(Patient.id).where(_my_patients(ctx)))


@policy.scope(Occurrence, *SITE_ROLES)
def _occurrences_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return Occurrence.patient_id.in_(select(Patient.id).where(_my_patients(ctx)))


@policy.scope(Entry, Role.TRIAL_MANAGER)
def _entries_in_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Entry.patient_id.in_(select(Patient.id).where(Patient.trial_id.in_(ctx.actor.trial_ids)))


@policy.scope(Occurrence, Role.TRIAL_MANAGER)
def _occurrences_in_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Occurrence.patient_id.in_(
        select(Patient.id).where(Patient.trial_id.in_(ctx.actor.trial_ids))
    )


@policy.scope(Entry, Role.PATIENT)
def _my_entries(ctx: PolicyContext) -> ColumnElement[bool]:
    return Entry.patient_id.in_(select(Patient.id).where(Patient.user_id == ctx.actor.id))


@policy.scope(Occurrence, Role.PATIENT)
def _my_occurrences(ctx: PolicyContext) -> ColumnElement[bool]:
    return Occurrence.patient_id.in_(select(Patient.id).where(Patient.user_id == ctx.actor.id))


@policy.rule(Patient, SUBMIT)
def _only_the_patient(ctx: PolicyContext, patient: Patient) -> bool:
    return ctx.actor.role == Role.PATIENT and patient.user_id == ctx.actor.id


@policy.rule(Entry, CORRECT)
def _staff_of_the_patients_site(ctx: PolicyContext, entry: Entry) -> bool:
    patient = entry.occurrence.patient
    return ctx.actor.role in SITE_ROLES and patient.site_id in ctx.actor.site_ids
