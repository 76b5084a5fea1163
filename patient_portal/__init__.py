"""Patient-facing pages: the patient's home, profile, diary and, later, visits and deliveries."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

from dct_platform.navigation import add_nav_item, set_home
from dct_platform.roles import Role


def init_app(app: Flask) -> None:
    from patient_portal.views import bp

    app.register_blueprint(bp)
    set_home(app, Role.PATIENT, "portal.home")
    add_nav_item(app, [Role.PATIENT], _l("Home"), "portal.home", order=10)
    add_nav_item(app, [Role.PATIENT], _l("My details"), "portal.profile", order=90)
    # Televisits are core (dct_platform.visits): always there.
    from patient_portal import visit_views

    visit_views.init_app(app)
    if "devices" in app.config["FEATURE_PACKAGES"]:
        # The diary's tables, questionnaires and write path are the devices package's.
        from patient_portal import diary_views

        diary_views.init_app(app)
