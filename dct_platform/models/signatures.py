from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, event, select
from sqlalchemy.orm import Mapped, mapped_column

from dct_platform.extensions import Base
from dct_platform.models.mixins import Audited, ids_among
from dct_platform.models.users import User
from dct_platform.roles import MAX_NAME_LENGTH, Role
from dct_platform.timeutil import UTCDateTime


def _meaning_label(code: str) -> str:
    # Imported when the trail is read, not at import: the service module imports this one.
    from dct_platform.signatures import meaning_label

    return meaning_label(code)


class ElectronicSignature(Audited, Base):
    """An electronic signature (21 CFR Part 11 style) on one record.

    Append-only: a signature is never changed or removed, in the session (see the mapper
    events below) or in the database (migration 0016). A later change to the signed record
    does not touch the signature; it stops matching `fingerprint`, which is how the
    signature reads as invalidated (`dct_platform.signatures`).
    """

    __tablename__ = "electronic_signatures"
    __table_args__ = (Index("ix_electronic_signatures_record", "record_table", "record_id"),)
    __audit_noun__ = "Electronic signature"
    __audit_hidden__ = frozenset({"id", "fingerprint_version"})
    # A patient's printed name is their real name (see User.__personal_fields__).
    __personal_fields__ = frozenset({"printed_name"})

    @classmethod
    def personal_records(cls, session: Any, record_ids: set[str]) -> set[str]:
        return ids_among(
            session,
            record_ids,
            lambda ids: (
                select(cls.id)
                .join(User, User.id == cls.signer_id)
                .where(cls.id.in_(ids), User.role == Role.PATIENT)
            ),
        )

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        rows = session.execute(
            select(cls.id, cls.meaning, cls.record_table, cls.record_id).where(cls.id.in_(ids))
        )
        return {i: f"({meaning}) of {table} {record}" for i, meaning, table, record in rows}

    id: Mapped[int] = mapped_column(primary_key=True)
    signer_id: Mapped[int] = mapped_column(
        ForeignKey("users.id"), index=True, info={"label": "Signed by"}
    )
    # The name as it was at signing: a later change of the account's name leaves it.
    printed_name: Mapped[str] = mapped_column(String(200), info={"label": "Printed name"})
    meaning: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), info={"show": _meaning_label})
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), info={"label": "Signed at"})
    # The signed record: its table name (stable across renames of the Python class) and
    # primary key, as the audit trail names records.
    record_table: Mapped[str] = mapped_column(String(64), info={"label": "Record type"})
    record_id: Mapped[str] = mapped_column(String(64), info={"label": "Record"})
    # SHA-256 (hex) of the record's signed content; `fingerprint_version` says how that
    # content was put together, so that a later method can still tell, and check, the
    # signatures made with this one.
    fingerprint: Mapped[str] = mapped_column(String(64))
    fingerprint_version: Mapped[int] = mapped_column(default=1, server_default="1")
    reason: Mapped[str | None] = mapped_column(String(500))

    def __repr__(self) -> str:
        return (
            f"<ElectronicSignature {self.id} {self.meaning} {self.record_table}/{self.record_id}"
            f" by={self.signer_id}>"
        )


class SignatureImmutable(RuntimeError):
    """Something tried to change or delete a stored electronic signature."""


@event.listens_for(ElectronicSignature, "before_update")
@event.listens_for(ElectronicSignature, "before_delete")
def _refuse_change(_mapper: Any, _connection: Any, target: ElectronicSignature) -> None:
    # Refused here too, not only by the database's trigger, so that the mistake is named
    # in Python before a statement is sent.
    raise SignatureImmutable(f"electronic signatures are append-only: {target!r}")
