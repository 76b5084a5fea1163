from __future__ import annotations

from flask import Flask, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user
from werkzeug.wrappers import Response

from dct_platform.errors import DomainError
from dct_platform.extensions import db
from dct_platform.services.accounts import change_own_password
from dct_platform.timeutil import utcnow
from dct_platform.web import bp
from dct_platform.web.form_errors import show_domain_error
from dct_platform.web.forms import ChangePasswordForm

_ALLOWED_WHILE_PASSWORD_TEMPORARY = {"web.change_password", "web.logout", "static"}


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response | tuple[str, int]:
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            change_own_password(
                db.session(),
                user,
                utcnow(),
                form.current_password.data or "",
                form.new_password.data or "",
            )
        except DomainError as exc:
            show_domain_error(form, exc)
            status = 422
        else:
            login_user(user)  # the session version changed: re-issue this session, end the others
            flash(_("Your password is changed."), "success")
            return redirect(url_for("web.home"))
    elif form.is_submitted():
        status = 422
    return render_template("account/password.html", form=form), status


def init_app(app: Flask) -> None:
    @app.before_request
    def _temporary_password_first() -> Response | None:
        if (
            current_user.is_authenticated
            and current_user.must_change_password
            and request.endpoint not in _ALLOWED_WHILE_PASSWORD_TEMPORARY
            and not request.path.startswith("/api/")
        ):
            flash(_("Choose your own password before you continue."), "info")
            return redirect(url_for("web.change_password"))
        return None
