from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import select

from dct_platform import policy
from dct_platform.audit import verify_chain
from dct_platform.extensions import db
from dct_platform.models import AuditEntry, User
from dct_platform.models.users import Role
from dct_platform.web import bp
from dct_platform.web.guards import roles_required


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
    return render_template("admin/home.html", users=users)


@bp.get("/admin/audit")
@roles_required(Role.ADMIN)
def admin_audit() -> str:
    entries = list(
        db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(200))
    )
    return render_template(
        "admin/audit.html", entries=entries, verification=verify_chain(db.session)
    )
