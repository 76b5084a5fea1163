"""The administrator's account pages: find, open, change access, disable, reset, unlock."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from dct_platform import policy, roles
from dct_platform.auth import throttle_policy
from dct_platform.errors import DomainError
from dct_platform.extensions import db
from dct_platform.input_guard import MAX_ID
from dct_platform.models import MailOutbox, OutboxStatus, Site, Trial, User
from dct_platform.roles import Role
from dct_platform.services import accounts
from dct_platform.services.account_lists import AccountCriteria, find_accounts
from dct_platform.timeutil import utcnow
from dct_platform.web import bp
from dct_platform.web.form_errors import show_domain_error
from dct_platform.web.forms import AccessForm, ReasonForm, SelectChoice, UserForm
from dct_platform.web.guards import roles_required

ACCOUNT_PAGE_SIZE = 50


def _account_criteria(args: Any) -> tuple[AccountCriteria, list[str]]:
    errors = []
    role = args.get("role", "").strip() or None
    if role and not roles.is_role(role):
        errors.append(f"Role: no role is called {role[:40]!r}.")
        role = None
    site_id = None
    if raw := args.get("site", "").strip():
        if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
            site_id = int(raw)
        else:
            errors.append("Site: choose one of the listed sites.")
    page = args.get("page", "1")
    if not (page.isascii() and page.isdigit() and 0 < int(page) <= 100_000):
        errors.append("Page: give a page number from 1.")
        page = "1"
    criteria = AccountCriteria(
        q=args.get("q", "")[:100],
        role=role,
        site_id=site_id,
        page=int(page),
        page_size=ACCOUNT_PAGE_SIZE,
    )
    return criteria, errors


@bp.get("/admin")
@roles_required(Role.ADMIN)
def admin_home() -> tuple[str, int]:
    criteria, errors = _account_criteria(request.args)
    found = find_accounts(db.session(), current_user, criteria)
    sites = {
        s.id: s
        for s in db.session.scalars(
            select(Site).where(policy.visible(current_user, Site)).order_by(Site.site_number)
        )
    }
    trials = {t.id: t for t in db.session.scalars(select(Trial))}
    mail = dict(
        db.session.execute(
            select(MailOutbox.status, func.count()).group_by(MailOutbox.status)
        ).all()
    )
    return render_template(
        "admin/home.html",
        found=found,
        errors=errors,
        sites=sites,
        trials=trials,
        roles=roles.roles(),
        locked=accounts.lockouts(db.session(), found.users, utcnow(), throttle_policy()),
        args={k: v for k, v in request.args.items() if k != "page" and v},
        mail=mail,
        statuses=list(OutboxStatus),
    ), (422 if errors else 200)


def _site_and_trial_choices(form: UserForm | AccessForm) -> None:
    form.site_ids.choices = [
        SelectChoice(str(s.id), f"{s.site_number}: {s.name}")
        for s in db.session.scalars(select(Site).order_by(Site.site_number))
    ]
    form.trial_ids.choices = [
        SelectChoice(str(t.id), t.protocol_number)
        for t in db.session.scalars(select(Trial).order_by(Trial.protocol_number))
    ]


def _user_form_choices(form: UserForm) -> None:
    # No role chosen in advance, and no patient role: a patient's account is opened at
    # enrolment, with the study record.
    form.role.choices = [SelectChoice("", "Choose a role")] + [
        SelectChoice(r.name, str(r.label)) for r in roles.roles() if r.name != Role.PATIENT
    ]
    _site_and_trial_choices(form)


@bp.route("/admin/users/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def admin_new_user() -> Response | tuple[str, int]:
    form = UserForm()
    _user_form_choices(form)
    status = 200
    if form.validate_on_submit():
        password = accounts.temporary_password()
        try:
            sites = db.session.scalars(select(Site).where(Site.id.in_(form.site_ids.data or [])))
            trials = db.session.scalars(
                select(Trial).where(Trial.id.in_(form.trial_ids.data or []))
            )
            user = accounts.create_user(
                db.session(),
                current_user,
                utcnow(),
                username=form.username.data or "",
                password=password,
                role=form.role.data or "",
                display_name=form.display_name.data or "",
                email=form.email.data or None,
                timezone=form.timezone.data or "UTC",
                sites=sites,
                trials=trials,
                must_change_password=True,
            )
        except DomainError as exc:
            show_domain_error(form, exc)
            status = 422
        else:
            return _show_once(user, password)
    elif form.is_submitted():
        status = 422
    return render_template("admin/user_form.html", form=form), status


def _show_once(user: User, password: str) -> Response:
    # The temporary password is shown on the next page only, never stored in clear.
    flash(
        f"Temporary password for {user.username}: {password} (shown once; they must change it)",
        "secret",
    )
    return redirect(url_for("web.admin_user", user_id=user.id))


@bp.get("/admin/users/<int:user_id>")
@roles_required(Role.ADMIN)
def admin_user(user_id: int) -> str:
    user = policy.get_visible(db.session(), current_user, User, user_id)
    return _render_user(user)


def _access_form(user: User, formdata: bool) -> AccessForm:
    form = AccessForm() if formdata else AccessForm(formdata=None)
    _site_and_trial_choices(form)
    if not formdata:
        form.site_ids.data = sorted(user.site_ids)
        form.trial_ids.data = sorted(user.trial_ids)
    return form


def _render_user(
    user: User,
    form: ReasonForm | None = None,
    access: AccessForm | None = None,
    reset: ReasonForm | None = None,
    unlock: ReasonForm | None = None,
) -> str:
    lockout = accounts.lockouts(db.session(), [user], utcnow(), throttle_policy()).get(user.id)
    return render_template(
        "admin/user.html",
        user=user,
        form=form or ReasonForm(formdata=None),
        # Their own prefixes: several reason fields on one page need distinct ids.
        reset=reset or ReasonForm(formdata=None, prefix="reset"),
        unlock=unlock or ReasonForm(formdata=None, prefix="unlock"),
        lockout=lockout,
        access=access or _access_form(user, formdata=False),
        assignment=roles.assigned_to(user.role).value,
    )


@bp.post("/admin/users/<int:user_id>/access")
@roles_required(Role.ADMIN)
def admin_user_access(user_id: int) -> Response | tuple[str, int]:
    user = policy.get_visible(db.session(), current_user, User, user_id)
    access = _access_form(user, formdata=True)
    if access.validate_on_submit():
        try:
            accounts.set_access(
                db.session(),
                current_user,
                utcnow(),
                user,
                sites=db.session.scalars(
                    select(Site).where(Site.id.in_(access.site_ids.data or []))
                ),
                trials=db.session.scalars(
                    select(Trial).where(Trial.id.in_(access.trial_ids.data or []))
                ),
                reason=access.reason.data or "",
            )
        except DomainError as exc:
            show_domain_error(access, exc)
        else:
            flash(f"Access of {user.username} changed.", "success")
            return redirect(url_for("web.admin_user", user_id=user.id))
    return _render_user(user, access=access), 422


@bp.post("/admin/users/<int:user_id>/<any(disable, enable, reset, unlock):action>")
@roles_required(Role.ADMIN)
def admin_user_action(user_id: int, action: str) -> Response | tuple[str, int]:
    user = policy.get_visible(db.session(), current_user, User, user_id)
    prefix = action if action in ("reset", "unlock") else ""
    form = ReasonForm(prefix=prefix)
    if form.validate_on_submit():
        reason, now = form.reason.data or "", utcnow()
        try:
            if action == "reset":
                return _show_once(
                    user, accounts.reset_password(db.session(), current_user, now, user, reason)
                )
            if action == "unlock":
                accounts.unlock(db.session(), current_user, now, user, reason)
                done = "may sign in again"
            else:
                accounts.set_enabled(
                    db.session(), current_user, now, user, action == "enable", reason
                )
                done = "is enabled" if action == "enable" else "is disabled"
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(f"{user.username} {done}.", "success")
            return redirect(url_for("web.admin_user", user_id=user.id))
    return _render_user(user, **{prefix or "form": form}), 422
