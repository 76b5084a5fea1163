"""The device-health job finds what patients cannot see for themselves (a silent unit, a
low battery, a poor connection, a wrong clock), raises one alert per problem for the
patient's site, tells the site staff by mail, and clears the alert once the problem is
gone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dct_platform import audit, events
from dct_platform.extensions import db
from dct_platform.models import AuditEntry, MailOutbox, Patient, Site, User
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from devices import health, registry
from devices.models import AlertKind, DeviceAlert, DeviceUnit
from tests.support.clients import login, submit
from tests.support.concurrency import all_at_once
from tests.support.devices import Wearable, issue_wearable
from tests.support.world import PASSWORD, World

URL = "/api/v1/devices/readings"
SETTINGS = health.HealthSettings(
    silent_after=timedelta(hours=24), low_battery_percent=15, clock_drift=timedelta(minutes=2)
)


def _check(app: Flask, now: datetime | None = None) -> health.HealthReport:
    with app.app_context():
        report = health.check(db.session(), now or utcnow(), SETTINGS)
        db.session.commit()
        return report


def _open(app: Flask) -> dict[AlertKind, DeviceAlert]:
    with app.app_context():
        found = db.session.scalars(select(DeviceAlert).where(DeviceAlert.cleared_at.is_(None)))
        alerts = {a.kind: a for a in found}
        db.session.expunge_all()
        return alerts


def _send(client: FlaskClient, band: Wearable, status: dict[str, object] | None = None) -> dict:
    now = utcnow()
    body: dict[str, object] = {
        "readings": [
            {"metric": "heart_rate", "value": 70 + i, "unit": "beats/min",
             "time": (now - timedelta(minutes=5 * i)).isoformat()}
            for i in range(3)
        ]
    }  # fmt: skip
    if status is not None:
        body["status"] = status
    answer = client.post(URL, headers=band.headers, json=body)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


@pytest.fixture
def band(app: Flask, world: World) -> Wearable:
    return issue_wearable(app, world.patients["anna"].id, issued_days_ago=3)


def test_a_silent_unit_raises_one_alert_for_its_site_and_clears_when_data_comes(
    app: Flask, client: FlaskClient, world: World, band: Wearable
) -> None:
    report = _check(app)
    alerts = _open(app)
    assert list(alerts) == [AlertKind.SILENT]
    silent = alerts[AlertKind.SILENT]
    assert (silent.patient_id, silent.site_id) == (world.patients["anna"].id, world.berlin.id)
    assert silent.since == band.issued_at  # never sent anything: silent since it was issued
    assert report.raised == [silent.id]
    # The next run does not raise it again.
    assert _check(app).raised == []
    _send(client, band)
    assert _check(app).cleared == [silent.id]
    assert _open(app) == {}
    with app.app_context():
        cleared = db.session.get(DeviceAlert, silent.id)
        assert cleared is not None and cleared.cleared_because == "data arrived again"


def test_a_unit_that_stops_sending_is_silent_a_day_after_its_last_data(
    app: Flask, client: FlaskClient, band: Wearable
) -> None:
    _send(client, band)
    assert _check(app).raised == []
    assert _check(app, utcnow() + timedelta(hours=23)).raised == []
    assert len(_check(app, utcnow() + timedelta(hours=25)).raised) == 1


def test_battery_signal_and_clock_reports_raise_alerts_and_clear_again(
    app: Flask, client: FlaskClient, band: Wearable
) -> None:
    ahead = (utcnow() + timedelta(minutes=10)).isoformat()
    answer = _send(client, band, {"battery_percent": 9, "signal": "poor", "device_time": ahead})
    assert answer["clock_drift"] is True and 590 < answer["clock_offset_seconds"] < 610
    _check(app)
    alerts = _open(app)
    assert set(alerts) == {AlertKind.LOW_BATTERY, AlertKind.POOR_SIGNAL, AlertKind.CLOCK_DRIFT}
    assert alerts[AlertKind.LOW_BATTERY].value == 9
    right = utcnow().isoformat()
    answer = _send(client, band, {"battery_percent": 80, "signal": "good", "device_time": right})
    assert answer["clock_drift"] is False
    assert len(_check(app).cleared) == 3
    assert _open(app) == {}


def test_a_bad_status_is_refused_with_its_field_and_nothing_is_stored(
    client: FlaskClient, band: Wearable
) -> None:
    now = utcnow().isoformat()
    reading = {"metric": "heart_rate", "value": 70, "unit": "beats/min", "time": now}
    for status, field in (
        ({"battery_percent": 140}, "battery_percent"),
        ({"signal": "excellent"}, "signal"),
        ({"device_time": "2026-03-10T08:00:00"}, "device_time"),
    ):
        answer = client.post(
            URL, headers=band.headers, json={"readings": [reading], "status": status}
        )
        assert answer.status_code == 422, answer.get_json()
        assert field in str(answer.get_json())


def test_a_returned_unit_clears_its_alerts(app: Flask, band: Wearable) -> None:
    _check(app)
    with app.app_context():
        unit = db.session.get(DeviceUnit, band.unit_id)
        assert unit is not None
        registry.take_back(db.session(), None, utcnow(), unit, reason="returned", system="test")
        db.session.commit()
    report = _check(app)
    assert len(report.cleared) == 1 and _open(app) == {}


def test_the_site_staff_are_mailed_once_per_alert(app: Flask, world: World, band: Wearable) -> None:
    with app.app_context():
        with audit.acting(db.session(), None, utcnow(), system="test", what="addresses"):
            for name in ("coord_berlin", "coord_tokyo"):
                user = db.session.get(User, world.users[name].id)
                assert user is not None
                user.email = f"{name}@example.org"
            db.session.flush()
        db.session.commit()
    _check(app)
    with app.app_context():
        events.deliver_due(db.session(), utcnow(), "test")
        events.deliver_due(db.session(), utcnow(), "test")
        db.session.commit()
        mails = list(db.session.scalars(select(MailOutbox)))
    assert len(mails) == 1
    assert "coord_berlin@example.org" in mails[0].recipients
    assert "coord_tokyo" not in mails[0].recipients  # another site's staff
    assert "B1-anna" in mails[0].subject


def test_staff_of_the_site_acknowledge_and_others_cannot(
    app: Flask, client: FlaskClient, world: World, band: Wearable
) -> None:
    _check(app)
    alert = _open(app)[AlertKind.SILENT]
    tokyo = app.test_client()
    login(tokyo, "coord_tokyo", PASSWORD)
    assert "B1-anna" not in tokyo.get("/devices/alerts").get_data(as_text=True)
    login(client, "coord_berlin", PASSWORD)
    page = client.get("/devices/alerts").get_data(as_text=True)
    assert "B1-anna" in page and "No data from device SN-1" in page
    too_long = submit(
        client, "/devices/alerts", f"/devices/alerts/{alert.id}/acknowledge", {"note": "x" * 1001}
    )
    assert too_long.status_code == 422
    done = submit(
        client, "/devices/alerts", f"/devices/alerts/{alert.id}/acknowledge",
        {"note": "Called Anna: the band was in a drawer"},
    )  # fmt: skip
    assert done.status_code == 302
    acknowledged = _open(app)[AlertKind.SILENT]
    assert acknowledged.acknowledged_by_id == world.users["coord_berlin"].id
    assert acknowledged.note == "Called Anna: the band was in a drawer"
    # The patient's page shows the device and the alert; the home page lists it.
    patient_page = client.get(f"/site/patients/{world.patients['anna'].id}").get_data(as_text=True)
    assert 'data-testid="patient-devices"' in patient_page and "SN-1" in patient_page
    assert 'data-testid="device-alerts-panel"' in client.get("/site").get_data(as_text=True)


def test_another_sites_staff_cannot_acknowledge(
    app: Flask, client: FlaskClient, band: Wearable
) -> None:
    _check(app)
    alert = _open(app)[AlertKind.SILENT]
    login(client, "coord_tokyo", PASSWORD)
    answer = submit(client, "/devices/alerts", f"/devices/alerts/{alert.id}/acknowledge", {})
    assert answer.status_code == 404
    assert _open(app)[AlertKind.SILENT].acknowledged_at is None


def test_the_alert_follows_the_patient_to_a_new_site(
    app: Flask, client: FlaskClient, world: World, band: Wearable
) -> None:
    _check(app)

    with app.app_context():
        s = db.session()
        anna = s.get(Patient, world.patients["anna"].id)
        coord = s.get(User, world.users["coord_berlin"].id)
        assert anna is not None and coord is not None
        tokyo = s.get(Site, world.tokyo.id)
        assert tokyo is not None
        patient_service.transfer_patient(s, coord, utcnow(), anna, tokyo, "moved")
        s.commit()
    login(client, "coord_tokyo", PASSWORD)
    assert "B1-anna" in client.get("/devices/alerts").get_data(as_text=True)


def test_twenty_colleagues_acknowledging_at_once_record_one_acknowledgement(
    app: Flask, world: World, band: Wearable
) -> None:
    _check(app)
    alert_id = _open(app)[AlertKind.SILENT].id

    def acknowledge(n: int) -> None:
        with app.app_context():
            s = db.session()
            alert = s.get(DeviceAlert, alert_id)
            user = s.get(User, world.users["coord_berlin"].id)
            assert alert is not None and user is not None
            health.acknowledge(s, user, alert, utcnow(), f"call {n}")
            s.commit()

    all_at_once([lambda n=n: acknowledge(n) for n in range(20)])
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action_id).where(
                AuditEntry.table_name == "device_alerts", AuditEntry.field == "acknowledged_at"
            )
        ).all()
        note = db.session.get(DeviceAlert, alert_id).note  # type: ignore[union-attr]
    assert len(actions) == 1, actions
    assert note is not None and note.startswith("call ")
