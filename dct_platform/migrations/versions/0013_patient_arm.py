"""patients carry their treatment arm

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table, unguard_audited_table

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (batch mode would copy `patients` through the audit guard).
    op.add_column("patients", sa.Column("arm", sa.String(length=40), nullable=True))
    # SQLite's update guard lists the columns it watches: renew it to watch this one too.
    guard_audited_table(op, "patients")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        unguard_audited_table(op, "patients")
        op.drop_column("patients", "arm")
        guard_audited_table(op, "patients")
    else:
        op.drop_column("patients", "arm")
