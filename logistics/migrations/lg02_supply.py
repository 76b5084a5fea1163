"""logistics: investigational-product supply (depots, products, kits)

Revision ID: lg02
Revises: lg01
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table

revision: str = "lg02"
down_revision: str | None = "lg01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
AUDITED = ("depots", "investigational_products", "kits")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _version() -> sa.Column[int]:
    return sa.Column("version", sa.Integer(), server_default="1", nullable=False)


def upgrade() -> None:
    op.create_table(
        "depots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", _enum("depot_kind", "central", "site_pharmacy"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        _version(),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint(
            "(kind = 'site_pharmacy' AND site_id IS NOT NULL)"
            " OR (kind = 'central' AND site_id IS NULL)",
            name=op.f("ck_depots_site_pharmacy_site"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_depots_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_depots")),
        sa.UniqueConstraint("name", name=op.f("uq_depots_name")),
    )
    op.create_index(op.f("ix_depots_site_id"), "depots", ["site_id"], unique=False)
    op.create_table(
        "investigational_products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "storage_condition",
            _enum("storage_condition", "2-8C", "15-25C", "frozen"),
            nullable=False,
        ),
        sa.Column("min_c", sa.Float(), nullable=False),
        sa.Column("max_c", sa.Float(), nullable=False),
        sa.Column("excursion_minutes", sa.Integer(), nullable=False),
        sa.Column("hard_min_c", sa.Float(), nullable=False),
        sa.Column("hard_max_c", sa.Float(), nullable=False),
        sa.Column("home_delivery_ok", sa.Boolean(), nullable=False),
        _version(),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint("min_c < max_c", name=op.f("ck_investigational_products_range")),
        sa.CheckConstraint(
            "hard_min_c <= min_c AND max_c <= hard_max_c",
            name=op.f("ck_investigational_products_hard_limits"),
        ),
        sa.CheckConstraint(
            "excursion_minutes >= 0", name=op.f("ck_investigational_products_excursion_minutes")
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name=op.f("fk_investigational_products_trial_id_trials")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_investigational_products")),
        sa.UniqueConstraint("id", "trial_id", name=op.f("uq_investigational_products_id_trial_id")),
        sa.UniqueConstraint(
            "trial_id", "code", name=op.f("uq_investigational_products_trial_id_code")
        ),
    )
    op.create_index(
        op.f("ix_investigational_products_trial_id"),
        "investigational_products",
        ["trial_id"],
        unique=False,
    )
    op.create_table(
        "kits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("kit_number", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("lot", sa.String(length=40), nullable=False),
        sa.Column("expiry_date", sa.Date(), nullable=False),
        sa.Column("depot_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            _enum(
                "kit_status",
                "available",
                "reserved",
                "shipped",
                "delivered",
                "dispensed",
                "returned",
                "destroyed",
                "quarantined",
                "damaged",
            ),
            nullable=False,
        ),
        sa.Column("arm", sa.String(length=40), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        _version(),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint(
            "status NOT IN ('reserved', 'shipped', 'delivered', 'dispensed')"
            " OR patient_id IS NOT NULL",
            name=op.f("ck_kits_held_for_a_patient"),
        ),
        sa.CheckConstraint(
            "status <> 'available' OR patient_id IS NULL", name=op.f("ck_kits_available_free")
        ),
        sa.ForeignKeyConstraint(["depot_id"], ["depots.id"], name=op.f("fk_kits_depot_id_depots")),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_kits_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["product_id", "trial_id"],
            ["investigational_products.id", "investigational_products.trial_id"],
            name=op.f("fk_kits_product_id_investigational_products"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kits")),
        sa.UniqueConstraint("trial_id", "kit_number", name=op.f("uq_kits_trial_id_kit_number")),
    )
    op.create_index(
        "ix_kits_pick", "kits", ["depot_id", "product_id", "status", "expiry_date"], unique=False
    )
    op.create_index(op.f("ix_kits_patient_id"), "kits", ["patient_id"], unique=False)
    for table in AUDITED:
        guard_audited_table(op, table)


def downgrade() -> None:
    # Dropping a table drops its guard triggers with it.
    for table in ("kits", "investigational_products", "depots"):
        op.drop_table(table)
