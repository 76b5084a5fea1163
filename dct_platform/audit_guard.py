"""The flag that lets the audit mechanism, and nothing else, write the audit tables.

Database triggers (migration 0004) refuse INSERTs into `audit_entries` and UPDATEs of
`audit_chain_head` unless this flag is raised. On PostgreSQL it is a transaction-local
setting; on SQLite, which has no settings, it is a function the app registers on each of
its connections, so a statement from any other client (the sqlite3 shell, a script) finds
no such function and is refused too. This stops writes that bypass the trail by mistake or
by a careless script; whoever controls the database itself is caught by the signed
checkpoints instead (`audit_anchor.py`).
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


@contextmanager
def writing_audit_tables(conn: Connection) -> Iterator[None]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT set_config('dct.audit_writer', 'on', true)"))
        try:
            yield
        finally:
            conn.execute(text("SELECT set_config('dct.audit_writer', 'off', true)"))
        return
    flag = conn.info[_SQLITE_FLAG]
    flag[0] = True
    try:
        yield
    finally:
        flag[0] = False
