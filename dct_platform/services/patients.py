"""Enrolment, subject-record changes, personal data and site transfers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from dct_platform import audit, events, policy
from dct_platform.errors import Conflict, NotFound, ValidationFailed, expect_version
from dct_platform.locking import lock_for_update
from dct_platform.models import (
    AuditEntry,
    Patient,
    PatientIdentity,
    PatientSiteAssignment,
    PatientStatusChange,
    PatientTimezonePeriod,
    Site,
    User,
)
from dct_platform.models.patients import PatientStatus
from dct_platform.policy import Action
from dct_platform.services import activities
from dct_platform.services.patient_status import Consent, consent_problems
from dct_platform.services.periods import close_open_period
from dct_platform.timeutil import is_valid_timezone, to_local

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
IDENTITY_FIELDS = (
    "given_name",
    "family_name",
    "date_of_birth",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "region",
    "country",
)


@dataclass(frozen=True)
class IdentityInput:
    given_name: str
    family_name: str
    date_of_birth: date | None = None
    email: str | None = None
    phone: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None


def _check_preferences(timezone: str | None, language: str | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if timezone is not None and not is_valid_timezone(timezone):
        errors["timezone"] = [
            f"Unknown time zone {timezone!r}; use an IANA name such as America/New_York."
        ]
    if language is not None and not _LANGUAGE.match(language):
        errors["preferred_language"] = ["Use a language tag such as en, de or ja."]
    return errors


def enroll_patient(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    site: Site,
    subject_number: str,
    timezone: str,
    preferred_language: str = "en",
    status: PatientStatus = PatientStatus.SCREENING,
    baseline_date: date | None = None,
    arm: str | None = None,
    identity: IdentityInput | None = None,
    user: User | None = None,
    consent: Consent | None = None,
    system: str | None = None,
) -> Patient:
    """Enrol a patient at `site`. Staff record the informed consent (day and form
    version) with it; only a system import may leave it out."""
    if system is None:
        policy.authorize(actor, Action.ENROLL, site, now=now)
    errors = _check_preferences(timezone, preferred_language)
    if consent is not None or system is None:
        site_day = to_local(now, site.timezone).date()
        errors.update(consent_problems(consent or Consent(None, None), site_day))
    if errors:
        raise ValidationFailed(
            "The patient could not be enrolled; see details.", {"fields": errors}
        )
    if session.scalar(
        select(Patient.id).where(
            Patient.trial_id == site.trial_id, Patient.subject_number == subject_number
        )
    ):
        raise Conflict(
            f"Subject {subject_number} already exists in this trial.",
            {"fields": {"subject_number": ["already used in this trial"]}},
        )
    with audit.acting(session, actor, now, system=system, what=f"Enrol patient {subject_number}"):
        patient = Patient(
            trial_id=site.trial_id,
            subject_number=subject_number,
            site_id=site.id,
            enrolling_site_id=site.id,
            status=status,
            timezone=timezone,
            preferred_language=preferred_language,
            baseline_date=baseline_date,
            arm=(arm or "").strip() or None,
            consent_date=consent.signed_on if consent else None,
            consent_version=(consent.version or "").strip() or None if consent else None,
            user_id=user.id if user else None,
            created_at=now,
            updated_at=now,
        )
        session.add(patient)
        session.flush()
        session.add(
            PatientSiteAssignment(
                patient_id=patient.id, site_id=site.id, valid_from=now, reason="enrolment"
            )
        )
        session.add(
            PatientTimezonePeriod(
                patient_id=patient.id, timezone=timezone, valid_from=now, reason="enrolment"
            )
        )
        if identity is not None:
            session.add(
                PatientIdentity(
                    patient_id=patient.id, created_at=now, updated_at=now, **identity.__dict__
                )
            )
    activities.record_activity(
        session,
        now,
        activity_type=activities.ENROLMENT,
        patient=patient,
        occurred_at=now,
        record_table="patients",
        record_id=patient.id,
        status=str(status),
        summary=f"Enrolled {subject_number} at site {site.site_number}",
        originator=activities.Originator.SYSTEM if actor is None else activities.Originator.STAFF,
        originator_user_id=actor.id if actor else None,
        location_type="site",
    )
    events.emit(
        session,
        events.PATIENT_ENROLLED,
        now,
        {
            "patient_id": patient.id,
            "trial_id": patient.trial_id,
            "site_id": site.id,
            "actor_id": actor.id if actor else None,
        },
        subject=f"patient:{patient.id}",
    )
    return patient


def _apply(obj: Any, changes: dict[str, Any], now: datetime) -> bool:
    changed = False
    for key, value in changes.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    if changed:
        obj.updated_at = now
    return changed


_CHANGED = {
    "status": "status",
    "baseline_date": "baseline date",
    "arm": "arm",
    "timezone": "time zone",
    "preferred_language": "language",
}


def _update_summary(patient: Patient, changes: dict[str, Any]) -> str:
    what = ", ".join(_CHANGED[k] for k in _CHANGED if k in changes)
    return f"Change {what} of patient {patient.subject_number}"


def update_patient(
    session: Session,
    actor: User,
    now: datetime,
    patient: Patient,
    changes: dict[str, Any],
    reason: str | None = None,
) -> Patient:
    """Change subject-record fields. Status changes need site rights; a patient may change
    only their own time zone and language. Any change of stored data needs a reason."""
    preference_keys = {"timezone", "preferred_language"}
    allowed = preference_keys | {"status", "baseline_date", "arm"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(
            "Unknown fields.", {"fields": {k: ["cannot be changed"] for k in unknown}}
        )
    needed = Action.EDIT_PREFERENCES if set(changes) <= preference_keys else Action.EDIT
    policy.authorize(actor, needed, patient, now=now)
    if errors := _check_preferences(changes.get("timezone"), changes.get("preferred_language")):
        raise ValidationFailed("The change was not saved; see details.", {"fields": errors})
    if needed is Action.EDIT and not (reason and reason.strip()):
        raise ValidationFailed(
            "Say why the record is being changed.", {"fields": {"reason": ["required"]}}
        )
    new_zone = changes.get("timezone")
    moves = new_zone is not None and new_zone != patient.timezone
    if moves:
        # Closing the open zone period decides on the current state: queue on the row, and
        # still refuse a change made from a copy that another writer has changed since.
        seen = patient.version
        lock_for_update(session, patient)
        expect_version(patient, seen)
    with audit.acting(session, actor, now, reason, what=_update_summary(patient, changes)):
        if moves:
            assert new_zone is not None  # `moves` says a new zone was given
            _move_timezone(session, patient, new_zone, now, reason)
        _apply(patient, changes, now)
    return patient


def _move_timezone(
    session: Session, patient: Patient, timezone: str, now: datetime, reason: str | None
) -> None:
    """Close the open time-zone period at `now` and open one in `timezone`, so that what
    happened before `now` keeps the zone it was scheduled in. The caller holds the
    patient's row lock and an audit context."""
    close_open_period(
        session,
        PatientTimezonePeriod,
        PatientTimezonePeriod.patient_id == patient.id,
        now,
        "patient's time zone",
    )
    session.add(
        PatientTimezonePeriod(
            patient_id=patient.id, timezone=timezone, valid_from=now, reason=reason
        )
    )
    patient.timezone = timezone
    patient.updated_at = now


def get_identity(session: Session, actor: User, patient: Patient) -> PatientIdentity | None:
    policy.authorize(actor, Action.VIEW_IDENTITY, patient)
    return session.get(PatientIdentity, patient.id)


def save_identity(
    session: Session,
    actor: User,
    now: datetime,
    patient: Patient,
    data: IdentityInput,
    reason: str | None = None,
) -> PatientIdentity:
    """Create or correct personal data. A correction of stored data must give a reason."""
    policy.authorize(actor, Action.EDIT_IDENTITY, patient, now=now)
    identity = session.get(PatientIdentity, patient.id)
    if identity is not None and not (reason and reason.strip()):
        raise ValidationFailed(
            "Say why the personal data is being corrected.",
            {"fields": {"reason": ["required for a correction"]}},
        )
    what = f"{'Correct' if identity else 'Record'} personal data of {patient.subject_number}"
    with audit.acting(session, actor, now, reason, what=what):
        if identity is None:
            identity = PatientIdentity(
                patient_id=patient.id, created_at=now, updated_at=now, **data.__dict__
            )
            session.add(identity)
        else:
            _apply(identity, data.__dict__, now)
    return identity


def change_identity(
    session: Session,
    actor: User,
    now: datetime,
    patient: Patient,
    changes: dict[str, Any],
    reason: str | None,
) -> PatientIdentity:
    """Correct some fields of recorded personal data; the others stay as they are."""
    policy.authorize(actor, Action.EDIT_IDENTITY, patient, now=now)
    unknown = set(changes) - set(IDENTITY_FIELDS)
    if unknown:
        raise ValidationFailed(
            "Unknown fields.", {"fields": {k: ["not a personal data field"] for k in unknown}}
        )
    identity = session.get(PatientIdentity, patient.id)
    if identity is None:
        raise NotFound("No personal data is recorded for this patient; record it first.")
    errors: dict[str, list[str]] = {
        k: ["cannot be empty"]
        for k in ("given_name", "family_name")
        if k in changes and not (changes[k] or "").strip()
    }
    if not (reason and reason.strip()):
        errors["reason"] = ["required for a correction"]
    if errors:
        raise ValidationFailed(
            "The personal data was not changed; see details.", {"fields": errors}
        )
    what = f"Correct personal data of {patient.subject_number}"
    with audit.acting(session, actor, now, reason, what=what):
        _apply(identity, changes, now)
    return identity


def transfer_patient(
    session: Session,
    actor: User,
    now: datetime,
    patient: Patient,
    to_site: Site,
    reason: str,
    timezone: str | None = None,
) -> PatientSiteAssignment:
    """Move ownership to another site of the same trial from `now`; the history is kept.

    Concurrent transfers of one patient queue on the patient's row and each re-checks
    the site it finds, so the ownership history never has two open periods. A `timezone`
    (the patient moves with the site) changes the patient's zone from the same instant;
    None, or the current zone, keeps it.
    """
    lock_for_update(session, patient)
    policy.authorize(actor, Action.TRANSFER, patient, now=now)
    if not (reason and reason.strip()):
        raise ValidationFailed(
            "Say why the patient is being transferred.", {"fields": {"reason": ["required"]}}
        )
    if errors := _check_preferences(timezone, None):
        raise ValidationFailed("The patient was not transferred; see details.", {"fields": errors})
    if to_site.trial_id != patient.trial_id:
        raise NotFound(f"Site {to_site.id} was not found in this trial.")
    if to_site.id == patient.site_id:
        raise Conflict("The patient already belongs to that site.")
    if not to_site.is_active:
        raise Conflict(f"Site {to_site.site_number} is not active.")
    from_site_id = patient.site_id
    what = f"Transfer patient {patient.subject_number} to site {to_site.site_number}"
    with audit.acting(session, actor, now, reason, what=what):
        close_open_period(
            session,
            PatientSiteAssignment,
            PatientSiteAssignment.patient_id == patient.id,
            now,
            "patient's site",
        )
        assignment = PatientSiteAssignment(
            patient_id=patient.id, site_id=to_site.id, valid_from=now, reason=reason
        )
        session.add(assignment)
        patient.site_id = to_site.id
        patient.updated_at = now
        if timezone is not None and timezone != patient.timezone:
            _move_timezone(session, patient, timezone, now, reason)
    from_site = session.get(Site, from_site_id)
    activities.record_activity(
        session,
        now,
        activity_type=activities.SITE_TRANSFER,
        patient=patient,
        occurred_at=now,
        record_table="patient_site_assignments",
        record_id=assignment.id,
        status="completed",
        # Pseudonymous: the free-text reason stays in the site history, not here.
        summary=f"Transferred from site {from_site.site_number if from_site else from_site_id} "
        f"to site {to_site.site_number}",
        originator=activities.Originator.STAFF,
        originator_user_id=actor.id,
        related_site_id=from_site_id,
    )
    events.emit(
        session,
        events.PATIENT_TRANSFERRED,
        now,
        {
            "patient_id": patient.id,
            "trial_id": patient.trial_id,
            "from_site_id": from_site_id,
            "to_site_id": to_site.id,
            "actor_id": actor.id,
        },
        subject=f"patient:{patient.id}",
    )
    return assignment


def site_history(session: Session, patient: Patient) -> list[PatientSiteAssignment]:
    return list(
        session.scalars(
            select(PatientSiteAssignment)
            .where(PatientSiteAssignment.patient_id == patient.id)
            .order_by(PatientSiteAssignment.valid_from)
            .options(joinedload(PatientSiteAssignment.site))
        )
    )


def timezone_history(session: Session, patient: Patient) -> list[PatientTimezonePeriod]:
    return list(
        session.scalars(
            select(PatientTimezonePeriod)
            .where(PatientTimezonePeriod.patient_id == patient.id)
            .order_by(PatientTimezonePeriod.valid_from)
        )
    )


def patient_record_keys(session: Session, patient_ids: list[int]) -> list[tuple[str, str]]:
    """The (table, record id) of everything that is part of these patients' story in the
    trail: subject record, personal data, site assignments, time zones, status changes."""
    keys = [
        (table, str(pid)) for pid in patient_ids for table in ("patients", "patient_identities")
    ]
    for model in (PatientSiteAssignment, PatientTimezonePeriod, PatientStatusChange):
        keys += [
            (model.__tablename__, str(record_id))
            for record_id in session.scalars(
                select(model.id).where(model.patient_id.in_(patient_ids))
            )
        ]
    return keys


def record_history(session: Session, actor: User, patient: Patient) -> list[AuditEntry]:
    """The audit trail of a patient's records (see `patient_record_keys`)."""
    policy.authorize(actor, Action.VIEW_IDENTITY, patient)
    return audit.history(session, patient_record_keys(session, [patient.id]))
