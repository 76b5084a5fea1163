"""`scripts/simulate-devices.py`, run as a user runs it: a separate process streaming the
demo's wristbands over HTTP into a live demo, and plain words when it cannot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from dct_platform.demo import seed_and_report
from dct_platform.extensions import db
from dct_platform.timeutil import utcnow
from devices.demo import FILE_NAME, Behaviour, behaviour
from devices.models import DeviceBatch, DeviceReading, DeviceUnit
from tests.support.live_server import LiveServer
from tests.support.processes import ROOT, free_port, process_env

SCRIPT = ROOT / "scripts" / "simulate-devices.py"


def _simulate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=process_env(None, tmp_path / "elsewhere"),
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )


def test_the_simulator_streams_readings_into_a_live_demo(
    app: Flask, live_server: LiveServer, tmp_path: Path
) -> None:
    seed_and_report(app)
    devices = Path(app.instance_path) / FILE_NAME
    rows = json.loads(devices.read_text())
    started = utcnow()

    result = _simulate(
        tmp_path, "--file", str(devices), "--url", live_server.url,
        "--seconds", "5", "--interval", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr

    silent = next(r["serial"] for r in rows if behaviour(r["subject_number"]) is Behaviour.SILENT)
    with app.app_context():
        stored = dict(
            db.session.execute(
                select(DeviceUnit.serial_number, func.count())
                .join(DeviceReading, DeviceReading.unit_id == DeviceUnit.id)
                .where(DeviceReading.received_at >= started)
                .group_by(DeviceUnit.serial_number)
            ).all()
        )
        keys = list(
            db.session.scalars(
                select(DeviceBatch.idempotency_key).where(DeviceBatch.received_at >= started)
            )
        )
    assert len(stored) >= 5, (stored, result.stdout)
    assert silent not in stored, "the silent unit stays silent"
    assert keys and all(keys) and len(set(keys)) == len(keys), "one Idempotency-Key per batch"
    out = result.stdout
    for serial in stored:
        assert f"{serial}  " in out
    assert "stored" in out and "duplicates" in out and "rejected" in out
    total = sum(stored.values())
    assert re.search(rf"from {len(stored)} devices in \d+ s: {total} readings stored", out), out
    assert f"Kept silent: {silent}." in out


def test_the_simulator_says_plainly_what_is_missing(tmp_path: Path) -> None:
    missing = _simulate(tmp_path, "--file", str(tmp_path / "none.json"), "--seconds", "1")
    assert missing.returncode != 0
    assert "No device list at" in missing.stderr and "make demo" in missing.stderr
    assert "Traceback" not in missing.stderr

    devices = tmp_path / FILE_NAME
    devices.write_text(
        json.dumps(
            [{"serial": "APB-1", "model": "Acme Pulse Band", "subject_number": "DE-101-001",
              "token": "t"}]
        )
    )  # fmt: skip
    url = f"http://127.0.0.1:{free_port()}"
    down = _simulate(tmp_path, "--file", str(devices), "--url", url, "--seconds", "1")
    assert down.returncode != 0
    assert f"Nothing answers at {url}" in down.stderr and "make demo" in down.stderr
    assert "Traceback" not in down.stderr
