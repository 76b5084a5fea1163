"""Home-nurse dispatch and direct-to-patient shipments, with the nurse's and supply
manager's pages.

Layout: `routing/` the route planner (OR-Tools; plain Python, no database), `dispatch/`
home-nurse dispatch (its tables, rules, planning runs, the nurse's work, mails),
`migrations/` the package's own Alembic branch (`logistics`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy.orm import Session

from dct_platform.navigation import add_nav_item, set_home
from dct_platform.roles import Role

if TYPE_CHECKING:
    from logistics.dispatch.planner import Settings

SETTINGS: dict[str, float] = {
    # Home visits are made for planned home-nurse visits whose window opens within this.
    "DISPATCH_HORIZON_DAYS": 14,
    # Travel between homes: straight-line distance times the road factor, at this speed.
    "DISPATCH_SPEED_KMH": 35,
    "DISPATCH_ROAD_FACTOR": 1.3,
    # The route planner's search time per day planned.
    "DISPATCH_SOLVER_SECONDS": 5,
}


def init_app(app: Flask) -> None:
    for name, default in SETTINGS.items():
        app.config.setdefault(name, float(os.environ.get(name, default)))
    from dct_platform.api import register_api_blueprint
    from logistics.dispatch import api, models, notifications, policy  # noqa: F401
    from logistics.dispatch import demo as dispatch_demo
    from logistics.dispatch import views as dispatch_views
    from logistics.shipments import api as shipments_api
    from logistics.shipments import demo as shipments_demo
    from logistics.shipments import (
        disposition_views,
        excursions,
        patient_views,
        site_views,
        supply_views,
    )
    from logistics.shipments import policy as shipment_policy  # noqa: F401 (and models)
    from logistics.supply import policy as supply_policy  # noqa: F401 (registers models too)
    from logistics.views import bp

    app.register_blueprint(bp)
    # Home-nurse dispatch.
    register_api_blueprint(app, api.blp)
    dispatch_views.init_app(app)
    dispatch_demo.init_app(app)
    set_home(app, Role.NURSE, "dispatch.nurse_day")
    # Shipments: the supply manager's board is their home (the sites overview stays in the
    # nav); the patient's deliveries are here, in the portal's look, because logistics may
    # not import patient_portal.
    add_nav_item(app, [Role.SUPPLY_MANAGER], "Sites", "logistics.supply_home", order=10)
    supply_views.init_app(app)
    disposition_views.init_app(app)
    register_api_blueprint(app, shipments_api.blp)
    site_views.init_app(app)
    patient_views.init_app(app)
    excursions.init_app(app)  # the link to device ingestion, when devices is loaded
    _init_courier(app)
    shipments_demo.init_app(app)
    _init_jobs(app)


def planner_settings(app: Flask) -> Settings:
    # Imported here: `logistics.routing` stays importable without Flask or SQLAlchemy.
    from logistics.dispatch.planner import Settings

    return Settings(
        speed_kmh=app.config["DISPATCH_SPEED_KMH"],
        road_factor=app.config["DISPATCH_ROAD_FACTOR"],
        time_limit_s=app.config["DISPATCH_SOLVER_SECONDS"],
    )


def _init_jobs(app: Flask) -> None:
    from dct_platform.scheduler import register_job
    from dct_platform.timeutil import utcnow
    from logistics.dispatch import home_visits, runs

    def housekeeping(session: Session, now: datetime) -> str:
        horizon = timedelta(days=app.config["DISPATCH_HORIZON_DAYS"])
        made = home_visits.create_due(session, now, horizon)
        released = home_visits.release_taken(session, now)
        missed = home_visits.mark_missed(session, now)
        queued = runs.queue_if_open(session, now)
        return f"made {made}, released {released}, missed {missed}, planning queued: {queued}"

    def plan_runs(session: Session, now: datetime) -> str:
        return f"ran {runs.run_queued(session, utcnow, planner_settings(app))} planning runs"

    register_job(app, "logistics.home-visits", housekeeping, every=timedelta(hours=1))
    register_job(app, "logistics.dispatch-runs", plan_runs, every=timedelta(seconds=15))

    def resupply(session: Session, now: datetime) -> str:
        from logistics.shipments import resupply

        return f"requested {resupply.request_due(session, now)} scheduled resupplies"

    register_job(app, "logistics.resupply", resupply, every=timedelta(hours=1))


def _init_courier(app: Flask) -> None:
    from dct_platform.api import register_api_blueprint
    from logistics.courier import booking, client, polling, webhook  # noqa: F401 (receiver)

    client.init_settings(app)
    register_api_blueprint(app, webhook.blp, public=("Webhook",))
    app.extensions["dct_openapi"].spec.components.security_scheme(
        "courierSignature",
        {"type": "apiKey", "in": "header", "name": webhook.SIGNATURE_HEADER,
         "description": "sha256=<hex HMAC-SHA256 of '<X-Courier-Timestamp>.<raw body>'>"},
    )  # fmt: skip
    polling.init_app(app)
