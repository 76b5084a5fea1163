"""Outgoing mail is queued with the change that causes it and delivered once by the job."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select

from dct_platform import outbox
from dct_platform.extensions import db
from dct_platform.mail import MailSettings, OutgoingMail
from dct_platform.models import MailOutbox, OutboxStatus
from dct_platform.scheduler import run_job
from tests.support.smtp import LoopbackSMTPServer, free_port
from tests.support.world import World

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"


def _mail(n: int = 1) -> OutgoingMail:
    return OutgoingMail(
        to=[f"patient{n}@example.org"],
        subject=f"Tagebuch {n} fällig",
        text="Bitte füllen Sie Ihr Tagebuch aus.",
        attachments=[("visit.ics", "text/calendar; method=REQUEST", ICS)],
    )


def _point_at(app: Flask, port: int) -> None:
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)


def _statuses(app: Flask) -> list[tuple[str, int]]:
    with app.app_context():
        return [
            (m.status.value, m.attempts)
            for m in db.session.scalars(select(MailOutbox).order_by(MailOutbox.id))
        ]


def test_queued_mail_is_delivered_once_by_the_job(
    app: Flask, smtp_server: LoopbackSMTPServer
) -> None:
    _point_at(app, smtp_server.port)
    with app.app_context():
        assert outbox.enqueue(db.session, T0, _mail(1), dedup_key="reminder:1")
        assert outbox.enqueue(db.session, T0, _mail(2))
        db.session.commit()
    assert run_job(app, "core.mail-outbox", T0)
    assert run_job(app, "core.mail-outbox", T0 + timedelta(minutes=1))
    smtp_server.wait_for(2, timeout=5)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "patient1@example.org",
        "patient2@example.org",
    ]
    received = next(m for m in smtp_server.messages if m.rcpt_tos == ["patient1@example.org"])
    assert received.message["Subject"] == "Tagebuch 1 fällig"
    assert any(p.get_filename() == "visit.ics" for p in received.message.iter_attachments())
    assert _statuses(app) == [("sent", 1), ("sent", 1)]


def test_the_same_dedup_key_is_queued_once(app: Flask) -> None:
    with app.app_context():
        assert outbox.enqueue(db.session, T0, _mail(1), dedup_key="reminder:occurrence-7")
        assert not outbox.enqueue(db.session, T0, _mail(1), dedup_key="reminder:occurrence-7")
        db.session.commit()
        assert len(db.session.scalars(select(MailOutbox)).all()) == 1


def test_a_rolled_back_change_sends_nothing(app: Flask) -> None:
    with app.app_context():
        outbox.enqueue(db.session, T0, _mail(1))
        db.session.rollback()
        assert db.session.scalars(select(MailOutbox)).all() == []


def test_smtp_down_then_up_delivers_later_without_loss(app: Flask) -> None:
    port = free_port()
    _point_at(app, port)
    settings = MailSettings.from_config(app.config)
    with app.app_context():
        outbox.enqueue(db.session, T0, _mail(1))
        db.session.commit()
        report = outbox.deliver_due(db.session, T0, settings, "worker-a")
        assert (report.sent, report.retrying) == (0, 1)
        row = db.session.scalar(select(MailOutbox))
        assert row.status is OutboxStatus.PENDING and row.next_attempt_at == T0 + timedelta(
            minutes=1
        )
        assert "127.0.0.1" in (row.last_error or "")
        # Not due yet: nothing is attempted.
        assert (
            outbox.deliver_due(
                db.session, T0 + timedelta(seconds=30), settings, "worker-a"
            ).retrying
            == 0
        )
    with LoopbackSMTPServer(port=port) as server, app.app_context():
        report = outbox.deliver_due(db.session, T0 + timedelta(minutes=1), settings, "worker-a")
        assert report.sent == 1
        server.wait_for(1, timeout=5)
        assert len(server.messages) == 1
    assert _statuses(app) == [("sent", 2)]


def test_gives_up_after_the_last_retry(app: Flask) -> None:
    _point_at(app, free_port())
    settings = MailSettings.from_config(app.config)
    with app.app_context():
        outbox.enqueue(db.session, T0, _mail(1))
        db.session.commit()
        when = T0
        for _ in range(outbox.MAX_ATTEMPTS):
            outbox.deliver_due(db.session, when, settings, "worker-a")
            when += timedelta(days=1)
    assert _statuses(app) == [("failed", outbox.MAX_ATTEMPTS)]


def test_a_stale_claim_is_released_for_another_attempt(
    app: Flask, smtp_server: LoopbackSMTPServer
) -> None:
    _point_at(app, smtp_server.port)
    settings = MailSettings.from_config(app.config)
    with app.app_context():
        outbox.enqueue(db.session, T0, _mail(1))
        db.session.commit()
        row = db.session.scalar(select(MailOutbox))
        row.status, row.claimed_by, row.claimed_at = OutboxStatus.SENDING, "dead-worker", T0
        db.session.commit()
        assert outbox.deliver_due(db.session, T0 + timedelta(minutes=5), settings, "w").sent == 0
        report = outbox.deliver_due(
            db.session, T0 + outbox.STALE_CLAIM + timedelta(minutes=1), settings, "w"
        )
        assert (report.released, report.sent) == (1, 1)


def test_two_workers_at_once_send_each_mail_once(
    app: Flask, smtp_server: LoopbackSMTPServer
) -> None:
    _point_at(app, smtp_server.port)
    settings = MailSettings.from_config(app.config)
    with app.app_context():
        for n in range(20):
            outbox.enqueue(db.session, T0, _mail(n))
        db.session.commit()
    start = threading.Barrier(2)
    sent: list[int] = []

    def worker(name: str) -> None:
        with app.app_context():
            start.wait()
            sent.append(outbox.deliver_due(db.session, T0, settings, name).sent)
            db.session.remove()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    smtp_server.wait_for(20, timeout=10)
    assert sum(sent) == 20 and len(smtp_server.messages) == 20
    assert {m.rcpt_tos[0] for m in smtp_server.messages} == {
        f"patient{n}@example.org" for n in range(20)
    }


def test_administrators_see_the_mail_queue(app: Flask, world: World) -> None:
    from tests.support.clients import login

    with app.app_context():
        outbox.enqueue(db.session, T0, _mail(1))
        db.session.commit()
    client = app.test_client()
    login(client, "admin", world.password)
    html = client.get("/admin").get_data(as_text=True)
    assert "pending: 1" in html and "failed: 0" in html
