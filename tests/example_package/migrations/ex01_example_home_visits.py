"""example package: home visits

Revision ID: ex01
Revises:
Create Date: 2026-11-25 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table

revision: str = "ex01"
down_revision: str | None = None
# Its own branch, started after the core revision whose tables it refers to.
branch_labels: str | Sequence[str] | None = ("tests.example_package",)
depends_on: str | Sequence[str] | None = "0005"


def upgrade() -> None:
    op.create_table(
        "example_home_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("nurse_id", sa.Integer(), nullable=False),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["nurse_id"], ["users.id"], name=op.f("fk_example_home_visits_nurse_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_example_home_visits_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_example_home_visits")),
    )
    op.create_index(op.f("ix_example_home_visits_nurse_id"), "example_home_visits", ["nurse_id"])
    op.create_index(
        op.f("ix_example_home_visits_patient_id"), "example_home_visits", ["patient_id"]
    )
    # Audited: only the trail's own flush may change it.
    guard_audited_table(op, "example_home_visits")


def downgrade() -> None:
    op.drop_table("example_home_visits")
