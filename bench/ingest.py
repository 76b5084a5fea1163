"""Device ingestion benchmark: the platform's readings endpoint against a bare reference.

    python bench/ingest.py [--seconds 30] [--clients 4] [--preload 10000000] [--keep]
                           [--scratch dct_bench_ingest] [--database-url postgresql://...]

On a scratch PostgreSQL database (`dct_bench_ingest`), migrated with the platform's own
migrations, a trial, a site and per client a patient wearing a unit of its own with its own
credential are made through the platform's services (devices/registry.py). Then:

- the platform (`dct serve`, gunicorn) gets `POST /api/v1/devices/readings`: a device
  credential, validation, holder and site linkage, a provenance record per batch and the
  patient's day of wear on the activity timeline;
- the bare reference (bench/bare_ingest.py, under gunicorn with the same settings) gets the
  same bodies and only parses them and inserts the rows into `bare_readings`, a table of
  exactly `device_readings`' shape (columns, keys, indexes, monthly partitions).

Each client sends 500-reading native batches (heart-rate instants and step-count minutes,
never sent before, so nearly all are stored). Every platform answer must be a 200 that
stored all 500 readings, or it counts as an error. Both endpoints run `--seconds` each, in
the order bare, platform, platform, bare (half the time per run), so that drift (the
tables' growth, a checkpoint) weighs on both alike; a few unmeasured batches warm up each
endpoint first. `--preload N` first fills both tables to N readings each with server-side
SQL, spread over a year and 1,000 patients, and VACUUM ANALYZEs them; `--keep` reuses the
scratch database of an earlier run (so a large preload is paid once).

Prints readings/s and p50/p99 batch latency for each endpoint and, on Linux, the CPU each
batch cost the app's gunicorn processes, the scratch database's PostgreSQL backends and
the clients (on a machine with few cores the endpoints' throughput follows that sum; the
load average shows what else was running). The last line is `ratio R`, the platform's
readings/s over the bare endpoint's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bare_ingest import TABLE as BARE_TABLE  # noqa: E402
from bench.bare_ingest import create_schema  # noqa: E402
from bench.foundation import free_port, fresh_database  # noqa: E402

DATABASE = "dct_bench_ingest"
BATCH = 500
PROTOCOL = "BENCH-INGEST"
SYSTEM = "bench-ingest"
PLATFORM_URL = "/api/v1/devices/readings"
BARE_URL = "/readings"
# Preloaded readings belong to units and patients far above any the services number.
PRELOAD_UNIT0 = 10_000_000
PRELOAD_PATIENTS = 1_000
PRELOAD_SITES = 20
PRELOAD_CHUNK = 500_000
PRELOAD_DAYS = 360
# The bench's own readings: one heart rate and one minute of steps per minute, from this
# far back; a client's stream never reaches the last day.
STREAM_DAYS = 300
LOCAL = timezone(timedelta(hours=1))


@dataclass(frozen=True)
class Device:
    unit_id: int
    patient_id: int
    token: str


# --- readings -------------------------------------------------------------------------


class Stream:
    """A client's readings, never repeated: minute m carries a heart rate at its start and
    the steps counted over it. Client c's minutes start c seconds into the minute, so
    clients never send the same content (the bare table has one unit for everyone)."""

    def __init__(self, client: int, clients: int, base: datetime) -> None:
        self.client, self.clients, self.base = client, clients, base
        self.minutes = (STREAM_DAYS - 1) * 24 * 60
        self.next = 0

    def batch(self, size: int = BATCH) -> bytes:
        items: list[dict[str, Any]] = []
        while len(items) < size:
            m = self.next
            self.next += 1
            lap, minute = divmod(m, self.minutes)
            offset = self.client + self.clients * lap
            if offset >= 60:
                raise RuntimeError("the client's stream ran out of minutes")
            start = self.base + timedelta(minutes=minute, seconds=offset)
            end = start + timedelta(minutes=1)
            items.append(
                {
                    "metric": "heart_rate",
                    "value": 55 + (m * 7) % 70,
                    "unit": "beats/min",
                    "time": start.astimezone(LOCAL).isoformat(),
                }
            )
            if len(items) < size:
                items.append(
                    {
                        "metric": "step_count",
                        "value": (m * 13) % 140,
                        "unit": "steps",
                        "start": start.astimezone(LOCAL).isoformat(),
                        "end": end.astimezone(LOCAL).isoformat(),
                    }
                )
        return json.dumps({"readings": items}).encode()


# --- measuring ------------------------------------------------------------------------


@dataclass
class Tally:
    seconds: float = 0.0
    readings: int = 0
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None
    # CPU seconds the run cost: the app's gunicorn processes, the database's backends of
    # the scratch database, and this process's clients.
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        self.seconds += other.seconds
        self.readings += other.readings
        self.requests += other.requests
        self.errors += other.errors
        self.latencies.extend(other.latencies)
        self.first_error = self.first_error or other.first_error
        for part, seconds in other.cpu.items():
            self.cpu[part] = self.cpu.get(part, 0.0) + seconds

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


# A call sends one batch; it answers (readings stored, None) or (0, what was wrong).
Call = Callable[[requests.Session, int], tuple[int, str | None]]


def run_clients(
    seconds: float,
    clients: int,
    call: Call,
    *,
    warm_up: int = 0,
    snapshot: Callable[[], dict[str, float]] | None = None,
) -> Tally:
    """`clients` threads call `call(session, client)` for `seconds` (after `warm_up`
    unmeasured calls each); readings/s over the time until the last answer arrived, and
    the CPU the measured part cost (`snapshot`, taken before and after)."""
    tallies = [Tally() for _ in range(clients)]
    ready = threading.Barrier(clients + 1)
    go: dict[str, float] = {}

    def attempt(http: requests.Session, index: int) -> tuple[int, str | None]:
        try:
            return call(http, index)
        except (requests.RequestException, ValueError) as exc:  # no answer, or not JSON
            return 0, repr(exc)

    def worker(index: int) -> None:
        http = requests.Session()
        for _ in range(warm_up):
            attempt(http, index)
        ready.wait()
        mine = tallies[index]
        while time.perf_counter() < go["stop"]:
            start = time.perf_counter()
            stored, problem = attempt(http, index)
            mine.latencies.append(time.perf_counter() - start)
            mine.requests += 1
            if problem is None:
                mine.readings += stored
            else:
                mine.errors += 1
                mine.first_error = mine.first_error or problem
        http.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    go["stop"] = float("inf")
    ready.wait()
    before = snapshot() if snapshot else {}
    begin = time.perf_counter()
    go["stop"] = begin + seconds
    for t in threads:
        t.join()
    total = Tally()
    for tally in tallies:
        total.add(tally)
    total.seconds = time.perf_counter() - begin
    if snapshot:
        total.cpu = cpu_used(before, snapshot())
    return total


def platform_call(base: str, devices: list[Device], streams: list[Stream]) -> Call:
    def call(http: requests.Session, client: int) -> tuple[int, str | None]:
        body = streams[client].batch()
        r = http.post(
            base + PLATFORM_URL,
            data=body,
            headers={
                "Authorization": f"Bearer {devices[client].token}",
                "Content-Type": "application/json",
            },
            timeout=120,
        )
        if r.status_code != 200:
            return 0, f"HTTP {r.status_code}: {r.text[:300]}"
        answer = r.json()
        if answer.get("stored") != BATCH or answer.get("rejected"):
            return 0, f"stored {answer.get('stored')} of {BATCH}: {json.dumps(answer)[:300]}"
        return BATCH, None

    return call


def bare_call(base: str, streams: list[Stream]) -> Call:
    def call(http: requests.Session, client: int) -> tuple[int, str | None]:
        r = http.post(
            base + BARE_URL,
            data=streams[client].batch(),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        if r.status_code != 200:
            return 0, f"HTTP {r.status_code}: {r.text[:300]}"
        stored = r.json().get("stored")
        if stored != BATCH:
            return 0, f"stored {stored} of {BATCH}"
        return BATCH, None

    return call


# --- CPU accounting (Linux /proc) -------------------------------------------------------


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_snapshot(server_pid: int, database: str) -> dict[str, float]:
    """CPU seconds used so far by the server's process tree (gunicorn master and workers)
    and by the PostgreSQL backends connected to `database` (only the app being driven
    works during a run, so theirs is its database work), and by this process."""
    if not os.path.isdir("/proc"):
        return {}
    server = backends = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        found = _stat(pid)
        if found is None:
            continue
        parent, cpu = found
        if server_pid in (int(pid), parent):
            server += cpu
        else:
            command = _cmdline(pid)
            if command.startswith("postgres:") and f" {database} " in command:
                backends += cpu
    return {"server": server, "postgres": backends, "clients": sum(os.times()[:2])}


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {part: after[part] - before[part] for part in before}


# --- database -------------------------------------------------------------------------


def database_exists(server_url: str, name: str) -> bool:
    base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(base.set(database="postgres"))
    with admin.connect() as conn:
        found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
    admin.dispose()
    return found is not None


def scratch_database(server_url: str, name: str, keep: bool) -> tuple[str, bool]:
    """The scratch database's URL, and whether it was made afresh."""
    if keep and database_exists(server_url, name):
        base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
        return base.set(database=name).render_as_string(hide_password=False), False
    return fresh_database(server_url, name), True


def table_exists(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}))


def set_up_devices(url: str, instance: Path, clients: int, tag: str) -> list[Device]:
    """A trial and site (made once), and per client a patient enrolled 400 days ago wearing
    a new unit of its own since 390 days ago, with a fresh credential: all through the
    platform's services, as the integration tests do."""
    from sqlalchemy import select

    from dct_platform import create_app
    from dct_platform.extensions import db
    from dct_platform.models import Site, Trial
    from dct_platform.models.patients import PatientStatus
    from dct_platform.models.trials import TrialPhase, TrialStatus
    from dct_platform.services import patients, trials
    from dct_platform.timeutil import utcnow
    from devices import registry
    from devices.models import DeviceKind, DeviceModel

    app = create_app({"SQLALCHEMY_DATABASE_URI": url}, instance_path=str(instance))
    devices = []
    with app.app_context():
        s, now = db.session(), utcnow()
        enrolled, issued = now - timedelta(days=400), now - timedelta(days=390)
        trial = s.scalar(select(Trial).where(Trial.protocol_number == PROTOCOL))
        if trial is None:
            sponsor = trials.create_sponsor(s, None, enrolled, "Bench Pharma", system=SYSTEM)
            trial = trials.create_trial(
                s, None, enrolled, sponsor=sponsor, protocol_number=PROTOCOL,
                title="Ingestion benchmark", phase=TrialPhase.PHASE_2,
                status=TrialStatus.ACTIVE, system=SYSTEM,
            )  # fmt: skip
            site = trials.create_site(
                s, None, enrolled, trial=trial, site_number="B1", name="Berlin",
                country="DE", timezone="Europe/Berlin", system=SYSTEM,
            )  # fmt: skip
            model = registry.register_model(
                s, None, enrolled, manufacturer="Bench", model_name="Band",
                kind=DeviceKind.WEARABLE, metrics=["heart_rate", "step_count"], system=SYSTEM,
            )  # fmt: skip
        else:
            site = s.scalars(select(Site).where(Site.trial_id == trial.id)).one()
            model = s.scalars(select(DeviceModel).where(DeviceModel.model_name == "Band")).one()
        for c in range(1, clients + 1):
            patient = patients.enroll_patient(
                s, None, enrolled, site=site, subject_number=f"B1-{tag}-{c}",
                timezone="Europe/Berlin", status=PatientStatus.ENROLLED, system=SYSTEM,
            )  # fmt: skip
            unit = registry.register_unit(
                s, None, enrolled, model, f"BAND-{tag}-{c}", system=SYSTEM
            )
            registry.issue_to_patient(s, None, issued, unit, patient, system=SYSTEM)
            token = registry.provision_token(s, None, now, unit, system=SYSTEM)
            s.flush()
            devices.append(Device(unit.id, patient.id, token))
        s.commit()
        db.session.remove()
        db.engine.dispose()
    return devices


PRELOAD_SQL = """
INSERT INTO {table} (unit_id, dedup_key, effective_start, effective_end, metric, value,
                     patient_id, site_id, device_reading_id, received_at, batch_id, late)
SELECT :unit0 + p, encode(sha256(CAST('preload|' || i AS bytea)), 'hex'), t,
       CASE WHEN i % 2 = 1 THEN t + interval '1 minute' END,
       CASE WHEN i % 2 = 0 THEN 'heart_rate' ELSE 'step_count' END,
       CASE WHEN i % 2 = 0 THEN 55 + i % 70 ELSE i % 140 END,
       :unit0 + p, 1 + p % :sites, NULL, t + interval '2 hours', i / 500, false
FROM (
    SELECT i, i % :patients AS p,
           CAST(:start AS timestamptz) + (i * :step) * interval '1 second' AS t
    FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint) - 1) AS i
) AS g
"""


def preloaded(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(text(f"SELECT count(*) FROM {table} WHERE unit_id >= {PRELOAD_UNIT0}")) or 0
        )


def preload_table(engine: Engine, table: str, target: int, start: datetime) -> tuple[int, float]:
    """Fill `table` up to `target` preloaded readings, oldest first (one monthly partition
    after the other, as they would have filled); rows added and seconds taken."""
    began = time.perf_counter()
    have = preloaded(engine, table)
    step = PRELOAD_DAYS * 86400 / max(target, 1)
    for low in range(have, target, PRELOAD_CHUNK):
        high = min(target, low + PRELOAD_CHUNK)
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(
                text(PRELOAD_SQL.format(table=table)),
                {
                    "unit0": PRELOAD_UNIT0, "patients": PRELOAD_PATIENTS,
                    "sites": PRELOAD_SITES, "start": start, "step": step,
                    "low": low, "high": high,
                },
            )  # fmt: skip
        if (high // PRELOAD_CHUNK) % 4 == 0 or high == target:
            print(f"  {table}: {high:,} ({time.perf_counter() - began:.0f} s)", flush=True)
    return max(0, target - have), time.perf_counter() - began


def preload(engine: Engine, target: int) -> None:
    start = datetime.now(UTC) - timedelta(days=PRELOAD_DAYS + 2)
    print(f"preloading {target:,} readings into device_readings and {BARE_TABLE}", flush=True)
    began = time.perf_counter()
    results: dict[str, tuple[int, float]] = {}

    def fill(table: str) -> None:
        results[table] = preload_table(engine, table, target, start)

    # One table per core, side by side.
    threads = [threading.Thread(target=fill, args=(t,)) for t in ("device_readings", BARE_TABLE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if set(results) != {"device_readings", BARE_TABLE}:
        raise RuntimeError("the preload failed")
    added = sum(n for n, _ in results.values())
    print(f"preload inserted {added:,} rows in {time.perf_counter() - began:.0f} s", flush=True)
    if added:
        began = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM (ANALYZE) device_readings, {BARE_TABLE}"))
        print(f"VACUUM (ANALYZE) took {time.perf_counter() - began:.0f} s", flush=True)


def report_rows(engine: Engine) -> None:
    with engine.connect() as conn:
        for table in ("device_readings", BARE_TABLE):
            rows = conn.scalar(text(f"SELECT count(*) FROM {table}"))
            size = conn.scalar(
                text(
                    "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) "
                    "FROM pg_inherits WHERE inhparent = CAST(:t AS regclass)"
                ),
                {"t": table},
            )
            parts = conn.scalar(
                text("SELECT count(*) FROM pg_inherits WHERE inhparent = CAST(:t AS regclass)"),
                {"t": table},
            )
            print(f"{table:18} {rows:>12,} rows   {size} in {parts} partitions")


# --- servers --------------------------------------------------------------------------


@contextmanager
def served(
    command: list[str], env: dict[str, str], health: str
) -> Iterator[subprocess.Popen[bytes]]:
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(150):
            try:
                if requests.get(health, timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {server.returncode}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{health} did not answer")
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def line(label: str, t: Tally) -> str:
    return (
        f"{label:26} {t.rate:9.0f} readings/s   p50 {t.percentile(0.50):7.1f} ms   "
        f"p99 {t.percentile(0.99):7.1f} ms   {t.requests:5} batches   errors {t.errors}"
    )


def cpu_line(t: Tally) -> str:
    if not t.cpu or not t.requests:
        return ""
    parts = ", ".join(
        f"{part} {seconds / t.requests * 1000:.1f}" for part, seconds in t.cpu.items()
    )
    return f"    CPU ms per batch: {parts}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="per endpoint")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both apps")
    parser.add_argument("--preload", type=int, default=0, help="readings in each table first")
    parser.add_argument("--keep", action="store_true", help="reuse the scratch database")
    parser.add_argument("--scratch", default=DATABASE, help="the scratch database's name")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()

    url, fresh = scratch_database(args.database_url, args.scratch, args.keep)
    instance = Path(tempfile.mkdtemp(prefix="dct-bench-ingest-"))
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DCT_INSTANCE_PATH": str(instance),
        "SECRET_KEY": "bench",
    }
    bin_dir = Path(sys.executable).parent
    dct = shutil.which("dct", path=str(bin_dir)) or "dct"
    subprocess.run([dct, "db", "upgrade"], env=env, check=True, capture_output=True)
    engine = create_engine(url)
    if fresh or not table_exists(engine, BARE_TABLE):
        with engine.begin() as conn:
            create_schema(conn)
    os.environ.update({"DCT_INSTANCE_PATH": str(instance), "SECRET_KEY": "bench"})
    tag = datetime.now(UTC).strftime("%m%d%H%M%S")
    devices = set_up_devices(url, instance, args.clients, tag)
    print(
        f"database {args.scratch} ({'new' if fresh else 'kept'}), {args.clients} clients with a "
        f"unit each (ids {devices[0].unit_id}-{devices[-1].unit_id}), {BATCH}-reading batches"
    )

    if args.preload:
        preload(engine, args.preload)
    report_rows(engine)

    base_time = (datetime.now(UTC) - timedelta(days=STREAM_DAYS)).replace(second=0, microsecond=0)
    streams = {
        name: [Stream(c, args.clients, base_time) for c in range(args.clients)]
        for name in ("platform", "bare")
    }
    platform_port, bare_port = free_port(), free_port()
    platform_base = f"http://127.0.0.1:{platform_port}"
    bare_base = f"http://127.0.0.1:{bare_port}"
    # The bare table has one unit for all: this run's first unit, which no earlier run used.
    bare_env = {**env, "BARE_UNIT_ID": str(devices[0].unit_id)}
    platform_cmd = [dct, "serve", "--port", str(platform_port), "--workers", str(args.workers)]
    bare_cmd = [
        sys.executable, str(ROOT / "bench" / "bare_ingest.py"),
        "--port", str(bare_port), "--workers", str(args.workers),
    ]  # fmt: skip
    calls = {
        "platform": platform_call(platform_base, devices, streams["platform"]),
        "bare": bare_call(bare_base, streams["bare"]),
    }
    totals = {"platform": Tally(), "bare": Tally()}
    half = args.seconds / 2
    print(
        f"gunicorn {args.workers} workers each, {args.clients} clients, {args.seconds:g} s per "
        f"endpoint in the order bare, platform, platform, bare; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    with (
        served(platform_cmd, env, f"{platform_base}/healthz") as platform_server,
        served(bare_cmd, bare_env, f"{bare_base}/healthz") as bare_server,
    ):
        pids = {"platform": platform_server.pid, "bare": bare_server.pid}
        for i, name in enumerate(("bare", "platform", "platform", "bare")):
            tally = run_clients(
                half,
                args.clients,
                calls[name],
                warm_up=3 if i < 2 else 0,
                snapshot=partial(cpu_snapshot, pids[name], args.scratch),
            )
            print(line(f"  run {i + 1}: {name}", tally), flush=True)
            if tally.cpu:
                print(cpu_line(tally))
            if tally.first_error:
                print(f"    first error: {tally.first_error}")
            totals[name].add(tally)

    print(f"load average {os.getloadavg()[0]:.2f} (other processes share the CPUs)")
    report_rows(engine)
    engine.dispose()
    shutil.rmtree(instance, ignore_errors=True)
    for label, name in ((f"POST {PLATFORM_URL}", "platform"), (f"POST {BARE_URL} (bare)", "bare")):
        print(line(label, totals[name]))
        if totals[name].cpu:
            print(cpu_line(totals[name]))
    bare_rate = totals["bare"].rate
    print(f"ratio {totals['platform'].rate / bare_rate if bare_rate else 0.0:.3f}")


if __name__ == "__main__":
    main()
