"""Alembic environment: runs on the connection the app hands over (see dct_platform.migrate)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from alembic import context

import dct_platform.models  # noqa: F401  (registers the core tables on the metadata)
from dct_platform.extensions import db
from dct_platform.migrate import include_name
from dct_platform.timeutil import UTCDateTime

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext

target_metadata = db.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # UTCDateTime is a Python-side rule; the column itself is a timezone-aware timestamp.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
