from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Index, text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from dct_platform.timeutil import UTCDateTime


class Timestamped:
    """created_at/updated_at are set by services from the `now` they are given."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Audited:
    """Marker: every insert, update and delete of this model writes audit entries.

    `__audit_exclude__` names columns left out of the trail; `__audit_redact__` columns whose
    changes are recorded but never their values (secrets such as password hashes).
    `__personal_data__` marks directly identifying data: its values are in the trail, but
    shown only to those who may see the record itself.

    How people read the trail (`dct_platform/audit_reading.py`): `__audit_noun__` names a
    record of the table ("Patient", "Site assignment of"), `audit_names` gives each record
    the name its readers know it by (a subject number, not an id), `__audit_hidden__`
    columns stay in the evidence but not in the readable lines, and a column's
    `info={"label": ...}` is its label where its name does not read well.
    """

    if TYPE_CHECKING:  # set by each model; declared here for the type checker only
        __tablename__: str

    __audit_exclude__: frozenset[str] = frozenset({"created_at", "updated_at", "version"})
    __audit_noun__: str = ""
    __audit_hidden__: frozenset[str] = frozenset({"id"})
    __audit_redact__: frozenset[str] = frozenset()
    __personal_data__: bool = False
    # Fields that are personal data in some of the table's records (`personal_records`).
    __personal_fields__: frozenset[str] = frozenset()

    @classmethod
    def personal_records(cls, session: Any, record_ids: set[str]) -> set[str]:
        """Which of these records hold personal data in `__personal_fields__`."""
        return set()

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        """What people call these records (by primary key); unnamed ones show their id."""
        return {}


def ids_among(session: Any, record_ids: set[str], query: Any) -> set[str]:
    """`personal_records` from a query: `query(ids)` selects which of the integer ids hold
    personal data (e.g. the records of patients' accounts)."""
    ids = [int(i) for i in record_ids if i.isdigit()]
    if not ids:
        return set()
    return {str(i) for i in session.scalars(query(ids))}


def names_by_id(session: Any, statement: Any) -> dict[int, str]:
    """`audit_names` from a SELECT of (id, name) rows."""
    return {row[0]: str(row[1]) for row in session.execute(statement)}


class Versioned:
    """Optimistic concurrency for records people edit.

    Every UPDATE says `WHERE version = <the version read>` and bumps it, so of two people
    who changed the same record from the same starting point, the second is refused
    (StaleDataError, answered 409) instead of silently overwriting the first. Clients send
    the version they read (an API `If-Match`, a hidden form field) to be refused up front.
    """

    version: Mapped[int] = mapped_column(default=1, server_default="1")

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.version}


def period_constraints(table: str, owner: str) -> tuple[Index, CheckConstraint]:
    """For a table of half-open periods [valid_from, valid_to) per `owner`: one open period
    per owner, and periods that end after they start. (PostgreSQL also gets an exclusion
    constraint on the time ranges, in the migration: SQLAlchemy cannot describe it here.)"""
    return (
        Index(
            f"uq_{table}_open",
            owner,
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="period_order"),
    )
