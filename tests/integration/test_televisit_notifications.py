"""After a televisit is booked, moved or cancelled: its video room is created after commit,
outside any lock, retried while the provider is down and given up on (for staff to retry)
after a limit; the patient and the staff member each get one mail with an invitation in
their own zone (UID stable, SEQUENCE growing, CANCEL when cancelled), delivered to a real
SMTP server on loopback; reminders 24 h and 1 h before, once each however the job runs;
and only the patient and the assigned staff member see the join link, only near the time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from babel.dates import format_date, format_time
from flask import Flask
from sqlalchemy import select

from dct_platform import events
from dct_platform.errors import Conflict, Forbidden
from dct_platform.extensions import db
from dct_platform.models import (
    AuditAction,
    DomainEvent,
    EventDelivery,
    MailOutbox,
    Patient,
    User,
)
from dct_platform.timeutil import to_local
from dct_platform.visits import notifications, reminders
from dct_platform.visits.booking import BOOKING_CHANGED
from dct_platform.visits.models import Booking, RoomStatus
from tests.support.clock import TestClock
from tests.support.concurrency import all_at_once
from tests.support.loopback_http import LoopbackHTTPServer, RecordedRequest
from tests.support.smtp import LoopbackSMTPServer, ReceivedMail
from tests.support.televisits import (
    ObservingHTTPServer,
    Probe,
    body,
    book,
    cancel,
    deliver_events,
    edit,
    invitation,
    load,
    move,
    outbox_keys,
    probe_booking,
    send_outbox,
    slot_after,
)
from tests.support.visits import more_patients, user, week4_schedule
from tests.support.world import World

BASE_URL = "https://study.example.org"
PORTAL = f"{BASE_URL}/portal/visits"
STAFF_ZONE = "America/New_York"
TOKEN = "vid-token-0123456789"
JOIN_URL = "https://video.example.org/j/Xy7kQ2secret"
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests honours *_PROXY variables even for 127.0.0.1.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass(frozen=True)
class Setting:
    now: datetime  # the frozen instant everything was set up at
    anna: int  # patient id
    pi: int  # the investigator's user id, who runs the visits
    baseline: object


@pytest.fixture
def setting(app: Flask, world: World, clock: TestClock) -> Setting:
    now = clock.freeze()
    schedule = week4_schedule(app, world)
    pi = world.users["pi_berlin"].id
    # The investigator reads times in another zone than the patient, so each invitation
    # shows whose zone it is written in.
    edit(app, User, pi, email="pi@example.org", timezone=STAFF_ZONE)
    app.config["PUBLIC_BASE_URL"] = BASE_URL
    return Setting(now, world.patients["anna"].id, pi, schedule.baseline)


def use_http_rooms(app: Flask, server: LoopbackHTTPServer) -> None:
    app.config.update(
        VIDEO_PROVIDER="http", VIDEO_HTTP_BASE_URL=server.url_for("/api"), VIDEO_HTTP_TOKEN=TOKEN
    )


def created() -> dict[str, str]:
    return {"id": "room-7", "join_url": JOIN_URL}


def book_ahead(app: Flask, s: Setting, ahead: timedelta = 2 * DAY, patient: int | None = None,
               username: str = "anna") -> tuple[int, datetime]:  # fmt: skip
    """Book the first slot at least `ahead` from the set-up instant; (id, start)."""
    patient = patient or s.anna
    slot = slot_after(app, patient, s.now, s.now + ahead)
    return book(app, username, patient, slot, s.now), slot.starts_at


def deliveries(app: Flask, receiver: str) -> list[tuple[str, int]]:
    with app.app_context():
        rows = db.session.execute(
            select(EventDelivery.status, EventDelivery.attempts)
            .where(EventDelivery.receiver_id == receiver)
            .order_by(EventDelivery.id)
        ).all()
        return [(status.value, attempts) for status, attempts in rows]


def booking_events(app: Flask, booking_id: int) -> list[events.Event]:
    with app.app_context():
        rows = db.session.scalars(
            select(DomainEvent)
            .where(DomainEvent.subject == f"booking:{booking_id}")
            .order_by(DomainEvent.id)
        ).all()
        return [
            events.Event(r.id, r.name, json.loads(r.payload), r.subject, r.occurred_at)
            for r in rows
        ]


def run_receiver(app: Flask, func: events.ReceiverFn, event: events.Event, now: datetime) -> None:
    """A receiver run once more, as an at-least-once delivery may."""
    with app.app_context():
        session = db.session()
        func(session, event, now)
        session.commit()
        db.session.remove()


def remind(app: Flask, now: datetime) -> str:
    with app.app_context():
        outcome = reminders.job(db.session(), now)
        db.session.commit()
        db.session.remove()
        return outcome


# --- the video room -----------------------------------------------------------------------


def test_the_room_is_created_after_commit_outside_any_lock_once(
    app: Flask, setting: Setting
) -> None:
    probes: list[Probe] = []
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]

    def look(request: RecordedRequest) -> None:
        booking_id = int(request.json()["reference"].removeprefix("booking-"))
        probes.append(probe_booking(database_url, booking_id))

    with ObservingHTTPServer(look) as server:
        use_http_rooms(app, server)
        server.respond("/api/rooms", 201, json=created(), method="POST")
        booking_id, starts = book_ahead(app, setting)
        # Booking (and its commit) calls no provider: the event waits for its delivery.
        assert server.requests == []
        report = deliver_events(app, setting.now)
        assert (report.delivered, report.retrying) == (2, 0)
        (sent,) = server.requests
        assert sent.headers["Idempotency-Key"] == f"booking-{booking_id}"
        assert sent.json()["starts_at"] == starts.isoformat()
        # While the provider was being asked, another connection saw the booking committed
        # and could lock it (on SQLite: the whole database) without waiting.
        assert probes == [Probe("pending", True)], probes

        row = load(app, booking_id)
        assert (row.room_status, row.room_url, row.room_provider) == (
            RoomStatus.READY,
            JOIN_URL,
            "http",
        )
        assert (row.room_attempts, row.room_error) == (0, None)
        with app.app_context():
            actions = db.session.scalars(
                select(AuditAction.actor_name).where(AuditAction.summary.like("Video room%"))
            ).all()
        assert actions == ["system:visits.room"]

        # Delivered again (at least once): the room is there, nothing is asked for.
        for event in booking_events(app, booking_id):
            run_receiver(app, notifications.create_room, event, setting.now)
        assert deliver_events(app, setting.now + HOUR).delivered == 0
        assert len(server.requests) == 1


def test_a_provider_that_is_down_is_retried_with_the_attempts_counted(
    app: Flask, setting: Setting, outside_service: LoopbackHTTPServer
) -> None:
    use_http_rooms(app, outside_service)
    outside_service.respond("/api/rooms", 500, json={"error": "down"}, times=2)
    outside_service.respond("/api/rooms", 201, json=created())
    booking_id, _ = book_ahead(app, setting)
    t = setting.now

    report = deliver_events(app, t)
    assert (report.delivered, report.retrying) == (1, 1)  # the invitations went out
    row = load(app, booking_id)
    assert (row.room_status, row.room_attempts) == (RoomStatus.PENDING, 1)
    assert row.room_error == "the video provider answered 500"
    assert row.room_url is None
    # Not before the event system's delay.
    assert deliver_events(app, t + timedelta(seconds=10)).retrying == 0
    assert len(outside_service.requests) == 1

    t += events.RETRY_DELAYS[0] + timedelta(seconds=1)
    assert deliver_events(app, t).retrying == 1
    assert load(app, booking_id).room_attempts == 2

    t += events.RETRY_DELAYS[1] + timedelta(seconds=1)
    assert deliver_events(app, t).delivered == 1
    row = load(app, booking_id)
    assert (row.room_status, row.room_url, row.room_error) == (RoomStatus.READY, JOIN_URL, None)
    keys = {r.headers["Idempotency-Key"] for r in outside_service.requests}
    assert (len(outside_service.requests), keys) == (3, {f"booking-{booking_id}"})
    assert deliveries(app, notifications.ROOM_RECEIVER) == [("delivered", 3)]


def test_after_the_limit_the_room_is_failed_and_staff_can_retry_it(
    app: Flask, world: World, setting: Setting, outside_service: LoopbackHTTPServer
) -> None:
    use_http_rooms(app, outside_service)
    limit = notifications.ROOM_MAX_ATTEMPTS
    outside_service.respond("/api/rooms", 500, json={"error": "down"}, times=limit)
    outside_service.respond("/api/rooms", 201, json=created())
    booking_id, starts = book_ahead(app, setting)
    t = setting.now
    for attempt in range(limit):
        deliver_events(app, t)
        if attempt < len(events.RETRY_DELAYS):
            t += events.RETRY_DELAYS[attempt] + timedelta(seconds=1)
    row = load(app, booking_id)
    assert (row.room_status, row.room_attempts) == (RoomStatus.FAILED, limit)
    assert deliveries(app, notifications.ROOM_RECEIVER) == [("failed", limit)]
    anna = user(app, "anna")
    assert notifications.join_state(row, anna, starts) == "room_pending"
    assert notifications.join_link(row, anna, starts) is None

    with app.app_context():
        s = db.session()
        row = s.get(Booking, booking_id)
        assert row is not None
        for who in ("anna", "coord_tokyo"):
            actor = s.scalars(select(User).where(User.username == who)).one()
            with pytest.raises(Forbidden):
                notifications.retry_room(s, row, t, actor=actor)
        coordinator = s.scalars(select(User).where(User.username == "coord_berlin")).one()
        notifications.retry_room(s, row, t, actor=coordinator)
        s.commit()
        assert (row.room_status, row.room_attempts, row.room_error) == (
            RoomStatus.PENDING,
            0,
            None,
        )
    before = outbox_keys(app)
    report = deliver_events(app, t)
    assert (report.delivered, report.retrying) == (2, 0)
    row = load(app, booking_id)
    assert (row.room_status, row.room_url) == (RoomStatus.READY, JOIN_URL)
    assert notifications.join_link(row, anna, starts) == JOIN_URL
    # "room-retry" is nothing to tell the patient or the staff member.
    assert outbox_keys(app) == before
    with app.app_context():
        s = db.session()
        row = s.get(Booking, booking_id)
        assert row is not None
        with pytest.raises(Conflict, match="already"):
            notifications.retry_room(s, row, t)


def test_a_cancelled_visit_gets_no_room(app: Flask, setting: Setting) -> None:
    booking_id, _ = book_ahead(app, setting)
    cancel(app, "anna", booking_id, setting.now)
    deliver_events(app, setting.now)
    assert load(app, booking_id).room_status == RoomStatus.PENDING
    with app.app_context():
        s = db.session()
        row = s.get(Booking, booking_id)
        assert row is not None
        with pytest.raises(Conflict, match="needs no video room"):
            notifications.retry_room(s, row, setting.now)


def test_an_event_without_a_booking_id_is_a_clear_error(app: Flask, setting: Setting) -> None:
    event = events.Event(1, BOOKING_CHANGED.name, {"change": "booked"}, None, setting.now)
    with app.app_context(), pytest.raises(ValueError, match="no integer booking_id"):
        notifications.create_room(db.session(), event, setting.now)
    event = events.Event(1, BOOKING_CHANGED.name, {"booking_id": 1, "change": "x"}, None,
                         setting.now)  # fmt: skip
    with app.app_context(), pytest.raises(ValueError, match="change 'x'"):
        notifications.send_invitations(db.session(), event, setting.now)


# --- the invitations ----------------------------------------------------------------------


def subject(mail: ReceivedMail) -> str:
    """The decoded Subject with its spaces normalised: a long subject is folded into
    encoded words, and decoding keeps the fold's space beside the encoded one."""
    return " ".join(str(mail.message["Subject"]).split())


def _times(instant: datetime, zone: str, language: str) -> tuple[str, str]:
    local = to_local(instant, zone)
    return (
        str(format_date(local.date(), "full", locale=language)),
        str(format_time(local, "short", locale=language)),
    )


def _spaced(text: str) -> str:
    return " ".join(text.split())


def test_patient_and_staff_each_get_one_mail_with_an_invitation_in_their_zone(
    app: Flask, setting: Setting, smtp_server: LoopbackSMTPServer
) -> None:
    booking_id, starts = book_ahead(app, setting)
    uid = f"televisit-{booking_id}@study.example.org"
    deliver_events(app, setting.now)
    staff = f"staff-{setting.pi}"
    assert outbox_keys(app) == [
        f"televisit:{booking_id}:0:patient",
        f"televisit:{booking_id}:0:{staff}",
    ]
    # A receiver run again (at-least-once delivery) queues nothing new.
    for event in booking_events(app, booking_id):
        run_receiver(app, notifications.send_invitations, event, setting.now)
    assert len(outbox_keys(app)) == 2

    received = send_outbox(app, smtp_server, setting.now)
    assert len(received) == 2
    mails = {m.rcpt_tos[0]: m for m in received}
    patient, staff_mail = mails["anna@example.org"], mails["pi@example.org"]
    day, start = _times(starts, "Europe/Berlin", "en")
    assert subject(patient) == _spaced(f"Your video visit on {day} at {start}")
    text = body(patient)
    assert f"Your video visit is booked for {day}, {start} to " in text
    assert PORTAL in text and "(Europe/Berlin)" in text
    for secret in ("Test trial", "Anna", "Secretname", "B1-anna", "Week 4"):
        assert secret not in text + subject(patient)
    ics = invitation(patient)
    assert (ics.content_type, ics.method_param) == ("text/calendar", "REQUEST")
    assert str(ics.calendar["METHOD"]) == "REQUEST"
    event = ics.event
    assert (str(event["UID"]), int(event["SEQUENCE"])) == (uid, 0)
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTSTART") == starts
    assert str(event["ATTENDEE"]) == "mailto:anna@example.org"
    assert str(event["URL"]) == PORTAL

    staff_day, staff_start = _times(starts, STAFF_ZONE, "en")
    assert subject(staff_mail) == _spaced(
        f"Televisit booked: Week 4 video visit, B1-anna, {staff_day} {staff_start}"
    )
    assert f"({STAFF_ZONE})" in body(staff_mail)
    staff_event = invitation(staff_mail).event
    assert staff_event["DTSTART"].params["TZID"] == STAFF_ZONE
    assert (str(staff_event["UID"]), int(staff_event["SEQUENCE"])) == (uid, 0)
    # Neither the mail nor the invitation carries the room itself.
    room_url = load(app, booking_id).room_url
    assert room_url
    for mail in received:
        assert room_url not in mail.raw.decode("ascii", errors="replace")
        assert "meet.jit.si" not in body(mail)

    # Moved: an update with the same UID and the next SEQUENCE, at the new time.
    later = slot_after(app, setting.anna, setting.now, starts + DAY)
    move(app, "anna", booking_id, later, setting.now + timedelta(minutes=5))
    deliver_events(app, setting.now + timedelta(minutes=5))
    received = send_outbox(app, smtp_server, setting.now + timedelta(minutes=5))
    assert len(received) == 4
    moved = next(m for m in received[2:] if m.rcpt_tos == ["anna@example.org"])
    day, start = _times(later.starts_at, "Europe/Berlin", "en")
    assert subject(moved) == _spaced(f"Your video visit has moved to {day} at {start}")
    event = invitation(moved).event
    assert (str(event["UID"]), int(event["SEQUENCE"])) == (uid, 1)
    assert event.decoded("DTSTART") == later.starts_at
    assert str(invitation(moved).calendar["METHOD"]) == "REQUEST"

    # Cancelled: METHOD CANCEL, the same UID, the SEQUENCE after.
    cancel(app, "anna", booking_id, setting.now + timedelta(minutes=10))
    deliver_events(app, setting.now + timedelta(minutes=10))
    received = send_outbox(app, smtp_server, setting.now + timedelta(minutes=10))
    assert len(received) == 6
    for mail in received[4:]:
        ics = invitation(mail)
        assert (ics.method_param, str(ics.calendar["METHOD"])) == ("CANCEL", "CANCEL")
        assert (str(ics.event["UID"]), int(ics.event["SEQUENCE"])) == (uid, 2)
        assert str(ics.event["STATUS"]) == "CANCELLED"
    cancelled = next(m for m in received[4:] if m.rcpt_tos == ["anna@example.org"])
    assert "is cancelled" in subject(cancelled)
    assert PORTAL not in body(cancelled)
    assert sorted(outbox_keys(app)) == sorted(
        f"televisit:{booking_id}:{n}:{who}" for n in range(3) for who in ("patient", staff)
    )


def test_a_german_patient_gets_german_text(app: Flask, setting: Setting) -> None:
    edit(app, Patient, setting.anna, preferred_language="de")
    booking_id, starts = book_ahead(app, setting)
    deliver_events(app, setting.now)
    with app.app_context():
        mail = db.session.scalars(
            select(MailOutbox).where(MailOutbox.dedup_key == f"televisit:{booking_id}:0:patient")
        ).one()
    day, start = _times(starts, "Europe/Berlin", "de")
    assert mail.subject == f"Ihr Videotermin am {day} um {start}"
    assert mail.text_body.startswith(f"Guten Tag,\n\nIhr Videotermin ist gebucht: am {day} von ")
    assert f"Zur Teilnahme melden Sie sich im Studienportal an: {PORTAL}" in mail.text_body
    assert "Zeitzone (Europe/Berlin)" in mail.text_body
    # The staff member's mail stays English.
    with app.app_context():
        staff = db.session.scalars(
            select(MailOutbox.subject).where(MailOutbox.dedup_key.like("%:staff-%"))
        ).one()
    assert staff.startswith("Televisit booked: ")


def test_an_event_overtaken_by_a_later_change_sends_nothing(app: Flask, setting: Setting) -> None:
    booking_id, starts = book_ahead(app, setting)
    later = slot_after(app, setting.anna, setting.now, starts + DAY)
    move(app, "anna", booking_id, later, setting.now)
    deliver_events(app, setting.now)
    staff = f"staff-{setting.pi}"
    assert outbox_keys(app) == [
        f"televisit:{booking_id}:1:patient",
        f"televisit:{booking_id}:1:{staff}",
    ]


def test_a_move_to_a_colleague_takes_the_visit_out_of_the_first_ones_calendar(
    app: Flask, world: World, setting: Setting
) -> None:
    colleague = world.users["coord_berlin"].id
    edit(app, User, colleague, email="coord@example.org")
    booking_id, _ = book_ahead(app, setting)
    later = slot_after(app, setting.anna, setting.now, setting.now + 3 * DAY)
    move(app, "anna", booking_id, later, setting.now)
    payload = {"booking_id": booking_id, "change": "moved", "sequence": 1,
               "previous_staff_id": colleague}  # fmt: skip
    event = events.Event(0, BOOKING_CHANGED.name, payload, f"booking:{booking_id}", setting.now)
    run_receiver(app, notifications.send_invitations, event, setting.now)
    with app.app_context():
        released = db.session.scalars(
            select(MailOutbox).where(
                MailOutbox.dedup_key == f"televisit:{booking_id}:1:staff-{colleague}"
            )
        ).one()
    assert released.recipients == '["coord@example.org"]'
    assert released.subject == "Televisit no longer with you: Week 4 video visit, B1-anna"
    assert released.attachments is not None and "CANCEL" in released.attachments


# --- reminders ----------------------------------------------------------------------------


def _reminder_keys(app: Flask) -> list[str]:
    return [k for k in outbox_keys(app) if k and k.count(":") == 4]


def test_reminders_a_day_and_an_hour_before_arrive_once_each(
    app: Flask, setting: Setting, smtp_server: LoopbackSMTPServer
) -> None:
    booking_id, starts = book_ahead(app, setting)
    assert remind(app, starts - DAY - timedelta(minutes=1)) == "queued 0 televisit reminders"
    assert remind(app, starts - DAY + timedelta(seconds=20)) == "queued 2 televisit reminders"
    assert remind(app, starts - DAY + timedelta(minutes=1)) == "queued 0 televisit reminders"
    with app.app_context():
        # Found queued by the query itself, not only refused by the outbox's key.
        assert reminders.due_reminders(db.session(), starts - DAY + timedelta(minutes=2)) == []
    assert remind(app, starts - HOUR + timedelta(seconds=10)) == "queued 2 televisit reminders"
    assert remind(app, starts - HOUR + timedelta(minutes=5)) == "queued 0 televisit reminders"
    stamp = starts.strftime("%Y%m%dT%H%MZ")
    staff = f"staff-{setting.pi}"
    assert _reminder_keys(app) == [
        f"televisit:{booking_id}:{stamp}:24h:patient",
        f"televisit:{booking_id}:{stamp}:24h:{staff}",
        f"televisit:{booking_id}:{stamp}:1h:patient",
        f"televisit:{booking_id}:{stamp}:1h:{staff}",
    ]
    received = send_outbox(app, smtp_server, starts - HOUR + timedelta(minutes=6))
    assert len(received) == 4
    day, start = _times(starts, "Europe/Berlin", "en")
    subjects = sorted(subject(m) for m in received if m.rcpt_tos == ["anna@example.org"])
    assert subjects == [
        _spaced(f"Reminder: your video visit on {day} at {start}"),
        _spaced(f"Your video visit starts at {start}"),
    ]
    _staff_day, staff_start = _times(starts, STAFF_ZONE, "en")
    staff_subjects = {subject(m) for m in received if m.rcpt_tos == ["pi@example.org"]}
    assert _spaced(f"Televisit at {staff_start}: Week 4 video visit, B1-anna") in staff_subjects
    for mail in received:
        assert PORTAL in body(mail) or BASE_URL in body(mail)


def test_a_reminder_missed_by_more_than_the_lookback_is_not_sent_late(
    app: Flask, setting: Setting
) -> None:
    _, starts = book_ahead(app, setting)
    late = reminders.LOOKBACK + timedelta(minutes=1)
    assert remind(app, starts - DAY + late) == "queued 0 televisit reminders"
    assert (
        remind(app, starts - HOUR + late - timedelta(minutes=2)) == "queued 2 televisit reminders"
    )


def test_two_schedulers_at_once_queue_each_reminder_once(app: Flask, setting: Setting) -> None:
    _, starts = book_ahead(app, setting)
    at = starts - DAY + timedelta(seconds=30)
    outcomes = all_at_once([lambda: remind(app, at), lambda: remind(app, at)])
    assert sorted(outcomes) == ["queued 0 televisit reminders", "queued 2 televisit reminders"]
    assert len(_reminder_keys(app)) == len(set(_reminder_keys(app))) == 2


def test_a_moved_visit_is_reminded_at_its_new_time_and_never_at_the_old(
    app: Flask, setting: Setting
) -> None:
    booking_id, first = book_ahead(app, setting)
    assert remind(app, first - DAY + timedelta(seconds=20)) == "queued 2 televisit reminders"
    moved_at = first - DAY + timedelta(minutes=5)
    later = slot_after(app, setting.anna, moved_at, first + DAY)
    move(app, "anna", booking_id, later, moved_at)
    assert remind(app, first - HOUR + timedelta(seconds=20)) == "queued 0 televisit reminders"
    second = later.starts_at
    assert remind(app, second - DAY + timedelta(seconds=20)) == "queued 2 televisit reminders"
    assert remind(app, second - HOUR + timedelta(seconds=20)) == "queued 2 televisit reminders"
    old, new = first.strftime("%Y%m%dT%H%MZ"), second.strftime("%Y%m%dT%H%MZ")
    stamps = [(k.split(":")[2], k.split(":")[3]) for k in _reminder_keys(app)]
    assert stamps == [(old, "24h")] * 2 + [(new, "24h")] * 2 + [(new, "1h")] * 2


def test_a_cancelled_visit_gets_no_reminders(app: Flask, setting: Setting) -> None:
    booking_id, starts = book_ahead(app, setting)
    cancel(app, "anna", booking_id, setting.now + timedelta(minutes=1))
    for moment in (starts - DAY, starts - HOUR):
        assert remind(app, moment + timedelta(seconds=20)) == "queued 0 televisit reminders"
    assert _reminder_keys(app) == []


def test_a_visit_booked_less_than_a_day_ahead_gets_only_the_hour_reminder(
    app: Flask, setting: Setting, clock: TestClock
) -> None:
    slot = slot_after(app, setting.anna, setting.now, setting.now + 2 * DAY)
    booked_at = clock.freeze(slot.starts_at - DAY + timedelta(minutes=10))
    booking_id = book(app, "anna", setting.anna, slot, booked_at)
    # The day-before moment passed 11 minutes ago, within the lookback, but before the
    # booking: its confirmation says it all.
    assert remind(app, booked_at + timedelta(minutes=1)) == "queued 0 televisit reminders"
    assert remind(app, slot.starts_at - HOUR + timedelta(seconds=5)) == (
        "queued 2 televisit reminders"
    )
    assert {k.split(":")[3] for k in _reminder_keys(app)} == {"1h"}
    assert all(k.startswith(f"televisit:{booking_id}:") for k in _reminder_keys(app))


def test_a_reminder_key_needs_an_aware_time_and_a_known_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        reminders.dedup_key(1, datetime(2026, 3, 9, 14, 0).astimezone(), "2h", "patient")
    with pytest.raises(ValueError, match="timezone-aware"):
        reminders.dedup_key(1, datetime(2026, 3, 9, 14, 0), "1h", "patient")


# --- joining ------------------------------------------------------------------------------


@pytest.fixture
def joinable(app: Flask, setting: Setting) -> Iterator[tuple[int, datetime, datetime]]:
    booking_id, starts = book_ahead(app, setting)
    deliver_events(app, setting.now)  # the (Jitsi) room
    row = load(app, booking_id)
    assert row.room_status == RoomStatus.READY and row.room_url
    yield booking_id, starts, row.ends_at


def test_only_the_patient_and_the_assigned_staff_get_the_link_and_only_near_the_time(
    app: Flask, world: World, setting: Setting, joinable: tuple[int, datetime, datetime]
) -> None:
    booking_id, starts, ends = joinable
    (other_patient,) = more_patients(app, world, 1, setting.baseline)
    row = load(app, booking_id)
    url = row.room_url
    anna, pi = user(app, "anna"), user(app, "pi_berlin")
    p00, colleague = user(app, "p00"), user(app, "coord_berlin")
    link, state = notifications.join_link, notifications.join_state

    for viewer in (anna, pi):
        assert link(row, viewer, starts - timedelta(minutes=16)) is None
        assert state(row, viewer, starts - timedelta(minutes=16)) == "too_early"
        assert link(row, viewer, starts - timedelta(minutes=15)) == url
        assert link(row, viewer, starts + timedelta(minutes=10)) == url
        assert link(row, viewer, ends + timedelta(minutes=30)) == url
        assert link(row, viewer, ends + timedelta(minutes=31)) is None
        assert state(row, viewer, ends + timedelta(minutes=31)) == "over"
        assert state(row, viewer, starts) == "open"
    for stranger in (p00, colleague):
        assert link(row, stranger, starts) is None
        assert state(row, stranger, starts) == "not_yours"

    # Another patient's visit, its room not made yet: pending, for them only.
    other_id, other_starts = book_ahead(app, setting, patient=other_patient, username="p00")
    other = load(app, other_id)
    assert state(other, p00, other_starts) == "room_pending"
    assert link(other, p00, other_starts) is None
    assert state(other, anna, other_starts) == "not_yours"

    cancel(app, "anna", booking_id, setting.now)
    assert state(load(app, booking_id), anna, starts) == "cancelled"
    assert link(load(app, booking_id), anna, starts) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        state(row, anna, starts.replace(tzinfo=None))


def test_with_the_default_provider_each_receiver_is_delivered_once(
    app: Flask, setting: Setting
) -> None:
    # Jitsi rooms are named locally: no network, no settings.
    booking_id, _ = book_ahead(app, setting)
    deliver_events(app, setting.now)
    deliver_events(app, setting.now + HOUR)
    assert deliveries(app, notifications.ROOM_RECEIVER) == [("delivered", 1)]
    assert deliveries(app, notifications.INVITATION_RECEIVER) == [("delivered", 1)]
    row = load(app, booking_id)
    assert row.room_provider == "jitsi" and row.room_url
    assert row.room_url.startswith("https://meet.jit.si/dct-")


def test_the_join_link_opens_as_configured_and_mails_say_so(
    app: Flask, setting: Setting, joinable: tuple[int, datetime, datetime]
) -> None:
    booking_id, starts, _ends = joinable
    row, anna = load(app, booking_id), user(app, "anna")
    app.config["VISIT_JOIN_OPENS_MINUTES"] = 5
    with app.app_context():
        assert notifications.join_state(row, anna, starts - timedelta(minutes=6)) == "too_early"
        assert notifications.join_link(row, anna, starts - timedelta(minutes=5)) == row.room_url
        assert reminders.job(db.session(), starts - HOUR + timedelta(seconds=5)).startswith(
            "queued 2"
        )
        db.session.commit()
        texts = db.session.scalars(
            select(MailOutbox.text_body).where(MailOutbox.dedup_key.like("%:1h:%"))
        ).all()
    assert texts and all("5 minutes before" in t for t in texts)
    app.config["VISIT_JOIN_OPENS_MINUTES"] = "soon"
    with app.app_context(), pytest.raises(ValueError, match="VISIT_JOIN_OPENS_MINUTES"):
        notifications.join_state(row, anna, starts)
