"""Domain events reach their receivers only after the change commits, each at least once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import events, outbox
from dct_platform.extensions import csrf, db
from dct_platform.mail import OutgoingMail
from dct_platform.models import (
    DeliveryStatus,
    DomainEvent,
    EventDelivery,
    MailOutbox,
    Patient,
    Site,
    User,
)
from dct_platform.scheduler import run_job
from dct_platform.services import patients as patient_service
from dct_platform.services.patient_status import Consent
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.world import CONSENT, World

# A package declares its own event and receiver in its own module, as this one does: the
# core's registry takes both without any change to dct_platform/.
KIT_DISPATCHED = events.declare("example.kit-dispatched", "A kit left the depot.")
dispatched_kits: list[int] = []


@events.receiver(KIT_DISPATCHED, "example.tell-the-nurse")
def _tell_the_nurse(session: Session, event: events.Event, now: datetime) -> None:
    dispatched_kits.append(event.payload["kit_id"])


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[events.Registry]:
    """Receivers registered by a test live only as long as that test."""
    own = events.registry.copy()
    monkeypatch.setattr(events, "registry", own)
    yield own


def _deliveries(app: Flask) -> list[tuple[str, str, str, int]]:
    with app.app_context():
        rows = db.session.execute(
            select(
                DomainEvent.name,
                EventDelivery.receiver_id,
                EventDelivery.status,
                EventDelivery.attempts,
            )
            .join(DomainEvent, DomainEvent.id == EventDelivery.event_id)
            .order_by(EventDelivery.id)
        ).all()
        return [(name, rid, status.value, attempts) for name, rid, status, attempts in rows]


def _enrol(session: Session, world: World, now: datetime, number: str) -> Patient:
    coordinator = session.get(User, world.users["coord_berlin"].id)
    site = session.get(Site, world.berlin.id)
    assert coordinator is not None and site is not None
    return patient_service.enroll_patient(
        session, coordinator, now, site=site, subject_number=number, timezone="Europe/Berlin",
        consent=Consent(date(2026, 1, 5), "3.0"),
    )  # fmt: skip


def test_a_rolled_back_transaction_dispatches_nothing(
    app: Flask, world: World, session: Session, clock: TestClock
) -> None:
    now = clock.freeze()
    seen: list[int] = []
    events.receiver(events.PATIENT_ENROLLED, "test.record")(
        lambda s, e, when: seen.append(e.payload["patient_id"])
    )
    before = session.scalars(select(DomainEvent.id)).all()  # the world's own enrolments
    _enrol(session, world, now, "B1-rolled-back")
    session.rollback()
    assert events.take_committed(session) == []
    assert events.deliver_due(session, now + timedelta(days=1), "w").delivered == 0
    assert run_job(app, "core.events", now + timedelta(days=1))
    assert seen == []
    assert session.scalars(select(DomainEvent.id)).all() == before
    session.rollback()  # ends the read: SQLite lets one transaction at a time hold the file
    assert _deliveries(app) == []


def test_a_committed_enrolment_is_delivered_once_after_commit(
    app: Flask, world: World, clock: TestClock
) -> None:
    now = clock.freeze()
    seen: list[tuple[str, str | None, bool]] = []

    @events.receiver(events.PATIENT_ENROLLED, "test.welcome")
    def welcome(session: Session, event: events.Event, when: datetime) -> None:
        # From its own session: the enrolment must already be committed to be visible here.
        patient = session.get(Patient, event.payload["patient_id"])
        seen.append((event.name, event.subject, patient is not None))
        assert patient is not None
        outbox.enqueue(
            session,
            when,
            OutgoingMail(to=["site@example.org"], subject="Welcome", text=patient.subject_number),
            dedup_key=f"welcome:{patient.id}",
        )

    client = app.test_client()
    headers = token_for(client, "coord_berlin", world.password)
    response = client.post(
        "/api/v1/patients",
        headers=headers,
        json={
            "site_id": world.berlin.id,
            "subject_number": "B1-new",
            "timezone": "Europe/Berlin",
            **CONSENT,
        },
    )
    assert response.status_code == 201, response.get_json()
    patient_id = response.get_json()["id"]
    # Delivered in-process right after the request's commit, before the job ever ran.
    assert seen == [("core.patient-enrolled", f"patient:{patient_id}", True)]
    assert _deliveries(app) == [("core.patient-enrolled", "test.welcome", "delivered", 1)]
    with app.app_context():
        assert [m.text_body for m in db.session.scalars(select(MailOutbox))] == ["B1-new"]
    assert run_job(app, "core.events", now + timedelta(days=1))
    assert run_job(app, "core.events", now + timedelta(days=2))
    assert len(seen) == 1


def test_a_failing_receiver_is_retried_by_the_job_and_the_change_stays(
    app: Flask, world: World, clock: TestClock
) -> None:
    now = clock.freeze()
    calls: list[datetime] = []

    @events.receiver(events.PATIENT_ENROLLED, "test.flaky-courier")
    def flaky(session: Session, event: events.Event, when: datetime) -> None:
        calls.append(when)
        if len(calls) < 3:
            raise ConnectionError("courier API down")

    with app.app_context():
        patient_id = _enrol(db.session, world, now, "B1-flaky").id
        db.session.commit()
        # The request path's best effort, here by hand: it fails and leaves it to the job.
        report = events.deliver_committed(db.session, now, "web")
        assert report is not None and (report.delivered, report.retrying) == (0, 1)
        db.session.remove()
    assert _deliveries(app) == [("core.patient-enrolled", "test.flaky-courier", "pending", 1)]
    # Not due yet: the first retry waits.
    with app.app_context():
        assert events.deliver_due(db.session, now + timedelta(seconds=10), "w").retrying == 0
    assert len(calls) == 1
    first_retry = now + events.RETRY_DELAYS[0]
    assert run_job(app, "core.events", first_retry)
    assert _deliveries(app) == [("core.patient-enrolled", "test.flaky-courier", "pending", 2)]
    second_retry = first_retry + events.RETRY_DELAYS[1]
    assert run_job(app, "core.events", second_retry)
    assert calls == [now, first_retry, second_retry]
    assert _deliveries(app) == [("core.patient-enrolled", "test.flaky-courier", "delivered", 3)]
    with app.app_context():
        assert db.session.get(Patient, patient_id) is not None
        delivery = db.session.scalar(select(EventDelivery))
        assert delivery is not None and "courier API down" in (delivery.last_error or "")


def test_a_receiver_that_never_succeeds_is_marked_failed(
    app: Flask, session: Session, now: datetime
) -> None:
    @events.receiver(KIT_DISPATCHED, "test.always-broken")
    def broken(session: Session, event: events.Event, when: datetime) -> None:
        raise RuntimeError("still broken")

    events.emit(session, KIT_DISPATCHED, now, {"kit_id": 7}, subject="kit:7")
    session.commit()
    when = now
    for _ in range(events.MAX_ATTEMPTS):
        events.deliver_due(session, when, "w")
        when += timedelta(days=1)
    assert ("example.kit-dispatched", "test.always-broken", "failed", events.MAX_ATTEMPTS) in (
        _deliveries(app)
    )


def test_a_receivers_own_changes_roll_back_when_it_fails(
    app: Flask, session: Session, now: datetime
) -> None:
    @events.receiver(KIT_DISPATCHED, "test.half-done")
    def half_done(session: Session, event: events.Event, when: datetime) -> None:
        outbox.enqueue(session, when, OutgoingMail(to=["a@example.org"], subject="s", text="t"))
        session.flush()
        raise RuntimeError("failed after queueing a mail")

    events.emit(session, KIT_DISPATCHED, now, {"kit_id": 8})
    session.commit()
    report = events.deliver_due(session, now, "w")
    assert (report.delivered, report.retrying) == (1, 1)  # the module's receiver, this one
    assert session.scalars(select(MailOutbox)).all() == []


def test_two_job_runs_at_once_deliver_each_event_to_each_receiver_once(
    app: Flask, now: datetime
) -> None:
    received: list[tuple[str, int]] = []
    lock = threading.Lock()

    def recorder(name: str) -> events.ReceiverFn:
        def record(session: Session, event: events.Event, when: datetime) -> None:
            with lock:
                received.append((name, event.payload["kit_id"]))

        return record

    for name in ("test.a", "test.b"):
        events.receiver(KIT_DISPATCHED, name)(recorder(name))
    with app.app_context():
        for kit in range(15):
            events.emit(db.session, KIT_DISPATCHED, now, {"kit_id": kit})
        db.session.commit()
        db.session.remove()
    start = threading.Barrier(2)
    reports: list[events.DeliveryReport] = []

    def worker(name: str) -> None:
        with app.app_context():
            start.wait()
            reports.append(events.deliver_due(db.session, now, name))
            db.session.remove()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    expected = {(name, kit) for name in ("test.a", "test.b") for kit in range(15)}
    assert sorted(received) == sorted(expected)  # each once: no duplicates
    assert sum(r.delivered for r in reports) == 15 * 3  # with the module's own receiver
    assert {status for _, _, status, _ in _deliveries(app)} == {"delivered"}


def test_a_stale_claim_is_released_and_delivered_again(
    app: Flask, session: Session, now: datetime
) -> None:
    events.emit(session, KIT_DISPATCHED, now, {"kit_id": 99})
    session.commit()
    delivery = session.scalar(select(EventDelivery))
    assert delivery is not None
    delivery.status, delivery.claimed_by, delivery.claimed_at = (
        DeliveryStatus.DELIVERING,
        "dead-worker",
        now,
    )
    session.commit()
    dispatched_kits.clear()
    assert events.deliver_due(session, now + timedelta(minutes=5), "w").delivered == 0
    report = events.deliver_due(session, now + events.STALE_CLAIM + timedelta(minutes=1), "w")
    assert (report.released, report.delivered) == (1, 1)
    assert dispatched_kits == [99]


def test_a_package_declares_its_own_event_and_receiver(
    app: Flask, session: Session, now: datetime
) -> None:
    dispatched_kits.clear()
    events.emit(session, KIT_DISPATCHED, now, {"kit_id": 42}, subject="kit:42")
    session.commit()
    assert run_job(app, "core.events", now)
    assert dispatched_kits == [42]
    with pytest.raises(ValueError, match="declared twice"):
        events.declare("example.kit-dispatched")
    with pytest.raises(ValueError, match="registered twice"):
        events.receiver(KIT_DISPATCHED, "example.tell-the-nurse")(_tell_the_nurse)
    with pytest.raises(ValueError, match="not declared"):
        events.emit(session, events.EventType("example.undeclared"), now, {})
    with pytest.raises(TypeError):
        events.emit(session, KIT_DISPATCHED, now, {"kit": object()})


def test_a_get_that_flushes_a_change_persists_nothing(app: Flask, now: datetime) -> None:
    def write() -> str:
        events.emit(db.session, KIT_DISPATCHED, now, {"kit_id": 1})
        outbox.enqueue(db.session, now, OutgoingMail(to=["a@example.org"], subject="s", text="t"))
        db.session.flush()
        return "written"

    app.add_url_rule("/test-only/write", "test_write", csrf.exempt(write), methods=["GET", "POST"])
    client = app.test_client()
    dispatched_kits.clear()
    assert client.get("/test-only/write").status_code == 200
    assert client.head("/test-only/write").status_code == 200
    with app.app_context():
        assert db.session.scalars(select(MailOutbox)).all() == []
        assert db.session.scalars(select(DomainEvent)).all() == []
    assert dispatched_kits == []
    # The same handler behind a POST does commit, and its event is delivered after it.
    assert client.post("/test-only/write").status_code == 200
    with app.app_context():
        assert len(db.session.scalars(select(MailOutbox)).all()) == 1
    assert dispatched_kits == [1]


def test_housekeeping_forgets_old_delivered_events_and_keeps_failed_ones(
    app: Flask, session: Session, now: datetime
) -> None:
    @events.receiver(KIT_DISPATCHED, "test.broken-for-good")
    def broken(session: Session, event: events.Event, when: datetime) -> None:
        if event.payload["kit_id"] == 2:
            raise RuntimeError("still broken")

    for kit in (1, 2):
        events.emit(session, KIT_DISPATCHED, now, {"kit_id": kit}, subject=f"kit:{kit}")
    session.commit()
    when = now
    for _ in range(events.MAX_ATTEMPTS):
        events.deliver_due(session, when, "w")
        when += timedelta(days=1)
    assert events.purge_delivered(session, now) == 0  # neither is old enough yet
    assert events.purge_delivered(session, now + timedelta(days=60)) == 1
    session.commit()
    left = [json.loads(p) for p in session.scalars(select(DomainEvent.payload))]
    assert left == [{"kit_id": 2}]  # the failed one stays for someone to look into
