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

    `__audit_exclude__` names columns left out of the trail; `__audit_redact__` columns whose
    changes are recorded but never their values (secrets such as password hashes).
    `__personal_data__` marks directly identifying data: its values are in the trail, but
    shown only to those who may see the record itself.
    """

    __audit_exclude__: frozenset[str] = frozenset({"created_at", "updated_at"})
    __audit_redact__: frozenset[str] = frozenset()
    __personal_data__: bool = False
