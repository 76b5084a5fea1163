"""The one transaction pattern: services flush, the request commits once at its end.

A response below 400 commits; anything else rolls back, so a failed request leaves nothing
half-written. A commit that fails (a constraint raced by another process) becomes an error
response rather than a trace.
"""

from __future__ import annotations

from flask import Flask, Response, g
from sqlalchemy.exc import IntegrityError, OperationalError

from dct_platform.errors import error_response
from dct_platform.extensions import db


def keep_despite_error() -> None:
    """Ask for this request's flushed changes to be committed even though it answers 4xx.

    Used for records that must survive a refusal, such as a failed sign-in attempt.
    """
    g.dct_commit_on_error = True


def init_request_transactions(app: Flask) -> None:
    @app.after_request
    def _commit(response: Response) -> Response:
        if response.status_code >= 400 and not g.get("dct_commit_on_error"):
            db.session.rollback()
            return response
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return error_response(
                409,
                "conflict",
                "The change conflicts with a change made at the same time; try again.",
            )
        except OperationalError:
            db.session.rollback()
            return error_response(
                503, "service_unavailable", "The database is unavailable; try again shortly."
            )
        return response

    @app.teardown_request
    def _rollback_leftovers(exc: BaseException | None) -> None:
        if exc is not None:
            db.session.rollback()
