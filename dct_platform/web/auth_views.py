from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from dct_platform.auth import WEB_SESSION_KEY, throttle_policy
from dct_platform.db_session import keep_despite_error
from dct_platform.errors import TooManyAttempts, Unauthorized
from dct_platform.extensions import db
from dct_platform.services.accounts import AccountDisabled, authenticate
from dct_platform.services.web_sessions import end_web_session, open_web_session
from dct_platform.timeutil import utcnow
from dct_platform.web import bp
from dct_platform.web.forms import LoginForm


def _safe_next(target: str | None) -> str | None:
    # Only same-site paths: an open redirect after sign-in is a phishing tool.
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int, dict[str, str]]:
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    form = LoginForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        keep_despite_error()
        try:
            user = authenticate(
                db.session(),
                form.username.data or "",
                form.password.data or "",
                remote_addr=request.remote_addr or "unknown",
                now=utcnow(),
                policy=throttle_policy(),
            )
        except TooManyAttempts as exc:
            form.form_errors.append(
                _("Too many failed sign-in attempts. Wait a few minutes and try again.")
            )
            status, headers = 429, {"Retry-After": str(exc.retry_after)}
        except Unauthorized:
            form.form_errors.append(_("The username or password is not correct."))
            status = 401
        except AccountDisabled as exc:
            form.form_errors.append(exc.message)
            status = 403
        else:
            session.clear()  # no session fixation: a fresh session for the signed-in user
            # Permanent so that PERMANENT_SESSION_LIFETIME applies: refreshed on every
            # request, the session ends after that much inactivity (automatic sign-off).
            session.permanent = True
            login_user(user)
            session[WEB_SESSION_KEY] = open_web_session(db.session(), user, utcnow())
            return redirect(_safe_next(request.args.get("next")) or url_for("web.home"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status, headers


@bp.post("/logout")
def logout() -> Response:
    end_web_session(db.session(), session.get(WEB_SESSION_KEY), utcnow())
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("web.login"))
