"""devices: device-health alerts, and the status a unit reports with each batch

Revision ID: dv03
Revises: dv02
Create Date: 2026-11-26 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table

revision: str = "dv03"
down_revision: str | None = "dv02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
OPEN = "cleared_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "device_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "silent",
                "low_battery",
                "poor_signal",
                "clock_drift",
                name="device_alert_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("raised_at", UTC, nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("since", UTC, nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("acknowledged_at", UTC, nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("cleared_at", UTC, nullable=True),
        sa.Column("cleared_because", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["users.id"],
            name=op.f("fk_device_alerts_acknowledged_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_device_alerts_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_device_alerts_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["device_units.id"], name=op.f("fk_device_alerts_unit_id_device_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_alerts")),
    )
    op.create_index("ix_device_alerts_patient_open", "device_alerts", ["patient_id", "cleared_at"])
    op.create_index(op.f("ix_device_alerts_site_id"), "device_alerts", ["site_id"])
    op.create_index(
        "uq_device_alerts_open",
        "device_alerts",
        ["unit_id", "kind"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    guard_audited_table(op, "device_alerts")
    op.add_column("device_batches", sa.Column("newest_reading_at", UTC, nullable=True))
    op.add_column("device_batches", sa.Column("battery_percent", sa.Integer(), nullable=True))
    op.add_column("device_batches", sa.Column("signal", sa.String(length=8), nullable=True))
    op.add_column("device_batches", sa.Column("clock_offset_seconds", sa.Float(), nullable=True))
    # The health job asks for each unit's latest batch.
    op.create_index("ix_device_batches_unit_received", "device_batches", ["unit_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_device_batches_unit_received", table_name="device_batches")
    with op.batch_alter_table("device_batches") as batch_op:
        batch_op.drop_column("clock_offset_seconds")
        batch_op.drop_column("signal")
        batch_op.drop_column("battery_percent")
        batch_op.drop_column("newest_reading_at")
    op.drop_table("device_alerts")
