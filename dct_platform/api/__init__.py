"""The JSON API under /api/v1: bearer-authenticated, one error format, documented by
flask-smorest from the marshmallow schemas at /api/v1/openapi.json."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, request
from flask_smorest import Blueprint

from dct_platform.api.contract import check_input, operation_inputs
from dct_platform.api.openapi import PlatformResponses
from dct_platform.auth import api_actor
from dct_platform.extensions import PlatformApi, csrf


def register_api_blueprint(app: Flask, blp: Blueprint, public: Iterable[str] = ()) -> None:
    """Register an API blueprint (core or feature): CSRF-exempt, since the API honours no
    cookies, and a bearer token required on every endpoint except those named in `public`."""
    app.extensions["dct_api_blueprints"].add(blp.name)
    app.extensions["dct_api_public"].update(f"{blp.name}.{name}" for name in public)
    app.extensions["dct_api_operations"].update(operation_inputs(blp))
    csrf.exempt(blp)
    app.extensions["dct_openapi"].register_blueprint(blp)


def _require_bearer_token(app: Flask) -> None:
    if request.blueprint in app.extensions["dct_api_blueprints"] and (
        request.endpoint not in app.extensions["dct_api_public"]
    ):
        api_actor()


def init_app(app: Flask) -> None:
    app.extensions["dct_api_blueprints"] = set()
    app.extensions["dct_api_public"] = set()
    app.extensions["dct_api_operations"] = {}
    api = PlatformApi(
        app,
        spec_kwargs={
            "info": {"description": "Decentralized clinical trial platform"},
            "servers": [{"url": "/", "description": "This server"}],
            "security": [{"bearerAuth": []}],
            "extra_plugins": [PlatformResponses(app.extensions["dct_api_public"])],
        },
    )
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "POST /api/v1/auth/token"}
    )
    app.extensions["dct_openapi"] = api
    app.before_request(lambda: _require_bearer_token(app))
    # After the bearer check: a caller without a token learns nothing about the inputs.
    app.before_request(lambda: check_input(app.extensions["dct_api_operations"]))

    from dct_platform.api import (
        activities_api,
        audit_api,
        auth_api,
        health,
        patients_api,
        trials_api,
        users_api,
    )

    register_api_blueprint(app, auth_api.blp, public=("Token", "Password"))
    register_api_blueprint(app, trials_api.blp)
    register_api_blueprint(app, patients_api.blp)
    register_api_blueprint(app, users_api.blp)
    register_api_blueprint(app, audit_api.blp)
    register_api_blueprint(app, activities_api.blp)
    health.init_app(app)
