"""Wearable device readings and eDiary entries: the device registry, ingestion, validation
and de-duplication.

Layout (README, "A feature package"): `models.py` the registry's tables, `migrations/` the
package's own Alembic branch (`devices`), `metrics.py` the metric catalogue, `readings.py`
and `omh.py` the validation of incoming batches (native JSON and Open mHealth),
`registry.py` the registry's rules.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    # Importing registers the tables on the platform's metadata.
    from dct_platform.api import register_api_blueprint
    from devices import api, models  # noqa: F401

    register_api_blueprint(app, api.blp, public=("Readings",))
    app.extensions["dct_openapi"].spec.components.security_scheme(
        "deviceToken",
        {"type": "http", "scheme": "bearer", "description": "A device unit's own credential"},
    )
