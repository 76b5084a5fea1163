"""trials carry the protocol version in force

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table, unguard_audited_table

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (batch mode would copy `trials` through the audit guard).
    op.add_column(
        "trials",
        sa.Column("protocol_version", sa.String(length=20), server_default="1.0", nullable=False),
    )
    # SQLite's update guard lists the columns it watches: renew it to watch this one too.
    guard_audited_table(op, "trials")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        unguard_audited_table(op, "trials")
        op.drop_column("trials", "protocol_version")
        guard_audited_table(op, "trials")
    else:
        op.drop_column("trials", "protocol_version")
