"""Wearable device readings and eDiary entries: ingestion, validation and de-duplication.

The capability arrives with its own issue; the package is registered now so that its place
in the layering (beside `logistics`, never importing it) is enforced from the start.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Nothing to register until device ingestion lands."""
