"""Diary compliance: of the occurrences whose time is over (or already answered) in a
period, how many were answered on time, late, or missed; per patient and per site.

Counted from the occurrences' outcomes in one grouped query. An occurrence still open (or
in its late window) and unanswered is "pending": not expected yet, so a patient is never
counted as behind for a diary they can still fill in. A site's figures are those of the
occurrences that opened while it was responsible (`Occurrence.site_id`), so a transfer
leaves each site its own record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from devices.ediary.models import Occurrence, Outcome

DEFAULT_THRESHOLD = 0.8


@dataclass
class Compliance:
    on_time: int = 0
    late: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def expected(self) -> int:
        return self.on_time + self.late + self.missed

    @property
    def rate(self) -> float | None:
        """Entries on time / expected; None when nothing was expected yet."""
        return self.on_time / self.expected if self.expected else None

    def below(self, threshold: float) -> bool:
        return self.rate is not None and self.rate < threshold

    def add(self, outcome: Outcome | None, n: int) -> None:
        if outcome is None:
            self.pending += n
        else:
            setattr(self, str(outcome), getattr(self, str(outcome)) + n)


@dataclass
class Report:
    start: datetime
    end: datetime
    rows: dict[int, Compliance] = field(default_factory=dict)

    def total(self) -> Compliance:
        whole = Compliance()
        for c in self.rows.values():
            whole.on_time += c.on_time
            whole.late += c.late
            whole.missed += c.missed
            whole.pending += c.pending
        return whole


def _report(
    session: Session,
    by: InstrumentedAttribute[int],
    where: Iterable[ColumnElement[bool]],
    start: datetime,
    end: datetime,
) -> Report:
    report = Report(start, end)
    for key, outcome, n in session.execute(
        select(by, Occurrence.outcome, func.count())
        .where(Occurrence.opens_at >= start, Occurrence.opens_at < end, *where)
        .group_by(by, Occurrence.outcome)
    ):
        report.rows.setdefault(key, Compliance()).add(outcome, n)
    return report


def by_patient(
    session: Session, visible: ColumnElement[bool], start: datetime, end: datetime
) -> Report:
    """Per patient, over the occurrences `visible` lets the reader see."""
    return _report(session, Occurrence.patient_id, [visible], start, end)


def by_site(session: Session, site_ids: Iterable[int], start: datetime, end: datetime) -> Report:
    """Per site responsible when each window opened."""
    return _report(
        session, Occurrence.site_id, [Occurrence.site_id.in_(list(site_ids))], start, end
    )
