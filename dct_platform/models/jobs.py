from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dct_platform.extensions import Base
from dct_platform.timeutil import UTCDateTime


class JobRun(Base):
    """A claimed run of a periodic job. The unique key makes a second scheduler's claim fail."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(100))
    slot: Mapped[str] = mapped_column(String(40))
    claimed_by: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(500))

    def __repr__(self) -> str:
        return f"<JobRun {self.job_id} {self.slot}>"
