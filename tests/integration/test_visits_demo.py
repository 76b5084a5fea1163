"""The demo's visits: the trial's protocol schedule, planned visits for the enrolled
patients, week-2 calls done (one late, so the site sees a deviation), televisits booked in
open week-8 windows with investigators' hours that respect each site's zone, an
unscheduled request in a site's queue, and a second seed that adds nothing."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from dct_platform.demo import seed_and_report
from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.models import Site
from dct_platform.visits.models import (
    Booking,
    PlannedVisit,
    ProtocolDeviation,
    UnscheduledRequest,
    VisitDefinition,
)


def _counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        s = db.session()
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (VisitDefinition, PlannedVisit, Booking, ProtocolDeviation,
                          UnscheduledRequest)
        )  # fmt: skip


def test_the_demo_has_a_visit_schedule_bookings_and_a_deviation(app: Flask) -> None:
    seed_and_report(app)
    definitions, planned, bookings, deviations, requests = _counts(app)
    # Four of the visits package, and the home blood draw of the dispatch demo.
    assert definitions == 5 and planned > 40
    assert bookings >= 3 and deviations == 1 and requests == 1
    with app.app_context():
        s = db.session()
        for row in s.scalars(select(Booking)):
            site = s.get(Site, row.site_id)
            assert site is not None
            local = utc_to_local(row.starts_at, site.timezone)
            assert local.date.weekday() < 5 and "09:00" <= local.time.strftime("%H:%M") < "17:00"
        deviation = s.scalars(select(ProtocolDeviation)).one()
        assert "after its window" in deviation.detail
    seed_and_report(app)
    assert _counts(app) == (definitions, planned, bookings, deviations, requests)
