"""Domain events: recorded with the change that caused them, delivered after it commits.

- A package declares its events (`PATIENT_ENROLLED = events.declare("core.patient-enrolled")`)
  and its receivers (`@events.receiver(PATIENT_ENROLLED, "portal.welcome-mail")`) in its own
  modules; nothing in the core has to know about either.
- A service calls `emit(session, event, now, payload, subject=...)`. That adds a row to
  `domain_events`, plus one `event_deliveries` row per registered receiver, to the caller's
  transaction: a change that rolls back emits nothing. The payload is JSON (ids, never
  objects), because the receiver reads the current state itself, from its own session.
- After commit, each delivery is claimed with a compare-and-set UPDATE (as the mail outbox
  claims mails), the receiver runs in its own session and transaction, and the outcome is
  recorded. A failure is logged and retried with growing delays, then marked failed.
  The `core.events` job delivers whatever is due; the request that emitted events also
  delivers them right after its commit, best effort, leaving any failure to the job.

Delivery is at least once: a worker that dies between a receiver's commit and the record
of its outcome leaves a claim that is released after `STALE_CLAIM` and run again. Receivers
must therefore be idempotent (check whether the work is already done, use an outbox
`dedup_key`, or claim the item with a conditional UPDATE).

A delivery row is made for the receivers registered when the event is emitted; a receiver
added later does not get the events that happened before it existed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, inspect, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from dct_platform.models import DeliveryStatus, DomainEvent, EventDelivery

log = logging.getLogger(__name__)

RETRY_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
STALE_CLAIM = timedelta(minutes=15)
MAX_NAME = 120

_EMITTED_KEY = "dct_events_emitted"
_COMMITTED_KEY = "dct_events_committed"


@dataclass(frozen=True)
class EventType:
    """A declared kind of event; `name` is stored with every occurrence, so keep it stable."""

    name: str
    description: str = ""


@dataclass(frozen=True)
class Event:
    """What a receiver gets: the stored occurrence, not the objects of the emitting code."""

    id: int
    name: str
    payload: dict[str, Any]
    subject: str | None
    occurred_at: datetime


ReceiverFn = Callable[[Session, Event, datetime], None]


@dataclass(frozen=True)
class Receiver:
    receiver_id: str
    event_name: str
    func: ReceiverFn


@dataclass
class Registry:
    """Declared events and their receivers, filled as the packages' modules are imported."""

    events: dict[str, EventType] = field(default_factory=dict)
    receivers: dict[str, Receiver] = field(default_factory=dict)

    def copy(self) -> Registry:
        """A registry to add to without changing this one (tests register throwaway receivers)."""
        return Registry(dict(self.events), dict(self.receivers))

    def declare(self, name: str, description: str = "") -> EventType:
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"an event name has 1 to {MAX_NAME} characters: {name!r}")
        if name in self.events:
            raise ValueError(f"event {name!r} is declared twice")
        self.events[name] = EventType(name, description)
        return self.events[name]

    def add_receiver(self, event: EventType, receiver_id: str, func: ReceiverFn) -> None:
        if self.events.get(event.name) is not event:
            raise ValueError(f"event {event.name!r} is not declared")
        if not receiver_id or len(receiver_id) > MAX_NAME:
            raise ValueError(f"a receiver id has 1 to {MAX_NAME} characters: {receiver_id!r}")
        if receiver_id in self.receivers:
            raise ValueError(f"receiver {receiver_id!r} is registered twice")
        self.receivers[receiver_id] = Receiver(receiver_id, event.name, func)

    def receivers_of(self, event_name: str) -> list[Receiver]:
        return [r for r in self.receivers.values() if r.event_name == event_name]


registry = Registry()


def declare(name: str, description: str = "") -> EventType:
    """Declare an event, from the package that emits it ("<package>.<what-happened>")."""
    return registry.declare(name, description)


def receiver(event: EventType, receiver_id: str) -> Callable[[ReceiverFn], ReceiverFn]:
    """Register `func(session, event, now)` to run after each committed `event`.

    `receiver_id` ("<package>.<what-it-does>") is stored with each delivery, so it must stay
    the same across releases. The function only flushes; the dispatcher commits its session.
    """

    def register(func: ReceiverFn) -> ReceiverFn:
        registry.add_receiver(event, receiver_id, func)
        return func

    return register


def emit(
    session: Session,
    event: EventType,
    now: datetime,
    payload: dict[str, Any],
    *,
    subject: str | None = None,
) -> None:
    """Record `event` in the caller's transaction, with a delivery for each receiver."""
    if registry.events.get(event.name) is not event:
        raise ValueError(f"event {event.name!r} is not declared")
    # Serialised now, so that a payload a receiver could not read fails the emitting change.
    data = json.dumps(payload, sort_keys=True)
    row = DomainEvent(name=event.name, subject=subject, payload=data, occurred_at=now)
    row.deliveries = [
        EventDelivery(
            receiver_id=r.receiver_id,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
        )
        for r in registry.receivers_of(event.name)
    ]
    session.add(row)
    session.info.setdefault(_EMITTED_KEY, []).append(row)


@sa_event.listens_for(Session, "after_commit")
def _remember_committed(session: Session) -> None:
    emitted = session.info.pop(_EMITTED_KEY, None)
    if emitted:
        ids = [state.identity[0] for state in map(inspect, emitted) if state.identity]
        session.info.setdefault(_COMMITTED_KEY, []).extend(ids)


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: Any) -> None:
    # A savepoint's rollback leaves the transaction's other events in place; its own rows
    # are gone, and a missing id is simply not found at delivery.
    if not previous_transaction.nested:
        session.info.pop(_EMITTED_KEY, None)


def take_committed(session: Session) -> list[int]:
    """Ids of the events `session` committed since the last call: the request's own."""
    return cast(list[int], session.info.pop(_COMMITTED_KEY, []))


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0

    def __str__(self) -> str:
        return (
            f"delivered {self.delivered}, retrying {self.retrying}, failed {self.failed}, "
            f"released {self.released} stale claims"
        )


def _release_stale_claims(session: Session, now: datetime) -> int:
    result = cast(
        CursorResult[Any],
        session.execute(
            update(EventDelivery)
            .where(
                EventDelivery.status == DeliveryStatus.DELIVERING,
                EventDelivery.claimed_at < now - STALE_CLAIM,
            )
            .values(status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None)
        ),
    )
    return result.rowcount or 0


def _claim(session: Session, delivery_id: int, worker: str, now: datetime) -> bool:
    # Due is part of the condition: another worker may have failed it meanwhile and set a
    # later attempt, which must not be run early.
    result = cast(
        CursorResult[Any],
        session.execute(
            update(EventDelivery)
            .where(
                EventDelivery.id == delivery_id,
                EventDelivery.status == DeliveryStatus.PENDING,
                EventDelivery.next_attempt_at <= now,
            )
            .values(status=DeliveryStatus.DELIVERING, claimed_by=worker, claimed_at=now)
        ),
    )
    session.commit()
    return result.rowcount == 1


def _run_receiver(session: Session, receiver: Receiver, event: Event, now: datetime) -> None:
    # Its own session: the receiver's changes commit or roll back on their own, and the
    # dispatcher's claims and outcomes are never part of them.
    with Session(bind=session.get_bind(), expire_on_commit=False) as own:
        try:
            receiver.func(own, event, now)
            own.commit()
        except BaseException:
            own.rollback()
            raise


def _record(session: Session, delivery_id: int, worker: str, values: dict[str, Any]) -> None:
    # Only while still ours: a claim released as stale belongs to whoever took it next.
    session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.id == delivery_id,
            EventDelivery.status == DeliveryStatus.DELIVERING,
            EventDelivery.claimed_by == worker,
        )
        .values(claimed_by=None, claimed_at=None, **values)
    )
    session.commit()


def deliver_due(
    session: Session,
    now: datetime,
    worker: str,
    *,
    event_ids: Iterable[int] | None = None,
    batch: int = 100,
) -> DeliveryReport:
    """Run the receivers whose deliveries are due (only those of `event_ids` if given).

    Commits `session` per delivery, like the mail outbox: each receiver's outcome is
    recorded as it happens, so a crash midway repeats at most the one in progress.
    """
    released = _release_stale_claims(session, now)
    session.commit()
    query = (
        select(
            EventDelivery.id,
            EventDelivery.receiver_id,
            EventDelivery.attempts,
            DomainEvent.id,
            DomainEvent.name,
            DomainEvent.payload,
            DomainEvent.subject,
            DomainEvent.occurred_at,
        )
        .join(DomainEvent, DomainEvent.id == EventDelivery.event_id)
        .where(EventDelivery.status == DeliveryStatus.PENDING, EventDelivery.next_attempt_at <= now)
        .order_by(EventDelivery.next_attempt_at, EventDelivery.id)
        .limit(batch)
    )
    if event_ids is not None:
        query = query.where(EventDelivery.event_id.in_(list(event_ids)))
    due = session.execute(query).all()
    # Ends the read, so that no transaction of ours is open while a receiver writes (on
    # SQLite every transaction takes the single write lock).
    session.commit()
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    for (
        delivery_id,
        receiver_id,
        attempts,
        event_id,
        event_name,
        payload,
        subject,
        occurred_at,
    ) in due:
        if not _claim(session, delivery_id, worker, now):
            continue  # another dispatcher took it
        event = Event(
            id=event_id,
            name=event_name,
            payload=json.loads(payload),
            subject=subject,
            occurred_at=occurred_at,
        )
        target = registry.receivers.get(receiver_id)
        try:
            if target is None:
                raise LookupError(f"no receiver {receiver_id!r} is registered in this process")
            _run_receiver(session, target, event, now)
        except Exception as exc:
            attempts += 1
            log.warning(
                "event %s (%s) not delivered to %s (attempt %s): %s",
                event.id,
                event.name,
                receiver_id,
                attempts,
                exc,
                exc_info=True,
            )
            values: dict[str, Any] = {"attempts": attempts, "last_error": repr(exc)[:2000]}
            if attempts >= MAX_ATTEMPTS:
                values["status"] = DeliveryStatus.FAILED
                counts["failed"] += 1
            else:
                values["status"] = DeliveryStatus.PENDING
                values["next_attempt_at"] = now + RETRY_DELAYS[attempts - 1]
                counts["retrying"] += 1
            _record(session, delivery_id, worker, values)
        else:
            _record(
                session,
                delivery_id,
                worker,
                {
                    "status": DeliveryStatus.DELIVERED,
                    "attempts": attempts + 1,
                    "delivered_at": now,
                },
            )
            counts["delivered"] += 1
    return DeliveryReport(released=released, **counts)


def deliver_committed(session: Session, now: datetime, worker: str) -> DeliveryReport | None:
    """Deliver the events `session` just committed, in this process, best effort: whatever
    fails here, even the database, is left for the `core.events` job."""
    ids = take_committed(session)
    if not ids:
        return None
    try:
        return deliver_due(session, now, worker, event_ids=ids)
    except Exception:
        log.exception("in-process delivery of events %s failed; the job will retry", ids)
        session.rollback()
        return None


# The core's own events. A feature package declares its own the same way, in its modules.
PATIENT_ENROLLED = declare(
    "core.patient-enrolled",
    "A patient was enrolled at a site. Payload: patient_id, trial_id, site_id, actor_id.",
)
PATIENT_TRANSFERRED = declare(
    "core.patient-transferred",
    "A patient moved to another site of the trial. Payload: patient_id, trial_id, "
    "from_site_id, to_site_id, actor_id.",
)


def purge_delivered(session: Session, before: datetime) -> int:
    """Housekeeping: forget events older than `before` that every receiver has had.

    Events with a failed or pending delivery stay, for someone to look into.
    """
    open_deliveries = select(EventDelivery.event_id).where(
        EventDelivery.status != DeliveryStatus.DELIVERED
    )
    old = select(DomainEvent.id).where(
        DomainEvent.occurred_at < before, DomainEvent.id.not_in(open_deliveries)
    )
    ids = list(session.scalars(old))
    if not ids:
        return 0
    session.execute(delete(EventDelivery).where(EventDelivery.event_id.in_(ids)))
    session.execute(delete(DomainEvent).where(DomainEvent.id.in_(ids)))
    return len(ids)
