"""devices: readings (monthly partitions on PostgreSQL) and batch provenance

Revision ID: dv02
Revises: dv01
Create Date: 2026-11-26 03:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from devices.partitions import create_month_partitions

revision: str = "dv02"
down_revision: str | None = "dv01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "device_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("data_format", sa.String(length=16), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["device_tokens.id"],
            name=op.f("fk_device_batches_token_id_device_tokens"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["device_units.id"], name=op.f("fk_device_batches_unit_id_device_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_batches")),
        sa.UniqueConstraint(
            "unit_id", "idempotency_key", name=op.f("uq_device_batches_unit_id_idempotency_key")
        ),
    )
    op.create_index(op.f("ix_device_batches_unit_id"), "device_batches", ["unit_id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "device_readings",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=160), nullable=False),
        sa.Column("effective_start", UTC_TIME, nullable=False),
        sa.Column("effective_end", UTC_TIME, nullable=True),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("device_reading_id", sa.String(length=128), nullable=True),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "unit_id", "dedup_key", "effective_start", name=op.f("pk_device_readings")
        ),
        postgresql_partition_by="RANGE (effective_start)",
    )
    op.create_index(
        "ix_device_readings_patient_metric_time",
        "device_readings",
        ["patient_id", "metric", "effective_start"],
    )
    op.create_index(
        "ix_device_readings_site_time", "device_readings", ["site_id", "effective_start"]
    )
    if postgres:
        # A reading outside every monthly partition lands in the default one, never lost;
        # the `devices.partitions` job keeps the coming months' partitions made ahead.
        op.execute("CREATE TABLE device_readings_default PARTITION OF device_readings DEFAULT")
        create_month_partitions(op.get_bind(), datetime.now(UTC), back=12, ahead=3)


def downgrade() -> None:
    op.drop_table("device_readings")  # its partitions go with it
    op.drop_table("device_batches")
