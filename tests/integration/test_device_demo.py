"""The devices' part of the demo: a wristband for a third of the patients, a week of their
readings through the real write path, the file of credentials the simulator streams from,
the alerts the device-health job raises as soon as the demo starts, and a seed that is as
safe to run again as the core's."""

from __future__ import annotations

import json
import stat
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dct_platform.demo import logins_path, register_demo_seeder, seed_and_report
from dct_platform.extensions import db
from dct_platform.models import Patient
from dct_platform.timeutil import utcnow
from devices import health
from devices.demo import FILE_NAME, MODEL, Behaviour, behaviour
from devices.models import (
    AlertKind,
    DeviceAlert,
    DeviceBatch,
    DeviceKind,
    DeviceModel,
    DeviceReading,
    DeviceToken,
    DeviceUnit,
)

URL = "/api/v1/devices/readings"


def _rows(app: Flask) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads((Path(app.instance_path) / FILE_NAME).read_text())
    return rows


def _authenticates(client: FlaskClient, token: str) -> bool:
    answer = client.post(URL, headers={"Authorization": f"Bearer {token}"}, json={"readings": []})
    assert answer.status_code in (200, 401), answer.get_json()
    return answer.status_code == 200


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            m.__name__: db.session.scalar(select(func.count()).select_from(m)) or 0
            for m in (DeviceUnit, DeviceToken, DeviceReading, DeviceBatch)
        }


def test_the_seed_issues_wristbands_with_a_week_of_readings_and_a_working_file(
    app: Flask, client: FlaskClient
) -> None:
    seed_and_report(app)
    path = Path(app.instance_path) / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rows = _rows(app)
    assert all(set(row) == {"serial", "model", "subject_number", "token"} for row in rows)
    assert {row["model"] for row in rows} == {MODEL}
    now = utcnow()
    with app.app_context():
        s = db.session()
        patients = {p.subject_number: p for p in s.scalars(select(Patient))}
        assert len(patients) == 30 and len(rows) == 10  # a third of the patients
        missing_hours = 0
        assert len({row["serial"] for row in rows}) == 10
        wristbands = select(func.count()).select_from(DeviceUnit).join(DeviceModel)
        # The shipments' temperature loggers are the demo's other units.
        assert s.scalar(wristbands.where(DeviceModel.kind == DeviceKind.WEARABLE)) == 10
        for row in rows:
            unit = s.scalar(select(DeviceUnit).where(DeviceUnit.serial_number == row["serial"]))
            assert unit is not None
            patient = patients[row["subject_number"]]
            readings = list(
                s.scalars(
                    select(DeviceReading)
                    .where(DeviceReading.unit_id == unit.id)
                    .order_by(DeviceReading.effective_start)
                )
            )
            assert {r.patient_id for r in readings} == {patient.id}
            assert {r.metric for r in readings} == {"heart_rate", "step_count"}
            # About a week of history (five days for the unit that went silent).
            first, last = readings[0].effective_start, readings[-1].effective_start
            assert now - first > timedelta(days=6, hours=20)
            if behaviour(row["subject_number"]) is Behaviour.SILENT:
                assert timedelta(days=2) < now - last < timedelta(days=2, hours=8)
            else:
                assert now - last < timedelta(hours=6)
            assert 600 < len(readings) < 2500
            missing_hours += _looks_like_a_patients_week(readings, ZoneInfo(patient.timezone))
        assert missing_hours, "some hours have no data (the band was off the wrist)"
        assert s.scalar(select(func.count()).where(DeviceReading.late)), "some uploads came late"

        # What the scheduler's first run of the health job raises when the demo starts.
        report = health.check(s, now, health.HealthSettings())
        s.commit()
        alerts = {
            (a.unit.serial_number, a.kind)
            for a in s.scalars(select(DeviceAlert).where(DeviceAlert.cleared_at.is_(None)))
        }
        assert len(report.raised) == len(alerts)
    by_kind = {behaviour(row["subject_number"]): row["serial"] for row in rows}
    assert alerts == {
        (by_kind[Behaviour.SILENT], AlertKind.SILENT),
        (by_kind[Behaviour.LOW_BATTERY], AlertKind.LOW_BATTERY),
        (by_kind[Behaviour.CLOCK_DRIFT], AlertKind.CLOCK_DRIFT),
    }
    for row in rows:
        assert _authenticates(client, row["token"]), row


def _looks_like_a_patients_week(readings: list[DeviceReading], zone: ZoneInfo) -> int:
    """Night and day in the patient's own zone; the hours without data in its full days."""
    night: list[float] = []
    day: list[float] = []
    hours_per_day: dict[object, set[int]] = defaultdict(set)
    for r in readings:
        local = r.effective_start.astimezone(zone)
        hours_per_day[local.date()].add(local.hour)
        if r.metric == "heart_rate":
            assert 40 <= r.value <= 175
            if 1 <= local.hour < 5:
                night.append(r.value)
            elif 10 <= local.hour < 19:
                day.append(r.value)
        else:
            assert r.effective_end is not None
            assert r.effective_end - r.effective_start == timedelta(minutes=15)
            assert not 1 <= local.hour < 5, "no steps in the small hours"
    assert sum(night) / len(night) + 5 < sum(day) / len(day)
    full_days = sorted(hours_per_day)[1:-1]
    return sum(24 - len(hours_per_day[d]) for d in full_days)


def test_a_second_seed_keeps_units_tokens_and_history(app: Flask, client: FlaskClient) -> None:
    seed_and_report(app)
    rows, counts = _rows(app), _counts(app)
    logins = json.loads(logins_path(app).read_text())

    seed_and_report(app)
    assert _rows(app) == rows
    assert _counts(app) == counts  # no unit, credential, batch or reading added
    assert json.loads(logins_path(app).read_text()) == logins
    assert all(_authenticates(client, row["token"]) for row in rows)

    # A token that no longer works (a hand-edited file) is replaced, the others are kept.
    broken = [dict(row) for row in rows]
    broken[0]["token"] = "not-a-token"
    (Path(app.instance_path) / FILE_NAME).write_text(json.dumps(broken))
    seed_and_report(app)
    again = _rows(app)
    assert again[1:] == rows[1:]
    assert again[0]["token"] not in (rows[0]["token"], "not-a-token")
    assert _authenticates(client, again[0]["token"])
    assert not _authenticates(client, rows[0]["token"]), "the old credential is revoked"

    # Losing the file does not lock the simulator out: every unit gets a fresh credential.
    (Path(app.instance_path) / FILE_NAME).unlink()
    seed_and_report(app)
    fresh = _rows(app)
    assert [r["serial"] for r in fresh] == [r["serial"] for r in rows]
    assert all(_authenticates(client, row["token"]) for row in fresh)
    assert not any(_authenticates(client, row["token"]) for row in again)
    after = _counts(app)
    assert after["DeviceUnit"] == counts["DeviceUnit"]
    assert after["DeviceReading"] == counts["DeviceReading"]  # no second backfill
    verify = app.test_cli_runner().invoke(args=["dct", "audit", "verify"])
    assert verify.exit_code == 0 and "intact" in verify.output


def test_a_failing_package_seeder_leaves_nothing_half_done(app: Flask) -> None:
    def boom(_session: object, _now: datetime, _seeded: object) -> None:
        raise RuntimeError("the package's seed failed")

    register_demo_seeder(app, "tests.boom", boom)
    with pytest.raises(ValueError, match="registered already"):
        register_demo_seeder(app, "tests.boom", lambda *_: None)
    with pytest.raises(RuntimeError, match="seed failed"):
        seed_and_report(app)
    assert not logins_path(app).exists()
    assert not (Path(app.instance_path) / FILE_NAME).exists()
    assert not list(Path(app.instance_path).glob(".*.tmp"))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Patient)) == 0
        assert db.session.scalar(select(func.count()).select_from(DeviceUnit)) == 0
