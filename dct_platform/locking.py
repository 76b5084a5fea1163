"""Row locks for changes that must see the latest committed state before deciding.

Optimistic versions (`models.mixins.Versioned`) catch two people editing the same fields;
a change whose *decision* depends on the current state (transfer from the site the patient
is at now, close the open period) instead takes the row lock and re-reads, so concurrent
requests queue and each decides on what the previous one committed. SQLite needs no lock:
its transactions take the write lock when they begin (`sqlite_support.py`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session


def lock_for_update(session: Session, obj: Any) -> None:
    """Lock `obj`'s row until the transaction ends and reload it with what is committed."""
    mapper = type(obj).__mapper__
    pk = mapper.primary_key[0]
    session.execute(
        select(type(obj))
        .where(pk == mapper.primary_key_from_instance(obj)[0])
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
