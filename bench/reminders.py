"""Diary reminders benchmark: 10,000 reminders due in the same minute, queued and delivered
to an SMTP server on loopback through the jobs' own code.

    python bench/reminders.py [--patients 10000] [--history-days 30] [--granularity 1,10,50]
                              [--database-url postgresql://...]

On a scratch PostgreSQL database (`dct_bench_reminders`), migrated with the platform's own
migrations, a trial, a site, the daily symptom diary and its schedule are made through the
services, with one patient (portal account, personal data with an e-mail address). That
patient is copied in bulk with SQL into `--patients` patients, a third each preferring
English, German and Japanese, and each gets an occurrence whose window opens at the same
minute T (plus `--history-days` days of past occurrences, so that the due query does not run
on a table holding only what is due). An aiosmtpd server in a process of its own on
loopback counts the mails and connections it receives (and any recipient received twice).

1. Queue: the `ediary.reminders` job at T + 30 s (`run_job`, as the scheduler runs it).
2. Deliver: the `core.mail-outbox` job (`run_job`, each run in its own slot, back to back)
   until the server has every mail. Prints the seconds until then, mails/s, connections
   and runs, and, since the scheduler starts a run once per period, when the last mail
   would have arrived on the scheduler's clock.
3. Commit granularity: the same mails are made due again and delivered by
   `outbox.deliver_due` directly with outcomes committed every 1, 10, 50 mails.

The goal is under 300 s for step 2. Benchmarks only print figures.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.foundation import free_port, fresh_database  # noqa: E402

DATABASE = "dct_bench_reminders"
SYSTEM = "bench-reminders"

# --- the SMTP server, in a process of its own ---------------------------------------------


def smtp_server(
    port: int,
    messages: Any,
    connections: Any,
    duplicates: Any,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    from aiosmtpd.controller import Controller

    seen: set[str] = set()

    class Counting:
        async def handle_EHLO(
            self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            session.host_name = hostname
            connections.value += 1
            return responses

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            for rcpt in envelope.rcpt_tos:
                if rcpt in seen:
                    duplicates.value += 1
                seen.add(rcpt)
            messages.value += 1
            return "250 Message accepted for delivery"

    controller = Controller(
        Counting(), hostname="127.0.0.1", port=port, server_hostname="smtp.bench"
    )
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


# --- the data --------------------------------------------------------------------------------


def clone_sql(table: Any, overrides: dict[str, str], source: str) -> str:
    """INSERT INTO table SELECT every column of `source` (an alias `t` of the template row
    joined with the series `i`), with some columns computed."""
    columns = [c.name for c in table.columns if c.name != "id" or "id" in overrides]
    values = [overrides.get(name, f"t.{name}") for name in columns]
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {source}"
    )


def set_up(app: Any, patients: int, history_days: int, at: datetime) -> None:
    """The trial, diary and one patient through the services; the other patients, their
    occurrences at `at` and a history of older ones in bulk."""
    from sqlalchemy import text

    from dct_platform.extensions import db
    from dct_platform.models import Patient, PatientIdentity, User
    from dct_platform.models.patients import PatientStatus
    from dct_platform.models.trials import TrialPhase, TrialStatus
    from dct_platform.roles import Role
    from dct_platform.services import accounts, trials
    from dct_platform.services import patients as patient_service
    from devices.ediary import schedules
    from devices.ediary.demo_instruments import DAILY_SYMPTOMS
    from devices.ediary.models import Occurrence, ScheduleKind

    with app.app_context():
        s = db.session()
        start = at - timedelta(days=history_days + 30)
        sponsor = trials.create_sponsor(s, None, start, "Bench Pharma", system=SYSTEM)
        trial = trials.create_trial(
            s, None, start, sponsor=sponsor, protocol_number="BENCH-REMIND",
            title="Reminder benchmark", phase=TrialPhase.PHASE_3,
            status=TrialStatus.ACTIVE, system=SYSTEM,
        )  # fmt: skip
        site = trials.create_site(
            s, None, start, trial=trial, site_number="R1", name="Berlin", country="DE",
            timezone="Europe/Berlin", system=SYSTEM,
        )  # fmt: skip
        version = schedules.add_version(s, None, start, DAILY_SYMPTOMS, system=SYSTEM)
        schedule = schedules.add_schedule(
            s, None, start, trial=trial, version=version, kind=ScheduleKind.DAILY,
            window_start="18:00", window_end="24:00", first_date=start.date(),
            remind_before_close_minutes=60, system=SYSTEM,
        )  # fmt: skip
        account = accounts.create_user(
            s, None, start, username="bench.p0", password=secrets.token_urlsafe(),
            role=Role.PATIENT, display_name="P0", timezone="Europe/Berlin",
            opened_at_enrolment=True, system=SYSTEM,
        )  # fmt: skip
        template = patient_service.enroll_patient(
            s, None, start, site=site, subject_number="R1-0", timezone="Europe/Berlin",
            status=PatientStatus.ENROLLED, user=account, system=SYSTEM,
            identity=patient_service.IdentityInput(
                given_name="P0", family_name="Bench", email="p0@bench.test"
            ),
        )  # fmt: skip
        s.flush()
        ids = {"user": account.id, "patient": template.id, "schedule": schedule.id}
        s.commit()

        conn = s.connection()
        # Bulk copies bypass the ORM's audit trail: a scratch database, set up as a DBA would.
        conn.execute(text("SELECT set_config('dct.audit_writer', 'on', true)"))
        series = f"generate_series(1, {patients - 1}) AS i"
        conn.execute(
            text(
                clone_sql(
                    User.__table__,
                    {"username": "'bench.p' || i", "display_name": "'P' || i"},
                    f"users AS t CROSS JOIN {series} WHERE t.id = {ids['user']}",
                )
            )
        )
        langs = "(ARRAY['en','de','ja'])[1 + u.n % 3]"
        zones = "(ARRAY['Europe/Berlin','Europe/Berlin','Asia/Tokyo'])[1 + u.n % 3]"
        users = (
            "(SELECT id, CAST(substr(username, 8) AS int) AS n FROM users "
            f"WHERE username LIKE 'bench.p%' AND id <> {ids['user']}) AS u"
        )
        conn.execute(
            text(
                clone_sql(
                    Patient.__table__,
                    {
                        "subject_number": "'R1-' || u.n",
                        "user_id": "u.id",
                        "preferred_language": langs,
                        "timezone": zones,
                    },
                    f"patients AS t CROSS JOIN {users} WHERE t.id = {ids['patient']}",
                )
            )
        )
        conn.execute(
            text(
                clone_sql(
                    PatientIdentity.__table__,
                    {
                        "patient_id": "p.id",
                        "given_name": "'P' || p.subject_number",
                        "email": "'p' || substr(p.subject_number, 4) || '@bench.test'",
                    },
                    f"patient_identities AS t CROSS JOIN patients AS p "
                    f"WHERE t.patient_id = {ids['patient']} AND p.id <> {ids['patient']}",
                )
            )
        )
        # Every patient's window opens at `at`, closes 6 hours later, reminds an hour
        # before; and one occurrence a day before it, decided (on time or missed).
        occurrence = Occurrence.__table__
        for back in range(history_days + 1):
            opens = at - timedelta(days=back)
            conn.execute(
                text(
                    clone_sql(
                        occurrence,
                        {
                            "schedule_id": str(ids["schedule"]),
                            "patient_id": "p.id",
                            "site_id": "p.site_id",
                            "key": f"'{(opens.date()).isoformat()}'",
                            "local_date": f"CAST('{opens.date().isoformat()}' AS date)",
                            "zone": "p.timezone",
                            "opens_at": ":opens",
                            "closes_at": ":opens + interval '6 hours'",
                            "late_until": ":opens + interval '6 hours'",
                            "remind_at": ":opens + interval '5 hours'",
                            "outcome": (
                                "NULL"
                                if back == 0
                                else "CASE WHEN p.id % 4 = 0 THEN 'missed' ELSE 'on_time' END"
                            ),
                        },
                        "patients AS p",
                    )
                ),
                {"opens": opens},
            )
        s.commit()
        conn = s.connection()
        conn.execute(text("ANALYZE"))
        s.commit()
        db.session.remove()


# --- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--granularity", default="1,10,50", help="commit every N; '' to skip")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    messages, connections, duplicates = (context.Value("i", 0) for _ in range(3))
    ready, stop = context.Event(), context.Event()
    port = free_port()
    server = context.Process(
        target=smtp_server, args=(port, messages, connections, duplicates, ready, stop)
    )
    server.start()
    if not ready.wait(30):
        raise SystemExit("the SMTP server did not start")

    url = fresh_database(args.database_url, DATABASE)
    instance = Path(tempfile.mkdtemp(prefix="dct-bench-reminders-"))
    os.environ.update({"DCT_INSTANCE_PATH": str(instance), "SECRET_KEY": "bench"})
    from dct_platform import create_app
    from dct_platform.extensions import db
    from dct_platform.migrate import upgrade
    from dct_platform.models import JobRun, MailOutbox, OutboxStatus
    from dct_platform.scheduler import registered_jobs, run_job

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": port,
            "MAIL_FROM": "no-reply@bench.test",
            "PUBLIC_BASE_URL": "https://study.example.org",
        },
        instance_path=str(instance),
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(app)
    # The minute every window opens: the next whole minute.
    at = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    started = time.perf_counter()
    set_up(app, args.patients, args.history_days, at)
    print(
        f"database {DATABASE}: {args.patients} patients (en/de/ja), "
        f"{args.patients * (args.history_days + 1)} occurrences, "
        f"{args.patients} opening at {at:%H:%M} UTC; set up in "
        f"{time.perf_counter() - started:.1f} s; SMTP server on 127.0.0.1:{port}",
        flush=True,
    )
    from sqlalchemy import func, select, update

    def outcome(job_id: str) -> str:
        with app.app_context():
            found = db.session.scalar(
                select(JobRun.outcome)
                .where(JobRun.job_id == job_id)
                .order_by(JobRun.started_at.desc())
            )
            db.session.remove()
            return found or ""

    def queued() -> int:
        with app.app_context():
            n = db.session.scalar(select(func.count()).select_from(MailOutbox)) or 0
            db.session.remove()
            return n

    # 1. queue
    now = at + timedelta(seconds=30)
    started = time.perf_counter()
    run_job(app, "ediary.reminders", now)
    queue_seconds = time.perf_counter() - started
    total = queued()
    print(
        f"queue   {queue_seconds:8.2f} s   {total} reminders queued "
        f"({outcome('ediary.reminders')}); the job again: ",
        end="",
        flush=True,
    )
    started = time.perf_counter()
    run_job(app, "ediary.reminders", now + timedelta(minutes=1))
    print(f"{outcome('ediary.reminders')} in {time.perf_counter() - started:.2f} s")

    # 2. deliver, as the scheduler does: the core.mail-outbox job, each run in a new slot.
    period = registered_jobs(app)["core.mail-outbox"].every
    runs: list[float] = []
    started = time.perf_counter()
    when = now
    while messages.value < total and len(runs) < 1000:
        run_started = time.perf_counter()
        run_job(app, "core.mail-outbox", when)
        runs.append(time.perf_counter() - run_started)
        print(f"  run {len(runs)}: {runs[-1]:6.2f} s  {outcome('core.mail-outbox')}", flush=True)
        when += period
    deadline = time.monotonic() + 30
    while messages.value < total and time.monotonic() < deadline:
        time.sleep(0.01)
    deliver_seconds = time.perf_counter() - started
    scheduled = (len(runs) - 1) * period.total_seconds() + runs[-1]
    print(
        f"deliver {deliver_seconds:8.2f} s   {messages.value} of {total} mails reached the SMTP "
        f"server, {messages.value / deliver_seconds:.0f} mails/s, {connections.value} SMTP "
        f"connection(s), {len(runs)} run(s) of the job (every {period.total_seconds():g} s: "
        f"all there {scheduled:.1f} s after the first run on the scheduler's clock), "
        f"{duplicates.value} received twice"
    )
    print(f"total   {queue_seconds + deliver_seconds:8.2f} s from due to delivered (goal < 300 s)")

    # 3. commit granularity, on the same mails made due again
    from dct_platform import outbox
    from dct_platform.mail import MailSettings

    settings = MailSettings.from_config(app.config)
    for every in [int(x) for x in args.granularity.split(",") if x.strip()]:
        with app.app_context():
            s = db.session()
            s.execute(
                update(MailOutbox).values(
                    status=OutboxStatus.PENDING, attempts=0, claimed_by=None, claimed_at=None
                )
            )
            s.commit()
            before, connections_before = messages.value, connections.value
            started = time.perf_counter()
            report = outbox.deliver_due(
                s, now, settings, "bench", budget=timedelta(minutes=10), commit_every=every
            )
            seconds = time.perf_counter() - started
            db.session.remove()
        print(
            f"deliver_due, outcomes committed every {every:>3} mail(s): {seconds:6.2f} s, "
            f"{report.sent / seconds:5.0f} mails/s ({report.sent} sent, "
            f"{messages.value - before} received, {connections.value - connections_before} "
            "connection(s))",
            flush=True,
        )

    with app.app_context():
        db.engine.dispose()
    stop.set()
    server.join(timeout=30)
    shutil.rmtree(instance, ignore_errors=True)
    print(f"rate {total / (queue_seconds + deliver_seconds):.0f} mails/s")


if __name__ == "__main__":
    main()
