"""Domain errors and the one error format of the JSON API.

Services raise these plain exceptions; the handlers below turn any of them, and any HTTP
error, into `{"status", "code", "message", "details"}` for the API or an error page for
people. An unexpected exception is logged with an id and answered without its trace.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, cast

from flask import Flask, Response, jsonify, render_template, request
from marshmallow import Schema, fields
from marshmallow import ValidationError as SchemaValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ErrorSchema(Schema):
    """The body of every API error (`error_body`). The OpenAPI document shows it as the
    `Error` schema, on every error status of every operation."""

    status = fields.Integer(
        required=True,
        metadata={"description": "The HTTP status of the response, repeated", "example": 422},
    )
    code = fields.String(
        required=True,
        metadata={
            "description": "Machine-readable error code, e.g. `validation_error`, `not_found`, "
            "`forbidden`, `stale_record`, `precondition_failed`, `too_many_attempts`",
            "example": "validation_error",
        },
    )
    message = fields.String(
        required=True,
        metadata={
            "description": "What went wrong, in a sentence for people",
            "example": "The request has invalid fields; see details.",
        },
    )
    details = fields.Dict(
        required=True,
        metadata={
            "description": "Per-field messages under `fields` (a field name, or a nested path, "
            "to a list of messages), and other facts such as `retry_after_seconds` or "
            "`current_version`; an empty object when there is nothing more to say",
            "example": {"fields": {"timezone": ["Not a canonical IANA time zone."]}},
        },
    )


_error_schema = ErrorSchema()


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(DomainError):
    status = 422
    code = "validation_error"

    @classmethod
    def on_field(cls, field: str, message: str) -> ValidationFailed:
        """A refusal of one field: the message, and the same message at that field, where
        a form shows it beside the control."""
        return cls(message, {"fields": {field: [message]}})


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class PasswordChangeRequired(Forbidden):
    """The account still has a temporary password: nothing but changing it is allowed."""

    code = "password_change_required"
    default_message = (
        "The password of this account is temporary: change it first, on the page "
        "/account/password or with POST /api/v1/auth/password "
        '{"username", "current_password", "new_password"}.'
    )

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.default_message, details)


class Conflict(DomainError):
    status = 409
    code = "conflict"


class StaleRecord(Conflict):
    """Someone else changed the record after the caller read it."""

    code = "stale_record"


class PreconditionFailed(DomainError):
    """The version the client sent in If-Match is no longer the record's version."""

    status = 412
    code = "precondition_failed"


STALE_MESSAGE = (
    "Someone else changed this record after you read it; reload it and make your change again."
)


def expect_version(record: Any, version: int | None, *, precondition: bool = False) -> None:
    """Refuse a change made from an old copy of `record` (None: the client sent no version)."""
    if version is None or record.version == version:
        return
    details = {"current_version": record.version, "your_version": version}
    if precondition:
        raise PreconditionFailed(STALE_MESSAGE, details)
    raise StaleRecord(STALE_MESSAGE, details)


class UnsupportedMediaType(DomainError):
    """A body the operation reads as JSON was sent as something else (a form, text)."""

    status = 415
    code = "unsupported_media_type"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry_after_seconds": retry_after})
        self.retry_after = retry_after


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_attempts",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


INVALID_FIELDS = "The request has invalid fields; see details."
INVALID_JSON = "The request body is not valid JSON"
# What webargs attaches to the 400 it raises when the body does not parse.
_WEBARGS_INVALID_JSON = {"json": ["Invalid JSON body."]}


def error_body(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    # str() turns lazily translated messages into text in the request's language.
    plain = json.loads(json.dumps(details or {}, default=str))
    body = {"status": status, "code": code, "message": str(message), "details": plain}
    # Schema.dump() is typed for many objects (Any); one object dumps to one dict.
    return cast(dict[str, Any], _error_schema.dump(body))


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    if wants_json():
        response = jsonify(error_body(status, code, message, details))
    else:
        html = render_template("errors/error.html", status=status, message=message)
        response = Response(html, mimetype="text/html")
    response.status_code = status
    return response


def _invalid_json(exc: HTTPException) -> bool:
    return (
        exc.code == 400
        and (getattr(exc, "data", None) or {}).get("messages") == _WEBARGS_INVALID_JSON
    )


def _http_details(exc: HTTPException) -> dict[str, Any]:
    if _invalid_json(exc):
        # Where the parser stopped helps the client find the mistake in its own body.
        reason = getattr(exc, "exc", None)
        return {"reason": str(reason)} if reason is not None else {}
    # webargs (via flask-smorest) attaches marshmallow's per-field messages here.
    messages = (getattr(exc, "data", None) or {}).get("messages")
    if isinstance(messages, dict) and len(messages) == 1:
        (only,) = messages.values()  # drop the "json"/"query" location level
        if isinstance(only, dict):
            return {"fields": only}
    return {"fields": messages} if messages else {}


def _http_message(exc: HTTPException, details: dict[str, Any]) -> str:
    if _invalid_json(exc):
        return INVALID_JSON
    if exc.code == 422 and details:
        return INVALID_FIELDS
    return exc.description or exc.name


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(SchemaValidationError)
    def _schema(exc: SchemaValidationError) -> Response:
        return error_response(
            422,
            "validation_error",
            INVALID_FIELDS,
            {"fields": exc.normalized_messages()},
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        details = _http_details(exc)
        code = _HTTP_CODES.get(status, "http_error")
        response = error_response(status, code, _http_message(exc, details), details)
        if status == 405 and (allow := exc.get_response().headers.get("Allow")):
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(StaleDataError)
    def _stale(exc: StaleDataError) -> Response:
        # Two writers started from the same version; the database let only the first win.
        return error_response(409, StaleRecord.code, STALE_MESSAGE)

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError) -> Response:
        log.warning("integrity error: %s", exc.orig)
        return error_response(409, "conflict", "The change conflicts with existing data.")

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _unstorable(exc: DataError | OverflowError) -> Response:
        # The database refused a value (too long for its column, out of range; SQLite's
        # driver raises OverflowError for an integer past 64 bits): the input was bad and
        # a schema or view let it through. Logged so that it gets its bound.
        log.warning("value refused by the database: %s", getattr(exc, "orig", exc))
        return error_response(
            422,
            "validation_error",
            "A value is too long or out of range for what can be stored.",
        )

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response:
        log.error("database error: %s", exc.orig)
        return error_response(
            503, "service_unavailable", "The database is unavailable; try again shortly."
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error, incident %s", incident)
        return error_response(
            500,
            "internal_error",
            f"Something went wrong on our side (incident {incident}).",
            {"incident": incident},
        )
