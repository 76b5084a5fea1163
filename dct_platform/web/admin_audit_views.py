"""The administrator's audit trail pages: filtered, paged by action, verified, exported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import false, select
from werkzeug.wrappers import Response

from dct_platform.audit import masked_for_oversight, verify_chain
from dct_platform.audit_anchor import CheckpointStore
from dct_platform.audit_reading import (
    TrailQuery,
    actions_csv,
    read_actions,
    record_type_label,
    trail_conditions,
    trail_page,
)
from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.jobs import AUDIT_INTACT, AUDIT_JOB
from dct_platform.localtime import local_to_utc
from dct_platform.models import AuditEntry, JobRun
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from dct_platform.web import bp
from dct_platform.web.guards import roles_required

# The largest value of the trail's BIGINT sequence.
MAX_AUDIT_SEQ = 2**63 - 1


@dataclass(frozen=True)
class TrailFilter:
    """The admin trail's filter, from the query string; dates are in the reader's zone."""

    table: str = ""
    record: str = ""
    who: str = ""
    subject: str = ""
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
            subject=args.get("subject", "").strip()[:32],
            start=dates["from"],
            end=dates["to"],
            errors=tuple(errors),
        )

    def query(self, tz_name: str) -> TrailQuery:
        """The days are the reader's days: from midnight of the first to midnight after
        the last, in the reader's zone."""
        until = self.end + timedelta(days=1) if self.end else None
        return TrailQuery(
            table=self.table,
            record=self.record,
            who=self.who,
            subject=self.subject,
            since=local_to_utc(self.start, time(0), tz_name) if self.start else None,
            until=local_to_utc(until, time(0), tz_name) if until else None,
        )

    def args(self) -> dict[str, str]:
        values = {
            "table": self.table,
            "record": self.record,
            "who": self.who,
            "subject": self.subject,
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
    conditions = trail_conditions(db.session(), trail_filter.query(tz_name))
    return trail_filter, conditions, tz_name


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
    page = trail_page(db.session(), conditions, before, current_app.config["AUDIT_PAGE_SIZE"])
    if trail_filter.errors:
        page = trail_page(db.session(), [false()], None, 1)
    entries = masked_for_oversight(db.session(), page.entries)
    last_check = db.session.scalar(
        select(JobRun)
        .where(JobRun.job_id == AUDIT_JOB, JobRun.finished_at.is_not(None))
        .order_by(JobRun.started_at.desc())
        .limit(1)
    )
    return render_template(
        "admin/audit.html",
        actions=read_actions(db.session(), entries, tz_name),
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
    entries = masked_for_oversight(db.session(), rows[:EXPORT_LIMIT])
    return trail_filter, read_actions(db.session(), entries, tz_name), tz_name, cut


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
    result = verify_chain(db.session(), CheckpointStore.from_config(current_app.config))
    if result.ok:
        flash(f"Chain verified now: {result.checked} entries intact.", "success")
    else:
        flash(f"Chain broken at entry {result.broken_seq}: {result.problem}", "error")
    return redirect(url_for("web.admin_audit"))
