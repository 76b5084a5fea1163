"""A small trial built through the real services: two sites, one user of every role."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from dct_platform.models import Patient, Site, Trial, User
from dct_platform.models.patients import PatientStatus
from dct_platform.models.trials import TrialPhase, TrialStatus
from dct_platform.roles import Role
from dct_platform.services import accounts, trials
from dct_platform.services import patients as patient_service

PASSWORD = "correct horse battery"
SYSTEM = "test-fixture"
# The informed consent an API enrolment records (a day in the past, the form's version).
CONSENT = {"consent_date": "2026-01-05", "consent_version": "3.0"}


@dataclass
class World:
    trial: Trial
    berlin: Site
    tokyo: Site
    users: dict[str, User] = field(default_factory=dict)
    patients: dict[str, Patient] = field(default_factory=dict)
    password: str = PASSWORD


def build_world(session: Session, now: datetime) -> World:
    sponsor = trials.create_sponsor(session, None, now, "Acme Pharma", system=SYSTEM)
    trial = trials.create_trial(
        session,
        None,
        now,
        sponsor=sponsor,
        protocol_number="T-001",
        title="Test trial",
        phase=TrialPhase.PHASE_2,
        status=TrialStatus.ACTIVE,
        system=SYSTEM,
    )
    berlin = trials.create_site(
        session,
        None,
        now,
        trial=trial,
        site_number="B1",
        name="Berlin",
        country="DE",
        timezone="Europe/Berlin",
        phone="+49 30 1234 567",
        system=SYSTEM,
    )
    tokyo = trials.create_site(
        session,
        None,
        now,
        trial=trial,
        site_number="T1",
        name="Tokyo",
        country="JP",
        timezone="Asia/Tokyo",
        system=SYSTEM,
    )
    world = World(trial, berlin, tokyo)

    def user(name: str, role: Role, **kw: object) -> User:
        u = accounts.create_user(
            session,
            None,
            now,
            username=name,
            password=PASSWORD,
            role=role,
            display_name=name.title(),
            system=SYSTEM,
            **kw,
        )  # type: ignore[arg-type]
        world.users[name] = u
        return u

    user("coord_berlin", Role.SITE_STAFF, sites=[berlin], timezone="Europe/Berlin")
    user("coord_tokyo", Role.SITE_STAFF, sites=[tokyo], timezone="Asia/Tokyo")
    pi = user("pi_berlin", Role.INVESTIGATOR, sites=[berlin], timezone="Europe/Berlin")
    trials.appoint_principal_investigator(
        session, None, now - timedelta(days=30), berlin, pi, system=SYSTEM
    )
    user("nurse", Role.NURSE)
    user("supply", Role.SUPPLY_MANAGER, trials=[trial])
    user("manager", Role.TRIAL_MANAGER, trials=[trial])
    user("admin", Role.ADMIN, email="admin@example.org")
    for key, site, tz in (("anna", berlin, "Europe/Berlin"), ("kenji", tokyo, "Asia/Tokyo")):
        account = user(key, Role.PATIENT, timezone=tz, opened_at_enrolment=True)
        world.patients[key] = patient_service.enroll_patient(
            session,
            None,
            now - timedelta(days=20),
            site=site,
            subject_number=f"{site.site_number}-{key}",
            timezone=tz,
            status=PatientStatus.ENROLLED,
            user=account,
            system=SYSTEM,
            identity=patient_service.IdentityInput(
                given_name=key.title(),
                family_name="Secretname",
                address_line1="1 Hidden Street",
                city=site.name,
                postal_code="10115",
                country=site.country,
                email=f"{key}@example.org",
            ),
        )
    session.commit()
    return world
