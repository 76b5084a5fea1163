"""patient status changes with their effective day and reason, consent recorded at
enrolment, site enrolment targets, and the administrator's unlock of a sign-in lockout

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 02:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table, unguard_audited_table

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "patient_status_changes"
STATUSES = ("screening", "enrolled", "completed", "withdrawn", "screen_failed")
# Plain ADD COLUMNs (no batch copy, which on SQLite would cascade through the foreign
# keys); SQLite's update guards list their columns, so they are renewed afterwards.
NEW_COLUMNS: dict[str, list[sa.Column[Any]]] = {
    "patients": [
        sa.Column("consent_date", sa.Date(), nullable=True),
        sa.Column("consent_version", sa.String(length=40), nullable=True),
    ],
    "sites": [sa.Column("enrolment_target", sa.Integer(), nullable=True)],
    "users": [sa.Column("unlocked_at", sa.DateTime(timezone=True), nullable=True)],
}
EXEMPT: dict[str, tuple[str, ...]] = {"users": ("last_login_at",)}


def _status(name: str) -> sa.Enum:
    return sa.Enum(*STATUSES, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    for table, columns in NEW_COLUMNS.items():
        for column in columns:
            op.add_column(table, column)
        guard_audited_table(op, table, EXEMPT.get(table, ()))
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("from_status", _status("patient_status_from"), nullable=False),
        sa.Column("to_status", _status("patient_status_to"), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f(f"fk_{TABLE}_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(op.f(f"ix_{TABLE}_patient_id"), TABLE, ["patient_id"], unique=False)
    guard_audited_table(op, TABLE)


def downgrade() -> None:
    unguard_audited_table(op, TABLE)
    op.drop_index(op.f(f"ix_{TABLE}_patient_id"), table_name=TABLE)
    op.drop_table(TABLE)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in NEW_COLUMNS.items():
        if sqlite:  # SQLite refuses to drop a column a trigger names
            unguard_audited_table(op, table)
        for column in columns:
            op.drop_column(table, column.name)
        guard_audited_table(op, table, EXEMPT.get(table, ()))
