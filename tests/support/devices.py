"""Device units issued to the test world's patients, with their credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask

from dct_platform.extensions import db
from dct_platform.models import Patient
from dct_platform.timeutil import utcnow
from devices import registry
from devices.models import DeviceKind, DeviceModel


@dataclass(frozen=True)
class Wearable:
    unit_id: int
    serial: str
    token: str
    issued_at: datetime

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def issue_wearable(
    app: Flask, patient_id: int, serial: str = "SN-1", issued_days_ago: float = 10
) -> Wearable:
    """A wristband (heart rate, steps) issued to the patient, with its credential."""
    with app.app_context():
        s, now = db.session(), utcnow()
        band = s.query(DeviceModel).filter_by(model_name="Band").one_or_none()
        if band is None:
            band = registry.register_model(
                s, None, now, manufacturer="Acme", model_name="Band",
                kind=DeviceKind.WEARABLE, metrics=["heart_rate", "step_count"], system="test",
            )  # fmt: skip
        unit = registry.register_unit(s, None, now, band, serial, system="test")
        issued = now - timedelta(days=issued_days_ago)
        patient = s.get(Patient, patient_id)
        assert patient is not None
        registry.issue_to_patient(s, None, issued, unit, patient, system="test")
        token = registry.provision_token(s, None, now, unit, system="test")
        s.commit()
        return Wearable(unit.id, serial, token, issued)
