"""The package's own action and role, and rules that need the session and the time."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from dct_platform import policy
from dct_platform.models import Patient
from dct_platform.policy import PolicyContext
from dct_platform.roles import Role, declare_role
from dct_platform.timeutil import to_local
from tests.example_package.models import ExampleHomeVisit

SEE_ADDRESS = policy.declare_action("example.see-address", "see the home address of")
# A role of the package's own: it coordinates home visits across sites, and sees the
# patients who have one (pseudonymous subject records only: no identity scope).
COORDINATOR = declare_role("example.visit_coordinator", "Home-visit coordinator")


@policy.scope(Patient, COORDINATOR)
def _patients_with_a_visit(ctx: PolicyContext) -> ColumnElement[bool]:
    return Patient.id.in_(select(ExampleHomeVisit.patient_id))


@policy.scope(Patient, Role.NURSE)
def _patients_of_my_visits(ctx: PolicyContext) -> ColumnElement[bool]:
    return Patient.id.in_(
        select(ExampleHomeVisit.patient_id).where(ExampleHomeVisit.nurse_id == ctx.actor.id)
    )


@policy.rule(Patient, SEE_ADDRESS)
def _on_the_visit_day(ctx: PolicyContext, patient: Patient) -> bool:
    # The visit day is the patient's local date: a visit on the 12th in Tokyo starts
    # while it is still the 11th in UTC.
    if ctx.actor.role != Role.NURSE or ctx.session is None:
        return False
    today = to_local(ctx.now, patient.timezone).date()
    return (
        ctx.session.scalar(
            select(ExampleHomeVisit.id).where(
                ExampleHomeVisit.patient_id == patient.id,
                ExampleHomeVisit.nurse_id == ctx.actor.id,
                ExampleHomeVisit.visit_date == today,
            )
        )
        is not None
    )
