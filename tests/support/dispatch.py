"""Home-nurse dispatch for the test world: a provider serving the Berlin site, nurses with
profiles built through the services, and patients whose week-4 visit (today to six days
ahead, by video or a home nurse) needs a phlebotomist at home between 08:00 and 18:00.

Berlin points: Mitte (52.52, 13.405) is the patients' neighbourhood; nurses live a few
kilometres away. Every nurse works 07:00-19:00 every day unless a test says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.extensions import db
from dct_platform.models import PatientIdentity, Site, Trial, User
from dct_platform.roles import Role
from dct_platform.services import accounts
from dct_platform.timeutil import to_local, utcnow
from logistics.dispatch import home_visits, planner, providers
from logistics.dispatch.models import HomeHealthProvider, HomeVisit, NurseProfile
from logistics.dispatch.policy import COORDINATOR
from tests.support.clock import TestClock
from tests.support.visits import more_patients, week4_schedule
from tests.support.world import PASSWORD, World

SYSTEM = "test-dispatch"
BERLIN = "Europe/Berlin"
# The planner's default search time adds up over many tests; a second finds these small days.
FAST = planner.Settings(time_limit_s=1.0)
MITTE = (52.52, 13.405)
PROCEDURES = [
    {"code": "vitals", "label": "Vital signs"},
    {"code": "blood_draw", "label": "Blood draw (2 tubes)"},
]


@dataclass
class Network:
    provider_id: int
    definition_id: int
    baseline: date
    nurses: dict[str, int] = field(default_factory=dict)  # name -> user id
    patients: list[int] = field(default_factory=list)  # patient ids with a home visit


def add_nurse(
    app: Flask,
    net: Network,
    name: str,
    *,
    skills: tuple[str, ...] = ("phlebotomy", "vital_signs"),
    home: tuple[float, float] = (52.50, 13.42),
    licence_region: str = "DE",
    licence_expires: date | None = None,
    trained_version: str | None = "1.0",
    postal_prefixes: tuple[str, ...] = ("10",),
    hours: tuple[tuple[int, str, str], ...] | None = None,
) -> int:
    with app.app_context():
        s, now = db.session(), utcnow()
        user = accounts.create_user(
            s, None, now, username=name, password=PASSWORD, role=Role.NURSE,
            display_name=name.title(), timezone="Europe/Berlin", email=f"{name}@example.org",
            system=SYSTEM,
        )  # fmt: skip
        provider = s.get(HomeHealthProvider, net.provider_id)
        assert provider is not None
        profile = providers.set_nurse_profile(
            s, None, now, user, provider, home=home, skills=skills,
            postal_prefixes=postal_prefixes, languages=["de", "en"], system=SYSTEM,
        )  # fmt: skip
        providers.add_licence(
            s, None, now, profile, licence_region, f"LIC-{name}",
            licence_expires or now.date() + timedelta(days=365), system=SYSTEM,
        )  # fmt: skip
        if trained_version is not None:
            trial = s.scalars(select(Trial)).first()
            assert trial is not None
            providers.add_training(
                s, None, now, profile, trial, trained_version, now.date(), system=SYSTEM
            )
        week = hours if hours is not None else tuple((d, "07:00", "19:00") for d in range(7))
        providers.set_hours(s, None, now, profile, week, system=SYSTEM)
        s.commit()
        net.nurses[name] = user.id
        return user.id


def network(
    app: Flask, world: World, *, patients: int = 0, home_visits_now: bool = True
) -> Network:
    """The provider, its contract with Berlin, the home-visit needs of week 4, and home
    visits for anna and `patients` more Berlin patients (all living in Mitte); with
    `home_visits_now=False` the test changes the needs first and makes them itself."""
    schedule = week4_schedule(app, world)
    ids = [world.patients["anna"].id]
    if patients:
        ids += more_patients(app, world, patients, schedule.baseline)
    with app.app_context():
        s, now = db.session(), utcnow()
        provider = providers.create_provider(s, None, now, "Spree Home Care", system=SYSTEM)
        site = s.get(Site, world.berlin.id)
        assert site is not None
        providers.add_contract(
            s, None, now, provider, site, valid_from=now.date() - timedelta(days=30),
            system=SYSTEM,
        )  # fmt: skip
        providers.set_requirement(
            s, None, now, schedule.definition_id, skills=["phlebotomy"], procedures=PROCEDURES,
            system=SYSTEM,
        )  # fmt: skip
        for n, patient_id in enumerate(ids):
            lat, lon = MITTE[0] + 0.004 * (n % 5), MITTE[1] + 0.006 * (n // 5)
            providers.set_home_location(s, None, now, patient_id, lat, lon, system=SYSTEM)
        _identities_in_berlin(s, ids, now)
        if home_visits_now:
            home_visits.create_due(s, now, timedelta(days=14))
        s.commit()
        return Network(provider.id, schedule.definition_id, schedule.baseline, patients=ids)


def _identities_in_berlin(s: Session, ids: list[int], now: datetime) -> None:
    with audit.acting(s, None, now, what="Berlin addresses", system=SYSTEM):
        for patient_id in ids:
            identity = s.get(PatientIdentity, patient_id)
            if identity is None:
                identity = PatientIdentity(
                    patient_id=patient_id, given_name="Test", family_name="Patient",
                    created_at=now, updated_at=now,
                )  # fmt: skip
                s.add(identity)
            identity.address_line1 = identity.address_line1 or "1 Hidden Street"
            identity.postal_code, identity.city, identity.country = "10115", "Berlin", "DE"


def home_visit_of(app: Flask, patient_id: int) -> HomeVisit:
    with app.app_context():
        visit = db.session.scalars(
            select(HomeVisit).where(HomeVisit.patient_id == patient_id)
        ).one()
        db.session.expunge(visit)
        return visit


def user(name: str) -> User:
    return db.session.scalars(select(User).where(User.username == name)).one()


def profile(user_id: int) -> NurseProfile:
    found = db.session.get(NurseProfile, user_id)
    assert found is not None
    return found


def morning(clock: TestClock) -> None:
    """09:00 in Berlin today: the whole working day is ahead."""
    local = to_local(utcnow(), BERLIN)
    clock.freeze(local.replace(hour=9, minute=0, second=0, microsecond=0))


def plan_days(app: Flask, days: int = 1) -> list[dict[str, object]]:
    """Plan today and the `days - 1` days after it in Berlin, as the scheduler's run would,
    without queueing a run; each day's outcome."""
    with app.app_context():
        s, now = db.session(), utcnow()
        today = to_local(now, BERLIN).date()
        outcomes = []
        for n in range(days):
            inp = planner.read_day(s, today + timedelta(days=n), now, FAST)
            s.commit()  # no transaction stays open while the solver searches, as in a run
            plan = planner.solve(inp, FAST)
            outcomes.append(planner.write_plan(s, inp, plan, utcnow()).as_dict())
            s.commit()
        return outcomes


def add_coordinator(
    app: Flask,
    username: str,
    *,
    provider_id: int | None = None,
    provider_name: str | None = None,
    password: str = PASSWORD,
) -> int:
    """A provider coordinator's account (dispatches the provider's nurses, sees patients
    pseudonymously) of the provider `provider_id`, of a new provider named `provider_name`,
    or of the only provider there is; returns the provider's id."""
    if provider_id is not None and provider_name is not None:
        raise ValueError("name an existing provider or a new one, not both")
    with app.app_context():
        s, now = db.session(), utcnow()
        account = accounts.create_user(
            s, None, now, username=username, password=password, role=COORDINATOR,
            display_name=username.title(), timezone=BERLIN, system=SYSTEM,
        )  # fmt: skip
        if provider_name is not None:
            provider = providers.create_provider(s, None, now, provider_name, system=SYSTEM)
        elif provider_id is not None:
            found = s.get(HomeHealthProvider, provider_id)
            assert found is not None
            provider = found
        else:
            provider = s.scalars(select(HomeHealthProvider)).one()
        providers.add_coordinator(s, None, now, provider, account, system=SYSTEM)
        s.commit()
        return provider.id
