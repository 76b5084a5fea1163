"""Audit-trail benchmark: audited writes in parallel, a held transaction, verification.

    python bench/audit.py [--seconds 8] [--entries 1000000] [--database-url postgresql://...]

On a scratch PostgreSQL database (`dct_bench_audit`) seeded with the demo data:
1. Serves the app with gunicorn (`dct serve`, 2 workers per core) and drives audited PATCHes
   from 1, 4 and 16 clients, each changing a patient of its own: throughput and p99.
2. Holds one audited transaction open for 2 s (a televisit booking waiting on a video
   provider) while 2 clients change other patients: their p99 with and without the hold.
3. Loads `--entries` sealed entries and times `verify_chain` full and incremental (from a
   signed checkpoint).

Prints figures; asserts nothing. Every answer is checked for who answered: a 200 for the
wrong record counts as an error. The last line is `scaling R held_p99_ms P`, where R is the
throughput at 16 clients over that at 1 client.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from foundation import free_port, fresh_database, measure

ROOT = Path(__file__).resolve().parents[1]
HELD_CLIENTS = 2
sys.path.insert(0, str(ROOT))


def patch_own_patient(
    base: str, headers: dict[str, str], ids: list[int]
) -> Callable[[requests.Session, int, int], bool]:
    """Each client changes a patient of its own; right when that patient answered."""

    def call(http: requests.Session, index: int, n: int) -> bool:
        patient = ids[index % len(ids)]
        r = http.patch(
            f"{base}/api/v1/patients/{patient}",
            headers=headers,
            json={"preferred_language": ("de", "en")[n % 2]},
            timeout=30,
        )
        return r.status_code == 200 and r.json()["id"] == patient

    return call


def hold_one_transaction(
    url: str, instance: Path, patient_id: int, seconds: float, flushed: Any
) -> None:
    """An audited change flushed, then the transaction kept open for `seconds`. Runs in a
    process of its own, so that it takes no interpreter time from the measuring clients."""
    from dct_platform import create_app
    from dct_platform.extensions import db
    from dct_platform.models import Patient, User
    from dct_platform.roles import Role
    from dct_platform.services import patients as service

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"}, str(instance))
    with app.app_context():
        s = db.session
        patient = s.get(Patient, patient_id)
        staff = s.scalars(
            db.select(User).where(User.role == Role.SITE_STAFF, User.username == "bench.staff")
        ).one()
        service.update_patient(s, staff, datetime.now(UTC), patient, {"timezone": "UTC"})
        flushed.set()
        time.sleep(seconds)  # the bench's point: a slow outside call inside the transaction
        s.commit()
        db.engine.dispose()


def load_entries(url: str, instance: Path, count: int) -> None:
    """`count` sealed entries, loaded as a database owner would (faster than the sealer)."""
    from sqlalchemy import insert, text

    from dct_platform import create_app
    from dct_platform.audit import entry_hash
    from dct_platform.extensions import db
    from dct_platform.models import AuditChainHead, AuditEntry

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"}, str(instance))
    with app.app_context():
        from dct_platform.audit import seal_all

        seal_all(db.session)
        conn = db.session.connection()
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        head = db.session.get(AuditChainHead, 1)
        seq, prev = head.last_seq, head.last_hash
        first_id = (db.session.scalar(db.select(db.func.max(AuditEntry.id))) or 0) + 1
        base = datetime(2026, 1, 1, tzinfo=UTC)
        batch = []
        for i in range(count):
            seq += 1
            at = base + timedelta(seconds=i)
            row = {
                "id": first_id + i, "seq": seq, "prev_hash": prev, "action_id": None,
                "occurred_at": at, "recorded_at": at, "actor_id": None,
                "actor_name": "system:bench", "action": "update", "table_name": "patients",
                "record_id": str(i % 30 + 1), "field": "preferred_language",
                "old_value": "en", "new_value": "de", "reason": None, "hash_version": 2,
            }  # fmt: skip
            row["entry_hash"] = prev = entry_hash(row)
            batch.append(row)
            if len(batch) == 20_000:
                conn.execute(insert(AuditEntry), batch)
                batch = []
        if batch:
            conn.execute(insert(AuditEntry), batch)
        conn.execute(
            db.update(AuditChainHead)
            .where(AuditChainHead.id == 1)
            .values(last_seq=seq, last_hash=prev)
        )
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence('audit_entries', 'id'), :v)"),
            {"v": first_id + count},
        )
        db.session.commit()
        db.engine.dispose()


def time_verification(url: str, instance: Path) -> tuple[float, float, int]:
    from dct_platform import create_app
    from dct_platform.audit import verify_chain
    from dct_platform.audit_anchor import CheckpointStore
    from dct_platform.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"}, str(instance))
    with app.app_context():
        store = CheckpointStore.from_config(app.config)
        start = time.perf_counter()
        full = verify_chain(db.session, store, full=True)
        full_s = time.perf_counter() - start
        assert full.ok, full
        store.append(db.session, datetime.now(UTC))
        start = time.perf_counter()
        incremental = verify_chain(db.session, store)
        inc_s = time.perf_counter() - start
        assert incremental.ok, incremental
        db.engine.dispose()
    return full_s, inc_s, full.checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()

    url = fresh_database(args.database_url, "dct_bench_audit")
    instance = Path(tempfile.mkdtemp(prefix="dct-bench-audit-"))
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DCT_INSTANCE_PATH": str(instance),
        "SECRET_KEY": "bench",
        "LOGIN_MAX_FAILURES_PER_IP": "100000",
    }
    dct = shutil.which("dct", path=str(Path(sys.executable).parent)) or "dct"
    subprocess.run([dct, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([dct, "seed-demo"], env=env, check=True, capture_output=True)
    site_ids = [f"--site-id={i}" for i in (1, 2, 3)]
    subprocess.run(
        [dct, "create-user", "--username", "bench.staff", "--role", "site_staff",
         "--display-name", "Bench staff", "--password", "bench staff passphrase", *site_ids],
        env=env, check=True, capture_output=True,
    )  # fmt: skip

    workers = 2 * (os.cpu_count() or 1)
    port = free_port()
    server = subprocess.Popen(
        [dct, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        token = requests.post(
            f"{base}/api/v1/auth/token",
            json={"username": "bench.staff", "password": "bench staff passphrase"},
            timeout=30,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        ids = [
            p["id"]
            for p in requests.get(
                f"{base}/api/v1/patients?page_size=100", headers=headers, timeout=30
            ).json()
        ]
        print(f"gunicorn {workers} workers, PostgreSQL, {args.seconds:.0f} s per run")
        others = patch_own_patient(base, headers, ids[1:])
        rates = {}
        for clients in (1, 4, 16):
            f = measure(args.seconds, clients, others)
            rates[clients] = f.rate
            print(
                f"audited PATCH, {clients:2d} clients       {f.rate:8.1f} req/s   "
                f"p50 {f.p50_ms:6.1f} ms   p99 {f.p99_ms:6.1f} ms   errors {f.errors}"
            )
        # Few clients, so that the figure shows waiting on the held change, not CPU load.
        free = measure(1.5, HELD_CLIENTS, others)
        flushed = multiprocessing.Event()
        holder = multiprocessing.Process(
            target=hold_one_transaction, args=(url, instance, ids[0], 2.0, flushed)
        )
        holder.start()
        flushed.wait(60)  # the change is written and its transaction open
        held = measure(1.5, HELD_CLIENTS, others)
        holder.join()
        held_p99 = held.p99_ms
        print(
            f"{HELD_CLIENTS} clients on other patients: p99 {free.p99_ms:6.1f} ms, and "
            f"{held_p99:6.1f} ms while one audited change is held open 2 s   errors {held.errors}"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    start = time.perf_counter()
    load_entries(url, instance, args.entries)
    print(f"loaded {args.entries} sealed entries in {time.perf_counter() - start:.1f} s")
    full_s, inc_s, checked = time_verification(url, instance)
    print(f"dct audit verify --full   {checked} entries in {full_s:6.2f} s")
    print(f"dct audit verify          from the newest checkpoint in {inc_s:6.3f} s")
    shutil.rmtree(instance, ignore_errors=True)
    print(f"scaling {rates[16] / rates[1]:.2f} held_p99_ms {held_p99:.1f}")
    print(json.dumps({"rates": rates}), file=sys.stderr)


if __name__ == "__main__":
    main()
