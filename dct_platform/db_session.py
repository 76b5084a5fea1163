"""The one transaction pattern: services flush, the request commits once at its end.

Only a request that changes state commits: a POST, PUT, PATCH or DELETE answered below 400
(or one that asked to `keep_despite_error`). Everything else rolls back: a failed request
leaves nothing half-written, and a GET, HEAD or OPTIONS never writes, whatever it flushed.
A commit that fails (a constraint raced by another process) becomes an error response
rather than a trace. After the commit, the domain events the request emitted are delivered
in this process (best effort; the `core.events` job delivers whatever is left).
"""

from __future__ import annotations

from flask import Flask, Response, g, request
from sqlalchemy.exc import IntegrityError, OperationalError

from dct_platform import events
from dct_platform.errors import error_response
from dct_platform.extensions import db
from dct_platform.scheduler import worker_name
from dct_platform.timeutil import utcnow

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def keep_despite_error() -> None:
    """Ask for this request's flushed changes to be committed even though it answers 4xx.

    Used for records that must survive a refusal, such as a failed sign-in attempt. It
    has no effect on a GET, HEAD or OPTIONS, which never write.
    """
    g.dct_commit_on_error = True


def init_request_transactions(app: Flask) -> None:
    @app.after_request
    def _commit(response: Response) -> Response:
        keep = response.status_code < 400 or g.get("dct_commit_on_error")
        if request.method not in WRITE_METHODS or not keep:
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
        events.deliver_committed(db.session(), utcnow(), worker_name())
        return response

    @app.teardown_request
    def _rollback_leftovers(exc: BaseException | None) -> None:
        if exc is not None:
            db.session.rollback()
