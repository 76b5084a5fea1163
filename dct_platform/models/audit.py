from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from dct_platform.extensions import Base, db
from dct_platform.timeutil import UTCDateTime

_BIG = BigInteger().with_variant(db.Integer, "sqlite")
# The database's own clock: no caller can backdate when an entry was recorded. PostgreSQL
# also sets it in a trigger (clock_timestamp(), not the transaction's start).
DB_CLOCK = text("CURRENT_TIMESTAMP")


class AuditAction(Base):
    """One user action as people read a trail: who did what, to which record, when, why.

    Its per-field evidence is in `AuditEntry`, which points back here. Insert-only.
    """

    __tablename__ = "audit_actions"

    id: Mapped[int] = mapped_column(_BIG, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=DB_CLOCK)
    actor_id: Mapped[int | None] = mapped_column()
    actor_name: Mapped[str] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(Text())

    def __repr__(self) -> str:
        return f"<AuditAction {self.id} {self.summary!r}>"


class AuditEntry(Base):
    """One changed field of one regulated record. Append-only.

    Written unchained by the transaction that made the change (`seq` empty), so unrelated
    transactions never wait for each other; the sealer then gives it its place in the one
    hash chain (`seq`, `prev_hash`, `entry_hash`), in the order it finds them committed.
    """

    if TYPE_CHECKING:
        # Declarative types every __table__ as a FromClause; a class mapped to its own
        # __tablename__ has a Table, which the Core statements that use this one need.
        __table__: ClassVar[Table]

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_record", "table_name", "record_id"),
        Index("ix_audit_entries_unsealed", "id", sqlite_where=text("seq IS NULL"),
              postgresql_where=text("seq IS NULL")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(_BIG, primary_key=True)
    seq: Mapped[int | None] = mapped_column(_BIG, unique=True)
    action_id: Mapped[int | None] = mapped_column(_BIG, ForeignKey("audit_actions.id"), index=True)
    # The business time the service acted at, and separately when the database wrote it.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=DB_CLOCK)
    actor_id: Mapped[int | None] = mapped_column()
    actor_name: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(16))
    table_name: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str | None] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text())
    new_value: Mapped[str | None] = mapped_column(Text())
    reason: Mapped[str | None] = mapped_column(Text())
    # 1: entries sealed before the sealer existed (a narrower hash); 2: everything since.
    hash_version: Mapped[int] = mapped_column(SmallInteger(), server_default=text("2"))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str | None] = mapped_column(String(64), unique=True)

    def __repr__(self) -> str:
        return (
            f"<AuditEntry {self.id} seq={self.seq} {self.table_name}#{self.record_id}.{self.field}>"
        )


class AuditChainHead(Base):
    """The sealed end of the chain; only the sealer moves it."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(_BIG)
    last_hash: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<AuditChainHead {self.last_seq}>"
