"""Wearable device readings and eDiary entries: the device registry, ingestion, validation
and de-duplication.

Layout (README, "A feature package"): `models.py` the registry's tables, `migrations/` the
package's own Alembic branch (`devices`), `metrics.py` the metric catalogue, `readings.py`
and `omh.py` the validation of incoming batches (native JSON and Open mHealth),
`registry.py` the registry's rules, `ingestion.py` storing a batch once, `api.py` the
device endpoint, `partitions.py` the readings' monthly partitions on PostgreSQL.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy.orm import Session

SETTINGS = {
    # A reading stamped later than its arrival plus this is refused: the device clock is off.
    "DEVICE_FUTURE_TOLERANCE_SECONDS": 300,
    # A patient answering fewer diaries on time than this percentage is flagged.
    "EDIARY_COMPLIANCE_PERCENT": 80,
    # A reading arriving this long after it was measured is stored and flagged late.
    "DEVICE_LATE_AFTER_SECONDS": 24 * 3600,
    # A unit whose clock differs from the server's by more than this is flagged.
    "DEVICE_CLOCK_DRIFT_SECONDS": 120,
    # A unit held by a patient that sent no new data for this long raises an alert.
    "DEVICE_SILENT_AFTER_SECONDS": 24 * 3600,
    # A unit reporting this much battery or less raises an alert.
    "DEVICE_LOW_BATTERY_PERCENT": 15,
}


def init_app(app: Flask) -> None:
    for name, default in SETTINGS.items():
        app.config.setdefault(name, int(os.environ.get(name, default)))
    # Importing registers the tables on the platform's metadata.
    from dct_platform.api import register_api_blueprint
    from dct_platform.scheduler import register_job
    from devices import api, models, readings_api  # noqa: F401
    from devices.ediary import models as ediary_models  # noqa: F401
    from devices.ediary import policy as ediary_policy  # noqa: F401

    register_api_blueprint(app, api.blp, public=("Readings",))
    register_api_blueprint(app, readings_api.blp)
    register_job(app, "devices.partitions", _partitions_ahead, every=timedelta(hours=24))
    _init_health(app)
    _init_ediary(app)
    from devices import views

    views.init_app(app)
    app.extensions["dct_openapi"].spec.components.security_scheme(
        "deviceToken",
        {"type": "http", "scheme": "bearer", "description": "A device unit's own credential"},
    )
    from devices import demo

    demo.init_app(app)


def _partitions_ahead(session: Session, now: datetime) -> str:
    """Keep the readings' monthly partitions three months ahead (PostgreSQL)."""
    from devices.partitions import create_month_partitions

    created = create_month_partitions(session.connection(), now, ahead=3)
    return f"created {len(created)} partitions" + (f": {', '.join(created)}" if created else "")


def _init_health(app: Flask) -> None:
    from dct_platform.scheduler import register_job
    from devices import health, policy  # noqa: F401  (the policy registers its scopes)

    def check_health(session: Session, now: datetime) -> str:
        config = app.config
        settings = health.HealthSettings(
            silent_after=timedelta(seconds=config["DEVICE_SILENT_AFTER_SECONDS"]),
            low_battery_percent=config["DEVICE_LOW_BATTERY_PERCENT"],
            clock_drift=timedelta(seconds=config["DEVICE_CLOCK_DRIFT_SECONDS"]),
        )
        return str(health.check(session, now, settings))

    # Every minute: a few aggregate queries over the units held now, and a new alert
    # reaches the site within a minute of the problem being known.
    register_job(app, health.JOB, check_health, every=timedelta(minutes=1))


def _init_ediary(app: Flask) -> None:
    from dct_platform.api import register_api_blueprint
    from dct_platform.scheduler import register_job
    from devices.ediary import api as ediary_api
    from devices.ediary import fhir_api as ediary_fhir_api
    from devices.ediary import schedules

    def refresh(session: Session, now: datetime) -> str:
        counts = schedules.refresh(session, now)
        return ", ".join(f"{n} {what}" for what, n in counts.items())

    register_api_blueprint(app, ediary_api.blp)
    register_api_blueprint(app, ediary_fhir_api.blp)
    from devices.ediary import views as ediary_views

    ediary_views.init_app(app)
    from devices.ediary import demo as ediary_demo

    ediary_demo.init_app(app)
    # Windows are written two days ahead, so a run every few minutes is plenty; a missed
    # window is marked within five minutes of closing.
    register_job(app, "ediary.occurrences", refresh, every=timedelta(minutes=5))
    from devices.ediary import reminders  # mails when a window opens and before it closes

    register_job(app, "ediary.reminders", reminders.job, every=timedelta(minutes=1))
