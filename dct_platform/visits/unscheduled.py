"""Unscheduled visits: a patient asks for a visit outside the schedule (a side effect,
a question) with one tap; the request lands in the queue of the site responsible for
them now; staff plan a visit for it (which the patient then books like any other) or
close it with a note."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.models import Patient, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.roles import Role, is_role
from dct_platform.visits.models import (
    Modality,
    PlannedStatus,
    PlannedVisit,
    RequestStatus,
    UnscheduledRequest,
)
from dct_platform.visits.planning import local_day

CATEGORIES = {"side_effect": "A side effect", "other": "Something else"}
MAX_DETAILS = 1000


def request_visit(
    session: Session,
    actor: User,
    patient: Patient,
    now: datetime,
    *,
    category: str,
    details: str | None = None,
) -> UnscheduledRequest:
    """The patient asks for a visit; it goes to the site responsible for them now."""
    if actor.role != Role.PATIENT or patient.user_id != actor.id:
        raise Forbidden("Only the patient can ask for a visit of their own.")
    if category not in CATEGORIES:
        raise ValidationFailed.on_field("category", f"Choose one of: {', '.join(CATEGORIES)}.")
    text = (details or "").strip()
    if len(text) > MAX_DETAILS:
        raise ValidationFailed.on_field(
            "details", f"Please keep it under {MAX_DETAILS} characters."
        )
    request = UnscheduledRequest(
        patient_id=patient.id,
        site_id=patient.site_id,
        category=category,
        details=text or None,
        requested_at=now,
        status=RequestStatus.OPEN,
        created_at=now,
        updated_at=now,
    )
    with audit.acting(session, actor, now, what=f"Visit request of {patient.subject_number}"):
        session.add(request)
    return request


def _staff(actor: User, request: UnscheduledRequest) -> None:
    # An open request follows the patient: after a transfer the new site handles it (the
    # queue shows it there, policy.py), and it is recorded as handled by that site.
    if actor.role not in SITE_ROLES or request.patient.site_id not in actor.site_ids:
        raise Forbidden("Only the staff of the patient's site handle this request.")
    if request.status != RequestStatus.OPEN:
        raise Conflict(f"This request is {request.status.value} already.")


def plan_for_request(
    session: Session,
    actor: User,
    request: UnscheduledRequest,
    now: datetime,
    *,
    first_day: date,
    last_day: date,
    duration_minutes: int = 30,
    modalities: list[str] | None = None,
    staff_role: str = Role.INVESTIGATOR,
) -> PlannedVisit:
    """Plan an unscheduled visit for the request, in a window of the patient's dates."""
    _staff(actor, request)
    today = local_day(session, request.patient_id, now)
    if first_day < today:
        raise ValidationFailed.on_field("first_day", "The window cannot start in the past.")
    if first_day > today + timedelta(days=365):
        raise ValidationFailed.on_field("first_day", "Plan the visit within the coming year.")
    if last_day < first_day:
        raise ValidationFailed.on_field("last_day", "The window ends before it starts.")
    if (last_day - first_day).days > 60:
        raise ValidationFailed.on_field("last_day", "Keep the window within 60 days.")
    if not 5 <= duration_minutes <= 480:
        raise ValidationFailed.on_field("duration_minutes", "A visit lasts from 5 to 480 minutes.")
    chosen = modalities or [Modality.TELEHEALTH.value]
    if any(m not in set(Modality) for m in chosen):
        raise ValidationFailed.on_field(
            "modalities", f"Choose from: {', '.join(m.value for m in Modality)}."
        )
    if not is_role(staff_role):
        raise ValidationFailed.on_field(
            "staff_role", f"{staff_role!r} is not a role of this platform."
        )
    patient = request.patient
    visit = PlannedVisit(
        patient_id=patient.id,
        definition_id=None,
        site_id=patient.site_id,
        name="Unscheduled visit",
        target_date=first_day,
        window_first=first_day,
        window_last=last_day,
        duration_minutes=duration_minutes,
        modalities=chosen,
        staff_role=staff_role,
        status=PlannedStatus.PLANNED,
        unscheduled_reason=CATEGORIES[request.category]
        + (f": {request.details}" if request.details else ""),
        created_at=now,
        updated_at=now,
    )
    what = f"Planned an unscheduled visit of {patient.subject_number}"
    with audit.acting(session, actor, now, what=what):
        session.add(visit)
        session.flush()
        request.site_id = patient.site_id
        request.status = RequestStatus.SCHEDULED
        request.planned_visit_id = visit.id
        request.handled_by_id = actor.id
        request.handled_at = now
        request.updated_at = now
    return visit


def close_request(
    session: Session, actor: User, request: UnscheduledRequest, now: datetime, *, reason: str
) -> UnscheduledRequest:
    """Close a request without a visit (answered by phone, say), with the reason."""
    _staff(actor, request)
    why = (reason or "").strip()
    if not why or len(why) > 500:
        raise ValidationFailed.on_field(
            "reason", "Say why the request is closed (up to 500 characters)."
        )
    what = f"Closed the visit request of {request.patient.subject_number}"
    with audit.acting(session, actor, now, why, what=what):
        request.site_id = request.patient.site_id
        request.status = RequestStatus.CLOSED
        request.handled_by_id = actor.id
        request.handled_at = now
        request.updated_at = now
    return request
