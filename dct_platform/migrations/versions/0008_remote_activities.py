"""remote activities

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "remote_activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activity_type", sa.String(length=64), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("investigator_id", sa.Integer(), nullable=True),
        sa.Column("related_site_id", sa.Integer(), nullable=True),
        sa.Column("originator_kind", sa.String(length=16), nullable=False),
        sa.Column("originator_user_id", sa.Integer(), nullable=True),
        sa.Column("originator_ref", sa.String(length=120), nullable=True),
        sa.Column("modality", sa.String(length=32), nullable=True),
        sa.Column("location_type", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("package", sa.String(length=64), nullable=False),
        sa.Column("record_table", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["investigator_id"],
            ["users.id"],
            name=op.f("fk_remote_activities_investigator_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["originator_user_id"],
            ["users.id"],
            name=op.f("fk_remote_activities_originator_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_remote_activities_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["related_site_id"],
            ["sites.id"],
            name=op.f("fk_remote_activities_related_site_id_sites"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_remote_activities_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name=op.f("fk_remote_activities_trial_id_trials")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_activities")),
        sa.UniqueConstraint(
            "activity_type",
            "record_table",
            "record_id",
            name=op.f("uq_remote_activities_activity_type_record_table_record_id"),
        ),
    )
    op.create_index(
        "ix_remote_activities_patient_time", "remote_activities", ["patient_id", "occurred_at"]
    )
    op.create_index(
        "ix_remote_activities_site_time", "remote_activities", ["site_id", "occurred_at"]
    )
    op.create_index(
        op.f("ix_remote_activities_related_site_id"), "remote_activities", ["related_site_id"]
    )
    op.create_index(op.f("ix_remote_activities_trial_id"), "remote_activities", ["trial_id"])


def downgrade() -> None:
    op.drop_table("remote_activities")
