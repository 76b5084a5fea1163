"""Database guards that keep audited tables and the trail honest below the ORM.

The ORM flush listener in `audit.py` is the one writer of the trail. For it to be the
only way to change regulated data, every INSERT, UPDATE and DELETE on an audited table is
refused by a trigger unless it comes from that flush, which raises the `audit_guard` flag
around its own statements. So a Core `update()`, a `delete()` or a raw SQL statement on an
audited table is refused instead of silently escaping the trail. Bookkeeping columns (a
user's last sign-in) may be named `exempt`: an UPDATE that changes nothing else passes.

Migrations call `guard_audited_table` for each audited table they create; a feature
package does the same for its own (see `tests/example_package/migrations`). A test checks
that every audited model's table carries the guard.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

REFUSED = "audited changes go through the audit trail (dct_platform/audit.py)"

PG_GUARD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audited_change_guard() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('dct.audit_writer', true), '') = 'on' THEN
        RETURN COALESCE(NEW, OLD);
    END IF;
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - TG_ARGV) = (to_jsonb(OLD) - TG_ARGV) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% on % refused: {REFUSED}', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql
"""


def _trigger_names(table: str) -> tuple[str, str, str]:
    return (f"audited_guard_insert_{table}", f"audited_guard_update_{table}",
            f"audited_guard_delete_{table}")  # fmt: skip


def guard_audited_table(op: Any, table: str, exempt: Iterable[str] = ()) -> None:
    """Install the guard on `table` (call it again after adding columns, on SQLite)."""
    bind = op.get_bind()
    exempt = list(exempt)
    insert_name, update_name, delete_name = _trigger_names(table)
    if bind.dialect.name == "postgresql":
        op.execute(PG_GUARD_FUNCTION)
        args = ", ".join(f"'{c}'" for c in exempt)
        op.execute(f"DROP TRIGGER IF EXISTS {update_name} ON {table}")
        op.execute(
            f"CREATE TRIGGER {update_name} BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION audited_change_guard({args})"
        )
        return
    columns = [c["name"] for c in sa.inspect(bind).get_columns(table) if c["name"] not in exempt]
    unguard_audited_table(op, table)
    refuse = "BEGIN SELECT RAISE(ABORT, '{op} on {table} refused: " + REFUSED + "'); END"
    op.execute(
        f"CREATE TRIGGER {insert_name} BEFORE INSERT ON {table} WHEN NOT dct_audit_writing() "
        + refuse.format(op="INSERT", table=table)
    )
    op.execute(
        f"CREATE TRIGGER {update_name} BEFORE UPDATE OF {', '.join(columns)} ON {table} "
        "WHEN NOT dct_audit_writing() " + refuse.format(op="UPDATE", table=table)
    )
    op.execute(
        f"CREATE TRIGGER {delete_name} BEFORE DELETE ON {table} WHEN NOT dct_audit_writing() "
        + refuse.format(op="DELETE", table=table)
    )


def unguard_audited_table(op: Any, table: str) -> None:
    bind = op.get_bind()
    for name in _trigger_names(table):
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def guarded_tables(connection: sa.Connection) -> set[str]:
    """Tables that carry the guard, as the database reports them."""
    if connection.dialect.name == "postgresql":
        rows = connection.execute(
            sa.text(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname LIKE 'audited_guard_update_%'"
            )
        )
    else:
        rows = connection.execute(
            sa.text(
                "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' "
                "AND name LIKE 'audited_guard_update_%'"
            )
        )
    return {r[0] for r in rows}
