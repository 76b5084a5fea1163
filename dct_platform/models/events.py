from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models.trials import enum_column
from dct_platform.timeutil import UTCDateTime


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"


class DomainEvent(Base):
    """Something that happened, written in the same transaction as the change itself.

    The row exists if and only if that change committed, which is what lets receivers act
    on it afterwards without ever acting on a change that was rolled back.
    """

    __tablename__ = "domain_events"
    __table_args__ = (Index("ix_domain_events_name_subject", "name", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text())  # JSON object: ids and values, never objects
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())

    deliveries: Mapped[list[EventDelivery]] = relationship(
        back_populates="event", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<DomainEvent {self.id} {self.name} {self.subject}>"


class EventDelivery(Base):
    """One receiver's copy of an event, claimed and retried like a queued mail."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "receiver_id"),
        Index("ix_event_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("domain_events.id", ondelete="CASCADE"))
    receiver_id: Mapped[str] = mapped_column(String(120))
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text())

    event: Mapped[DomainEvent] = relationship(back_populates="deliveries")

    def __repr__(self) -> str:
        return f"<EventDelivery {self.id} {self.receiver_id} {self.status}>"
