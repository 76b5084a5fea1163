"""The flag that lets the audit mechanism, and nothing else, write audited tables and the
trail itself.

Database triggers refuse INSERTs, UPDATEs and DELETEs on audited tables (`audit_ddl.py`)
and writes to the trail's own tables unless this flag is raised. The audit mechanism raises
it around an ORM flush that it records, and the sealer around its sealing. On PostgreSQL
it is a transaction-local setting (a rollback clears it); on SQLite, which has no
settings, it is a function the app registers on each of its connections, so a statement
from any other client (the sqlite3 shell, a script) finds no such function and is refused
too. This stops writes that bypass the trail by mistake or by a careless script; whoever
controls the database itself is caught by the signed checkpoints (`audit_anchor.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

_SQLITE_FLAG = "dct_audit_writing"


def register_sqlite_function(dbapi_connection: Any, connection_record: Any) -> None:
    flag = [False]
    connection_record.info[_SQLITE_FLAG] = flag
    dbapi_connection.create_function(_SQLITE_FLAG, 0, lambda: flag[0])


def raise_flag(conn: Connection) -> list[bool] | None:
    """Raise the flag; on SQLite, return its holder so it can be lowered after a rollback."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT set_config('dct.audit_writer', 'on', true)"))
        return None
    flag: list[bool] = conn.info[_SQLITE_FLAG]
    flag[0] = True
    return flag


def lower_flag(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT set_config('dct.audit_writer', 'off', true)"))
        return
    conn.info[_SQLITE_FLAG][0] = False


@contextmanager
def writing_audit_tables(conn: Connection) -> Iterator[None]:
    raise_flag(conn)
    try:
        yield
    finally:
        lower_flag(conn)
