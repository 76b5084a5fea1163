"""Diary reminders by e-mail: one when a window opens and one before it closes, never twice
for an occurrence and kind (however often the job runs, and with two schedulers at once),
none for a diary filled in or a patient without an address, in the patient's language;
delivered to a real SMTP server on loopback over one connection for many messages, and
exactly once each when the server drops the connection in the middle of a run."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from flask import Flask
from sqlalchemy import select

from dct_platform import audit, outbox
from dct_platform.extensions import db
from dct_platform.mail import MailSettings, OutgoingMail
from dct_platform.models import (
    JobRun,
    MailOutbox,
    OutboxStatus,
    Patient,
    PatientIdentity,
    Trial,
    User,
)
from dct_platform.models.patients import PatientStatus
from dct_platform.roles import Role
from dct_platform.scheduler import run_job
from dct_platform.services import accounts
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow
from devices.ediary import reminders, schedules
from devices.ediary.demo_instruments import DAILY_SYMPTOMS
from devices.ediary.models import Occurrence, ScheduleKind
from tests.support.clock import TestClock
from tests.support.ediary import ANSWERS, BERLIN, local, occurrence, refresh, submit
from tests.support.smtp import LoopbackSMTPServer, _RecordingHandler, free_port
from tests.support.world import World

TOKYO = ZoneInfo("Asia/Tokyo")
BASE_URL = "https://study.example.org"
JOB = "ediary.reminders"


# --- set-up ------------------------------------------------------------------------------


@pytest.fixture
def day(app: Flask, world: World) -> date:
    """A daily diary from 18:00 to midnight on the patient's clock, with a reminder an hour
    before it closes; its first day is tomorrow in Berlin, its occurrences written."""
    first = (utcnow().astimezone(BERLIN) + timedelta(days=1)).date()
    with app.app_context():
        s, now = db.session(), utcnow()
        version = schedules.add_version(s, None, now, DAILY_SYMPTOMS, system="test")
        trial = s.get(Trial, world.trial.id)
        assert trial is not None
        schedules.add_schedule(
            s, None, now, trial=trial, version=version, kind=ScheduleKind.DAILY,
            window_start="18:00", window_end="24:00", first_date=first,
            remind_before_close_minutes=60, system="test",
        )  # fmt: skip
        s.commit()
    app.config["PUBLIC_BASE_URL"] = BASE_URL
    refresh(app, local(first, "12:00:00"))
    return first


def in_tokyo(day: date, clock: str) -> datetime:
    hour, minute, second = (int(x) for x in clock.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=TOKYO)


def edit(app: Flask, model: type[Any], key: int, **values: object) -> None:
    """Change a record as a test set-up step (on the audit trail, as the system)."""
    with app.app_context():
        s = db.session()
        row = s.get(model, key)
        assert row is not None
        with audit.acting(s, None, utcnow(), system="test", what="test set-up"):
            for name, value in values.items():
                setattr(row, name, value)
        s.commit()


def enrol_berliners(app: Flask, world: World, count: int) -> list[int]:
    """More patients at the Berlin site, each with a portal account and an address."""
    ids = []
    with app.app_context():
        s, now = db.session(), utcnow() - timedelta(days=2)
        site = s.get(type(world.berlin), world.berlin.id)
        for n in range(count):
            account = accounts.create_user(
                s, None, now, username=f"extra{n}", password=world.password,
                role=Role.PATIENT, display_name=f"Extra {n}", timezone="Europe/Berlin",
                opened_at_enrolment=True, system="test",
            )  # fmt: skip
            patient = patient_service.enroll_patient(
                s, None, now, site=site, subject_number=f"B1-extra{n}",
                timezone="Europe/Berlin", status=PatientStatus.ENROLLED, user=account,
                system="test",
                identity=patient_service.IdentityInput(
                    given_name=f"Extra{n}", family_name="Secretname", email=f"extra{n}@example.org"
                ),
            )  # fmt: skip
            ids.append(patient.id)
        s.commit()
    return ids


def queued(app: Flask) -> list[MailOutbox]:
    with app.app_context():
        rows = list(db.session.scalars(select(MailOutbox).order_by(MailOutbox.id)))
        db.session.expunge_all()
        return rows


def keys(app: Flask) -> list[str | None]:
    return [row.dedup_key for row in queued(app)]


def occurrence_in_tokyo(app: Flask, patient_id: int, day: date) -> Occurrence:
    with app.app_context():
        row = db.session.scalar(
            select(Occurrence).where(
                Occurrence.patient_id == patient_id, Occurrence.local_date == day
            )
        )
        assert row is not None
        db.session.expunge(row)
        return row


# --- queueing -----------------------------------------------------------------------------


def test_one_reminder_when_the_window_opens_and_one_before_it_closes_never_twice(
    app: Flask, world: World, day: date, clock: TestClock
) -> None:
    anna = occurrence(app, world.patients["anna"].id, day)
    assert anna.remind_at == local(day, "23:00:00")
    # Before the window opens: nothing.
    assert run_job(app, JOB, local(day, "17:59:30"))
    assert keys(app) == []
    # The minute it opens: the opening reminder (Kenji's window opened hours ago in Tokyo).
    assert run_job(app, JOB, local(day, "18:00:20"))
    assert keys(app) == [f"ediary:{anna.id}:opens"]
    # The job again in the same slot is refused by the scheduler; the function itself, in
    # the next minutes, finds the reminder queued.
    assert not run_job(app, JOB, local(day, "18:00:40"))
    assert run_job(app, JOB, local(day, "18:01:20"))
    with app.app_context():
        assert reminders.queue_reminders(db.session, local(day, "18:05:00")) == 0
        db.session.commit()
    assert keys(app) == [f"ediary:{anna.id}:opens"]
    # An hour before it closes: the closing reminder, once.
    assert run_job(app, JOB, local(day, "23:00:10"))
    assert run_job(app, JOB, local(day, "23:01:10"))
    assert keys(app) == [f"ediary:{anna.id}:opens", f"ediary:{anna.id}:closing"]
    with app.app_context():
        runs = [
            r.outcome
            for r in db.session.scalars(
                select(JobRun).where(JobRun.job_id == JOB).order_by(JobRun.started_at)
            )
        ]
    assert runs[:3] == [
        "queued 0 diary reminders",
        "queued 1 diary reminders",
        "queued 0 diary reminders",
    ]
    opening, closing = queued(app)
    assert opening.recipients == '["anna@example.org"]'
    assert opening.subject == "Your diary can be filled in now"
    assert "on " + format_date(day, "full", locale="en") in opening.text_body
    assert "from 6:00\u202fPM to midnight" in opening.text_body
    assert f"{BASE_URL}/portal/diary/{anna.id}" in opening.text_body
    assert "(Europe/Berlin)" in opening.text_body
    assert closing.subject == "Reminder: your diary closes at midnight"
    assert "open until midnight on " + format_date(day, "full", locale="en") in closing.text_body
    # Neither names the study, the questionnaire nor the patient.
    for mail in (opening, closing):
        for secret in ("Test trial", "symptom", "Anna", "Secretname"):
            assert secret not in mail.subject + mail.text_body


@pytest.mark.parametrize(
    ("late", "expected"), [(timedelta(minutes=10), 1), (timedelta(hours=1), 0)]
)
def test_a_scheduler_that_was_down_catches_up_but_not_for_windows_opened_long_ago(
    app: Flask, world: World, day: date, late: timedelta, expected: int
) -> None:
    assert run_job(app, JOB, local(day, "18:00:00") + late)
    assert len(queued(app)) == expected


def test_a_diary_filled_in_gets_no_closing_reminder(
    app: Flask, world: World, day: date, clock: TestClock
) -> None:
    anna = occurrence(app, world.patients["anna"].id, day)
    assert run_job(app, JOB, local(day, "18:00:20"))
    clock.freeze(local(day, "20:00:00"))
    submit(app, world, anna.id, ANSWERS, "form-1")
    assert run_job(app, JOB, local(day, "23:00:20"))
    assert keys(app) == [f"ediary:{anna.id}:opens"]


def test_a_diary_filled_in_before_the_job_ran_gets_no_opening_reminder(
    app: Flask, world: World, day: date, clock: TestClock
) -> None:
    anna = occurrence(app, world.patients["anna"].id, day)
    clock.freeze(local(day, "18:00:05"))
    submit(app, world, anna.id, ANSWERS, "form-1")
    assert run_job(app, JOB, local(day, "18:00:30"))
    assert keys(app) == []


def test_no_reminder_without_an_address_or_a_usable_account(
    app: Flask, world: World, day: date
) -> None:
    kenji = world.patients["kenji"].id
    kenji_row = occurrence_in_tokyo(app, kenji, day + timedelta(days=1))
    opens = in_tokyo(day + timedelta(days=1), "18:00:30")
    assert kenji_row.opens_at == in_tokyo(day + timedelta(days=1), "18:00:00")
    edit(app, PatientIdentity, kenji, email=None)
    # Anna has an address, but her account is disabled: she could not sign in to fill it.
    edit(app, User, world.users["anna"].id, is_enabled=False)
    assert run_job(app, JOB, local(day, "18:00:30"))
    assert run_job(app, JOB, opens)
    assert keys(app) == []
    # With the address back, Kenji's reminder goes out (the control).
    edit(app, PatientIdentity, kenji, email="kenji@example.org")
    assert run_job(app, JOB, opens + timedelta(minutes=1))
    assert keys(app) == [f"ediary:{kenji_row.id}:opens"]


def test_the_mail_is_in_the_patients_language_with_times_on_their_clock(
    app: Flask, world: World, day: date
) -> None:
    edit(app, Patient, world.patients["anna"].id, preferred_language="de")
    edit(app, Patient, world.patients["kenji"].id, preferred_language="ja")
    assert run_job(app, JOB, local(day, "18:00:30"))
    tomorrow = day + timedelta(days=1)
    assert run_job(app, JOB, in_tokyo(tomorrow, "18:00:30"))
    german, japanese = queued(app)
    assert german.subject == "Ihr Tagebuch kann jetzt ausgefüllt werden"
    assert german.text_body.startswith("Guten Tag,\n\nIhr Studientagebuch ist am ")
    assert f"am {format_date(day, 'full', locale='de')} von 18:00 bis Mitternacht" in (
        german.text_body
    )
    assert "Hier können Sie es ausfüllen: https://study.example.org/portal/diary/" in (
        german.text_body
    )
    assert "Zeitzone (Europe/Berlin)" in german.text_body
    assert japanese.subject == "日誌の入力ができるようになりました"
    assert f"{format_date(tomorrow, 'full', locale='ja')} 18:00から24時まで" in japanese.text_body
    assert "（Asia/Tokyo）" in japanese.text_body  # noqa: RUF001


def test_without_a_public_address_the_mail_says_to_sign_in(
    app: Flask, world: World, day: date
) -> None:
    app.config["PUBLIC_BASE_URL"] = ""
    assert run_job(app, JOB, local(day, "18:00:30"))
    (mail,) = queued(app)
    assert "Please sign in to the study portal to fill it in." in mail.text_body
    assert "http" not in mail.text_body


def test_two_schedulers_at_once_queue_each_reminder_once(
    app: Flask, world: World, day: date
) -> None:
    enrol_berliners(app, world, 4)
    refresh(app, local(day, "12:00:00"))
    start = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            with app.app_context():
                start.wait()
                counts.append(reminders.queue_reminders(db.session, local(day, "18:00:30")))
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(counts) == [0, 5]
    assert len(keys(app)) == len(set(keys(app))) == 5


def test_the_outbox_key_alone_keeps_a_reminder_from_being_queued_twice(
    app: Flask, world: World, day: date
) -> None:
    mail = OutgoingMail(to=["anna@example.org"], subject="s", text="t")
    with app.app_context():
        s = db.session()
        assert outbox.enqueue_many(s, utcnow(), [(mail, "ediary:1:opens"), (mail, None)]) == 2
        s.commit()
        again = [(mail, "ediary:1:opens"), (mail, "ediary:1:closing")]
        assert outbox.enqueue_many(s, utcnow(), again) == 1
        s.commit()
    assert keys(app) == ["ediary:1:opens", None, "ediary:1:closing"]


def test_language_of() -> None:
    assert reminders.language_of("de-CH") == "de"
    assert reminders.language_of("ja") == "ja"
    assert reminders.language_of("fr") == "en"
    assert reminders.language_of(None) == "en"


# --- delivery -----------------------------------------------------------------------------


class _CountingHandler(_RecordingHandler):
    """Records mails and counts connections (one EHLO each). With `drop_after`, a
    connection that carried that many mails is dropped at the next MAIL FROM: abruptly
    (no answer), or with a 421 answer, as servers limiting mails per connection do."""

    def __init__(self, drop_after: int | None, reply_421: bool, drop_in_data: int | None) -> None:
        super().__init__(())
        self.connections = 0
        self.drops = 0
        self.drop_after = drop_after
        self.reply_421 = reply_421
        # The server takes this mail (counting from 1), then drops the connection before
        # it answers: the client cannot know whether it was delivered.
        self.drop_in_data = drop_in_data

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        status = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == self.drop_in_data:
            server.transport.close()
        return status

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        session.dct_mails = 0
        with self.arrived:
            self.connections += 1
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.drop_after is not None and session.dct_mails >= self.drop_after:
            with self.arrived:
                self.drops += 1
            if self.reply_421:
                server.loop.call_soon(server.transport.close)
                return "421 4.7.0 Too many messages on one connection, closing"
            server.transport.close()
            return "250 OK"  # never reaches the client: the connection is gone
        session.dct_mails += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"


class CountingSMTPServer(LoopbackSMTPServer):
    def __init__(
        self,
        drop_after: int | None = None,
        reply_421: bool = False,
        drop_in_data: int | None = None,
    ) -> None:
        super().__init__()
        self._handler = _CountingHandler(drop_after, reply_421, drop_in_data)

    @property
    def connections(self) -> int:
        return self._handler.connections

    @property
    def drops(self) -> int:
        return self._handler.drops


def _point_at(app: Flask, server: LoopbackSMTPServer) -> None:
    app.config.update(SMTP_HOST=server.host, SMTP_PORT=server.port)


def test_reminders_arrive_over_one_connection(app: Flask, world: World, day: date) -> None:
    edit(app, Patient, world.patients["anna"].id, preferred_language="de")
    enrol_berliners(app, world, 5)
    refresh(app, local(day, "12:00:00"))
    at = local(day, "18:00:30")
    assert run_job(app, JOB, at)
    assert len(queued(app)) == 6
    with CountingSMTPServer() as server:
        _point_at(app, server)
        assert run_job(app, "core.mail-outbox", at)
        received = server.wait_for(6)
        assert server.connections == 1
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(
        ["anna@example.org"] + [f"extra{n}@example.org" for n in range(5)]
    )
    anna = next(m for m in received if m.rcpt_tos == ["anna@example.org"])
    assert anna.message["Subject"] == "Ihr Tagebuch kann jetzt ausgefüllt werden"
    body = anna.message.get_body(preferencelist=("plain",)).get_content()
    assert "von 18:00 bis Mitternacht geöffnet" in body
    anna_row = occurrence(app, world.patients["anna"].id, day)
    assert f"{BASE_URL}/portal/diary/{anna_row.id}" in body
    rows = queued(app)
    assert {(r.status, r.attempts) for r in rows} == {(OutboxStatus.SENT, 1)}
    assert {r.message_id for r in rows} == {m.message["Message-ID"] for m in received}
    with app.app_context():
        outcome = db.session.scalar(
            select(JobRun.outcome).where(JobRun.job_id == "core.mail-outbox")
        )
    assert (
        outcome
        == "sent 6, retrying 0, failed 0, released 0 stale claims, left 0 due, 1 SMTP connection"
    )


@pytest.mark.parametrize("reply_421", [False, True], ids=["dropped", "421"])
def test_a_connection_lost_mid_run_is_reopened_and_every_mail_arrives_once(
    app: Flask, reply_421: bool
) -> None:
    t0 = utcnow()
    with app.app_context():
        s = db.session()
        mails = [
            (OutgoingMail(to=[f"p{n}@example.org"], subject=f"Mail {n}", text="x"), f"k{n}")
            for n in range(7)
        ]
        assert outbox.enqueue_many(s, t0, mails) == 7
        s.commit()
    with CountingSMTPServer(drop_after=2, reply_421=reply_421) as server:
        settings = MailSettings(server.host, server.port, "no-reply@dct.test", timeout=5)
        with app.app_context():
            report = outbox.deliver_due(db.session, t0, settings, "w")
        received = server.wait_for(7)
        assert (report.sent, report.retrying, report.failed, report.left) == (7, 0, 0, 0)
        # Two mails a connection: four connections, the first three dropped by the server.
        assert report.connections == server.connections == 4
        assert server.drops == 3
    assert sorted(m.message["Subject"] for m in received) == [f"Mail {n}" for n in range(7)]
    assert len({m.message["Message-ID"] for m in received}) == 7
    assert {(r.status, r.attempts) for r in queued(app)} == {(OutboxStatus.SENT, 1)}


def test_a_connection_lost_after_the_data_is_retried_later_not_at_once(app: Flask) -> None:
    """The server may have taken a mail whose answer never came: it is not sent again on
    the spot but retried later, as any failed attempt (delivery is at least once)."""
    t0 = utcnow()
    with app.app_context():
        s = db.session()
        mails = [
            (OutgoingMail(to=[f"p{n}@example.org"], subject=f"Mail {n}", text="x"), f"k{n}")
            for n in range(4)
        ]
        outbox.enqueue_many(s, t0, mails)
        s.commit()
    with CountingSMTPServer(drop_in_data=2) as server:
        settings = MailSettings(server.host, server.port, "no-reply@dct.test", timeout=5)
        with app.app_context():
            first = outbox.deliver_due(db.session, t0, settings, "w")
            assert (first.sent, first.retrying, first.left) == (1, 1, 2)
            assert [(r.status, r.attempts) for r in queued(app)] == [
                (OutboxStatus.SENT, 1),
                (OutboxStatus.PENDING, 1),
                (OutboxStatus.PENDING, 0),
                (OutboxStatus.PENDING, 0),
            ]
            assert "lost during DATA" in (queued(app)[1].last_error or "")
            second = outbox.deliver_due(db.session, t0 + timedelta(minutes=1), settings, "w")
            assert (second.sent, second.connections) == (3, 1)
        received = server.wait_for(5)
    assert [m.message["Subject"] for m in received] == [
        "Mail 0", "Mail 1", "Mail 2", "Mail 3", "Mail 1"
    ]  # fmt: skip
    assert {(r.status, r.attempts) for r in queued(app)} == {
        (OutboxStatus.SENT, 1),
        (OutboxStatus.SENT, 2),
    }


def test_an_unreachable_server_costs_one_attempt_per_run_not_one_per_mail(app: Flask) -> None:
    t0 = utcnow()
    with app.app_context():
        s = db.session()
        mails = [
            (OutgoingMail(to=[f"p{n}@example.org"], subject="s", text="x"), None) for n in range(5)
        ]
        outbox.enqueue_many(s, t0, mails)
        s.commit()
        settings = MailSettings("127.0.0.1", free_port(), "no-reply@dct.test", timeout=2)
        report = outbox.deliver_due(db.session, t0, settings, "w")
    assert (report.sent, report.retrying, report.left) == (0, 1, 4)
    assert [(r.status, r.attempts) for r in queued(app)] == [(OutboxStatus.PENDING, 1)] + [
        (OutboxStatus.PENDING, 0)
    ] * 4
    assert all(r.claimed_by is None for r in queued(app))


def test_a_run_stops_at_its_budget_and_leaves_the_rest_due(
    app: Flask, smtp_server: LoopbackSMTPServer
) -> None:
    t0 = utcnow()
    with app.app_context():
        s = db.session()
        mails = [
            (OutgoingMail(to=[f"p{n}@example.org"], subject="s", text="x"), None) for n in range(5)
        ]
        outbox.enqueue_many(s, t0, mails)
        s.commit()
        settings = MailSettings(smtp_server.host, smtp_server.port, "no-reply@dct.test")
        report = outbox.deliver_due(db.session, t0, settings, "w", budget=timedelta(0))
        assert (report.sent, report.left, report.connections) == (0, 0, 0)
        report = outbox.deliver_due(db.session, t0, settings, "w", batch=2)
        assert (report.sent, report.connections) == (5, 1)
    smtp_server.wait_for(5)
