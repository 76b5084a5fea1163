"""The fallback for webhooks that never came: ask the courier about shipments on their
way whose last update is older than COURIER_POLL_AFTER_MINUTES, and take in each update
through `tracking.apply_update` (source "poll"), whose message ids make an update that
did come by webhook a duplicate.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dct_platform import audit
from logistics.courier import tracking
from logistics.courier.client import CourierClient, CourierError
from logistics.shipments import states
from logistics.shipments.models import Shipment

log = logging.getLogger(__name__)

BATCH = 200


def due_for_poll(session: Session, now: datetime, after: timedelta, courier: str) -> list[int]:
    """Booked, unfinished shipments of `courier` not heard of (nor polled) for `after`."""
    last_heard = func.coalesce(Shipment.status_changed_at, Shipment.booked_at)
    query = (
        select(Shipment.id)
        .where(
            Shipment.courier == courier,
            Shipment.tracking_number.is_not(None),
            Shipment.status.not_in(list(states.FINISHED)),
            last_heard < now - after,
            or_(Shipment.last_polled_at.is_(None), Shipment.last_polled_at < now - after),
        )
        .order_by(Shipment.last_polled_at.nullsfirst(), Shipment.id)
        .limit(BATCH)
    )
    return list(session.scalars(query))


def poll(session: Session, now: datetime, after: timedelta, courier: CourierClient) -> str:
    """Poll the courier for due shipments. Commits after each shipment: no transaction
    is open while the courier is called (on SQLite one would hold the write lock)."""
    counts: dict[str, int] = {}
    failed = 0
    due = due_for_poll(session, now, after, courier.name)
    for shipment_id in due:
        tracking_number = session.scalar(
            select(Shipment.tracking_number).where(Shipment.id == shipment_id)
        )
        session.commit()
        assert tracking_number is not None
        try:
            updates = courier.updates(tracking_number)
        except CourierError as exc:
            failed += 1
            log.warning("polling %s for shipment %s failed: %s", courier.name, shipment_id, exc)
            continue
        for update in sorted(updates, key=lambda u: u.occurred_at):
            result = tracking.apply_update(
                session, now, courier=courier.name, message_id=update.message_id,
                tracking_number=update.tracking_number, status=update.status,
                occurred_at=update.occurred_at, location=update.location, source="poll",
            )  # fmt: skip
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        shipment = session.get_one(Shipment, shipment_id)
        with audit.acting(
            session, None, now, what=f"Poll courier for shipment #{shipment_id}",
            system=f"courier:{courier.name}",
        ):  # fmt: skip
            shipment.last_polled_at = now
        session.commit()
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing new"
    return f"{summary}; {failed} shipments not reached"


def init_app(app: Flask) -> None:
    from dct_platform.scheduler import register_job

    def poll_job(session: Session, now: datetime) -> str:
        if not app.config["COURIER_URL"]:
            return "no courier configured"
        after = timedelta(minutes=app.config["COURIER_POLL_AFTER_MINUTES"])
        with CourierClient.from_config(app.config) as courier:
            return poll(session, now, after, courier)

    register_job(app, "logistics.courier-poll", poll_job, every=timedelta(minutes=5))
