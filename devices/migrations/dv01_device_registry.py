"""devices: the device registry (models, units, assignments, credentials, versions)

Revision ID: dv01
Revises:
Create Date: 2026-11-26 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table

revision: str = "dv01"
down_revision: str | None = None
# The package's own branch, after the core revision whose tables it refers to.
branch_labels: str | Sequence[str] | None = ("devices",)
depends_on: str | Sequence[str] | None = "0012"

UTC = sa.DateTime(timezone=True)
AUDITED = ("device_models", "device_units", "device_assignments", "device_tokens")


def _stamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "device_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("manufacturer", sa.String(length=100), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "wearable",
                "logger",
                name="device_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("min_firmware", sa.String(length=40), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_models")),
        sa.UniqueConstraint(
            "manufacturer", "model_name", name=op.f("uq_device_models_manufacturer_model_name")
        ),
    )
    op.create_table(
        "device_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("serial_number", sa.String(length=80), nullable=False),
        sa.Column("retired_at", UTC, nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["model_id"], ["device_models.id"], name=op.f("fk_device_units_model_id_device_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_units")),
        sa.UniqueConstraint(
            "model_id", "serial_number", name=op.f("uq_device_units_model_id_serial_number")
        ),
    )
    op.create_index(op.f("ix_device_units_model_id"), "device_units", ["model_id"])
    op.create_table(
        "device_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("valid_from", UTC, nullable=False),
        sa.Column("valid_to", UTC, nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from",
            name=op.f("ck_device_assignments_period_order"),
        ),
        sa.CheckConstraint(
            "(patient_id IS NULL) <> (shipment_id IS NULL)",
            name=op.f("ck_device_assignments_one_holder"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_device_assignments_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["device_units.id"],
            name=op.f("fk_device_assignments_unit_id_device_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_assignments")),
    )
    op.create_index(op.f("ix_device_assignments_unit_id"), "device_assignments", ["unit_id"])
    op.create_index(op.f("ix_device_assignments_patient_id"), "device_assignments", ["patient_id"])
    op.create_index(
        op.f("ix_device_assignments_shipment_id"), "device_assignments", ["shipment_id"]
    )
    op.create_index(
        "uq_device_assignments_open",
        "device_assignments",
        ["unit_id"],
        unique=True,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # One holder at a time, even for closed periods (btree_gist: core migration 0004).
        op.execute(
            "ALTER TABLE device_assignments ADD CONSTRAINT ex_device_assignments_no_overlap "
            "EXCLUDE USING gist (unit_id WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)"
        )
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["device_units.id"], name=op.f("fk_device_tokens_unit_id_device_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_device_tokens_token_hash")),
    )
    op.create_index(op.f("ix_device_tokens_unit_id"), "device_tokens", ["unit_id"])
    op.create_table(
        "device_version_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("firmware_version", sa.String(length=40), nullable=False),
        sa.Column("app_version", sa.String(length=40), nullable=False),
        sa.Column("first_seen_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["device_units.id"],
            name=op.f("fk_device_version_reports_unit_id_device_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_version_reports")),
        sa.UniqueConstraint(
            "unit_id",
            "firmware_version",
            "app_version",
            name=op.f("uq_device_version_reports_unit_id_firmware_version_app_version"),
        ),
    )
    op.create_index(
        op.f("ix_device_version_reports_unit_id"), "device_version_reports", ["unit_id"]
    )
    for table in AUDITED:
        guard_audited_table(op, table)


def downgrade() -> None:
    for table in ("device_version_reports", "device_tokens", "device_assignments"):
        op.drop_table(table)
    op.drop_table("device_units")
    op.drop_table("device_models")
