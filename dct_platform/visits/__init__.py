"""Protocol visits and telehealth: the visit schedule of each trial, every patient's
planned visits, site staff availability, bookable slots, bookings with their video room,
calendar invitations and reminders, and the visit record.

Core, not a feature package: the home-nurse dispatch (logistics) plans its visits from the
same schedule. Modules:

* `models.py` the tables; `policy.py` who sees which visits;
* `planning.py` planned visits from the schedule, windows, deviations;
* `slots.py` free slots (pure); `availability.py` staff hours, exceptions, holidays;
* `booking.py` book, move, cancel; `record.py` the visit record; `unscheduled.py`
  patients' requests for a visit;
* `rooms.py` video-room providers; `calendar.py` iCalendar invitations;
  `notifications.py` the room and the invitations after commit, the join link;
  `reminders.py` the reminders job;
* `api.py` + `schemas.py` the JSON API, `views.py` the staff pages, `demo.py` demo data.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy.orm import Session

SETTINGS = {
    # A patient books a televisit at least this long ahead.
    "VISIT_MIN_NOTICE_MINUTES": 60,
    # The join link shows this long before a visit starts.
    "VISIT_JOIN_OPENS_MINUTES": 15,
}


def init_app(app: Flask) -> None:
    import os

    for name, default in SETTINGS.items():
        app.config.setdefault(name, int(os.environ.get(name, default)))
    app.config.setdefault("VIDEO_PROVIDER", os.environ.get("VIDEO_PROVIDER", "jitsi"))
    for name in ("VIDEO_JITSI_BASE_URL", "VIDEO_HTTP_BASE_URL", "VIDEO_HTTP_TOKEN"):
        if name in os.environ:
            app.config.setdefault(name, os.environ[name])
    # Importing registers the tables, the policy scopes and the event receivers.
    from dct_platform.scheduler import register_job
    from dct_platform.visits import (  # noqa: F401
        booking,
        demo,
        models,
        notifications,
        policy,
        reminders,
    )

    demo.init_app(app)

    # Hourly: a visit added to the protocol reaches the patients enrolled, a baseline date
    # set today plans that patient's visits, and windows that closed are marked missed.
    register_job(app, "visits.plan", plan_job, every=timedelta(hours=1))
    # Every minute: a reminder 24 h and 1 h before each booked televisit, once each.
    register_job(app, reminders.JOB, reminders.job, every=timedelta(minutes=1))

    # --- visits API (visits/api.py): register the blueprint ---
    from dct_platform.api import register_api_blueprint
    from dct_platform.visits import api as visits_api

    register_api_blueprint(app, visits_api.blp)

    # --- staff pages (visits/views.py): calendar, visit record, queue, patient's visits,
    # availability; their navigation and the sections on the site's pages ---
    from dct_platform.visits import views as visit_pages

    visit_pages.init_app(app)


def plan_job(session: Session, now: datetime) -> str:
    from sqlalchemy import select

    from dct_platform.visits import planning
    from dct_platform.visits.models import PlannedStatus, PlannedVisit

    planned = planning.plan_all(session, now)
    # Any zone is at most 14 hours ahead of UTC: a window whose last day is before
    # yesterday (UTC) is over everywhere; the rest is checked on the patient's calendar.
    candidates = session.scalars(
        select(PlannedVisit).where(
            PlannedVisit.status == PlannedStatus.PLANNED,
            PlannedVisit.definition_id.is_not(None),
            PlannedVisit.window_last < now.date(),
        )
    )
    missed = planning.mark_missed(session, now, candidates)
    return f"planned {planned} visits, {missed} missed"
