from __future__ import annotations

from flask import Flask, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dct_platform.api.schemas import HealthSchema
from dct_platform.extensions import db
from dct_platform.timeutil import utcnow

_health = HealthSchema()


def init_app(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Liveness and database reachability, for load balancers and monitors."""
        try:
            db.session.execute(text("SELECT 1"))
            database, status = "ok", 200
        except SQLAlchemyError:
            db.session.rollback()
            database, status = "unreachable", 503
        body = {
            "status": "ok" if status == 200 else "degraded",
            "database": database,
            "time": utcnow(),
        }
        return jsonify(_health.dump(body)), status
