"""The device registry's rules: register models and units, hand a unit to a patient (or a
shipment) and take it back, provision and revoke its credentials, and keep the versions
it reports. Plain Python on a session; every change is audited."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, contains_eager, joinedload

from dct_platform import audit, policy
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.locking import lock_for_update
from dct_platform.models import Patient, User
from dct_platform.policy import Action
from dct_platform.roles import Role
from dct_platform.security import new_token, token_digest
from dct_platform.services.periods import close_open_period
from devices.metrics import METRICS
from devices.models import (
    DeviceAssignment,
    DeviceKind,
    DeviceModel,
    DeviceToken,
    DeviceUnit,
    DeviceVersionReport,
)

# Who keeps the inventory of devices (models and units): not a patient's data.
INVENTORY_ROLES = (Role.ADMIN, Role.SUPPLY_MANAGER)


def _required(text: str | None, field: str, errors: dict[str, list[str]], limit: int) -> str:
    value = (text or "").strip()
    if not value:
        errors[field] = ["required"]
    elif len(value) > limit:
        errors[field] = [f"At most {limit} characters."]
    return value


def register_model(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    manufacturer: str,
    model_name: str,
    kind: DeviceKind,
    metrics: Iterable[str],
    min_firmware: str | None = None,
    system: str | None = None,
) -> DeviceModel:
    if system is None:
        policy.require_role(actor, *INVENTORY_ROLES)
    errors: dict[str, list[str]] = {}
    manufacturer = _required(manufacturer, "manufacturer", errors, 100)
    model_name = _required(model_name, "model_name", errors, 100)
    codes = list(dict.fromkeys(metrics))
    unknown = [c for c in codes if c not in METRICS]
    if not codes:
        errors["metrics"] = ["Name at least one metric the model reports."]
    elif unknown:
        errors["metrics"] = [f"Unknown metrics: {', '.join(unknown)}."]
    if errors:
        raise ValidationFailed(
            "The device model was not registered; see details.", {"fields": errors}
        )
    if session.scalar(
        select(DeviceModel.id).where(
            DeviceModel.manufacturer == manufacturer, DeviceModel.model_name == model_name
        )
    ):
        raise Conflict(f"{manufacturer} {model_name} is registered already.")
    what = f"Register device model {manufacturer} {model_name}"
    with audit.acting(session, actor, now, system=system, what=what):
        model = DeviceModel(
            manufacturer=manufacturer,
            model_name=model_name,
            kind=kind,
            metrics=codes,
            min_firmware=(min_firmware or "").strip() or None,
            created_at=now,
            updated_at=now,
        )
        session.add(model)
    return model


def register_unit(
    session: Session,
    actor: User | None,
    now: datetime,
    model: DeviceModel,
    serial_number: str,
    *,
    system: str | None = None,
) -> DeviceUnit:
    if system is None:
        policy.require_role(actor, *INVENTORY_ROLES)
    errors: dict[str, list[str]] = {}
    serial_number = _required(serial_number, "serial_number", errors, 80)
    if errors:
        raise ValidationFailed("The device was not registered; see details.", {"fields": errors})
    if session.scalar(
        select(DeviceUnit.id).where(
            DeviceUnit.model_id == model.id, DeviceUnit.serial_number == serial_number
        )
    ):
        raise Conflict(f"A {model.model_name} with serial number {serial_number} exists.")
    with audit.acting(session, actor, now, system=system, what=f"Register device {serial_number}"):
        unit = DeviceUnit(
            model_id=model.id, serial_number=serial_number, created_at=now, updated_at=now
        )
        session.add(unit)
    return unit


def current_assignment(session: Session, unit: DeviceUnit) -> DeviceAssignment | None:
    return session.scalar(
        select(DeviceAssignment).where(
            DeviceAssignment.unit_id == unit.id, DeviceAssignment.valid_to.is_(None)
        )
    )


# What a unit of each kind is, in the refusal when another kind is handed over as one.
_KIND_WORDS = {DeviceKind.WEARABLE: "worn", DeviceKind.LOGGER: "a logger"}


def _hold(
    session: Session, actor: User | None, now: datetime, unit: DeviceUnit,
    holder: DeviceAssignment, *, kind: DeviceKind, this_holder: str, what: str,
    reason: str | None, system: str | None,
) -> DeviceAssignment:  # fmt: skip
    """Start `holder`'s period with `unit`: an active unit of `kind` that nobody holds.
    Concurrent hand-overs of one unit queue on its row."""
    if unit.retired_at is not None:
        raise Conflict(f"Device {unit.serial_number} is retired.")
    if unit.model.kind is not kind:
        raise Conflict(
            f"Device {unit.serial_number} is a {unit.model.kind.value}, not {_KIND_WORDS[kind]}."
        )
    lock_for_update(session, unit)
    held = current_assignment(session, unit)
    if held is not None:
        same = (held.patient_id, held.shipment_id) == (holder.patient_id, holder.shipment_id)
        raise Conflict(
            f"Device {unit.serial_number} is with {this_holder if same else 'someone else'};"
            " take it back first."
        )
    with audit.acting(session, actor, now, reason, system=system, what=what):
        holder.unit_id, holder.valid_from, holder.reason = unit.id, now, reason
        session.add(holder)
    return holder


def issue_to_patient(
    session: Session,
    actor: User | None,
    now: datetime,
    unit: DeviceUnit,
    patient: Patient,
    reason: str | None = None,
    *,
    system: str | None = None,
) -> DeviceAssignment:
    """Hand wearable `unit` to `patient` from `now`; the patient's site staff issue it."""
    if system is None:
        policy.authorize(actor, Action.EDIT, patient, now=now)
    return _hold(
        session, actor, now, unit, DeviceAssignment(patient_id=patient.id),
        kind=DeviceKind.WEARABLE, this_holder="this patient", reason=reason, system=system,
        what=f"Issue device {unit.serial_number} to patient {patient.subject_number}",
    )  # fmt: skip


def issue_to_shipment(
    session: Session,
    actor: User | None,
    now: datetime,
    unit: DeviceUnit,
    shipment_id: int,
    reason: str | None = None,
    *,
    system: str | None = None,
) -> DeviceAssignment:
    """Put logger `unit` with shipment `shipment_id` from `now`. The shipments capability
    has checked that the actor may."""
    return _hold(
        session, actor, now, unit, DeviceAssignment(shipment_id=shipment_id),
        kind=DeviceKind.LOGGER, this_holder="this shipment", reason=reason, system=system,
        what=f"Put logger {unit.serial_number} with shipment #{shipment_id}",
    )  # fmt: skip


def take_back(
    session: Session,
    actor: User | None,
    now: datetime,
    unit: DeviceUnit,
    reason: str,
    *,
    system: str | None = None,
) -> None:
    """End the unit's current assignment at `now` (returned, replaced, study close-out)
    and revoke its credentials: nothing it sends afterwards is accepted."""
    if not (reason or "").strip():
        raise ValidationFailed(
            "Say why the device comes back.", {"fields": {"reason": ["required"]}}
        )
    lock_for_update(session, unit)
    held = current_assignment(session, unit)
    if held is None:
        raise Conflict(f"Device {unit.serial_number} is not with anyone.")
    if system is None and held.patient_id is not None:
        patient = session.get(Patient, held.patient_id)
        policy.authorize(actor, Action.EDIT, patient, now=now)
    with audit.acting(
        session, actor, now, reason, system=system, what=f"Take back device {unit.serial_number}"
    ):
        close_open_period(
            session,
            DeviceAssignment,
            DeviceAssignment.unit_id == unit.id,
            now,
            "device's holder",
        )
        _revoke(session, unit, now)


def _revoke(session: Session, unit: DeviceUnit, now: datetime) -> int:
    tokens = list(
        session.scalars(
            select(DeviceToken).where(
                DeviceToken.unit_id == unit.id, DeviceToken.revoked_at.is_(None)
            )
        )
    )
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


def provision_token(
    session: Session,
    actor: User | None,
    now: datetime,
    unit: DeviceUnit,
    *,
    system: str | None = None,
) -> str:
    """A new credential for `unit`, returned once and stored only as its hash; any earlier
    credential of the unit stops working."""
    if system is None:
        policy.require_role(actor, *INVENTORY_ROLES, Role.SITE_STAFF)
    if unit.retired_at is not None:
        raise Conflict(f"Device {unit.serial_number} is retired.")
    token = new_token()
    what = f"Provision a credential for device {unit.serial_number}"
    with audit.acting(session, actor, now, system=system, what=what):
        _revoke(session, unit, now)
        session.add(DeviceToken(unit_id=unit.id, token_hash=token_digest(token), created_at=now))
    return token


def revoke_tokens(
    session: Session,
    actor: User | None,
    now: datetime,
    unit: DeviceUnit,
    reason: str,
    *,
    system: str | None = None,
) -> int:
    if system is None:
        policy.require_role(actor, *INVENTORY_ROLES, Role.SITE_STAFF)
    if not (reason or "").strip():
        raise ValidationFailed("Say why.", {"fields": {"reason": ["required"]}})
    what = f"Revoke the credentials of device {unit.serial_number}"
    with audit.acting(session, actor, now, reason, system=system, what=what):
        return _revoke(session, unit, now)


def credential(session: Session, token: str) -> DeviceToken | None:
    """The valid credential `token` is, with its unit; None when unknown or revoked."""
    return session.scalar(
        select(DeviceToken)
        .join(DeviceUnit, DeviceToken.unit_id == DeviceUnit.id)
        # The unit comes with the token: the request needs both, in one statement.
        .options(contains_eager(DeviceToken.unit))
        .where(
            DeviceToken.token_hash == token_digest(token),
            DeviceToken.revoked_at.is_(None),
            DeviceUnit.retired_at.is_(None),
        )
    )


def unit_for_token(session: Session, token: str) -> DeviceUnit | None:
    """The unit a device token belongs to, while the token is valid."""
    found = credential(session, token)
    return found.unit if found is not None else None


def report_versions(
    session: Session, unit: DeviceUnit, now: datetime, firmware: str, app: str | None = None
) -> None:
    """Keep the version timeline: a new pair starts an entry, a known one is seen again."""
    firmware, app_version = firmware.strip()[:40], (app or "").strip()[:40]
    if not firmware:
        return
    # One statement, so two batches reporting a new version at once cannot both insert it.
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(DeviceVersionReport)
        .values(
            unit_id=unit.id,
            firmware_version=firmware,
            app_version=app_version,
            first_seen_at=now,
            last_seen_at=now,
        )
        .on_conflict_do_update(
            index_elements=["unit_id", "firmware_version", "app_version"],
            set_={"last_seen_at": now},
        )
    )


def version_timeline(session: Session, unit: DeviceUnit) -> list[DeviceVersionReport]:
    return list(
        session.scalars(
            select(DeviceVersionReport)
            .where(DeviceVersionReport.unit_id == unit.id)
            .order_by(DeviceVersionReport.first_seen_at, DeviceVersionReport.id)
        )
    )


def units_of_patient(session: Session, patient: Patient) -> list[tuple[DeviceAssignment, Any]]:
    """Every device the patient held, with its assignment, oldest first."""
    return [
        (a, a.unit)
        for a in session.scalars(
            select(DeviceAssignment)
            .where(DeviceAssignment.patient_id == patient.id)
            .order_by(DeviceAssignment.valid_from)
            .options(joinedload(DeviceAssignment.unit).joinedload(DeviceUnit.model))
        )
    ]
