"""The demo's home-nurse dispatch: a provider serving every demo site with its coordinator
in demo-logins.json, nurse profiles, home visits from the protocol's home blood draw, a
route for the Berlin nurse today, and a second seed that adds nothing."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from dct_platform.demo import seed_and_report
from dct_platform.extensions import db
from dct_platform.models import User
from dct_platform.timeutil import to_local, utcnow
from logistics.dispatch import queries
from logistics.dispatch.models import (
    HomeHealthProvider,
    HomeVisit,
    HomeVisitStatus,
    NurseProfile,
    ProviderContract,
)


def _counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        s = db.session()
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (HomeHealthProvider, ProviderContract, NurseProfile, HomeVisit)
        )


def test_the_demo_dispatches_home_visits_to_its_nurses(app: Flask) -> None:
    logins = seed_and_report(app)
    assert any(x.username == "coordinator" and x.role == "logistics.provider_coordinator"
               for x in logins)  # fmt: skip
    providers_, contracts, nurses, visits = _counts(app)
    assert (providers_, contracts, nurses) == (1, 3, 4) and visits > 10
    with app.app_context():
        s = db.session()
        nurse = s.scalars(select(User).where(User.username == "nurse1")).one()
        today = to_local(utcnow(), nurse.timezone).date()
        day = queries.nurse_day(s, nurse, today)
        upcoming = queries.nurse_upcoming(s, nurse, utcnow())
        assert upcoming, "the Berlin nurse who works every day has visits planned"
        assert all(v.status == HomeVisitStatus.ASSIGNED for v in upcoming)
        starts = [v.planned_start for v in day]
        assert starts == sorted(starts)
    seed_and_report(app)
    assert _counts(app) == (providers_, contracts, nurses, visits)
