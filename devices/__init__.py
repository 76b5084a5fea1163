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
    # A reading arriving this long after it was measured is stored and flagged late.
    "DEVICE_LATE_AFTER_SECONDS": 24 * 3600,
}


def init_app(app: Flask) -> None:
    for name, default in SETTINGS.items():
        app.config.setdefault(name, int(os.environ.get(name, default)))
    # Importing registers the tables on the platform's metadata.
    from dct_platform.api import register_api_blueprint
    from dct_platform.scheduler import register_job
    from devices import api, models  # noqa: F401

    register_api_blueprint(app, api.blp, public=("Readings",))
    register_job(app, "devices.partitions", _partitions_ahead, every=timedelta(hours=24))
    app.extensions["dct_openapi"].spec.components.security_scheme(
        "deviceToken",
        {"type": "http", "scheme": "bearer", "description": "A device unit's own credential"},
    )


def _partitions_ahead(session: Session, now: datetime) -> str:
    """Keep the readings' monthly partitions three months ahead (PostgreSQL)."""
    from devices.partitions import create_month_partitions

    created = create_month_partitions(session.connection(), now, ahead=3)
    return f"created {len(created)} partitions" + (f": {', '.join(created)}" if created else "")
