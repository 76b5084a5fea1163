from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from dct_platform.timeutil import UTCDateTime


class Timestamped:
    """created_at/updated_at are set by services from the `now` they are given."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Audited:
    """Marker: every insert, update and delete of this model writes audit entries.

    `__audit_exclude__` names columns whose values must not be copied into the trail
    (secrets such as password hashes are recorded as changed, never by value).
    """

    __audit_exclude__: frozenset[str] = frozenset({"created_at", "updated_at"})
    __audit_redact__: frozenset[str] = frozenset()
