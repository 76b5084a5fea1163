from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from dct_platform.api.schemas import TokenRequestSchema, TokenSchema
from dct_platform.auth import bearer_token, throttle_policy
from dct_platform.db_session import keep_despite_error
from dct_platform.errors import Unauthorized
from dct_platform.extensions import db
from dct_platform.security import MAX_PASSWORD_LENGTH
from dct_platform.services.accounts import (
    authenticate,
    change_password_with_credentials,
    issue_token,
    revoke_token,
)
from dct_platform.timeutil import utcnow

blp = Blueprint("auth_api", __name__, url_prefix="/api/v1/auth", description="Bearer tokens")


class PasswordChangeSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=80))
    current_password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=MAX_PASSWORD_LENGTH)
    )
    # Only the type is checked here: the password policy's messages come from the service.
    new_password = fields.String(required=True, load_only=True)


@blp.route("/token")
class Token(MethodView):
    @blp.arguments(TokenRequestSchema)
    @blp.response(201, TokenSchema)
    @blp.alt_response(401, description="Wrong username or password")
    @blp.alt_response(
        403,
        description="The password is temporary (code `password_change_required`): "
        "change it with POST /api/v1/auth/password first",
    )
    @blp.alt_response(429, description="Too many failed attempts")
    @blp.doc(security=[])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Exchange a username and password for a bearer token (shown once; store it safely)."""
        now = utcnow()
        keep_despite_error()  # a failed attempt must be recorded for throttling
        user = authenticate(
            db.session(),
            body["username"],
            body["password"],
            remote_addr=request.remote_addr or "unknown",
            now=now,
            policy=throttle_policy(),
        )
        ttl = timedelta(seconds=current_app.config["API_TOKEN_TTL_SECONDS"])
        token, record = issue_token(db.session(), user, now, ttl)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_at": record.expires_at,
            "user": user,
        }

    @blp.response(204)
    @blp.alt_response(401, description="No valid token was sent")
    def delete(self) -> None:
        """Revoke the bearer token sent with this request."""
        token = bearer_token()
        if token is None or not revoke_token(db.session(), token, utcnow()):
            raise Unauthorized("Send the bearer token to revoke.")


@blp.route("/password")
class Password(MethodView):
    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    @blp.alt_response(401, description="Wrong username or current password")
    @blp.alt_response(422, description="The new password is not acceptable")
    @blp.alt_response(429, description="Too many failed attempts")
    @blp.doc(security=[])
    def post(self, body: dict[str, Any]) -> None:
        """Change a password with the current one, without a token: the way out of a
        temporary password for API clients. Every token of the account is revoked."""
        keep_despite_error()  # a wrong current password must be counted for throttling
        change_password_with_credentials(
            db.session(),
            body["username"],
            body["current_password"],
            body["new_password"],
            remote_addr=request.remote_addr or "unknown",
            now=utcnow(),
            policy=throttle_policy(),
        )
