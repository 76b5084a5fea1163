"""The device registry: models and units, a unit handed to one patient at a time, its
credential shown once and kept only as a hash, revoked when the unit comes back, and the
versions it reports kept as a timeline."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import AuditAction, AuditEntry, Patient, User
from dct_platform.timeutil import utcnow
from devices import registry
from devices.models import DeviceAssignment, DeviceKind, DeviceToken
from tests.support.world import World


def _users(world: World) -> dict[str, User]:
    return {name: db.session.get(User, u.id) for name, u in world.users.items()}


def test_a_unit_goes_to_one_patient_at_a_time_with_a_credential_shown_once(
    app: Flask, world: World
) -> None:
    with app.app_context():
        s, now, users = db.session(), utcnow(), _users(world)
        anna = s.get(Patient, world.patients["anna"].id)
        kenji = s.get(Patient, world.patients["kenji"].id)
        with pytest.raises(ValidationFailed) as unknown:
            registry.register_model(
                s, users["supply"], now, manufacturer="Acme", model_name="Band",
                kind=DeviceKind.WEARABLE, metrics=["heart_rate", "mood"],
            )  # fmt: skip
        assert unknown.value.details["fields"]["metrics"] == ["Unknown metrics: mood."]
        with pytest.raises(Forbidden):
            registry.register_model(
                s, users["coord_berlin"], now, manufacturer="Acme", model_name="Band",
                kind=DeviceKind.WEARABLE, metrics=["heart_rate"],
            )  # fmt: skip
        band = registry.register_model(
            s, users["supply"], now, manufacturer="Acme", model_name="Band 2",
            kind=DeviceKind.WEARABLE, metrics=["heart_rate", "step_count"], min_firmware="2.1",
        )  # fmt: skip
        unit = registry.register_unit(s, users["supply"], now, band, "SN-0001")
        with pytest.raises(Conflict):
            registry.register_unit(s, users["supply"], now, band, "SN-0001")

        # Only the patient's own site hands the unit out.
        with pytest.raises(Forbidden):
            registry.issue_to_patient(s, users["coord_tokyo"], now, unit, anna)
        registry.issue_to_patient(s, users["coord_berlin"], now, unit, anna, "first visit")
        with pytest.raises(Conflict, match="is with this patient"):
            registry.issue_to_patient(s, users["coord_berlin"], now, unit, anna)
        with pytest.raises(Conflict, match="is with someone else"):
            registry.issue_to_patient(s, users["coord_tokyo"], now, unit, kenji)

        token = registry.provision_token(s, users["coord_berlin"], now, unit)
        stored = s.scalars(select(DeviceToken.token_hash)).all()
        assert stored == [hashlib.sha256(token.encode()).hexdigest()]
        assert registry.unit_for_token(s, token) is unit
        newer = registry.provision_token(s, users["coord_berlin"], now, unit)
        assert registry.unit_for_token(s, token) is None  # the older one stops working
        assert registry.unit_for_token(s, newer) is unit

        later = now + timedelta(days=30)
        with pytest.raises(ValidationFailed):
            registry.take_back(s, users["coord_berlin"], later, unit, "")
        registry.take_back(s, users["coord_berlin"], later, unit, "study close-out visit")
        assert registry.unit_for_token(s, newer) is None  # returned: its data is refused
        registry.issue_to_patient(s, users["coord_tokyo"], later, unit, kenji, "reissued")
        s.commit()

        history = [
            (a.patient_id, a.valid_from, a.valid_to)
            for a, _unit in registry.units_of_patient(s, anna)
        ]
        assert history == [(anna.id, now, later)]
        actions = set(s.scalars(select(AuditAction.summary)))
        assert {
            "Issue device SN-0001 to patient B1-anna",
            "Take back device SN-0001",
            "Provision a credential for device SN-0001",
        } <= actions
        hashes = s.scalars(select(AuditEntry.new_value).where(AuditEntry.field == "token_hash"))
        assert set(hashes) == {"[redacted]"}


def test_the_database_keeps_one_holder_and_the_trail_complete(app: Flask, world: World) -> None:
    with app.app_context():
        s, now, users = db.session(), utcnow(), _users(world)
        band = registry.register_model(
            s, None, now, manufacturer="Acme", model_name="Band", kind=DeviceKind.WEARABLE,
            metrics=["heart_rate"], system="test",
        )  # fmt: skip
        unit = registry.register_unit(s, None, now, band, "SN-9", system="test")
        anna = s.get(Patient, world.patients["anna"].id)
        registry.issue_to_patient(s, users["coord_berlin"], now, unit, anna)
        s.commit()
        # A second open holder, written past the service: the unique index refuses it.
        with pytest.raises(IntegrityError), audit.acting(s, None, now, system="test", what="x"):
            s.add(DeviceAssignment(unit_id=unit.id, patient_id=anna.id, valid_from=now))
        s.rollback()
        # Below the ORM, the trail's guard refuses to remove the assignment unrecorded.
        with pytest.raises(DBAPIError, match="refused"):
            s.execute(text("DELETE FROM device_assignments"))
        s.rollback()


def test_the_versions_a_unit_reports_form_its_timeline(app: Flask, world: World) -> None:
    with app.app_context():
        s, now = db.session(), utcnow()
        band = registry.register_model(
            s, None, now, manufacturer="Acme", model_name="Band", kind=DeviceKind.WEARABLE,
            metrics=["heart_rate"], system="test",
        )  # fmt: skip
        unit = registry.register_unit(s, None, now, band, "SN-7", system="test")
        hour = timedelta(hours=1)
        registry.report_versions(s, unit, now, "2.1.0", "5.0")
        registry.report_versions(s, unit, now + hour, "2.1.0", "5.0")
        registry.report_versions(s, unit, now + 2 * hour, "2.2.0", "5.0")
        registry.report_versions(s, unit, now + 3 * hour, "  ")  # nothing reported
        s.commit()
        timeline = [
            (v.firmware_version, v.app_version, v.first_seen_at, v.last_seen_at)
            for v in registry.version_timeline(s, unit)
        ]
        assert timeline == [
            ("2.1.0", "5.0", now, now + hour),
            ("2.2.0", "5.0", now + 2 * hour, now + 2 * hour),
        ]
