"""Booking benchmark: clients racing for one televisit slot through the served API, and
slot search, on PostgreSQL.

    python bench/booking.py [--clients 50] [--rounds 10] [--staff 20] [--database-url ...]

On a scratch database (`dct_bench_booking`), migrated with the platform's migrations, a
trial with one site (Europe/Berlin), `--staff` investigators who work every day from 08:00
to 20:00 site time, a protocol visit with a 14-day window (30 minutes, by video, run by an
investigator) and `--clients` patients with portal accounts, some in New York, some in
Tokyo, all made through the services.

1. Slot search in process: `booking.free_slots` for one patient over the 14-day window with
   `--staff` investigators and their bookings, 50 times: p50/p95 ms; then over HTTP,
   `GET /api/v1/visits/planned/{id}/slots`: p50/p95 of the server's and the client's time.
2. The race: gunicorn (`wsgi:app`, 2 worker processes, as `dct serve`), each client signed
   in with its own token (`POST /api/v1/auth/token`). In each round every client whose
   visit is not booked yet sends `POST /api/v1/visits/bookings` for the same slot (same
   investigator, same start) at the same instant (a barrier). Exactly one may get 201; the
   others must get 409 with a message. Every answer is checked: a 201 must name the
   client's own planned visit, and the database must hold one booking per round.

The last line is `booked B conflicts C errors E p99_ms P`: B bookings made (one per round
expected), C clear conflicts, E anything else (another status, a 201 for someone else's
visit, two bookings of one slot), P the p99 client latency of the booking requests.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.foundation import GunicornServer, fresh_database  # noqa: E402

DATABASE = "dct_bench_booking"
SYSTEM = "bench-booking"
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo")


def log(message: str) -> None:
    print(message, flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * p) - 1))]


def set_up(app: Any, now: datetime, staff: int, clients: int) -> dict[str, Any]:
    """Trial, site, investigators with their hours, the visit and the patients."""
    from dct_platform import audit
    from dct_platform.extensions import db
    from dct_platform.localtime import utc_to_local
    from dct_platform.models.patients import PatientStatus
    from dct_platform.models.trials import TrialPhase, TrialStatus
    from dct_platform.roles import Role
    from dct_platform.services import accounts, trials
    from dct_platform.services import patients as patient_service
    from dct_platform.visits import planning
    from dct_platform.visits.models import StaffAvailability

    with app.app_context():
        s = db.session()
        sponsor = trials.create_sponsor(s, None, now, "Bench Pharma", system=SYSTEM)
        trial = trials.create_trial(
            s, None, now, sponsor=sponsor, protocol_number="BENCH-BOOKING",
            title="Booking benchmark", phase=TrialPhase.PHASE_3, status=TrialStatus.ACTIVE,
            system=SYSTEM,
        )  # fmt: skip
        site = trials.create_site(
            s, None, now, trial=trial, site_number="B1", name="Berlin", country="DE",
            timezone="Europe/Berlin", system=SYSTEM,
        )  # fmt: skip
        investigators = [
            accounts.create_user(
                s,
                None,
                now,
                username=f"pi{i:02d}",
                password=secrets.token_urlsafe(16),
                role=Role.INVESTIGATOR,
                display_name=f"Dr. Bench {i}",
                timezone="Europe/Berlin",
                sites=[site],
                system=SYSTEM,
            )
            for i in range(staff)
        ]
        s.flush()
        with audit.acting(s, None, now, what="Bench hours", system=SYSTEM):
            for user in investigators:
                for weekday in range(7):
                    s.add(
                        StaffAvailability(
                            user_id=user.id, site_id=site.id, weekday=weekday,
                            start_time="08:00", end_time="20:00", created_at=now, updated_at=now,
                        )
                    )  # fmt: skip
        planning.add_definition(
            s, None, now, trial=trial, code="V1", name="Video visit", target_day=29,
            window_before_days=0, window_after_days=13, modalities=["telehealth"],
            duration_minutes=30, staff_role=Role.INVESTIGATOR, system=SYSTEM,
        )  # fmt: skip
        passwords: dict[str, str] = {}
        visits: dict[str, int] = {}
        for i in range(clients):
            username = f"bench.p{i:03d}"
            zone = ZONES[i % len(ZONES)]
            password = secrets.token_urlsafe(16)
            account = accounts.create_user(
                s, None, now, username=username, password=password, role=Role.PATIENT,
                display_name=f"P{i}", timezone=zone, opened_at_enrolment=True, system=SYSTEM,
            )  # fmt: skip
            # Day 29 (the window's first day) is tomorrow in the patient's zone.
            baseline = utc_to_local(now, zone).date - timedelta(days=27)
            patient = patient_service.enroll_patient(
                s, None, now, site=site, subject_number=f"P-{i:03d}", timezone=zone,
                status=PatientStatus.ENROLLED, baseline_date=baseline, user=account,
                system=SYSTEM,
            )  # fmt: skip
            (visit,) = planning.plan_patient(s, patient, now)
            s.flush()
            passwords[username] = password
            visits[username] = visit.id
        s.commit()
        ids = {"passwords": passwords, "visits": visits, "staff": [u.id for u in investigators]}
        db.session.remove()
    return ids


def slot_search_in_process(app: Any, visit_id: int, repeat: int = 50) -> tuple[float, float, int]:
    from dct_platform.extensions import db
    from dct_platform.timeutil import utcnow
    from dct_platform.visits import booking
    from dct_platform.visits.models import PlannedVisit

    times, found = [], 0
    with app.app_context():
        s = db.session()
        visit = s.get(PlannedVisit, visit_id)
        assert visit is not None
        for _ in range(repeat):
            started = time.perf_counter()
            found = len(booking.free_slots(s, visit, utcnow()))
            times.append((time.perf_counter() - started) * 1000)
        db.session.remove()
    return statistics.median(times), pct(times, 0.95), found


def token(base: str, username: str, password: str) -> requests.Session:
    http = requests.Session()
    answer = http.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": password}, timeout=30
    )
    if answer.status_code not in (200, 201):
        raise SystemExit(f"no token for {username}: {answer.status_code} {answer.text[:200]}")
    http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return http


def raw_post(address: tuple[str, int], path: str, bearer: str, body: dict[str, Any]) -> bytes:
    """The request's bytes, made before the race starts: the timed part is only the
    exchange with the server."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n"
        f"Authorization: Bearer {bearer}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + data


def send(address: tuple[str, int], raw: bytes) -> tuple[int, Any]:
    """A new connection, as each browser or app request to gunicorn's sync workers is; the
    answer read to its end. A lean client on purpose: 50 clients in one Python process
    through `requests` spend much of a 2-core machine and their own GIL on themselves, which
    a latency figure of the server should not count."""
    with socket.create_connection(address, timeout=60) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body[:200].decode(errors="replace")


def race(
    base: str, sessions: dict[str, requests.Session], visits: dict[str, int], rounds: int
) -> tuple[int, int, int, list[float], list[str]]:
    address = (urlsplit(base).hostname or "127.0.0.1", urlsplit(base).port or 80)
    tokens = {u: http.headers["Authorization"].split(" ", 1)[1] for u, http in sessions.items()}
    booked = conflicts = errors = 0
    latencies: list[float] = []
    problems: list[str] = []
    waiting = dict(visits)
    for n in range(rounds):
        if len(waiting) < 2:
            break
        # A patient sees the slots of their own visit; all share the window and staff.
        username, visit_id = next(iter(waiting.items()))
        slots = (
            sessions[username]
            .get(f"{base}/api/v1/visits/planned/{visit_id}/slots", timeout=30)
            .json()
        )
        slot = slots[n * 7 % len(slots)]
        barrier = threading.Barrier(len(waiting))

        def attempt(
            username: str, slot: dict[str, Any] = slot, barrier: threading.Barrier = barrier
        ) -> tuple[str, int, Any, float]:
            body = {
                "planned_visit_id": waiting[username],
                "staff_id": slot["staff_id"],
                "starts_at": slot["starts_at"],
            }
            raw = raw_post(address, "/api/v1/visits/bookings", tokens[username], body)
            barrier.wait(timeout=60)
            started = time.perf_counter()
            status, payload = send(address, raw)
            return username, status, payload, (time.perf_counter() - started) * 1000

        with ThreadPoolExecutor(max_workers=len(waiting)) as pool:
            outcomes = list(pool.map(attempt, list(waiting)))
        winners = []
        for username, status, payload, elapsed in outcomes:
            latencies.append(elapsed)
            if status == 201 and payload.get("planned_visit_id") == waiting[username]:
                winners.append(username)
            elif status == 409 and isinstance(payload, dict) and payload.get("message"):
                conflicts += 1
            else:
                errors += 1
                problems.append(f"round {n}: {username} got {status}: {str(payload)[:160]}")
        if len(winners) != 1:
            errors += max(0, len(winners) - 1)
            problems.append(f"round {n}: {len(winners)} winners")
        booked += min(1, len(winners))
        for username in winners:
            waiting.pop(username)
        log(f"  round {n + 1}: {len(outcomes)} clients, {len(winners)} booked, "
            f"{sum(1 for o in outcomes if o[1] == 409)} conflicts, "
            f"p99 {pct([o[3] for o in outcomes], 0.99):.1f} ms")  # fmt: skip
    return booked, conflicts, errors, latencies, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--staff", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dct-bench-booking-"))
    url = fresh_database(args.database_url, DATABASE)
    os.environ.update({"DCT_INSTANCE_PATH": str(workdir), "SECRET_KEY": "bench"})
    from dct_platform import create_app
    from dct_platform.extensions import db
    from dct_platform.migrate import upgrade
    from dct_platform.visits.models import Booking

    app = create_app({"SQLALCHEMY_DATABASE_URI": url}, instance_path=str(workdir))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(app)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    started = time.perf_counter()
    ids = set_up(app, now, args.staff, args.clients)
    log(f"set-up through the services: {args.staff} investigators, {args.clients} patients "
        f"in {', '.join(ZONES)}, in {time.perf_counter() - started:.1f} s")  # fmt: skip

    first_visit = next(iter(ids["visits"].values()))
    p50, p95, found = slot_search_in_process(app, first_visit)
    log(f"\n1. slot search, 14-day window, {args.staff} investigators: {found} slots; "
        f"in process p50 {p50:.1f} ms, p95 {p95:.1f} ms")  # fmt: skip
    env = {**os.environ, "DATABASE_URL": url, "DCT_INSTANCE_PATH": str(workdir),
           "SECRET_KEY": "bench", "LOGIN_MAX_FAILURES_PER_IP": "100000"}  # fmt: skip
    server = GunicornServer(env, workdir, args.workers)
    try:
        sessions = {u: token(server.base, u, p) for u, p in ids["passwords"].items()}
        first_user = next(iter(ids["visits"]))
        mark = server.mark()
        client_ms = []
        for _ in range(30):
            started = time.perf_counter()
            answer = sessions[first_user].get(
                f"{server.base}/api/v1/visits/planned/{first_visit}/slots", timeout=30
            )
            client_ms.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text[:200]
        server_ms = server.server_ms(mark, f"/api/v1/visits/planned/{first_visit}/slots")
        log(f"   over HTTP: server p50 {pct(server_ms, 0.5):.1f} ms, p95 "
            f"{pct(server_ms, 0.95):.1f} ms; client p50 {pct(client_ms, 0.5):.1f} ms, p95 "
            f"{pct(client_ms, 0.95):.1f} ms")  # fmt: skip
        log(f"\n2. the race: {args.clients} clients, {args.workers} gunicorn worker processes, "
            f"{args.rounds} rounds, one slot per round")  # fmt: skip
        mark = server.mark()
        booked, conflicts, errors, latencies, problems = race(
            server.base, sessions, ids["visits"], args.rounds
        )
        booking_server_ms = server.server_ms(mark, "/api/v1/visits/bookings")
    finally:
        server.stop()
    with app.app_context():
        held = db.session.query(Booking).count()
        db.engine.dispose()
    if held != booked:
        errors += abs(held - booked)
        problems.append(f"the database holds {held} bookings for {booked} made")
    for problem in problems[:20]:
        log(f"  problem: {problem}")
    log(f"booking latency over {len(latencies)} requests: p50 {pct(latencies, 0.5):.1f} ms, "
        f"p95 {pct(latencies, 0.95):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms at the client "
        f"(waiting behind the others for one of 2 workers included); server time p50 "
        f"{pct(booking_server_ms, 0.5):.1f} ms, "
        f"p99 {pct(booking_server_ms, 0.99):.1f} ms")  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"booked {booked} conflicts {conflicts} errors {errors} "
        f"p99_ms {pct(latencies, 0.99):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
