"""patient time-zone history

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "patient_timezone_periods"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f(f"fk_{TABLE}_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
        # The same guarantees as the site assignments (migration 0004): periods that end
        # after they start, one open period per patient, and no overlap on PostgreSQL.
        # Declared with the new table, so SQLite needs no batch copy for it.
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f(f"ck_{TABLE}_period_order")
        ),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{TABLE}_patient_id"), ["patient_id"], unique=False)
    op.create_index(
        f"uq_{TABLE}_open",
        TABLE,
        ["patient_id"],
        unique=True,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # btree_gist was created by 0004.
        op.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT ex_{TABLE}_no_overlap EXCLUDE USING gist "
            "(patient_id WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)"
        )

    # Earlier changes of a patient's zone were not kept as periods: the history starts at
    # enrolment with the zone the patient has now.
    op.execute(
        f"INSERT INTO {TABLE} (patient_id, timezone, valid_from, valid_to, reason) "
        "SELECT id, timezone, created_at, NULL, 'time-zone history started (migration 0006)' "
        "FROM patients"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS ex_{TABLE}_no_overlap")
    op.drop_index(f"uq_{TABLE}_open", table_name=TABLE)
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{TABLE}_patient_id"))
    op.drop_table(TABLE)
