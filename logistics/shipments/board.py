"""What the supply manager's pages read: the shipments board, one shipment's record and the
inventory by depot. Plain functions over a session, scoped by `policy.visible`; the pages
only format what they return.

Pseudonymous by construction: these queries select subject numbers, sites and the
destination city, and never join `PatientIdentity`, so no name or street can reach a page
built on them.

When a shipment is *late* (one rule, used by the filter and the flag alike, in SQL):

* the courier's expected delivery time has passed and the shipment is not finished
  (delivered, returned to sender, lost or cancelled); or
* it has waited for the investigator's release longer than `RELEASE_WAIT`; or
* it was released but the courier is still not booked after `BOOKING_WAIT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from dct_platform import policy
from dct_platform.errors import NotFound
from dct_platform.models import Patient, Site, User
from dct_platform.signatures import SignatureView, signatures_of
from dct_platform.timeutil import to_local
from logistics.shipments.models import (
    ExcursionDisposition,
    Shipment,
    ShipmentKit,
    TrackingEvent,
)
from logistics.shipments.states import FINISHED, ShipmentStatus
from logistics.supply.models import Depot, Kit, KitStatus, Product
from logistics.supply.policy import KitView, kit_view

RELEASE_WAIT = timedelta(days=2)
BOOKING_WAIT = timedelta(hours=24)
PAGE_SIZE = 50
EXPIRY_WARNING_DAYS = 90
# Inventory columns: kits at the depot, by what they may still be used for.
STOCK_STATUSES = (KitStatus.AVAILABLE, KitStatus.RESERVED, KitStatus.QUARANTINED)


def late_clause(now: datetime) -> ColumnElement[bool]:
    """Whether a shipment is late at `now` (see the module's rules)."""
    return or_(
        and_(
            Shipment.expected_delivery_at.is_not(None),
            Shipment.expected_delivery_at < now,
            Shipment.status.not_in(list(FINISHED)),
        ),
        and_(
            Shipment.status == ShipmentStatus.REQUESTED,
            Shipment.requested_at < now - RELEASE_WAIT,
        ),
        and_(
            Shipment.status == ShipmentStatus.CREATED,
            func.coalesce(Shipment.released_at, Shipment.requested_at) < now - BOOKING_WAIT,
        ),
    )


# --- the board ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardFilters:
    site_id: int | None = None
    status: ShipmentStatus | None = None
    late: bool = False
    excursion: bool = False
    page: int = 1


_YES = {"1", "yes", "true", "on"}
_NO = {"", "0", "no", "false", "off"}


def _flag(args: Mapping[str, str], name: str, label: str, errors: list[str]) -> bool:
    raw = args.get(name, "").strip().lower()
    if raw in _YES:
        return True
    if raw not in _NO:
        errors.append(f"{label}: give 1 (only those) or leave it empty, not {raw[:40]!r}.")
    return False


def parse_filters(args: Mapping[str, str]) -> tuple[BoardFilters, list[str]]:
    """The board's filters from a query string, and a message per bad value (the filter
    is then left out, never guessed)."""
    errors: list[str] = []
    site_id = None
    if raw := args.get("site", "").strip():
        if raw.isascii() and raw.isdigit() and len(raw) < 10:
            site_id = int(raw)
        else:
            errors.append(f"Site: choose one of the listed sites, not {raw[:40]!r}.")
    status = None
    if raw := args.get("status", "").strip():
        try:
            status = ShipmentStatus(raw)
        except ValueError:
            errors.append(f"Status: no shipment status is called {raw[:40]!r}.")
    late = _flag(args, "late", "Late", errors)
    excursion = _flag(args, "excursion", "Temperature excursion", errors)
    page = args.get("page", "1").strip()
    if not (page.isascii() and page.isdigit() and 0 < int(page) <= 100_000):
        errors.append("Page: give a page number from 1.")
        page = "1"
    return BoardFilters(site_id, status, late, excursion, int(page)), errors


@dataclass(frozen=True)
class BoardRow:
    id: int
    subject_number: str
    site_number: str
    site_name: str
    destination_city: str | None
    product_code: str
    kit_count: int
    status: ShipmentStatus
    tracking_number: str | None
    expected_delivery_at: datetime | None
    late: bool
    excursion: bool
    booking_failures: int
    kind: str


@dataclass(frozen=True)
class Board:
    filters: BoardFilters
    rows: list[BoardRow]
    total: int
    pages: int
    # Over the reader's whole scope, with the site filter applied: what each status
    # filter would show.
    by_status: dict[ShipmentStatus, int] = field(default_factory=dict)


def visible_sites(session: Session, actor: User) -> list[Site]:
    return list(
        session.scalars(select(Site).where(policy.visible(actor, Site)).order_by(Site.site_number))
    )


def board(session: Session, actor: User, now: datetime, filters: BoardFilters) -> Board:
    """The shipments `actor` may see, filtered, newest request first, one page of them."""
    scope = [policy.visible(actor, Shipment, session=session, now=now)]
    if filters.site_id is not None:
        scope.append(Shipment.site_id == filters.site_id)
    by_status = {
        ShipmentStatus(status): n
        for status, n in session.execute(
            select(Shipment.status, func.count()).where(*scope).group_by(Shipment.status)
        )
    }
    late = late_clause(now)
    where = list(scope)
    if filters.status is not None:
        where.append(Shipment.status == filters.status)
    if filters.late:
        where.append(late)
    if filters.excursion:
        where.append(Shipment.excursion_at.is_not(None))
    total = session.scalar(select(func.count()).select_from(Shipment).where(*where)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    query = (
        select(
            Shipment,
            Patient.subject_number,
            Site.site_number,
            Site.name,
            Product.code,
            case((late, True), else_=False).label("late"),
        )
        .join(Patient, Patient.id == Shipment.patient_id)
        .join(Site, Site.id == Shipment.site_id)
        .join(Product, Product.id == Shipment.product_id)
        .where(*where)
        .order_by(Shipment.requested_at.desc(), Shipment.id.desc())
        .limit(PAGE_SIZE)
        .offset((filters.page - 1) * PAGE_SIZE)
    )
    rows = [
        BoardRow(
            id=s.id,
            subject_number=subject,
            site_number=site_number,
            site_name=site_name,
            destination_city=s.destination_city,
            product_code=code,
            kit_count=s.kit_count,
            status=s.status,
            tracking_number=s.tracking_number,
            expected_delivery_at=s.expected_delivery_at,
            late=bool(is_late),
            excursion=s.excursion_at is not None,
            booking_failures=s.booking_failures,
            kind=s.kind.value,
        )
        for s, subject, site_number, site_name, code, is_late in session.execute(query)
    ]
    return Board(filters, rows, total, pages, by_status)


# --- one shipment -------------------------------------------------------------------------


@dataclass(frozen=True)
class KitLine:
    view: KitView
    condition: str | None
    condition_note: str | None


@dataclass(frozen=True)
class ShipmentRecord:
    shipment: Shipment
    subject_number: str
    site: Site
    product: Product
    depot: Depot
    late: bool
    kits: list[KitLine]
    events: list[TrackingEvent]
    releases: list[SignatureView]
    dispositions: list[ExcursionDisposition]
    released_by: str | None
    investigator: str | None


def _display_name(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return session.scalar(select(User.display_name).where(User.id == user_id))


def shipment_record(
    session: Session, actor: User, now: datetime, shipment_id: int
) -> ShipmentRecord:
    """One shipment as the supply manager's detail page shows it; NotFound when `actor`
    may not see it (the same answer as for one that does not exist)."""
    found = session.execute(
        select(Shipment, case((late_clause(now), True), else_=False))
        .where(
            Shipment.id == shipment_id,
            policy.visible(actor, Shipment, session=session, now=now),
        )
    ).first()  # fmt: skip
    if found is None:
        raise NotFound(f"No shipment #{shipment_id} that you may see.")
    shipment, late = found
    subject = session.scalar(
        select(Patient.subject_number).where(Patient.id == shipment.patient_id)
    )
    site = session.get(Site, shipment.site_id)
    assert subject is not None and site is not None
    kit_rows = session.execute(
        select(ShipmentKit, Kit)
        .join(Kit, Kit.id == ShipmentKit.kit_id)
        .where(ShipmentKit.shipment_id == shipment.id, policy.visible(actor, Kit))
        .order_by(Kit.kit_number)
    )
    kits = [
        KitLine(
            kit_view(actor, kit, now),
            line.condition.value if line.condition else None,
            line.condition_note,
        )
        for line, kit in kit_rows
    ]
    events = list(
        session.scalars(
            select(TrackingEvent)
            .where(TrackingEvent.shipment_id == shipment.id)
            .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
        )
    )
    dispositions = list(
        session.scalars(
            select(ExcursionDisposition)
            .where(ExcursionDisposition.shipment_id == shipment.id)
            .order_by(ExcursionDisposition.opened_at, ExcursionDisposition.id)
        )
    )
    return ShipmentRecord(
        shipment=shipment,
        subject_number=subject,
        site=site,
        product=shipment.product,
        depot=shipment.depot,
        late=bool(late),
        kits=kits,
        events=events,
        releases=signatures_of(session, shipment),
        dispositions=dispositions,
        released_by=_display_name(session, shipment.released_by_id),
        investigator=_display_name(session, shipment.investigator_id),
    )


# --- inventory ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryFilters:
    depot_id: int | None = None
    product_id: int | None = None
    within_days: int = EXPIRY_WARNING_DAYS


def _number(
    args: Mapping[str, str], name: str, label: str, errors: list[str], most: int
) -> int | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and int(raw) <= most:
        return int(raw)
    errors.append(f"{label}: choose one of the listed values, not {raw[:40]!r}.")
    return None


def parse_inventory_filters(args: Mapping[str, str]) -> tuple[InventoryFilters, list[str]]:
    errors: list[str] = []
    depot_id = _number(args, "depot", "Depot", errors, 10**9)
    product_id = _number(args, "product", "Product", errors, 10**9)
    within = EXPIRY_WARNING_DAYS
    if raw := args.get("days", "").strip():
        if raw.isascii() and raw.isdigit() and 0 <= int(raw) <= 3650:
            within = int(raw)
        else:
            errors.append(
                f"Expiring within: give a number of days from 0 to 3650, not {raw[:40]!r}."
            )
    return InventoryFilters(depot_id, product_id, within), errors


@dataclass(frozen=True)
class LotExpiry:
    lot: str
    expiry_date: date
    count: int
    expiring_soon: bool
    expired: bool


@dataclass(frozen=True)
class StockLine:
    depot: Depot
    product: Product
    available: int
    reserved: int
    quarantined: int
    expired: int  # available kits whose expiry date has passed at the depot
    expiring_soon: int  # available kits, not expired, expiring within the warning days
    lots: list[LotExpiry]


@dataclass
class _Tally:
    available: int = 0
    reserved: int = 0
    quarantined: int = 0
    expired: int = 0
    expiring_soon: int = 0
    lots: dict[tuple[str, date], int] = field(default_factory=dict)


def inventory(
    session: Session, actor: User, now: datetime, filters: InventoryFilters
) -> tuple[list[Depot], list[Product], list[StockLine]]:
    """The visible depots and products (for the filters) and the stock lines: per depot
    and product, kits by status, with their lots and expiry dates. Blinded: no arm."""
    depots = list(
        session.scalars(select(Depot).where(policy.visible(actor, Depot)).order_by(Depot.name))
    )
    products = list(
        session.scalars(
            select(Product).where(policy.visible(actor, Product)).order_by(Product.code)
        )
    )
    depot_by_id = {d.id: d for d in depots}
    product_by_id = {p.id: p for p in products}
    where = [
        policy.visible(actor, Kit),
        Kit.depot_id.in_(list(depot_by_id)),
        Kit.product_id.in_(list(product_by_id)),
        Kit.status.in_(list(STOCK_STATUSES)),
    ]
    if filters.depot_id is not None:
        where.append(Kit.depot_id == filters.depot_id)
    if filters.product_id is not None:
        where.append(Kit.product_id == filters.product_id)
    counts = session.execute(
        select(Kit.depot_id, Kit.product_id, Kit.status, Kit.lot, Kit.expiry_date, func.count())
        .where(*where)
        .group_by(Kit.depot_id, Kit.product_id, Kit.status, Kit.lot, Kit.expiry_date)
    ).all()
    # The expiry date is read on the depot's calendar: a kit expires there.
    today = {d.id: to_local(now, d.timezone).date() for d in depots}
    tallies: dict[tuple[int, int], _Tally] = {}
    for depot_id, product_id, status, lot, expiry, n in counts:
        tally = tallies.setdefault((depot_id, product_id), _Tally())
        day = today[depot_id]
        expired = expiry < day
        if status is KitStatus.AVAILABLE and expired:
            tally.expired += n
        elif status is KitStatus.AVAILABLE:
            tally.available += n
            if expiry <= day + timedelta(days=filters.within_days):
                tally.expiring_soon += n
        elif status is KitStatus.RESERVED:
            tally.reserved += n
        else:
            tally.quarantined += n
        if status is KitStatus.AVAILABLE:
            tally.lots[(lot, expiry)] = tally.lots.get((lot, expiry), 0) + n
    lines = []
    for (depot_id, product_id), tally in tallies.items():
        day = today[depot_id]
        horizon = day + timedelta(days=filters.within_days)
        lots = sorted(tally.lots.items(), key=lambda item: (item[0][1], item[0][0]))
        lines.append(
            StockLine(
                depot=depot_by_id[depot_id],
                product=product_by_id[product_id],
                available=tally.available,
                reserved=tally.reserved,
                quarantined=tally.quarantined,
                expired=tally.expired,
                expiring_soon=tally.expiring_soon,
                lots=[
                    LotExpiry(lot, expiry, n, day <= expiry <= horizon, expiry < day)
                    for (lot, expiry), n in lots
                ],
            )
        )
    lines.sort(key=lambda line: (line.depot.name, line.product.code))
    return depots, products, lines
