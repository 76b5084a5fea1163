from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from dct_platform import policy, roles
from dct_platform.audit import masked_for_oversight, verify_chain
from dct_platform.audit_anchor import CheckpointStore
from dct_platform.errors import DomainError, ValidationFailed
from dct_platform.extensions import db
from dct_platform.jobs import AUDIT_INTACT, AUDIT_JOB
from dct_platform.models import AuditEntry, JobRun, MailOutbox, OutboxStatus, Site, Trial, User
from dct_platform.roles import Role
from dct_platform.services import accounts
from dct_platform.timeutil import utcnow
from dct_platform.web import bp
from dct_platform.web.form_errors import show_domain_error
from dct_platform.web.forms import AccessForm, ReasonForm, UserForm
from dct_platform.web.guards import roles_required

# The largest value of the trail's BIGINT sequence.
MAX_AUDIT_SEQ = 2**63 - 1


@bp.get("/admin")
@roles_required(Role.ADMIN)
def admin_home() -> str:
    users = list(
        db.session.scalars(
            select(User)
            .where(policy.visible(current_user, User))
            .order_by(User.role, User.username)
        )
    )
    mail = dict(
        db.session.execute(
            select(MailOutbox.status, func.count()).group_by(MailOutbox.status)
        ).all()
    )
    return render_template("admin/home.html", users=users, mail=mail, statuses=list(OutboxStatus))


@bp.get("/admin/audit")
@roles_required(Role.ADMIN)
def admin_audit() -> str:
    table = request.args.get("table", "").strip()
    record = request.args.get("record", "").strip()
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_AUDIT_SEQ:
        raise ValidationFailed("`before` is not an entry number of this trail.")
    page_size = current_app.config["AUDIT_PAGE_SIZE"]
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(page_size)
    if table:
        query = query.where(AuditEntry.table_name == table)
    if record:
        query = query.where(AuditEntry.record_id == record)
    if before:
        query = query.where(AuditEntry.id < before)
    entries = masked_for_oversight(db.session, list(db.session.scalars(query)))
    older = entries[-1]["id"] if len(entries) == page_size else None
    tables = sorted(db.session.scalars(select(AuditEntry.table_name).distinct()))
    last_check = db.session.scalar(
        select(JobRun)
        .where(JobRun.job_id == AUDIT_JOB, JobRun.finished_at.is_not(None))
        .order_by(JobRun.started_at.desc())
        .limit(1)
    )
    return render_template(
        "admin/audit.html",
        entries=entries,
        last_check=last_check,
        intact=AUDIT_INTACT,
        tables=tables,
        table=table,
        record=record,
        older=older,
    )


@bp.post("/admin/audit/verify")
@roles_required(Role.ADMIN)
def admin_audit_verify() -> Response:
    """Verify the whole chain now (the scheduler does it daily)."""
    result = verify_chain(db.session, CheckpointStore.from_config(current_app.config))
    if result.ok:
        flash(f"Chain verified now: {result.checked} entries intact.", "success")
    else:
        flash(f"Chain broken at entry {result.broken_seq}: {result.problem}", "error")
    return redirect(url_for("web.admin_audit"))


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
    form.role.choices = [SelectChoice(r.name, str(r.label)) for r in roles.roles()]
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
                db.session,
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
    user = policy.get_visible(db.session, current_user, User, user_id)
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
) -> str:
    return render_template(
        "admin/user.html",
        user=user,
        form=form or ReasonForm(formdata=None),
        # Its own prefix: two reason fields on one page need distinct ids.
        reset=reset or ReasonForm(formdata=None, prefix="reset"),
        access=access or _access_form(user, formdata=False),
        assignment=roles.assigned_to(user.role).value,
    )


@bp.post("/admin/users/<int:user_id>/access")
@roles_required(Role.ADMIN)
def admin_user_access(user_id: int) -> Response | tuple[str, int]:
    user = policy.get_visible(db.session, current_user, User, user_id)
    access = _access_form(user, formdata=True)
    if access.validate_on_submit():
        try:
            accounts.set_access(
                db.session,
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


@bp.post("/admin/users/<int:user_id>/<any(disable, enable, reset):action>")
@roles_required(Role.ADMIN)
def admin_user_action(user_id: int, action: str) -> Response | tuple[str, int]:
    user = policy.get_visible(db.session, current_user, User, user_id)
    form = ReasonForm(prefix="reset") if action == "reset" else ReasonForm()
    if form.validate_on_submit():
        reason, now = form.reason.data or "", utcnow()
        try:
            if action == "reset":
                return _show_once(
                    user, accounts.reset_password(db.session, current_user, now, user, reason)
                )
            accounts.set_enabled(db.session, current_user, now, user, action == "enable", reason)
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(
                f"{user.username} is {'enabled' if action == 'enable' else 'disabled'}.", "success"
            )
            return redirect(url_for("web.admin_user", user_id=user.id))
    if action == "reset":
        return _render_user(user, reset=form), 422
    return _render_user(user, form=form), 422
