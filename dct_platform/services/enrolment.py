"""Enrolment as site staff do it: the subject record, personal data and a portal account."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import policy
from dct_platform.models import Patient, Site, User
from dct_platform.models.patients import PatientStatus
from dct_platform.policy import Action
from dct_platform.roles import Role
from dct_platform.services import accounts
from dct_platform.services.patient_status import Consent
from dct_platform.services.patients import IdentityInput, enroll_patient


@dataclass(frozen=True)
class Enrolment:
    patient: Patient
    username: str | None
    temporary_password: str | None


def portal_username(subject_number: str) -> str:
    return "patient." + re.sub(r"[^a-z0-9]", "", subject_number.lower())


def enrol_with_portal_account(
    session: Session,
    actor: User,
    now: datetime,
    *,
    site: Site,
    subject_number: str,
    timezone: str,
    preferred_language: str,
    status: PatientStatus,
    baseline_date: date | None,
    arm: str | None = None,
    identity: IdentityInput,
    consent: Consent,
    create_account: bool,
) -> Enrolment:
    """Enrol a patient; with `create_account`, open their portal account with a temporary
    password that staff hand over and the patient replaces at first sign-in."""
    policy.authorize(actor, Action.ENROLL, site, now=now)
    user, username, password = None, None, None
    if create_account:
        username = portal_username(subject_number)
        if session.scalar(select(User.id).where(User.username == username)):
            username = f"{username}.{site.trial_id}"
        password = accounts.temporary_password()
        user = accounts.create_user(
            session,
            actor,
            now,
            username=username,
            password=password,
            role=Role.PATIENT,
            display_name=identity.given_name,
            email=identity.email,
            timezone=timezone,
            must_change_password=True,
            opened_at_enrolment=True,
        )
    patient = enroll_patient(
        session,
        actor,
        now,
        site=site,
        subject_number=subject_number,
        timezone=timezone,
        preferred_language=preferred_language,
        status=status,
        baseline_date=baseline_date,
        arm=arm,
        identity=identity,
        user=user,
        consent=consent,
    )
    return Enrolment(patient, username, password)
