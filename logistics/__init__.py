"""Home-nurse dispatch and direct-to-patient shipments, with the nurse's and supply
manager's pages."""

from __future__ import annotations

from flask import Flask

from dct_platform.navigation import add_nav_item, set_home
from dct_platform.roles import Role


def init_app(app: Flask) -> None:
    from logistics.views import bp

    app.register_blueprint(bp)
    set_home(app, Role.NURSE, "logistics.nurse_home")
    add_nav_item(app, [Role.NURSE], "My visits", "logistics.nurse_home", order=10)
    set_home(app, Role.SUPPLY_MANAGER, "logistics.supply_home")
    add_nav_item(app, [Role.SUPPLY_MANAGER], "Sites", "logistics.supply_home", order=10)
