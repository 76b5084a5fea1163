"""Demo direct-to-patient shipments: a central depot per demo country stocked with two
lots of the study drug, temperature loggers, and at the Berlin site a shipment in each
state the pages show: delivered and confirmed by the patient, on its way with a logger
inside the range (the chart), on its way after a temperature excursion (kits in
quarantine, a disposition waiting for the supply manager), and one waiting for the
investigator's release (`pi.de101`'s queue). The other sites each have one on its way.

The demo patients are randomised first (arm A or B, as the randomisation system's import
would set it): kits are packed per arm. Everything goes through the services, the
courier's updates through `tracking.apply_update` as its webhook would bring them, and the
logger readings through device ingestion. A second `make demo` finds the product and adds
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform import demo as core_demo
from dct_platform.models import Patient, PatientStatus, Site, User
from devices import ingestion, registry
from devices.models import DeviceKind, DeviceModel, DeviceUnit
from logistics.courier import tracking
from logistics.shipments import excursions, orders, receipt
from logistics.shipments.models import Shipment
from logistics.supply import inventory
from logistics.supply.models import DepotKind, Product, StorageCondition

SYSTEM = "demo-seed"
COURIER = "simcourier"
PRODUCT = "IP-01"
DEPOTS = {
    "DE": ("Central depot EU (Frankfurt)", "Europe/Berlin"),
    "US": ("Central depot US (Memphis)", "America/Chicago"),
    "JP": ("Central depot JP (Osaka)", "Asia/Tokyo"),
}
COLD = inventory.TemperatureRange(
    min_c=2, max_c=8, hard_min_c=0, hard_max_c=25, excursion_minutes=60
)
ROUTE = [
    ("booked", "Depot"),
    ("picked_up", "Depot"),
    ("in_transit", "Regional hub"),
    ("out_for_delivery", "Local delivery base"),
    ("delivered", "At the door"),
]


def seed(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
    trial = seeded.trial
    if session.scalar(
        select(Product.id).where(Product.trial_id == trial.id, Product.code == PRODUCT)
    ):
        return
    product = inventory.add_product(
        session, None, now, trial=trial, code=PRODUCT, name="Study drug 10 mg tablets",
        storage_condition=StorageCondition.REFRIGERATED, temperature=COLD,
        home_delivery_ok=True, system=SYSTEM,
    )  # fmt: skip
    patients = [p for p in seeded.patients if p.status is PatientStatus.ENROLLED]
    _randomise(session, now, patients)
    for country, (name, zone) in DEPOTS.items():
        depot = inventory.add_depot(
            session, None, now, name=name, kind=DepotKind.CENTRAL, country=country,
            timezone=zone, system=SYSTEM,
        )  # fmt: skip
        for lot, months in (("L2601", 5), ("L2602", 14)):
            kits = [(f"{country}-{lot[-2:]}{n:03d}", "A" if n % 2 else "B") for n in range(1, 41)]
            inventory.receive_kits(
                session, None, now - timedelta(days=30), product=product, depot=depot, lot=lot,
                expiry_date=now.date() + timedelta(days=30 * months), kits=kits, system=SYSTEM,
            )  # fmt: skip
    loggers = _loggers(session, now)
    by_site: dict[int, list[Patient]] = {}
    for patient in patients:
        by_site.setdefault(patient.site_id, []).append(patient)
    for site in seeded.sites:
        mine = by_site.get(site.id, [])
        investigator = f"pi.{site.site_number.lower().replace('-', '')}"
        password = seeded.password_of(investigator)
        pi = session.scalar(select(User).where(User.username == investigator))
        assert pi is not None
        if site.site_number == "DE-101" and len(mine) >= 4:
            _delivered_and_confirmed(session, now, mine[0], product, pi, password)
            _on_its_way(session, now, mine[1], product, pi, password, next(loggers), warm=False)
            _on_its_way(session, now, mine[2], product, pi, password, next(loggers), warm=True)
            orders.request_shipment(
                session, _coordinator(session, site), now - timedelta(hours=3), patient=mine[3],
                product=product, kit_count=2, next_resupply=now.date() + timedelta(days=28),
                note="Next cycle; the patient is home on weekday mornings.",
            )  # fmt: skip
        elif mine:
            _on_its_way(session, now, mine[0], product, pi, password, next(loggers), warm=False)


def _randomise(session: Session, now: datetime, patients: list[Patient]) -> None:
    with audit.acting(session, None, now, what="Randomisation import", system=SYSTEM):
        for n, patient in enumerate(patients):
            if patient.arm is None:
                patient.arm = "A" if n % 2 == 0 else "B"
                patient.updated_at = now


def _coordinator(session: Session, site: Site) -> User:
    username = f"coord.{site.site_number.lower().replace('-', '')}"
    user: User | None = session.scalar(select(User).where(User.username == username))
    assert user is not None
    return user


def _loggers(session: Session, now: datetime) -> Iterator[tuple[DeviceUnit, int]]:
    model = session.scalar(select(DeviceModel).where(DeviceModel.model_name == "ColdTrack 2"))
    if model is None:
        model = registry.register_model(
            session, None, now - timedelta(days=60), manufacturer="Polar Freight",
            model_name="ColdTrack 2", kind=DeviceKind.LOGGER, metrics=["ambient_temperature"],
            system=SYSTEM,
        )  # fmt: skip
    n = 0
    while True:
        n += 1
        unit = registry.register_unit(
            session, None, now - timedelta(days=30), model, f"CT2-{n:05d}", system=SYSTEM
        )
        token = registry.provision_token(
            session, None, now - timedelta(days=30), unit, system=SYSTEM
        )
        credential = registry.credential(session, token)
        assert credential is not None
        yield unit, credential.id


def _released(
    session: Session, at: datetime, patient: Patient, product: Product, pi: User,
    password: str, kit_count: int = 2,
) -> Shipment:  # fmt: skip
    coordinator = _coordinator(session, patient.site)
    shipment = orders.request_shipment(
        session, coordinator, at, patient=patient, product=product, kit_count=kit_count,
        next_resupply=at.date() + timedelta(days=28),
    )  # fmt: skip
    return orders.release(session, pi, at + timedelta(hours=2), shipment, password=password)


def _book(session: Session, shipment: Shipment, at: datetime) -> None:
    with audit.acting(session, None, at, what="Courier booking", system=f"courier:{COURIER}"):
        shipment.courier = COURIER
        shipment.tracking_number = f"SIM{shipment.id:08d}"
        shipment.booked_at = at
        shipment.expected_delivery_at = at + timedelta(days=2)
        shipment.updated_at = at


def _courier(
    session: Session, shipment: Shipment, steps: list[tuple[str, str]], start: datetime
) -> None:
    assert shipment.tracking_number is not None
    for n, (status, place) in enumerate(steps):
        tracking.apply_update(
            session, start + timedelta(hours=6 * n), courier=COURIER,
            message_id=f"demo-{shipment.id}-{status}", tracking_number=shipment.tracking_number,
            status=status, occurred_at=start + timedelta(hours=6 * n), location=place,
            source="webhook",
        )  # fmt: skip


def _delivered_and_confirmed(
    session: Session, now: datetime, patient: Patient, product: Product, pi: User, password: str
) -> None:
    start = now - timedelta(days=9)
    shipment = _released(session, start, patient, product, pi, password)
    _book(session, shipment, start + timedelta(hours=3))
    _courier(session, shipment, ROUTE, start + timedelta(hours=3))
    user = session.get(User, patient.user_id) if patient.user_id else None
    if user is not None:
        receipt.confirm_receipt(session, user, start + timedelta(days=2), shipment)


def _on_its_way(
    session: Session, now: datetime, patient: Patient, product: Product, pi: User,
    password: str, logger: tuple[DeviceUnit, int], *, warm: bool,
) -> None:  # fmt: skip
    start = now - timedelta(hours=30)
    shipment = _released(session, start, patient, product, pi, password)
    unit, token_id = logger
    excursions.attach_logger(
        session, None, start + timedelta(hours=2), shipment, unit, system=SYSTEM
    )
    _book(session, shipment, start + timedelta(hours=3))
    _courier(session, shipment, ROUTE[:3], start + timedelta(hours=3))
    readings = list(_temperatures(start + timedelta(hours=3), now, warm=warm))
    body = {"readings": readings}
    ingestion.ingest(
        session,
        unit,
        token_id,
        json.dumps(body).encode(),
        list(readings),
        now,
    )
    # The check runs after commit from ingestion's event; the demo shows its outcome now.
    excursions.check_shipment(session, now, shipment.id)


def _temperatures(start: datetime, end: datetime, *, warm: bool) -> Iterator[dict[str, object]]:
    """A reading every 15 minutes around 5 °C; `warm`: a van left in the sun for two hours
    half-way (above 8 °C for longer than the hour the product allows)."""
    at, n = start, 0
    middle = start + (end - start) / 2
    while at < end:
        value = 5.0 + (0.6 if n % 4 < 2 else -0.4)
        if warm and middle <= at < middle + timedelta(hours=2):
            value = 11.5 + (n % 3) * 0.4
        yield {
            "metric": "ambient_temperature",
            "value": round(value, 1),
            "unit": "°C",
            "time": at.isoformat(timespec="seconds"),
            "id": f"t-{int(at.timestamp())}",
        }
        at += timedelta(minutes=15)
        n += 1


def init_app(app: Flask) -> None:
    core_demo.register_demo_seeder(app, "logistics.shipments", seed)
