"""Half-open validity periods ([valid_from, valid_to)) that hand over from one to the next:
a patient's owning site, time zone, a site's principal investigator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from dct_platform.errors import Conflict


def close_open_period(
    session: Session, model: Any, owner: ColumnElement[bool], now: datetime, what: str
) -> None:
    """End the open period of `owner` at `now`, so the next one can start there.

    The caller holds the owner's row lock (so the open period it finds is the newest) and
    an audit context (so closing it is on the trail). A period that would end before it
    began means another change got in at the same instant: refused, not overlapped.
    """
    current = session.scalar(select(model).where(owner, model.valid_to.is_(None)))
    if current is None:
        return
    if now <= current.valid_from:
        raise Conflict(f"The {what} changed at the same moment; reload and try again.")
    current.valid_to = now
