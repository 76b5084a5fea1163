"""eDiary benchmark: occurrences and compliance for thousands of patients, and the patient's
home page over half a million entries, on PostgreSQL.

    python bench/ediary.py [--patients 5000] [--days 90] [--entries 500000]
                           [--requests 300] [--keep] [--database-url postgresql://...]

On a scratch database (`dct_bench_ediary`), migrated with the platform's own migrations,
a trial, three sites, the daily symptom diary and its daily schedule are made through the
services, with a handful of patients who have portal accounts (accounts and enrolment
services). The other patients are copies of one of them made with SQL (as
bench/reminders.py does: a scratch database set up as a DBA would, with the audit guard's
flag raised for the copy), spread over the three sites and six time zones.

1. In process: `schedules.refresh(session, now, since=now - D days)` writes D days of
   occurrences for N/4, N/2 and N patients (the occurrences table emptied between sizes),
   then the job's own run (`refresh` without `since`), `compliance.by_patient` and
   `compliance.by_site` over the D days. Prints seconds and the growth per doubling.
2. At N patients the history is extended (`refresh` with an earlier `since`) until the
   past occurrences can carry `--entries` entries. The account holders' diaries are filled
   through `entries.submit` (the one write path: timed, as entries/s), the others with one
   INSERT ... SELECT under the guard's flag (no audit trail, no activity records: only the
   row counts matter here). ANALYZE.
3. Over HTTP: gunicorn (`wsgi:app`, 2 workers, as `dct serve` runs it, with an access log
   giving gunicorn's own time per request, `%(D)s`), account holders signed in through the
   login form (and a token for the API), `GET /portal/` and `GET /api/v1/ediary/occurrences`
   `--requests` times from 1 and from 4 clients. Prints p50/p95/p99 of the server time and
   of the client's latency on loopback.

The last line is `home_p95_ms X refresh_s_per_1000_patients Y` (4 clients; refresh at N).
`--keep` reuses the database of an earlier full run and goes straight to step 3.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.foundation import GunicornServer, fresh_database  # noqa: E402

DATABASE = "dct_bench_ediary"
SYSTEM = "bench-ediary"
PROTOCOL = "BENCH-EDIARY"
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Europe/London",
    "Australia/Sydney",
)
SITES = (("E1", "Berlin", "DE", "Europe/Berlin"), ("E2", "New York", "US", "America/New_York"),
         ("E3", "Tokyo", "JP", "Asia/Tokyo"))  # fmt: skip
ACCOUNTS = 6
FILL = 0.9  # the share of past diaries answered
ANSWERS = ('{"wellbeing": 7, "pain": false, "nausea": "none", "hours_slept": 7.5, '
           '"sleep_quality": "good"}')  # fmt: skip
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def log(message: str) -> None:
    print(message, flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * p) - 1))]


# --- set-up ------------------------------------------------------------------------------------


def set_up_services(app: Any, start: datetime, passwords: dict[str, str]) -> dict[str, Any]:
    """Trial, sites, diary, schedule and the account holders, through the services."""
    from dct_platform.extensions import db
    from dct_platform.models.patients import PatientStatus
    from dct_platform.models.trials import TrialPhase, TrialStatus
    from dct_platform.roles import Role
    from dct_platform.services import accounts, trials
    from dct_platform.services import patients as patient_service
    from devices.ediary import schedules
    from devices.ediary.demo_instruments import DAILY_SYMPTOMS
    from devices.ediary.models import ScheduleKind

    with app.app_context():
        s = db.session()
        sponsor = trials.create_sponsor(s, None, start, "Bench Pharma", system=SYSTEM)
        trial = trials.create_trial(
            s, None, start, sponsor=sponsor, protocol_number=PROTOCOL,
            title="eDiary benchmark", phase=TrialPhase.PHASE_3,
            status=TrialStatus.ACTIVE, system=SYSTEM,
        )  # fmt: skip
        sites = [
            trials.create_site(
                s,
                None,
                start,
                trial=trial,
                site_number=number,
                name=name,
                country=country,
                timezone=zone,
                system=SYSTEM,
            )
            for number, name, country, zone in SITES
        ]
        version = schedules.add_version(s, None, start, DAILY_SYMPTOMS, system=SYSTEM)
        schedules.add_schedule(
            s, None, start, trial=trial, version=version, kind=ScheduleKind.DAILY,
            window_start="07:00", window_end="24:00", first_date=start.date(),
            late_allowed_minutes=120, remind_before_close_minutes=180, system=SYSTEM,
        )  # fmt: skip
        template = None
        for i in range(ACCOUNTS):
            username = f"bench.e{i}"
            password = secrets.token_urlsafe(16)
            zone = ZONES[i % len(ZONES)]
            account = accounts.create_user(
                s, None, start, username=username, password=password, role=Role.PATIENT,
                display_name=f"E{i}", timezone=zone, opened_at_enrolment=True, system=SYSTEM,
            )  # fmt: skip
            patient = patient_service.enroll_patient(
                s, None, start, site=sites[i % len(sites)], subject_number=f"A-{i}",
                timezone=zone, status=PatientStatus.ENROLLED, baseline_date=start.date(),
                user=account, system=SYSTEM,
                identity=patient_service.IdentityInput(given_name=f"E{i}", family_name="Bench"),
            )  # fmt: skip
            passwords[username] = password
            template = template or patient
        s.flush()
        assert template is not None
        ids = {
            "trial": trial.id,
            "template": template.id,
            "sites": [site.id for site in sites],
            "version": version.id,
        }
        s.commit()
        db.session.remove()
    return ids


def add_copies(app: Any, ids: dict[str, Any], first: int, last: int, start: datetime) -> None:
    """Patients B-first .. B-last (inclusive) copied from the template with SQL, with their
    site assignment and time-zone period from `start`."""
    from dct_platform.extensions import db

    if last < first:
        return
    sites = "ARRAY[" + ",".join(str(i) for i in ids["sites"]) + "]"
    zones = "ARRAY[" + ",".join(f"'{z}'" for z in ZONES) + "]"
    with app.app_context():
        s = db.session()
        conn = s.connection()
        # Bulk copies bypass the ORM's audit trail: a scratch database, set up as a DBA would.
        conn.execute(text("SELECT set_config('dct.audit_writer', 'on', true)"))
        columns = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'patients' AND column_name <> 'id' "
                    "ORDER BY ordinal_position"
                )
            )
        ]
        overrides = {
            "subject_number": "'B-' || i",
            "user_id": "NULL",
            "site_id": f"({sites})[1 + i % {len(ids['sites'])}]",
            "enrolling_site_id": f"({sites})[1 + i % {len(ids['sites'])}]",
            "timezone": f"({zones})[1 + i % {len(ZONES)}]",
            "preferred_language": "(ARRAY['en','de','ja'])[1 + i % 3]",
        }
        values = [overrides.get(c, f"t.{c}") for c in columns]
        conn.execute(
            text(
                f"INSERT INTO patients ({', '.join(columns)}) SELECT {', '.join(values)} "
                f"FROM patients AS t CROSS JOIN generate_series({first}, {last}) AS i "
                f"WHERE t.id = {ids['template']}"
            )
        )
        copies = (
            f"FROM patients AS p WHERE p.trial_id = {ids['trial']} AND p.subject_number LIKE "
            f"'B-%' AND CAST(substr(p.subject_number, 3) AS int) BETWEEN {first} AND {last}"
        )
        conn.execute(
            text(
                "INSERT INTO patient_site_assignments (patient_id, site_id, valid_from) "
                f"SELECT p.id, p.site_id, :start {copies}"
            ),
            {"start": start},
        )
        conn.execute(
            text(
                "INSERT INTO patient_timezone_periods (patient_id, timezone, valid_from) "
                f"SELECT p.id, p.timezone, :start {copies}"
            ),
            {"start": start},
        )
        s.commit()
        db.session.remove()


def sql(app: Any, statement: str, **params: Any) -> Any:
    from dct_platform.extensions import db

    with app.app_context():
        s = db.session()
        result = s.execute(text(statement), params)
        value = result.scalar() if result.returns_rows else None
        s.commit()
        db.session.remove()
    return value


def analyze(app: Any) -> None:
    from dct_platform.extensions import db

    with (
        app.app_context(),
        db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
    ):
        conn.execute(text("ANALYZE"))


# --- part 1: refresh and compliance --------------------------------------------------------


def timed_refresh(app: Any, now: datetime, since: datetime | None) -> tuple[float, dict[str, int]]:
    from dct_platform.extensions import db
    from devices.ediary import schedules

    with app.app_context():
        s = db.session()
        started = time.perf_counter()
        counts = schedules.refresh(s, now, since=since)
        s.commit()
        seconds = time.perf_counter() - started
        db.session.remove()
    return seconds, counts


def timed_compliance(app: Any, ids: dict[str, Any], start: datetime, end: datetime) -> Any:
    from sqlalchemy import true

    from dct_platform.extensions import db
    from devices.ediary import compliance

    with app.app_context():
        s = db.session()
        t0 = time.perf_counter()
        patients = compliance.by_patient(s, true(), start, end)
        t1 = time.perf_counter()
        sites = compliance.by_site(s, ids["sites"], start, end)
        t2 = time.perf_counter()
        db.session.remove()
    return t1 - t0, t2 - t1, len(patients.rows), sites.total()


def part1(
    app: Any, ids: dict[str, Any], n: int, days: int, now: datetime, start: datetime
) -> float:
    sizes = sorted({max(ACCOUNTS, n // 4), max(ACCOUNTS, n // 2), n})
    log(f"\n1. occurrences and compliance, {days} days, daily schedule 07:00-24:00 (+2 h late)")
    log(f"{'patients':>9} {'occurrences':>12} {'refresh s':>10} {'per 1000 p':>11} "
        f"{'job again s':>12} {'by_patient s':>13} {'by_site s':>10}")  # fmt: skip
    have = ACCOUNTS
    previous: tuple[int, float, float, float] | None = None
    refresh_s = 0.0
    for size in sizes:
        add_copies(app, ids, have, size - 1, start)
        have = size
        sql(app, "DELETE FROM ediary_occurrences")  # no entries yet
        analyze(app)
        refresh_s, counts = timed_refresh(app, now, now - timedelta(days=days))
        job_s, _ = timed_refresh(app, now + timedelta(minutes=5), None)
        by_patient_s, by_site_s, rows, total = timed_compliance(
            app, ids, now - timedelta(days=days), now
        )
        log(
            f"{size:9d} {counts['added']:12d} {refresh_s:10.2f} {refresh_s / size * 1000:11.3f} "
            f"{job_s:12.2f} {by_patient_s:13.3f} {by_site_s:10.3f}"
        )
        if previous is not None:
            p_size, p_refresh, p_patient, p_site = previous
            log(
                f"{'':9} x{size / p_size:.2f} patients: refresh x{refresh_s / p_refresh:.2f}, "
                f"by_patient x{by_patient_s / p_patient:.2f}, by_site x{by_site_s / p_site:.2f}"
            )
        previous = (size, refresh_s, by_patient_s, by_site_s)
    log(
        f"{'':9} compliance at {n}: {rows} patients, on time {total.on_time}, late "
        f"{total.late}, missed {total.missed}, pending {total.pending}"
    )
    return refresh_s / n * 1000


# --- part 2: entries -----------------------------------------------------------------------


def part2(app: Any, ids: dict[str, Any], n: int, target: int, now: datetime) -> None:
    from sqlalchemy import select

    from dct_platform.extensions import db
    from dct_platform.models import Patient, User
    from devices.ediary import entries, schedules
    from devices.ediary.models import Occurrence

    log(f"\n2. entries: about {target} in ediary_entries")
    history = math.ceil(target / (n * FILL)) + 1
    seconds, counts = timed_refresh(app, now, now - timedelta(days=history))
    log(f"history extended to {history} days by refresh: {counts['added']} occurrences added "
        f"in {seconds:.1f} s")  # fmt: skip

    # The account holders: through the one write path, at a time inside each window.
    with app.app_context():
        s = db.session()
        rows = list(
            s.execute(
                select(Occurrence.id, Occurrence.opens_at, Occurrence.closes_at, Patient, User)
                .join(Patient, Patient.id == Occurrence.patient_id)
                .join(User, User.id == Patient.user_id)
                .where(Occurrence.closes_at <= now)
                .order_by(Occurrence.opens_at)
            )
        )
        started = time.perf_counter()
        done = 0
        for occurrence_id, opens, closes, patient, user in rows:
            if occurrence_id % 10 == 0:  # about 90 % answered
                continue
            entries.submit(
                s, user, patient, occurrence_id, {"wellbeing": 7, "pain": False,
                "nausea": "none", "hours_slept": 7.5, "sleep_quality": "good"},
                opens + (closes - opens) * 0.6, client_id=f"bench-{occurrence_id}",
            )  # fmt: skip
            done += 1
        s.commit()
        orm_s = time.perf_counter() - started
        db.session.remove()
    log(
        f"entries.submit (audited, activity record): {done} entries in {orm_s:.1f} s = "
        f"{done / orm_s:.0f} entries/s, i.e. {target / (done / orm_s) / 60:.0f} min for {target}"
    )

    past = sql(app, "SELECT count(*) FROM ediary_occurrences WHERE closes_at <= :now", now=now)
    existing = sql(app, "SELECT count(*) FROM ediary_entries")
    per_mille = min(1000, math.ceil((target - existing) * 1000 / max(1, past)))
    started = time.perf_counter()
    with app.app_context():
        s = db.session()
        conn = s.connection()
        # A scratch database filled as a DBA would: under the guard's flag, no audit trail.
        conn.execute(text("SELECT set_config('dct.audit_writer', 'on', true)"))
        inserted = conn.execute(
            text(
                "INSERT INTO ediary_entries (occurrence_id, patient_id, instrument_version_id, "
                "answers, score, submitted_at, late, source, client_id) "
                "SELECT o.id, o.patient_id, :version, CAST(:answers AS json), NULL, "
                "o.opens_at + (o.closes_at - o.opens_at) * 0.6, false, 'portal', "
                "'bench-' || o.id FROM ediary_occurrences AS o "
                "WHERE o.closes_at <= :now AND (CAST(o.id AS bigint) * 7919) % 1000 < :per_mille "
                "AND NOT EXISTS (SELECT 1 FROM ediary_entries e WHERE e.occurrence_id = o.id)"
            ),
            {"version": ids["version"], "answers": ANSWERS, "now": now, "per_mille": per_mille},
        ).rowcount
        conn.execute(
            text(
                "UPDATE ediary_occurrences AS o SET outcome = 'on_time' FROM ediary_entries e "
                "WHERE e.occurrence_id = o.id AND o.outcome IS DISTINCT FROM 'on_time'"
            )
        )
        schedules.mark_missed(s, now)
        s.commit()
        db.session.remove()
    bulk_s = time.perf_counter() - started
    analyze(app)
    total = sql(app, "SELECT count(*) FROM ediary_entries")
    occurrences = sql(app, "SELECT count(*) FROM ediary_occurrences")
    log(f"bulk INSERT ... SELECT: {inserted} entries in {bulk_s:.1f} s (with outcomes, "
        f"mark_missed); ediary_entries {total} rows, ediary_occurrences {occurrences}; "
        "ANALYZE")  # fmt: skip


# --- part 3: HTTP ---------------------------------------------------------------------------


def sign_in(base: str, username: str, password: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base}/login", timeout=10).text
    token = _CSRF.search(page)
    assert token, "no CSRF token on the login page"
    answer = http.post(
        f"{base}/login",
        data={"csrf_token": token.group(1), "username": username, "password": password},
        allow_redirects=False,
        timeout=10,
    )
    if answer.status_code != 302:
        raise SystemExit(f"sign-in of {username} failed: {answer.status_code}")
    return http


def drive(
    server: GunicornServer, path: str, clients: list[requests.Session], total: int,
    check: Callable[[requests.Response], bool],
) -> tuple[list[float], list[float], int, float]:  # fmt: skip
    """`total` requests of `path` shared by the clients (each its own patient)."""
    for http in clients:
        for _ in range(5):  # warm-up: connections, caches
            http.get(server.base + path, timeout=30)
    time.sleep(0.3)  # the warm-up's log lines are written
    mark = server.mark()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per = math.ceil(total / len(clients))

    def worker(http: requests.Session) -> None:
        mine, bad = [], 0
        for _ in range(per):
            t = time.perf_counter()
            answer = http.get(server.base + path, timeout=30)
            mine.append((time.perf_counter() - t) * 1000)
            bad += 0 if check(answer) else 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(h,)) for h in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return server.server_ms(mark, path.split("?")[0]), latencies, errors[0], elapsed


def part3(env: dict[str, str], workdir: Path, passwords: dict[str, str], total: int) -> float:
    log(f"\n3. HTTP: gunicorn wsgi:app, 2 workers; {total} requests per row; server time is "
        "gunicorn's own (access log %(D)s), client time is latency on loopback")  # fmt: skip
    server = GunicornServer(env, workdir)
    home_p95 = float("nan")
    try:
        users = sorted(passwords)
        browsers = [sign_in(server.base, u, passwords[u]) for u in users]
        apis = []
        for u in users:
            token = requests.post(
                f"{server.base}/api/v1/auth/token",
                json={"username": u, "password": passwords[u]},
                timeout=10,
            ).json()["access_token"]
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {token}"
            apis.append(api)
        # A home page that shows the diary summary for the right patient.
        first = browsers[0].get(f"{server.base}/portal/", timeout=10)
        assert first.status_code == 200, first.status_code
        log(f"home page: {len(first.content)} bytes; patients with accounts: {len(users)}")

        def home_ok(r: requests.Response) -> bool:
            return r.status_code == 200 and b"A-" in r.content

        def api_ok(r: requests.Response) -> bool:
            return r.status_code == 200 and isinstance(r.json(), list) and len(r.json()) > 0

        log(f"{'endpoint':34} {'clients':>7} {'req/s':>7}  server p50/p95/p99 ms"
            "     client p50/p95/p99 ms   errors")  # fmt: skip
        for path, sessions, check in (
            ("/portal/", browsers, home_ok),
            ("/api/v1/ediary/occurrences", apis, api_ok),
        ):
            for clients in (1, 4):
                server_ms, client_ms, errors, elapsed = drive(
                    server, path, sessions[:clients], total, check
                )
                log(
                    f"GET {path:30} {clients:7d} {len(client_ms) / elapsed:7.1f}  "
                    f"{pct(server_ms, 0.5):6.1f} {pct(server_ms, 0.95):6.1f} "
                    f"{pct(server_ms, 0.99):6.1f}     {pct(client_ms, 0.5):6.1f} "
                    f"{pct(client_ms, 0.95):6.1f} {pct(client_ms, 0.99):6.1f}   {errors}"
                    + ("" if len(server_ms) == len(client_ms) else f" ({len(server_ms)} logged)")
                )
                if path == "/portal/":
                    home_p95 = pct(server_ms, 0.95)
    finally:
        server.stop()
    return home_p95


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--entries", type=int, default=500_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="reuse dct_bench_ediary, HTTP only")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dct-bench-ediary-"))
    base = make_url(args.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    url = base.set(database=DATABASE).render_as_string(hide_password=False)
    # The account holders' passwords survive a run in the database's own comment.
    reuse = False
    if args.keep:
        admin = create_engine(base.set(database="postgres"))
        with admin.connect() as conn:
            comment = conn.execute(
                text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = :name"
                ),
                {"name": DATABASE},
            ).scalar()
        admin.dispose()
        reuse = bool(comment and comment.startswith("bench-ediary "))
    passwords: dict[str, str] = {}
    refresh_per_1000 = float("nan")
    env = {**os.environ, "DATABASE_URL": url, "DCT_INSTANCE_PATH": str(workdir),
           "SECRET_KEY": "bench", "LOGIN_MAX_FAILURES_PER_IP": "100000"}  # fmt: skip
    if reuse:
        assert comment is not None
        passwords = dict(pair.split("=", 1) for pair in comment.split()[1:])
        log(f"database {DATABASE} reused (--keep): set-up skipped")
    else:
        set_up_started = time.perf_counter()
        url = fresh_database(args.database_url, DATABASE)
        env["DATABASE_URL"] = url
        os.environ.update({"DCT_INSTANCE_PATH": str(workdir), "SECRET_KEY": "bench"})
        from dct_platform import create_app
        from dct_platform.extensions import db
        from dct_platform.migrate import upgrade

        app = create_app({"SQLALCHEMY_DATABASE_URI": url}, instance_path=str(workdir))
        logging.getLogger("alembic").setLevel(logging.WARNING)
        started = time.perf_counter()
        upgrade(app)
        log(f"database {DATABASE}: migrated in {time.perf_counter() - started:.1f} s")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        history = max(args.days, math.ceil(args.entries / (args.patients * FILL)) + 1)
        start = now - timedelta(days=history + 5)
        started = time.perf_counter()
        ids = set_up_services(app, start, passwords)
        log(f"trial, {len(SITES)} sites, diary, schedule and {ACCOUNTS} account holders "
            f"through the services in {time.perf_counter() - started:.1f} s; copies in "
            f"{len(ZONES)} zones: {', '.join(ZONES)}")  # fmt: skip
        refresh_per_1000 = part1(app, ids, args.patients, args.days, now, start)
        part2(app, ids, args.patients, args.entries, now)
        with app.app_context():
            db.engine.dispose()
        admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            pairs = " ".join(f"{k}={v}" for k, v in passwords.items())
            conn.execute(text(f"COMMENT ON DATABASE \"{DATABASE}\" IS 'bench-ediary {pairs}'"))
        admin.dispose()
        log(f"set-up and parts 1-2 took {time.perf_counter() - set_up_started:.0f} s")
    home_p95 = part3(env, workdir, passwords, args.requests)
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"home_p95_ms {home_p95:.1f} refresh_s_per_1000_patients {refresh_per_1000:.3f}")


if __name__ == "__main__":
    main()
