"""The supply manager's shipment pages (the disposition queue is separate):

* `/supply/shipments` (`supply_shipments.board`, `?site=&status=&late=1&excursion=1&page=`):
  the shipments of the reader's trials, filtered, with counts per status;
* `/supply/shipments/<id>` (`supply_shipments.shipment`): one shipment, its kits (blinded
  unless the reader is unblinded), tracking timeline, release signature, temperature chart,
  excursion and the patient's problem report;
* `/supply/inventory` (`supply_shipments.inventory`, `?depot=&product=&days=`): stock per
  depot and product, with lots and expiry dates; never the arm.

Read only; the queries are in `board`. Times show on the reader's clock. A bad filter value
answers 400 with the page and the message, never a 500 and never a silent guess.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from werkzeug.routing import BuildError

from dct_platform.errors import NotFound
from dct_platform.extensions import db
from dct_platform.localtime import utc_to_local
from dct_platform.navigation import add_nav_item, set_home
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from dct_platform.web.guards import roles_required
from logistics.shipments import board as queries
from logistics.shipments.states import LABELS, ShipmentStatus
from logistics.shipments.temperature_chart import shipment_chart_svg
from logistics.supply.policy import SUPPLY_ROLES

bp = Blueprint("supply_shipments", __name__, template_folder="../templates")

SOURCE_LABELS = {
    "webhook": "courier (webhook)",
    "poll": "courier (polling)",
    "platform": "platform",
}


def _local(at: Any) -> str:
    return "" if at is None else str(utc_to_local(at, current_user.timezone))


@bp.app_template_filter("supply_local")
def _local_filter(at: Any) -> str:
    return _local(at)


def _status_label(status: str) -> str:
    try:
        return LABELS[ShipmentStatus(status)]
    except ValueError:
        # A refused courier update may name a status the platform does not know.
        return status


@bp.get("/supply/shipments")
@roles_required(*SUPPLY_ROLES)
def board() -> tuple[str, int]:
    session, now = db.session(), utcnow()
    filters, errors = queries.parse_filters(request.args)
    sites = queries.visible_sites(session, current_user)
    if filters.site_id is not None and filters.site_id not in {s.id for s in sites}:
        errors.append("Site: choose one of the listed sites.")
    if errors:
        filters = queries.BoardFilters()
    found = queries.board(session, current_user, now, filters)
    args = {k: v for k, v in request.args.items() if k != "page" and v and not errors}
    return render_template(
        "shipments/supply_board.html",
        found=found,
        sites=sites,
        errors=errors,
        labels=LABELS,
        args=args,
        raw=request.args,
        release_wait_days=queries.RELEASE_WAIT.days,
        booking_wait_hours=int(queries.BOOKING_WAIT.total_seconds() // 3600),
        zone=current_user.timezone,
    ), (400 if errors else 200)


def _disposition_url(disposition_id: int) -> str | None:
    try:
        return url_for("supply_dispositions.disposition", disposition_id=disposition_id)
    except BuildError:  # the disposition pages are not installed
        return None


def _temperature_chart(shipment_id: int) -> Markup | None:
    svg = shipment_chart_svg(db.session(), shipment_id, current_user.timezone)
    # The chart module builds its SVG from numbers and escaped labels only.
    return Markup(svg) if svg else None  # noqa: S704


@bp.get("/supply/shipments/<int:shipment_id>")
@roles_required(*SUPPLY_ROLES)
def shipment(shipment_id: int) -> str:
    session, now = db.session(), utcnow()
    try:
        record = queries.shipment_record(session, current_user, now, shipment_id)
    except NotFound:
        abort(404)
    return render_template(
        "shipments/supply_shipment.html",
        r=record,
        s=record.shipment,
        labels=LABELS,
        status_label=_status_label,
        sources=SOURCE_LABELS,
        local=_local,
        zone=current_user.timezone,
        chart=_temperature_chart(record.shipment.id),
        disposition_urls={d.id: _disposition_url(d.id) for d in record.dispositions},
    )


@bp.get("/supply/inventory")
@roles_required(*SUPPLY_ROLES)
def inventory() -> tuple[str, int]:
    session, now = db.session(), utcnow()
    filters, errors = queries.parse_inventory_filters(request.args)
    depots, products, lines = queries.inventory(session, current_user, now, filters)
    if filters.depot_id is not None and filters.depot_id not in {d.id for d in depots}:
        errors.append("Depot: choose one of the listed depots.")
    if filters.product_id is not None and filters.product_id not in {p.id for p in products}:
        errors.append("Product: choose one of the listed products.")
    if errors:
        filters = queries.InventoryFilters()
        depots, products, lines = queries.inventory(session, current_user, now, filters)
    return render_template(
        "shipments/supply_inventory.html",
        filters=filters,
        depots=depots,
        products=products,
        lines=lines,
        errors=errors,
        raw=request.args,
    ), (400 if errors else 200)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    set_home(app, Role.SUPPLY_MANAGER, "supply_shipments.board")
    add_nav_item(app, list(SUPPLY_ROLES), "Shipments", "supply_shipments.board", order=5)
    add_nav_item(app, list(SUPPLY_ROLES), "Inventory", "supply_shipments.inventory", order=20)
