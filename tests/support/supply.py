"""Supply for the test world: a central depot and Berlin's pharmacy, a product fit for
home delivery and one that is not, and kits received through the services. Anna (Berlin)
is in arm A and Kenji (Tokyo) in arm B, as the randomisation would have put them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.extensions import db
from dct_platform.models import Patient, PatientStatus, Site, Trial, User
from dct_platform.services import accounts
from dct_platform.services import patients as patient_service
from logistics.supply import inventory
from logistics.supply.models import Depot, DepotKind, Kit, Product, StorageCondition
from logistics.supply.policy import UNBLINDED
from tests.support.world import PASSWORD, World

SYSTEM = "test-supply"
COLD = inventory.TemperatureRange(
    min_c=2, max_c=8, hard_min_c=0, hard_max_c=25, excursion_minutes=60
)
ARMS = {"anna": "A", "kenji": "B"}


@dataclass
class Supply:
    depot_id: int  # central, EU
    pharmacy_id: int  # Berlin site's pharmacy
    product_id: int  # fit for home delivery
    clinic_only_id: int  # not fit for home delivery


def build_supply(app: Flask, world: World, now: datetime) -> Supply:
    with app.app_context():
        s = db.session()
        trial = s.get(Trial, world.trial.id)
        berlin = s.get(Site, world.berlin.id)
        assert trial is not None and berlin is not None
        depot = inventory.add_depot(
            s, None, now, name="Central depot EU", kind=DepotKind.CENTRAL, country="DE",
            timezone="Europe/Berlin", system=SYSTEM,
        )  # fmt: skip
        pharmacy = inventory.add_depot(
            s, None, now, name="Berlin site pharmacy", kind=DepotKind.SITE_PHARMACY,
            country="DE", timezone="Europe/Berlin", site=berlin, system=SYSTEM,
        )  # fmt: skip
        product = inventory.add_product(
            s, None, now, trial=trial, code="IP-01", name="Study drug 10 mg",
            storage_condition=StorageCondition.REFRIGERATED, temperature=COLD,
            home_delivery_ok=True, system=SYSTEM,
        )  # fmt: skip
        clinic_only = inventory.add_product(
            s, None, now, trial=trial, code="IP-09", name="Infusion concentrate",
            storage_condition=StorageCondition.FROZEN,
            temperature=inventory.TemperatureRange(-25, -15, -40, -10, 0),
            home_delivery_ok=False, system=SYSTEM,
        )  # fmt: skip
        for key, arm in ARMS.items():
            patient = s.get(Patient, world.patients[key].id)
            assert patient is not None
            # As the randomisation system's import would set it.
            with audit.acting(s, None, now, what=f"Randomise {key}", system=SYSTEM):
                patient.arm = arm
                patient.updated_at = now
        s.commit()
        return Supply(depot.id, pharmacy.id, product.id, clinic_only.id)


def receive(
    app: Flask, product_id: int, depot_id: int, lot: str, expiry: date,
    kits: Sequence[tuple[str, str]], now: datetime,
) -> None:  # fmt: skip
    """Kits `(number, arm)` of one lot into a depot, committed."""
    with app.app_context():
        s = db.session()
        product, depot = s.get(Product, product_id), s.get(Depot, depot_id)
        assert product is not None and depot is not None
        inventory.receive_kits(
            s, None, now, product=product, depot=depot, lot=lot, expiry_date=expiry,
            kits=kits, system=SYSTEM,
        )  # fmt: skip
        s.commit()


def patients_in_arm(app: Flask, world: World, count: int, arm: str, now: datetime) -> list[int]:
    """`count` more enrolled patients at the Berlin site, randomised to `arm`."""
    with app.app_context():
        s = db.session()
        berlin = s.get(Site, world.berlin.id)
        assert berlin is not None
        ids = [
            patient_service.enroll_patient(
                s, None, now, site=berlin, subject_number=f"B1-{arm}{n:03d}",
                timezone="Europe/Berlin", status=PatientStatus.ENROLLED, arm=arm, system=SYSTEM,
            ).id
            for n in range(count)
        ]  # fmt: skip
        s.commit()
        return ids


def unblinded_user(app: Flask, world: World, now: datetime) -> int:
    with app.app_context():
        s = db.session()
        trial = s.get(Trial, world.trial.id)
        user = accounts.create_user(
            s, None, now, username="unblinded", password=PASSWORD, role=UNBLINDED,
            display_name="Unblinded", trials=[trial], system=SYSTEM,
        )  # fmt: skip
        s.commit()
        return user.id


def kits_by_number(session: Session) -> dict[str, Kit]:
    return {k.kit_number: k for k in session.scalars(select(Kit).order_by(Kit.kit_number))}


def user_named(session: Session, username: str) -> User:
    return session.scalars(select(User).where(User.username == username)).one()
