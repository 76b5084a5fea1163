from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import false, func, select
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from dct_platform import policy, roles
from dct_platform.audit import masked_for_oversight, verify_chain
from dct_platform.audit_anchor import CheckpointStore
from dct_platform.audit_reading import actions_csv, read_actions, record_type_label, trail_page
from dct_platform.errors import DomainError, ValidationFailed
from dct_platform.extensions import db
from dct_platform.jobs import AUDIT_INTACT, AUDIT_JOB
from dct_platform.localtime import local_to_utc
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


@dataclass(frozen=True)
class TrailFilter:
    """The admin trail's filter, from the query string; dates are in the reader's zone."""

    table: str = ""
    record: str = ""
    who: str = ""
    start: date | None = None
    end: date | None = None
    errors: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: Any) -> TrailFilter:
        errors = []
        dates: dict[str, date | None] = {}
        for key, label in (("from", "From"), ("to", "To")):
            raw = args.get(key, "").strip()
            try:
                dates[key] = date.fromisoformat(raw) if raw else None
            except ValueError:
                errors.append(f"{label}: give a date as YYYY-MM-DD, not {raw[:40]!r}.")
                dates[key] = None
        if dates["from"] and dates["to"] and dates["to"] < dates["from"]:
            errors.append("To: the last day comes after the first.")
        return cls(
            table=args.get("table", "").strip()[:100],
            record=args.get("record", "").strip()[:100],
            who=args.get("who", "").strip().lower()[:120],
            start=dates["from"],
            end=dates["to"],
            errors=tuple(errors),
        )

    def conditions(self, tz_name: str) -> list[Any]:
        found: list[Any] = []
        if self.table:
            found.append(AuditEntry.table_name == self.table)
        if self.record:
            found.append(AuditEntry.record_id == self.record)
        if self.who:
            found.append(AuditEntry.actor_name == self.who)
        if self.start and not self.errors:
            found.append(AuditEntry.occurred_at >= local_to_utc(self.start, time(0), tz_name))
        if self.end and not self.errors:
            day_after = self.end + timedelta(days=1)
            found.append(AuditEntry.occurred_at < local_to_utc(day_after, time(0), tz_name))
        return found

    def args(self) -> dict[str, str]:
        values = {
            "table": self.table,
            "record": self.record,
            "who": self.who,
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
        }
        return {k: v for k, v in values.items() if v}


# An export is for an inspector's question, not a dump of the database: at most this many
# entries; the page says when a filter would give more.
EXPORT_LIMIT = 20_000


def _trail_context() -> tuple[TrailFilter, list[Any], str]:
    trail_filter = TrailFilter.from_args(request.args)
    tz_name = current_user.timezone
    return trail_filter, trail_filter.conditions(tz_name), tz_name


def _record_types() -> list[tuple[str, str]]:
    tables = db.session.scalars(select(AuditEntry.table_name).distinct())
    return sorted(((t, record_type_label(t)) for t in tables), key=lambda pair: pair[1])


@bp.get("/admin/audit")
@roles_required(Role.ADMIN)
def admin_audit() -> tuple[str, int]:
    trail_filter, conditions, tz_name = _trail_context()
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_AUDIT_SEQ:
        raise ValidationFailed("`before` is not an entry number of this trail.")
    page = trail_page(db.session, conditions, before, current_app.config["AUDIT_PAGE_SIZE"])
    if trail_filter.errors:
        page = trail_page(db.session, [false()], None, 1)
    entries = masked_for_oversight(db.session, page.entries)
    last_check = db.session.scalar(
        select(JobRun)
        .where(JobRun.job_id == AUDIT_JOB, JobRun.finished_at.is_not(None))
        .order_by(JobRun.started_at.desc())
        .limit(1)
    )
    return render_template(
        "admin/audit.html",
        actions=read_actions(db.session, entries, tz_name),
        last_check=last_check,
        intact=AUDIT_INTACT,
        record_types=_record_types(),
        f=trail_filter,
        older=page.older,
    ), (422 if trail_filter.errors else 200)


def _export_entries() -> tuple[TrailFilter, list[Any], str, bool]:
    trail_filter, conditions, tz_name = _trail_context()
    if trail_filter.errors:
        raise ValidationFailed(" ".join(trail_filter.errors))
    rows = list(
        db.session.scalars(
            select(AuditEntry)
            .where(*conditions)
            .order_by(AuditEntry.id.desc())
            .limit(EXPORT_LIMIT + 1)
        )
    )
    cut = len(rows) > EXPORT_LIMIT
    entries = masked_for_oversight(db.session, rows[:EXPORT_LIMIT])
    return trail_filter, read_actions(db.session, entries, tz_name), tz_name, cut


@bp.get("/admin/audit.csv")
@roles_required(Role.ADMIN)
def admin_audit_csv() -> Response:
    _filter, actions, tz_name, cut = _export_entries()
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    response = Response(actions_csv(actions, tz_name), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.csv"'
    if cut:
        response.headers["X-Export-Truncated"] = str(EXPORT_LIMIT)
    return response


@bp.get("/admin/audit/print")
@roles_required(Role.ADMIN)
def admin_audit_print() -> str:
    trail_filter, actions, _zone, cut = _export_entries()
    return render_template(
        "admin/audit_print.html",
        actions=actions,
        f=trail_filter,
        cut=cut,
        limit=EXPORT_LIMIT,
        printed_at=utcnow(),
        record_type_label=record_type_label,
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
