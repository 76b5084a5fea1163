"""Server-rendered pages for staff roles, and the shell (sign-in, home, navigation) every
role's pages share."""

from __future__ import annotations

from flask import Blueprint, Flask

from dct_platform.navigation import add_nav_item, set_home
from dct_platform.roles import Role
from dct_platform.timeutil import format_local

bp = Blueprint("web", __name__)


def init_app(app: Flask) -> None:
    from dct_platform.web import (  # noqa: F401  (the modules register their routes on `bp`)
        account_views,
        activity_views,
        admin_audit_views,
        admin_views,
        auth_views,
        home_views,
        patient_list_views,
        site_views,
        trial_views,
    )

    app.register_blueprint(bp)
    account_views.init_app(app)
    app.jinja_env.filters["local_time"] = format_local
    set_home(app, Role.SITE_STAFF, "web.site_home")
    # The investigator lands on what awaits their attention, above their patients.
    set_home(app, Role.INVESTIGATOR, "web.investigator_home")
    add_nav_item(app, [Role.INVESTIGATOR], "My attention", "web.investigator_home", order=5)
    for role in (Role.SITE_STAFF, Role.INVESTIGATOR):
        add_nav_item(app, [role], "Patients", "web.site_home", order=10)
        add_nav_item(app, [role], "Enrol a patient", "web.site_enrol", order=20)
    add_nav_item(
        app,
        [Role.SITE_STAFF, Role.INVESTIGATOR, Role.TRIAL_MANAGER, Role.SUPPLY_MANAGER],
        "Remote activity",
        "web.activity_list",
        order=30,
    )
    set_home(app, Role.TRIAL_MANAGER, "web.trial_home")
    add_nav_item(app, [Role.TRIAL_MANAGER], "Sites", "web.trial_home", order=10)
    set_home(app, Role.ADMIN, "web.admin_home")
    add_nav_item(app, [Role.ADMIN], "Users", "web.admin_home", order=10)
    add_nav_item(app, [Role.ADMIN], "New account", "web.admin_new_user", order=15)
    add_nav_item(app, [Role.ADMIN], "Audit trail", "web.admin_audit", order=20)
