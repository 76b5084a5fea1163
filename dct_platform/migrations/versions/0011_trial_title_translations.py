"""trials carry their title in the patients' languages

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table, unguard_audited_table

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not batch mode: copying `trials` on SQLite would run its rows
    # through the audit guard and cascade to the sites that reference it.
    op.add_column(
        "trials",
        sa.Column("title_translations", sa.JSON(), server_default=sa.text("'{}'"), nullable=False),
    )
    # SQLite's update guard lists the columns it watches: renew it so it watches this one.
    # On PostgreSQL the guard watches the whole row already; renewing it changes nothing.
    guard_audited_table(op, "trials")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite refuses to drop a column a trigger names: take the guard off and renew it
        # for the remaining columns.
        unguard_audited_table(op, "trials")
        op.drop_column("trials", "title_translations")
        guard_audited_table(op, "trials")
        return
    op.drop_column("trials", "title_translations")
