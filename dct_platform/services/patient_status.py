"""A patient's study status: which changes the protocol allows, on which day each took
effect and why, kept as a history beside the current status on the subject record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, policy
from dct_platform.errors import Conflict, ValidationFailed, expect_version
from dct_platform.locking import lock_for_update
from dct_platform.models import Patient, PatientStatusChange, Site, User
from dct_platform.models.patients import PatientStatus
from dct_platform.policy import Action
from dct_platform.timeutil import to_local

S = PatientStatus
# Screening ends in enrolment or a screen failure; an enrolled patient completes or
# withdraws; anyone may withdraw consent before. The last three are final.
TRANSITIONS: dict[PatientStatus, frozenset[PatientStatus]] = {
    S.SCREENING: frozenset({S.ENROLLED, S.SCREEN_FAILED, S.WITHDRAWN}),
    S.ENROLLED: frozenset({S.COMPLETED, S.WITHDRAWN}),
    S.SCREEN_FAILED: frozenset(),
    S.COMPLETED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
LABELS = {
    S.SCREENING: "Screening",
    S.ENROLLED: "Enrolled",
    S.SCREEN_FAILED: "Screen failure",
    S.WITHDRAWN: "Withdrawn",
    S.COMPLETED: "Completed",
}
MAX_CONSENT_VERSION = 40


@dataclass(frozen=True)
class Consent:
    """The informed consent a patient signed: the day and the form's version."""

    signed_on: date | None
    version: str | None


def site_today(session: Session, patient: Patient, now: datetime) -> date:
    # The site enters the dates: "today" is the site's calendar day.
    site = session.get(Site, patient.site_id)
    return to_local(now, site.timezone if site else patient.timezone).date()


def consent_problems(consent: Consent, today: date) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if consent.signed_on is None:
        problems["consent_date"] = ["Give the day the patient signed the consent form."]
    elif consent.signed_on > today:
        problems["consent_date"] = ["The consent date cannot be in the future."]
    version = (consent.version or "").strip()
    if not version:
        problems["consent_version"] = ["Give the version of the consent form signed."]
    elif len(version) > MAX_CONSENT_VERSION:
        problems["consent_version"] = [f"At most {MAX_CONSENT_VERSION} characters."]
    return problems


def allowed_next(patient: Patient) -> list[PatientStatus]:
    return sorted(TRANSITIONS[patient.status], key=list(LABELS).index)


def status_history(session: Session, patient: Patient) -> list[PatientStatusChange]:
    return list(
        session.scalars(
            select(PatientStatusChange)
            .where(PatientStatusChange.patient_id == patient.id)
            .order_by(PatientStatusChange.effective_on, PatientStatusChange.id)
        )
    )


def change_status(
    session: Session,
    actor: User,
    now: datetime,
    patient: Patient,
    to_status: PatientStatus,
    effective_on: date | None,
    reason: str,
    *,
    expected_version: int | None = None,
) -> PatientStatusChange:
    """Move the patient to `to_status` as of `effective_on`, if the protocol allows it.

    Concurrent changes queue on the patient's row and each re-checks the status it finds,
    so two coordinators cannot both complete and withdraw the same patient.
    """
    policy.authorize(actor, Action.EDIT, patient, now=now)
    errors: dict[str, list[str]] = {}
    if not (reason or "").strip():
        errors["reason"] = ["Say why the status changes."]
    elif len(reason) > 500:
        errors["reason"] = ["At most 500 characters."]
    today = site_today(session, patient, now)
    if effective_on is None:
        errors["effective_on"] = ["Give the day the change took effect."]
    elif effective_on > today:
        errors["effective_on"] = ["The day cannot be in the future."]
    elif patient.consent_date and effective_on < patient.consent_date:
        errors["effective_on"] = ["The day cannot be before the patient's consent."]
    if errors:
        raise ValidationFailed("The status was not changed; see details.", {"fields": errors})
    assert effective_on is not None
    seen = patient.version if expected_version is None else expected_version
    lock_for_update(session, patient)
    expect_version(patient, seen)
    if to_status not in TRANSITIONS[patient.status]:
        allowed = ", ".join(LABELS[s] for s in allowed_next(patient)) or "none: it is final"
        raise Conflict(
            f"A patient in {LABELS[patient.status]} cannot move to {LABELS[to_status]}. "
            f"Allowed: {allowed}.",
            {"fields": {"status": ["not allowed from the current status"]}},
        )
    last = session.scalar(
        select(PatientStatusChange.effective_on)
        .where(PatientStatusChange.patient_id == patient.id)
        .order_by(PatientStatusChange.effective_on.desc())
        .limit(1)
    )
    if last and effective_on < last:
        raise ValidationFailed(
            "The status was not changed; see details.",
            {"fields": {"effective_on": [f"The previous change took effect on {last}."]}},
        )
    what = f"Change status of patient {patient.subject_number} to {LABELS[to_status]}"
    with audit.acting(session, actor, now, reason, what=what):
        change = PatientStatusChange(
            patient_id=patient.id,
            from_status=patient.status,
            to_status=to_status,
            effective_on=effective_on,
            reason=reason.strip(),
            changed_at=now,
        )
        session.add(change)
        patient.status = to_status
        patient.updated_at = now
    return change
