"""Demo home-nurse dispatch: a home-health provider serving the three demo sites, its
coordinator (`coordinator` in demo-logins.json), profiles for the demo nurses, a home
blood draw in the protocol (study day 57, -5/+5 days) whose window is open for most demo
patients now, their home points, and today's and tomorrow's plan, so that a nurse who
signs in sees a route.

Everything goes through the services; a second `make demo` finds the provider and adds
nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import demo as core_demo
from dct_platform.models import User
from dct_platform.roles import Role
from dct_platform.timeutil import to_local
from dct_platform.visits import planning
from logistics.dispatch import home_visits, planner, providers
from logistics.dispatch.models import HomeHealthProvider
from logistics.dispatch.policy import COORDINATOR

SYSTEM = "demo-seed"
PROVIDER = "CityCare Home Health"
# Per demo site: city centre, the nurses' postal areas (the demo's postal codes start with
# the site's position), the licence region.
PLACES = {
    "DE-101": ((52.520, 13.405), "1", "DE"),
    "US-201": ((40.750, -73.990), "2", "US"),
    "JP-301": ((35.681, 139.767), "3", "JP"),
}
# The demo nurses (made by the core seed): where they live and work.
NURSES = {"nurse1": "DE-101", "nurse2": "DE-101", "nurse3": "US-201", "nurse4": "JP-301"}
# The second Berlin nurse draws no blood: the blood draws are the first one's.
SKILLS = {
    "nurse1": ["phlebotomy", "vital_signs", "ecg"],
    "nurse2": ["vital_signs", "ecg", "imp_administration"],
    "nurse3": ["phlebotomy", "vital_signs"],
    "nurse4": ["phlebotomy", "vital_signs"],
}
PROCEDURES = [
    {"code": "vitals", "label": "Vital signs (blood pressure, pulse, temperature)"},
    {"code": "blood_draw", "label": "Blood draw: 2 serum tubes"},
    {"code": "imp_check", "label": "Count the remaining study medication"},
]


def seed(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    # Every seed lists the coordinator's login, also the one that finds the rest in place.
    coordinator = seeded.account(
        "coordinator", COORDINATOR, "Cora Coordinator (CityCare)", "Europe/Berlin"
    )
    if session.scalar(select(HomeHealthProvider.id).where(HomeHealthProvider.name == PROVIDER)):
        return
    provider = providers.create_provider(
        session, None, now, PROVIDER, email="dispatch@citycare.invalid", system=SYSTEM
    )
    for site in seeded.sites:
        providers.add_contract(
            session, None, now, provider, site, valid_from=now.date() - timedelta(days=365),
            reference=f"CC-{site.site_number}", system=SYSTEM,
        )  # fmt: skip
    providers.add_coordinator(session, None, now, provider, coordinator, system=SYSTEM)
    _nurses(session, now, seeded, provider)
    definition = planning.add_definition(
        session, None, now, trial=seeded.trial, code="HB8", name="Week 8 home blood draw",
        target_day=57, window_before_days=5, window_after_days=5, modalities=["home_nurse"],
        duration_minutes=30, staff_role=Role.NURSE, system=SYSTEM,
    )  # fmt: skip
    providers.set_requirement(
        session, None, now, definition.id, skills=["phlebotomy", "vital_signs"],
        procedures=PROCEDURES, day_start="08:00", day_end="18:00", system=SYSTEM,
    )  # fmt: skip
    for n, patient in enumerate(seeded.patients):
        planning.plan_patient(session, patient, now)
        (lat, lon), _prefix, _region = PLACES[
            next(s.site_number for s in seeded.sites if s.id == patient.site_id)
        ]
        providers.set_home_location(
            session, None, now, patient.id, lat + 0.011 * (n % 4 - 1.5),
            lon + 0.015 * (n % 3 - 1), "Ring twice; lift to the 3rd floor" if n % 5 == 0 else None,
            system=SYSTEM,
        )  # fmt: skip
    home_visits.create_due(session, now, timedelta(days=14))
    today = to_local(now, "Europe/Berlin").date()
    fast = planner.Settings(time_limit_s=1.0)
    for day in (today, today + timedelta(days=1)):
        inp = planner.read_day(session, day, now, fast)
        planner.write_plan(session, inp, planner.solve(inp, fast), now)


def _nurses(
    session: Session, now: datetime, seeded: core_demo.Seeded, provider: HomeHealthProvider
) -> None:
    for n, (username, site_number) in enumerate(NURSES.items()):
        nurse = session.scalar(select(User).where(User.username == username))
        if nurse is None:
            continue
        (lat, lon), prefix, region = PLACES[site_number]
        profile = providers.set_nurse_profile(
            session, None, now, nurse, provider, home=(lat - 0.03 + 0.02 * n, lon + 0.02),
            skills=SKILLS[username], postal_prefixes=[prefix],
            languages=["en"], system=SYSTEM,
        )  # fmt: skip
        providers.add_licence(
            session, None, now, profile, region, f"RN-{1000 + n}",
            now.date() + timedelta(days=400), system=SYSTEM,
        )  # fmt: skip
        providers.add_training(
            session, None, now, profile, seeded.trial, seeded.trial.protocol_version,
            now.date() - timedelta(days=60), system=SYSTEM,
        )  # fmt: skip
        # The first nurse works every day, so the demo always has a route to show.
        week = range(7) if n == 0 else range(5)
        providers.set_hours(
            session, None, now, profile, [(d, "08:00", "18:00") for d in week], system=SYSTEM
        )


def init_app(app: Flask) -> None:
    core_demo.register_demo_seeder(app, "logistics.dispatch", seed)
