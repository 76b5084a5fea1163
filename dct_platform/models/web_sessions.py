from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from dct_platform.extensions import Base
from dct_platform.timeutil import UTCDateTime


class WebSession(Base):
    """A signed-in browser session, known to the server so that signing out ends it.

    The cookie carries a random session id; only its SHA-256 is stored. A copy of the
    cookie taken before sign-out is worthless afterwards, which a signed cookie alone
    cannot promise.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<WebSession {self.id} user={self.user_id}>"
