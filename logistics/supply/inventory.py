"""The supply records: depots, investigational products and the kits a depot receives.

Each change is audited; callers pass the acting user (or a `system` name for imports from
the randomisation system and for seeds) and `now`, and commit. The pages and API that
will call these check the caller's role first, as dispatch's network records do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.models import Site, Trial, User
from dct_platform.timeutil import is_valid_timezone
from logistics.supply.models import Depot, DepotKind, Kit, KitStatus, Product, StorageCondition

_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class TemperatureRange:
    """°C. Outside [min_c, max_c] for longer than `excursion_minutes` is an excursion;
    outside [hard_min_c, hard_max_c] is one at once."""

    min_c: float
    max_c: float
    hard_min_c: float
    hard_max_c: float
    excursion_minutes: int

    def problems(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if not self.min_c < self.max_c:
            errors["max_c"] = ["The highest temperature must be above the lowest."]
        if self.hard_min_c > self.min_c:
            errors["hard_min_c"] = ["The hard lower limit may not be inside the range."]
        if self.hard_max_c < self.max_c:
            errors["hard_max_c"] = ["The hard upper limit may not be inside the range."]
        if self.excursion_minutes < 0:
            errors["excursion_minutes"] = ["Give 0 or more minutes."]
        return errors


def add_depot(
    session: Session, actor: User | None, now: datetime, *, name: str, kind: DepotKind,
    country: str, timezone: str, site: Site | None = None, system: str | None = None,
) -> Depot:  # fmt: skip
    name = name.strip()
    errors: dict[str, list[str]] = {}
    if not name or len(name) > 200:
        errors["name"] = ["A name of up to 200 characters."]
    if not _COUNTRY.match(country):
        errors["country"] = ["Use the two-letter ISO 3166 country code, e.g. DE."]
    if not is_valid_timezone(timezone):
        errors["timezone"] = [f"Unknown time zone {timezone!r}; use an IANA name."]
    if (kind is DepotKind.SITE_PHARMACY) != (site is not None):
        errors["site"] = ["A site pharmacy names its site; a central depot none."]
    if errors:
        raise ValidationFailed("The depot could not be added; see details.", {"fields": errors})
    if session.scalar(select(Depot.id).where(Depot.name == name)):
        raise Conflict(f"A depot named {name} exists.")
    depot = Depot(
        name=name, kind=kind, site_id=site.id if site else None, country=country,
        timezone=timezone, is_active=True, created_at=now, updated_at=now,
    )  # fmt: skip
    with audit.acting(session, actor, now, what=f"Add depot {name}", system=system):
        session.add(depot)
    return depot


def add_product(
    session: Session, actor: User | None, now: datetime, *, trial: Trial, code: str,
    name: str, storage_condition: StorageCondition, temperature: TemperatureRange,
    home_delivery_ok: bool, system: str | None = None,
) -> Product:  # fmt: skip
    code = code.strip()
    errors = temperature.problems()
    if not code or len(code) > 40:
        errors["code"] = ["A code of up to 40 characters."]
    if errors:
        raise ValidationFailed("The product could not be added; see details.", {"fields": errors})
    if session.scalar(select(Product.id).where(Product.trial_id == trial.id, Product.code == code)):
        raise Conflict(f"Product {code} exists in {trial.protocol_number}.")
    product = Product(
        trial_id=trial.id, code=code, name=name, storage_condition=storage_condition,
        min_c=temperature.min_c, max_c=temperature.max_c, hard_min_c=temperature.hard_min_c,
        hard_max_c=temperature.hard_max_c, excursion_minutes=temperature.excursion_minutes,
        home_delivery_ok=home_delivery_ok, created_at=now, updated_at=now,
    )  # fmt: skip
    what = f"Add product {code} to {trial.protocol_number}"
    with audit.acting(session, actor, now, what=what, system=system):
        session.add(product)
    return product


def receive_kits(
    session: Session, actor: User | None, now: datetime, *, product: Product, depot: Depot,
    lot: str, expiry_date: date, kits: Sequence[tuple[str, str]], system: str | None = None,
) -> list[Kit]:  # fmt: skip
    """Kits of one lot arriving at a depot, each `(kit number, arm)` as the packing list
    of the randomisation system gives them; they are available at once."""
    lot = lot.strip()
    numbers = [number.strip() for number, _arm in kits]
    errors: dict[str, list[str]] = {}
    if not kits:
        errors["kits"] = ["Give at least one kit."]
    if not lot or len(lot) > 40:
        errors["lot"] = ["A lot number of up to 40 characters."]
    if any(not n or len(n) > 40 for n in numbers) or len(set(numbers)) != len(numbers):
        errors["kits"] = ["Kit numbers of up to 40 characters, each once."]
    if any(not arm.strip() or len(arm.strip()) > 40 for _number, arm in kits):
        errors["arm"] = ["Every kit names its arm, in up to 40 characters."]
    if not depot.is_active:
        errors["depot"] = [f"Depot {depot.name} is closed."]
    elif (
        depot.site_id is not None
        and session.scalar(select(Site.trial_id).where(Site.id == depot.site_id))
        != product.trial_id
    ):
        # A site belongs to one trial; so does its pharmacy's stock.
        errors["depot"] = [f"{depot.name} is the pharmacy of a site of another trial."]
    if errors:
        raise ValidationFailed("The kits could not be received; see details.", {"fields": errors})
    taken = list(
        session.scalars(
            select(Kit.kit_number).where(
                Kit.trial_id == product.trial_id, Kit.kit_number.in_(numbers)
            )
        )
    )
    if taken:
        raise Conflict(f"Kit numbers already used in this trial: {', '.join(sorted(taken))}.")
    received = [
        Kit(trial_id=product.trial_id, kit_number=number, product_id=product.id, lot=lot,
            expiry_date=expiry_date, depot_id=depot.id, status=KitStatus.AVAILABLE,
            arm=arm.strip(), created_at=now, updated_at=now)
        for number, (_n, arm) in zip(numbers, kits, strict=True)
    ]  # fmt: skip
    what = f"Receive {len(received)} kits of {product.code} lot {lot} at {depot.name}"
    with audit.acting(session, actor, now, what=what, system=system):
        session.add_all(received)
    return received
