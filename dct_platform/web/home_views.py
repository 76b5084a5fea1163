from __future__ import annotations

from flask import current_app, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from dct_platform.navigation import home_endpoint
from dct_platform.web import bp


@bp.get("/")
@login_required
def home() -> Response:
    return redirect(url_for(home_endpoint(current_app, current_user.role)))


@bp.get("/home")
@login_required
def generic_home() -> str:
    """Fallback for a role whose feature package is not installed in this deployment."""
    return render_template("home_generic.html")
