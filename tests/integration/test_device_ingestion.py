"""Devices send readings with their own credential: each reading stored once however often
it is sent, bad readings refused one by one with their reason while the rest is stored,
and each linked to the site responsible for the patient at the reading's time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform.extensions import db
from dct_platform.models import Patient, Site, User
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from devices import registry
from devices.models import DeviceBatch, DeviceKind, DeviceReading, DeviceUnit
from tests.support.clients import token_for
from tests.support.concurrency import all_at_once
from tests.support.live_server import LiveServer
from tests.support.world import World

URL = "/api/v1/devices/readings"


@dataclass(frozen=True)
class Wearable:
    unit_id: int
    token: str
    issued_at: datetime

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def wearable(app: Flask, world: World) -> Wearable:
    """A wristband issued to Anna ten days ago, with its credential."""
    with app.app_context():
        s, now = db.session(), utcnow()
        band = registry.register_model(
            s, None, now, manufacturer="Acme", model_name="Band",
            kind=DeviceKind.WEARABLE, metrics=["heart_rate", "step_count"], system="test",
        )  # fmt: skip
        unit = registry.register_unit(s, None, now, band, "SN-1", system="test")
        issued = now - timedelta(days=10)
        anna = s.get(Patient, world.patients["anna"].id)
        registry.issue_to_patient(s, None, issued, unit, anna, system="test")
        token = registry.provision_token(s, None, now, unit, system="test")
        s.commit()
        return Wearable(unit.id, token, issued)


def _at(days_ago: float) -> str:
    return (utcnow() - timedelta(days=days_ago)).isoformat(timespec="seconds")


def _hr(value: object, days_ago: float = 1, reading_id: str | None = None) -> dict[str, object]:
    reading: dict[str, object] = {
        "metric": "heart_rate", "value": value, "unit": "beats/min", "time": _at(days_ago)
    }  # fmt: skip
    if reading_id:
        reading["id"] = reading_id
    return reading


def _stored(app: Flask) -> list[DeviceReading]:
    with app.app_context():
        rows = list(
            db.session.scalars(select(DeviceReading).order_by(DeviceReading.effective_start))
        )
        db.session.remove()
    return rows


def test_retries_store_each_reading_once(
    app: Flask, client: FlaskClient, wearable: Wearable
) -> None:
    batch = {"readings": [_hr(70, 1, "a"), _hr(72, 2), _hr(74, 3)]}
    first = client.post(URL, headers=wearable.headers, json=batch)
    assert first.status_code == 200, first.get_json()
    assert (first.get_json()["stored"], first.get_json()["duplicates"]) == (3, 0)
    # A retry without a key: the database recognises every reading.
    again = client.post(URL, headers=wearable.headers, json=batch)
    assert (again.get_json()["stored"], again.get_json()["duplicates"]) == (0, 3)
    # With a key: the same answer as the first time it was sent with that key.
    keyed = {**wearable.headers, "Idempotency-Key": "upload-17"}
    # One body, sent twice: two calls of _hr() a second apart would differ.
    body = {"readings": [_hr(80, 4)]}
    sent = client.post(URL, headers=keyed, json=body).get_json()
    resent = client.post(URL, headers=keyed, json=body).get_json()
    assert resent == sent and sent["stored"] == 1
    other = client.post(URL, headers=keyed, json={"readings": [_hr(81, 4)]})
    assert other.status_code == 409
    assert len(_stored(app)) == 4
    with app.app_context():
        batches = db.session.scalar(select(func.count(DeviceBatch.id)))
    assert batches == 3  # one provenance record per batch accepted, the replay adds none


def test_a_concurrent_double_send_stores_once(
    app: Flask, world: World, wearable: Wearable, live_server: LiveServer
) -> None:
    readings = [_hr(60 + i % 40, 1 + i / 100) for i in range(200)]
    answers = all_at_once(
        [
            lambda key=key: requests.post(
                f"{live_server.url}{URL}",
                headers={**wearable.headers, **({"Idempotency-Key": key} if key else {})},
                json={"readings": readings},
                timeout=60,
            )
            for key in ("same", "same", None, None)
        ]
    )
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert answers[0].json() == answers[1].json()  # the same key, the same answer
    # Across the three batches accepted, every reading was stored exactly once.
    by_batch = {a.json()["batch_id"]: a.json() for a in answers}
    assert len(by_batch) == 3
    assert sum(b["stored"] for b in by_batch.values()) == 200
    assert all(b["stored"] + b["duplicates"] == 200 for b in by_batch.values())
    assert len(_stored(app)) == 200


def test_open_mhealth_points_round_trip_to_utc(
    app: Flask, client: FlaskClient, wearable: Wearable
) -> None:
    day = (utcnow() - timedelta(days=2)).date().isoformat()
    points = [
        {
            "header": {
                "id": "hr-1",
                "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
                "acquisition_provenance": {"source_data_point_id": "dev-42"},
            },
            "body": {
                "heart_rate": {"value": 64, "unit": "beats/min"},
                "effective_time_frame": {"date_time": f"{day}T08:00:00+01:00"},
            },
        },
        {
            "header": {
                "id": "steps-1",
                "schema_id": {"namespace": "omh", "name": "step-count", "version": "2.0"},
            },
            "body": {
                "step_count": {"value": 1200, "unit": "steps"},
                "effective_time_frame": {
                    "time_interval": {
                        "start_date_time": f"{day}T09:00:00+01:00",
                        "end_date_time": f"{day}T10:00:00+01:00",
                    }
                },
            },
        },
    ]
    answer = client.post(URL, headers=wearable.headers, json={"readings": points}).get_json()
    assert answer["format"] == "openmhealth" and answer["stored"] == 2, answer
    heart, steps = _stored(app)
    assert (heart.metric, heart.value, heart.device_reading_id) == ("heart_rate", 64, "dev-42")
    assert heart.effective_start.isoformat() == f"{day}T07:00:00+00:00"
    assert steps.metric == "step_count" and steps.value == 1200
    assert (steps.effective_start.isoformat(), steps.effective_end.isoformat()) == (
        f"{day}T08:00:00+00:00",
        f"{day}T09:00:00+00:00",
    )


def test_bad_readings_are_refused_with_their_index_and_the_rest_stored(
    app: Flask, client: FlaskClient, wearable: Wearable
) -> None:
    naive = (utcnow() - timedelta(days=1)).replace(tzinfo=None).isoformat(timespec="seconds")
    batch = [
        _hr(70, 1),  # 0: fine
        {"metric": "heart_rate", "value": 70, "unit": "bananas", "time": _at(1)},  # 1
        _hr("70"),  # 2: a string for a number
        {"metric": "heart_rate", "value": 70, "unit": "beats/min", "time": naive},  # 3
        _hr(70, -1),  # 4: a day in the future
        _hr(70, 30),  # 5: before the band was issued to her
        _hr(71, 2),  # 6: fine
    ]
    answer = client.post(URL, headers=wearable.headers, json={"readings": batch}).get_json()
    assert answer["stored"] == 2
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert "unit" in reasons[1] and "bananas" in reasons[1]
    assert "number" in reasons[2]
    assert "offset" in reasons[3]
    assert "future" in reasons[4]
    assert "assigned" in reasons[5]
    assert [r.value for r in _stored(app)] == [71, 70]


def test_wrong_credentials_and_bodies_get_clear_answers(
    app: Flask, client: FlaskClient, world: World, wearable: Wearable
) -> None:
    assert client.post(URL, json={"readings": [_hr(70)]}).status_code == 401
    user = token_for(client, "coord_berlin", world.password)
    assert client.post(URL, headers=user, json={"readings": [_hr(70)]}).status_code == 401
    malformed = client.post(
        URL, headers={**wearable.headers, "Content-Type": "application/json"}, data="{"
    )
    assert malformed.status_code == 400
    with app.app_context():
        s = db.session()
        unit = s.get(DeviceUnit, wearable.unit_id)
        registry.revoke_tokens(s, None, utcnow(), unit, "unit lost", system="test")
        s.commit()
    revoked = client.post(URL, headers=wearable.headers, json={"readings": [_hr(70)]})
    assert revoked.status_code == 401 and revoked.get_json()["code"] == "unauthorized"
    assert _stored(app) == []


def test_a_reading_belongs_to_the_site_responsible_at_its_time(
    app: Flask, client: FlaskClient, world: World, wearable: Wearable
) -> None:
    with app.app_context():
        s = db.session()
        anna = s.get(Patient, world.patients["anna"].id)
        coordinator = s.get(User, world.users["coord_berlin"].id)
        moved = utcnow() - timedelta(days=5)
        patient_service.transfer_patient(
            s, coordinator, moved, anna, s.get(Site, world.tokyo.id), "moved to Tokyo"
        )
        s.commit()
    answer = client.post(
        URL, headers=wearable.headers, json={"readings": [_hr(70, 6), _hr(72, 4)]}
    ).get_json()
    assert answer["stored"] == 2, answer
    before, after = _stored(app)
    assert before.site_id == world.berlin.id and after.site_id == world.tokyo.id
    assert before.patient_id == after.patient_id == world.patients["anna"].id


def test_the_timeline_gets_one_entry_per_patient_and_day_of_data(
    app: Flask, client: FlaskClient, world: World, wearable: Wearable
) -> None:
    for batch in ([_hr(70, 1), _hr(71, 1.01)], [_hr(72, 2)], [_hr(70, 1), _hr(73, 1.02)]):
        assert (
            client.post(URL, headers=wearable.headers, json={"readings": batch}).status_code == 200
        )
    staff = token_for(client, "coord_berlin", world.password)
    found = client.get("/api/v1/activities?type=device-data", headers=staff).get_json()
    assert len(found) == 2  # two days of wear, whatever the number of readings and batches
    assert {a["patient_id"] for a in found} == {world.patients["anna"].id}
    assert {a["site_id"] for a in found} == {world.berlin.id}


def test_the_partitions_job_keeps_months_ahead(app: Flask, world: World) -> None:
    from dct_platform.scheduler import run_job

    assert run_job(app, "devices.partitions")
    with app.app_context():
        from dct_platform.models import JobRun

        outcome = db.session.scalar(
            select(JobRun.outcome).where(JobRun.job_id == "devices.partitions")
        )
        assert outcome is not None and outcome.startswith("created ")
        if db.engine.dialect.name == "postgresql":
            ahead = (utcnow().replace(day=1) + timedelta(days=95)).strftime("device_readings_%Y_%m")
            assert db.session.scalar(select(func.to_regclass(ahead))) is not None


def test_a_body_over_the_size_limit_is_413_and_loses_nothing(
    app: Flask, client: FlaskClient, wearable: Wearable
) -> None:
    first = client.post(URL, headers=wearable.headers, json={"readings": [_hr(70, 1)]})
    assert first.get_json()["stored"] == 1
    limit = app.config["MAX_CONTENT_LENGTH"]
    huge = {"readings": [_hr(70, 2, reading_id="x" * 100)] * (limit // 150 + 1)}
    answer = client.post(URL, headers=wearable.headers, json=huge)
    assert answer.status_code == 413
    assert answer.get_json()["code"] == "payload_too_large"
    assert len(_stored(app)) == 1
