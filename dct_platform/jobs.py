"""The core's own periodic jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy.orm import Session

from dct_platform.scheduler import register_job
from dct_platform.services.accounts import purge_stale_auth_records


def auth_housekeeping(session: Session, now: datetime) -> str:
    window = timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"])
    removed = purge_stale_auth_records(session, now, window)
    return f"removed {removed} stale token and sign-in failure rows"


def init_app(app: Flask) -> None:
    register_job(app, "core.auth-housekeeping", auth_housekeeping, every=timedelta(hours=1))
