"""The DCT platform core: app factory, configuration, database, auth, audit, scheduler."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from dct_platform import extensions, sqlite_support
from dct_platform.config import load_config
from dct_platform.db_session import init_request_transactions
from dct_platform.errors import register_error_handlers
from dct_platform.request_isolation import FreshContextPerRequest

__all__ = ["create_app"]


def create_app(overrides: dict[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    instance_path = instance_path or os.environ.get("DCT_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.update(load_config(Path(app.instance_path), overrides))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    # Through the module: `dct_platform.api` is also the name of the API subpackage.
    extensions.db.init_app(app)
    sqlite_support.init_app(app)
    extensions.csrf.init_app(app)
    extensions.login_manager.init_app(app)

    from dct_platform import auth, i18n, input_guard, jobs, navigation
    from dct_platform.api import init_app as init_api
    from dct_platform.api.schemas import document_roles
    from dct_platform.web import init_app as init_web

    init_request_transactions(app)
    register_error_handlers(app)
    input_guard.init_app(app)  # before any route: it replaces the `int` converter
    auth.init_app(app)
    i18n.init_app(app)
    navigation.init_app(app)
    init_web(app)
    init_api(app)
    jobs.init_app(app)
    from dct_platform import visits

    visits.init_app(app)
    for package in app.config["FEATURE_PACKAGES"]:
        # Loaded by name so that the core never imports a feature package.
        importlib.import_module(package).init_app(app)
    # Packages have declared their roles by now; the OpenAPI document lists them all.
    document_roles(app.extensions["dct_openapi"].spec.components.schemas)

    # Wrapping the bound wsgi_app is how Flask documents adding WSGI middleware; mypy only
    # sees a method being replaced.
    if proxies := app.config["TRUSTED_PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    app.wsgi_app = FreshContextPerRequest(app.wsgi_app)  # type: ignore[method-assign]

    from dct_platform.cli import dct_group

    app.cli.add_command(dct_group)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if app.config["SESSION_COOKIE_SECURE"]:  # served over HTTPS: keep browsers on it
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
        )
        return response

    return app
