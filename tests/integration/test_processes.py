"""The production entry points as separate processes: gunicorn serving, and the scheduler
started twice by mistake."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from flask import Flask
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import AuditEntry, JobRun
from tests.support.database import tamper_with_audit_trail
from tests.support.processes import (
    DCT,
    Output,
    free_port,
    process_env,
    stop,
    wait_until_serving,
)
from tests.support.waiting import wait_for
from tests.support.world import World


def test_dct_serve_runs_gunicorn(database_url: str, tmp_path: Path) -> None:
    assert DCT, "the dct console command is installed with the package"
    port = free_port()
    proc = subprocess.Popen(
        [DCT, "serve", "--port", str(port), "--workers", "2"],
        env=process_env(database_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        response = wait_until_serving(proc, f"http://127.0.0.1:{port}", 30)
        assert response.status_code == 200 and response.json()["database"] == "ok"
        login = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert login.status_code == 200 and "HttpOnly" in login.headers["Set-Cookie"]
    finally:
        output = stop(proc)
    assert "Booting worker" in output


def test_a_second_scheduler_process_does_no_harm(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    outputs = [
        Output(
            subprocess.Popen(
                [DCT, "scheduler"],
                env=process_env(database_url, tmp_path / str(i)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        for i in range(2)
    ]
    skipped = re.compile(r"job core\.housekeeping slot \S+ already claimed; skipping")

    def both_outputs() -> str:
        return "\n".join(f"--- process {o.proc.pid}:\n{o.text}" for o in outputs)

    def housekeeping_runs() -> list[JobRun]:
        with app.app_context():
            runs = list(
                db.session.scalars(select(JobRun).where(JobRun.job_id == "core.housekeeping"))
            )
            db.session.remove()
        return runs

    try:
        # Both start with every job due at once: one claims the housekeeping slot and runs
        # it, the other must find the claim and log that it skips.
        wait_for(
            lambda: [o for o in outputs if skipped.search(o.text)],
            timeout=40,
            interval=0.2,
            message=lambda: f"one scheduler to skip the claimed slot\n{both_outputs()}",
        )
        wait_for(
            lambda: [r for r in housekeeping_runs() if r.finished_at is not None],
            timeout=40,
            interval=0.2,
            message=lambda: f"the housekeeping run to finish\n{both_outputs()}",
        )
        assert all(o.proc.poll() is None for o in outputs), f"a scheduler died\n{both_outputs()}"
    finally:
        texts = [o.stop() for o in outputs]
    runs = housekeeping_runs()
    assert len(runs) == 1 and runs[0].outcome.startswith("removed")
    assert all("scheduler running" in text for text in texts)
    (ran,) = [o for o, text in zip(outputs, texts, strict=True) if not skipped.search(text)]
    assert runs[0].claimed_by.endswith(f":{ran.proc.pid}")


def test_dct_command_lists_its_commands(database_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [DCT, "--help"],
        env=process_env(database_url, tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for command in ("db", "demo", "serve", "scheduler", "audit", "create-user", "seed-demo"):
        assert f"  {command}" in result.stdout


def test_audit_verify_through_flask_app_wsgi(
    app: Flask, world: World, database_url: str, tmp_path: Path
) -> None:
    flask = shutil.which("flask", path=str(Path(sys.executable).parent))
    root = Path(__file__).resolve().parents[2]

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [flask, "--app", "wsgi", "dct", "audit", "verify"],
            cwd=root,
            env=process_env(database_url, tmp_path),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    with app.app_context():
        seqs = list(db.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        db.session.remove()
    assert len(seqs) > 10, "the world writes a real chain"
    result = verify()
    assert result.returncode == 0, result.stderr
    assert f"audit chain intact: {len(seqs)} entries verified" in result.stdout

    seventh = seqs[6]
    with app.app_context():
        tamper_with_audit_trail(
            db.session, f"UPDATE audit_entries SET new_value = 'Someone Else' WHERE seq = {seventh}"
        )
        db.session.remove()
    broken = verify()
    assert broken.returncode == 1, broken.stdout
    assert f"audit chain BROKEN at entry {seventh}" in broken.stderr
    assert "altered" in broken.stderr and "(6 entries verified before it)" in broken.stderr


def test_dct_demo_serves_the_seeded_platform_on_sqlite(tmp_path: Path) -> None:
    """What `make demo` runs: migrate the embedded SQLite default, seed, serve."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "DATABASE_URL"
    }
    env.update(DCT_INSTANCE_PATH=str(tmp_path), SECRET_KEY="demo-test")
    port = free_port()
    proc = subprocess.Popen(
        [DCT, "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_serving(proc, base, 90).status_code == 200
        assert requests.get(f"{base}/api/v1/openapi.json", timeout=5).status_code == 200
        assert requests.get(f"{base}/login", timeout=5).status_code == 200
        assert (tmp_path / "dct.sqlite3").exists()
        logins = json.loads((tmp_path / "demo-logins.json").read_text())
        first_of_each = {row["role"]: row for row in reversed(logins)}
        assert set(first_of_each) == {
            "patient",
            "nurse",
            "site_staff",
            "investigator",
            "supply_manager",
            "trial_manager",
            "admin",
            "logistics.provider_coordinator",
        }

        # All roles at once, while the in-process scheduler runs its first jobs: the
        # embedded database must queue concurrent writers, never answer 503.
        def token(row: dict[str, str]) -> int:
            return requests.post(
                f"{base}/api/v1/auth/token",
                timeout=30,
                json={"username": row["username"], "password": row["password"]},
            ).status_code

        with ThreadPoolExecutor(max_workers=len(first_of_each)) as pool:
            codes = list(pool.map(token, first_of_each.values()))
        assert codes == [201] * len(first_of_each)
    finally:
        output = stop(proc)
    assert "Demo logins" in output and "serving on" in output
