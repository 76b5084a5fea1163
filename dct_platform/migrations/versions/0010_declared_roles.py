"""roles come from the role registry: users.role loses its fixed list of values

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 01:40:00
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_users_user_role"
CORE_ROLES = (
    "patient",
    "nurse",
    "site_staff",
    "investigator",
    "supply_manager",
    "trial_manager",
    "admin",
)
OLD_CHECK_SQL = f"CONSTRAINT {CHECK} CHECK (role IN ({', '.join(repr(r) for r in CORE_ROLES)}))"


def _rewrite_sqlite_users_sql(connection: Connection, old: str, new: str) -> None:
    """Change the stored definition of `users` in place.

    SQLite cannot drop a CHECK constraint. Copying the table instead (alembic's batch mode)
    would, with foreign keys on, cascade the implicit delete of every account to its site
    memberships and tokens. Editing the schema text is the procedure SQLite documents for
    removing a CHECK constraint (https://sqlite.org/lang_altertable.html, section 7): same
    transaction, schema version bumped so every connection re-reads it.
    """
    sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'"
    ).scalar_one()
    if old not in sql:
        raise RuntimeError(f"users table definition does not contain {old!r}")
    version = connection.exec_driver_sql("PRAGMA schema_version").scalar_one()
    connection.exec_driver_sql("PRAGMA writable_schema=ON")
    connection.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'users'",
        (sql.replace(old, new),),
    )
    connection.exec_driver_sql(f"PRAGMA schema_version={version + 1}")
    connection.exec_driver_sql("PRAGMA writable_schema=OFF")
    problems = connection.exec_driver_sql("PRAGMA quick_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"users table after the change: {problems}")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE users DROP CONSTRAINT {CHECK}")
        # A longer name for a package's roles ("logistics.provider_coordinator"); a
        # longer varchar needs no table rewrite and fires no row trigger.
        op.execute("ALTER TABLE users ALTER COLUMN role TYPE varchar(64)")
        return
    _rewrite_sqlite_users_sql(bind, f", \n\t{OLD_CHECK_SQL}", "")
    _rewrite_sqlite_users_sql(bind, "role VARCHAR(32) NOT NULL", "role VARCHAR(64) NOT NULL")


def downgrade() -> None:
    # Accounts holding a package's role would break the old check: refuse rather than lose.
    bind = op.get_bind()
    listed = ", ".join(f"'{r}'" for r in CORE_ROLES)
    extra = bind.exec_driver_sql(
        f"SELECT count(*) FROM users WHERE role NOT IN ({listed})"
    ).scalar_one()
    if extra:
        raise RuntimeError(f"{extra} accounts hold a role the old schema does not know")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE users ALTER COLUMN role TYPE varchar(32)")
        op.execute(f"ALTER TABLE users ADD CONSTRAINT {CHECK} CHECK (role IN ({listed}))")
        return
    _rewrite_sqlite_users_sql(bind, "role VARCHAR(64) NOT NULL", "role VARCHAR(32) NOT NULL")
    _rewrite_sqlite_users_sql(bind, "\n)", f", \n\t{OLD_CHECK_SQL}\n)")
