"""Who is asking: session sign-in for pages, bearer tokens for the API."""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app, g, request
from flask import session as flask_session
from flask_babel import lazy_gettext as _l

from dct_platform.errors import PasswordChangeRequired, Unauthorized
from dct_platform.extensions import db, login_manager
from dct_platform.models import User
from dct_platform.services.accounts import ThrottlePolicy, resolve_token
from dct_platform.services.web_sessions import session_user
from dct_platform.timeutil import utcnow

WEB_SESSION_KEY = "sid"


def init_app(app: Flask) -> None:
    login_manager.login_view = "web.login"
    login_manager.login_message = _l("Please sign in to continue.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    @app.teardown_request
    def _forget_who_asked(_exc: BaseException | None) -> None:
        # The caller's identity is cached for one request only, never for the next one.
        g.pop("api_actor", None)
        g.pop("_login_user", None)


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    # The id carries the account's session version: a password change or disabling the
    # account ends every session opened before it.
    try:
        user_id, version = (int(part) for part in session_id.split(":", 1))
    except ValueError:
        return None
    # ...and the session must still be open on the server: signing out ends it for good,
    # even for a copy of the cookie.
    user = session_user(db.session(), user_id, flask_session.get(WEB_SESSION_KEY))
    if user is None or user.session_version != version or not user.is_enabled:
        return None
    return user


def throttle_policy() -> ThrottlePolicy:
    return ThrottlePolicy.from_config(current_app.config)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_actor() -> User:
    """The user behind the request's bearer token; 401 without a valid one, 403 while the
    account's password is a temporary one that someone else chose."""
    if "api_actor" in g:
        return cast(User, g.api_actor)
    token = bearer_token()
    if token is None:
        raise Unauthorized("Send a bearer token: Authorization: Bearer <token>.")
    user = resolve_token(db.session(), token, utcnow())
    if user is None:
        raise Unauthorized("The bearer token is invalid, expired or revoked.")
    if user.must_change_password:
        raise PasswordChangeRequired()
    g.api_actor = user
    return user
