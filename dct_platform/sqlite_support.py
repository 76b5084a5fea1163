"""Make SQLite, the embedded default, keep the same guarantees as PostgreSQL.

Python's sqlite3 driver opens transactions lazily and never around SAVEPOINT, which breaks
nested transactions (a savepoint release would commit), and SQLite leaves foreign keys
unchecked unless asked. These hooks follow SQLAlchemy's documented recipe: the driver's own
transaction handling is switched off and SQLAlchemy emits BEGIN itself. SQLite has one
writer at a time; transactions queue for it rather than fail.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from dct_platform.audit_guard import register_sqlite_function
from dct_platform.extensions import db


def _on_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None
    register_sqlite_function(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Readers do not block the writer (the scheduler and requests share the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _on_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so concurrent writers queue on the busy
    # timeout. A deferred transaction that reads, then writes after another commit, fails at
    # once with "database is locked" instead of waiting.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def configure(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            configure(engine)
