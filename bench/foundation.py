"""Foundation benchmark: API latency and audited-write throughput under gunicorn on PostgreSQL.

    python bench/foundation.py [--seconds 10] [--clients 8] [--database-url postgresql://...]

Creates a scratch database (`dct_bench`), migrates and seeds the demo, serves the app with
`dct serve` (gunicorn, 2 workers), drives three endpoints from concurrent clients for a fixed
time each, then times `verify_chain` over the whole audit trail. Prints the figures; asserts
nothing, but every answer is checked for *who* answered: a 200 for the wrong caller, or a
patient of another site, counts as an error. Audited writes all take the audit chain's head
lock, so their throughput is the number that shows the cost of the tamper-evident chain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(server_url: str, name: str) -> str:
    base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


class GunicornServer:
    """gunicorn on wsgi:app, 2 workers (as `dct serve`), logging gunicorn's own time per
    request in microseconds: `server_ms` reads the server's time of the requests to a path
    since a `mark`. Shared by the benchmarks that drive the served app."""

    def __init__(self, env: dict[str, str], workdir: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.log = workdir / "access.log"
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        self.process = subprocess.Popen(
            [gunicorn, "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
             "--access-logfile", str(self.log),
             "--access-logformat", "BENCH %(m)s %(U)s %(s)s %(D)s", "wsgi:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(150):
            try:
                requests.get(f"{self.base}/healthz", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise SystemExit("the server did not start")

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def server_ms(self, since: int, path: str) -> list[float]:
        time.sleep(0.3)  # the workers write their log lines after the answer
        with self.log.open("rb") as f:
            f.seek(since)
            lines = f.read().decode().splitlines()
        found = []
        for line in lines:
            parts = line.split()
            if len(parts) == 5 and parts[0] == "BENCH" and parts[2] == path:
                found.append(int(parts[4]) / 1000)
        return found

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@dataclass(frozen=True)
class Figures:
    rate: float  # requests/s
    p50_ms: float
    p99_ms: float
    errors: int


def measure(
    seconds: float, clients: int, call: Callable[[requests.Session, int, int], bool]
) -> Figures:
    """`clients` threads each call `call(session, client_index, n)` for `seconds`; a call
    returns whether the answer was right (status and who answered)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        nonlocal errors
        session = requests.Session()
        mine: list[float] = []
        bad = 0
        n = 0
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            ok = call(session, index, n)
            mine.append(time.perf_counter() - start)
            bad += 0 if ok else 1
            n += 1
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return Figures(
        len(latencies) / seconds,
        statistics.median(latencies) * 1000,
        latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        errors,
    )


def drive(
    label: str, seconds: float, clients: int, call: Callable[[requests.Session, int, int], bool]
) -> None:
    f = measure(seconds, clients, call)
    print(
        f"{label:38} {f.rate:8.1f} req/s   p50 {f.p50_ms:6.1f} ms   p99 {f.p99_ms:6.1f} ms"
        f"   errors {f.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()

    url = fresh_database(args.database_url, "dct_bench")
    instance = Path(tempfile.mkdtemp(prefix="dct-bench-"))
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
    logins = json.loads((instance / "demo-logins.json").read_text())
    coord = next(r for r in logins if r["username"] == "coord.de101")
    other = next(r for r in logins if r["role"] == "patient")

    port = free_port()
    server = subprocess.Popen(
        [dct, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)

        def bearer(row: dict[str, str]) -> dict[str, str]:
            token = requests.post(
                f"{base}/api/v1/auth/token",
                json={"username": row["username"], "password": row["password"]},
                timeout=10,
            ).json()["access_token"]
            return {"Authorization": f"Bearer {token}"}

        auth = bearer(coord)
        callers = [(auth, coord["username"]), (bearer(other), other["username"]), ({}, None)]
        my_sites = set(
            requests.get(f"{base}/api/v1/me", headers=auth, timeout=10).json()["site_ids"]
        )
        patients = requests.get(f"{base}/api/v1/patients", headers=auth, timeout=10).json()
        ids = [p["id"] for p in patients]

        def answered_by(s: requests.Session, n: int) -> bool:
            headers, username = callers[n % len(callers)]
            r = s.get(f"{base}/api/v1/me", headers=headers, timeout=10)
            if username is None:
                return r.status_code == 401
            return r.status_code == 200 and r.json()["username"] == username

        def my_patients_only(s: requests.Session) -> bool:
            r = s.get(f"{base}/api/v1/patients", headers=auth, timeout=10)
            return r.status_code == 200 and all(p["site_id"] in my_sites for p in r.json())

        print(f"gunicorn 2 workers, {args.clients} clients, {args.seconds:.0f} s each, PostgreSQL")

        drive(
            "GET /healthz",
            args.seconds,
            args.clients,
            lambda s, i, n: s.get(f"{base}/healthz", timeout=10).status_code == 200,
        )
        drive(
            "GET /api/v1/me (3 callers, checked)",
            args.seconds,
            args.clients,
            lambda s, i, n: answered_by(s, i + n),
        )
        drive(
            "GET /api/v1/patients (site scoped)",
            args.seconds,
            args.clients,
            lambda s, i, n: my_patients_only(s),
        )
        drive(
            "PATCH /api/v1/patients/{id} (audited)",
            args.seconds,
            args.clients,
            # Clients sharing a patient may race: 409 (stale) is a correct answer there.
            lambda s, i, n: (
                s.patch(
                    f"{base}/api/v1/patients/{ids[i % len(ids)]}",
                    headers=auth,
                    json={"preferred_language": ("de", "en")[n % 2]},
                    timeout=10,
                ).status_code
                in (200, 409)
            ),
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    sys.path.insert(0, str(ROOT))
    from dct_platform import create_app
    from dct_platform.audit import seal_all, verify_chain
    from dct_platform.extensions import db

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"}, instance_path=str(instance)
    )
    with app.app_context():
        # No scheduler ran beside the server: seal what the run wrote, as it would have.
        seal_all(db.session)
        start = time.perf_counter()
        result = verify_chain(db.session, full=True)
        elapsed = time.perf_counter() - start
        print(
            f"{'audit verify':38} {result.checked / elapsed:8.0f} entries/s   "
            f"{result.checked} entries in {elapsed:.2f} s   intact={result.ok}"
        )
        db.engine.dispose()
    shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
