"""logistics: home-nurse dispatch (providers, nurses, home visits, planning runs)

Revision ID: lg01
Revises:
Create Date: 2026-11-26 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table

revision: str = "lg01"
down_revision: str | None = None
# The package's own branch, after the core revision whose tables it refers to.
branch_labels: str | Sequence[str] | None = ("logistics",)
depends_on: str | Sequence[str] | None = "0015"

UTC = sa.DateTime(timezone=True)
# Every table but the planning runs' bookkeeping is audited.
AUDITED = (
    "home_health_providers",
    "home_health_coordinators",
    "nurse_profiles",
    "nurse_absences",
    "nurse_hours",
    "nurse_licences",
    "nurse_trainings",
    "home_health_contracts",
    "home_visit_requirements",
    "patient_home_locations",
    "home_visits",
    "home_visit_declines",
    "home_visit_procedures",
    "home_visit_samples",
)


def upgrade() -> None:
    op.create_table(
        "home_health_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_health_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_home_health_providers_name")),
    )
    op.create_table(
        "dispatch_plan_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "done",
                "failed",
                name="plan_run_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("progress", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["home_health_providers.id"],
            name=op.f("fk_dispatch_plan_runs_provider_id_home_health_providers"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_dispatch_plan_runs_requested_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_plan_runs")),
    )
    op.create_index("ix_dispatch_plan_runs_status", "dispatch_plan_runs", ["status"], unique=False)
    op.create_table(
        "home_health_coordinators",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["home_health_providers.id"],
            name=op.f("fk_home_health_coordinators_provider_id_home_health_providers"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_home_health_coordinators_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_home_health_coordinators")),
    )
    op.create_index(
        op.f("ix_home_health_coordinators_provider_id"),
        "home_health_coordinators",
        ["provider_id"],
        unique=False,
    )
    op.create_table(
        "nurse_profiles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("postal_prefixes", sa.JSON(), nullable=False),
        sa.Column("radius_km", sa.Float(), nullable=True),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint(
            "latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180",
            name=op.f("ck_nurse_profiles_home_base"),
        ),
        sa.CheckConstraint(
            "radius_km IS NULL OR radius_km > 0", name=op.f("ck_nurse_profiles_radius")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["home_health_providers.id"],
            name=op.f("fk_nurse_profiles_provider_id_home_health_providers"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_nurse_profiles_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_nurse_profiles")),
    )
    op.create_index(
        op.f("ix_nurse_profiles_provider_id"), "nurse_profiles", ["provider_id"], unique=False
    )
    op.create_table(
        "nurse_absences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nurse_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint("last_day >= first_day", name=op.f("ck_nurse_absences_days")),
        sa.ForeignKeyConstraint(
            ["nurse_id"],
            ["nurse_profiles.user_id"],
            name=op.f("fk_nurse_absences_nurse_id_nurse_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurse_absences")),
    )
    op.create_index(
        op.f("ix_nurse_absences_nurse_id"), "nurse_absences", ["nurse_id"], unique=False
    )
    op.create_table(
        "nurse_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nurse_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.String(length=5), nullable=False),
        sa.Column("end_time", sa.String(length=5), nullable=False),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_nurse_hours_weekday")),
        sa.ForeignKeyConstraint(
            ["nurse_id"],
            ["nurse_profiles.user_id"],
            name=op.f("fk_nurse_hours_nurse_id_nurse_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurse_hours")),
    )
    op.create_index(op.f("ix_nurse_hours_nurse_id"), "nurse_hours", ["nurse_id"], unique=False)
    op.create_table(
        "nurse_licences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nurse_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=10), nullable=False),
        sa.Column("number", sa.String(length=60), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["nurse_id"],
            ["nurse_profiles.user_id"],
            name=op.f("fk_nurse_licences_nurse_id_nurse_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurse_licences")),
    )
    op.create_index(
        op.f("ix_nurse_licences_nurse_id"), "nurse_licences", ["nurse_id"], unique=False
    )
    op.create_table(
        "nurse_trainings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nurse_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("protocol_version", sa.String(length=20), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["nurse_id"],
            ["nurse_profiles.user_id"],
            name=op.f("fk_nurse_trainings_nurse_id_nurse_profiles"),
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name=op.f("fk_nurse_trainings_trial_id_trials")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurse_trainings")),
        sa.UniqueConstraint(
            "nurse_id",
            "trial_id",
            "protocol_version",
            name=op.f("uq_nurse_trainings_nurse_id_trial_id_protocol_version"),
        ),
    )
    op.create_index(
        op.f("ix_nurse_trainings_nurse_id"), "nurse_trainings", ["nurse_id"], unique=False
    )
    op.create_table(
        "home_health_contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["home_health_providers.id"],
            name=op.f("fk_home_health_contracts_provider_id_home_health_providers"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_home_health_contracts_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_health_contracts")),
        sa.UniqueConstraint(
            "provider_id", "site_id", name=op.f("uq_home_health_contracts_provider_id_site_id")
        ),
    )
    op.create_index(
        op.f("ix_home_health_contracts_site_id"), "home_health_contracts", ["site_id"], unique=False
    )
    op.create_table(
        "home_visit_requirements",
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("procedures", sa.JSON(), nullable=False),
        sa.Column("day_start", sa.String(length=5), nullable=False),
        sa.Column("day_end", sa.String(length=5), nullable=False),
        sa.Column("companion", sa.JSON(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["visit_definitions.id"],
            name=op.f("fk_home_visit_requirements_definition_id_visit_definitions"),
        ),
        sa.PrimaryKeyConstraint("definition_id", name=op.f("pk_home_visit_requirements")),
    )
    op.create_table(
        "patient_home_locations",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("access_notes", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint(
            "latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180",
            name=op.f("ck_patient_home_locations_on_earth"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_home_locations_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patient_home_locations")),
    )
    op.create_table(
        "home_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("planned_visit_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("link_kind", sa.String(length=20), nullable=True),
        sa.Column("min_gap_minutes", sa.Integer(), nullable=True),
        sa.Column("max_gap_minutes", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "assigned",
                "accepted",
                "in_progress",
                "completed",
                "cancelled",
                "missed",
                name="home_visit_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("window_first", sa.Date(), nullable=False),
        sa.Column("window_last", sa.Date(), nullable=False),
        sa.Column("day_start", sa.String(length=5), nullable=False),
        sa.Column("day_end", sa.String(length=5), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("procedures", sa.JSON(), nullable=False),
        sa.Column("attention", sa.String(length=300), nullable=True),
        sa.Column("pinned_nurse_id", sa.Integer(), nullable=True),
        sa.Column("nurse_id", sa.Integer(), nullable=True),
        sa.Column("planned_start", UTC, nullable=True),
        sa.Column("planned_end", UTC, nullable=True),
        sa.Column("route_position", sa.Integer(), nullable=True),
        sa.Column("travel_minutes", sa.Integer(), nullable=True),
        sa.Column("plan_run_id", sa.Integer(), nullable=True),
        sa.Column("accepted_at", UTC, nullable=True),
        sa.Column("investigator_id", sa.Integer(), nullable=True),
        sa.Column("checked_in_at", UTC, nullable=True),
        sa.Column("checked_in_lat", sa.Float(), nullable=True),
        sa.Column("checked_in_lon", sa.Float(), nullable=True),
        sa.Column("checked_out_at", UTC, nullable=True),
        sa.Column("checked_out_lat", sa.Float(), nullable=True),
        sa.Column("checked_out_lon", sa.Float(), nullable=True),
        sa.Column("vitals", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("findings_abnormal", sa.Boolean(), nullable=False),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint(
            "duration_minutes BETWEEN 5 AND 480", name=op.f("ck_home_visits_duration")
        ),
        sa.CheckConstraint("part IN (1, 2)", name=op.f("ck_home_visits_part")),
        sa.ForeignKeyConstraint(
            ["investigator_id"], ["users.id"], name=op.f("fk_home_visits_investigator_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["nurse_id"], ["users.id"], name=op.f("fk_home_visits_nurse_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["home_visits.id"], name=op.f("fk_home_visits_partner_id_home_visits")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_home_visits_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["pinned_nurse_id"], ["users.id"], name=op.f("fk_home_visits_pinned_nurse_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["plan_run_id"],
            ["dispatch_plan_runs.id"],
            name=op.f("fk_home_visits_plan_run_id_dispatch_plan_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["planned_visit_id"],
            ["planned_visits.id"],
            name=op.f("fk_home_visits_planned_visit_id_planned_visits"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_home_visits_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_visits")),
        sa.UniqueConstraint(
            "planned_visit_id", "part", name=op.f("uq_home_visits_planned_visit_id_part")
        ),
    )
    op.create_index(
        "ix_home_visits_nurse_start", "home_visits", ["nurse_id", "planned_start"], unique=False
    )
    op.create_index(op.f("ix_home_visits_patient_id"), "home_visits", ["patient_id"], unique=False)
    op.create_index(op.f("ix_home_visits_site_id"), "home_visits", ["site_id"], unique=False)
    op.create_index(
        "ix_home_visits_status_window", "home_visits", ["status", "window_first"], unique=False
    )
    op.create_table(
        "home_visit_declines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("home_visit_id", sa.Integer(), nullable=False),
        sa.Column("nurse_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("declined_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["home_visit_id"],
            ["home_visits.id"],
            name=op.f("fk_home_visit_declines_home_visit_id_home_visits"),
        ),
        sa.ForeignKeyConstraint(
            ["nurse_id"], ["users.id"], name=op.f("fk_home_visit_declines_nurse_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_visit_declines")),
    )
    op.create_index(
        op.f("ix_home_visit_declines_home_visit_id"),
        "home_visit_declines",
        ["home_visit_id"],
        unique=False,
    )
    op.create_table(
        "home_visit_procedures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("home_visit_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("done_at", UTC, nullable=False),
        sa.Column("done_by_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["done_by_id"], ["users.id"], name=op.f("fk_home_visit_procedures_done_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["home_visit_id"],
            ["home_visits.id"],
            name=op.f("fk_home_visit_procedures_home_visit_id_home_visits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_visit_procedures")),
        sa.UniqueConstraint(
            "home_visit_id", "code", name=op.f("uq_home_visit_procedures_home_visit_id_code")
        ),
    )
    op.create_index(
        op.f("ix_home_visit_procedures_home_visit_id"),
        "home_visit_procedures",
        ["home_visit_id"],
        unique=False,
    )
    op.create_table(
        "home_visit_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("home_visit_id", sa.Integer(), nullable=False),
        sa.Column("barcode", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("collected_at", UTC, nullable=False),
        sa.Column("collected_by_id", sa.Integer(), nullable=False),
        sa.Column("handed_over_at", UTC, nullable=True),
        sa.Column("courier", sa.String(length=100), nullable=True),
        sa.Column("courier_reference", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["collected_by_id"],
            ["users.id"],
            name=op.f("fk_home_visit_samples_collected_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["home_visit_id"],
            ["home_visits.id"],
            name=op.f("fk_home_visit_samples_home_visit_id_home_visits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_visit_samples")),
        sa.UniqueConstraint("barcode", name=op.f("uq_home_visit_samples_barcode")),
    )
    op.create_index(
        op.f("ix_home_visit_samples_home_visit_id"),
        "home_visit_samples",
        ["home_visit_id"],
        unique=False,
    )
    for table in AUDITED:
        guard_audited_table(op, table)


def downgrade() -> None:
    for table in (
        "home_visit_samples",
        "home_visit_procedures",
        "home_visit_declines",
        "home_visits",
        "patient_home_locations",
        "home_visit_requirements",
        "home_health_contracts",
        "nurse_trainings",
        "nurse_licences",
        "nurse_hours",
        "nurse_absences",
        "nurse_profiles",
        "home_health_coordinators",
        "dispatch_plan_runs",
        "home_health_providers",
    ):
        op.drop_table(table)
