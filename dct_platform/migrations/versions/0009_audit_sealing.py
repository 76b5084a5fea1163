"""audit trail without a global queue: entries written unchained and sealed later, one
readable action per change, database-clock recording times, guards on audited tables

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CLOCK = sa.text("CURRENT_TIMESTAMP")
# Every core table whose model is Audited, with columns that are bookkeeping only.
AUDITED = {
    "sponsors": (),
    "trials": (),
    "sites": (),
    "site_investigator_periods": (),
    "users": ("last_login_at",),
    "site_memberships": (),
    "trial_access": (),
    "patients": (),
    "patient_identities": (),
    "patient_site_assignments": (),
    "patient_timezone_periods": (),
}
ENTRY_COLUMNS = (
    "id", "action_id", "occurred_at", "recorded_at", "actor_id", "actor_name", "action",
    "table_name", "record_id", "field", "old_value", "new_value", "reason", "hash_version",
)  # fmt: skip
SEALING = ("seq", "prev_hash", "entry_hash")
REFUSED = "only the audit trail writes it"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "audit_actions",
        sa.Column("id", BIG, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=CLOCK, nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("summary", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_actions")),
    )

    # The entries get a row id of their own; `seq` becomes the place in the sealed chain.
    op.rename_table("audit_entries", "audit_entries_v1")
    op.drop_index("ix_audit_entries_record", table_name="audit_entries_v1")
    if postgres:
        op.execute("ALTER TABLE audit_entries_v1 DROP CONSTRAINT pk_audit_entries")
        op.execute("ALTER TABLE audit_entries_v1 DROP CONSTRAINT uq_audit_entries_entry_hash")
    op.create_table(
        "audit_entries",
        sa.Column("id", BIG, nullable=False),
        sa.Column("seq", BIG, nullable=True),
        sa.Column("action_id", BIG, nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=CLOCK, nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("hash_version", sa.SmallInteger(), server_default=sa.text("2"), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("entry_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["audit_actions.id"],
            name=op.f("fk_audit_entries_action_id_audit_actions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_entries_entry_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_entries_seq")),
    )
    op.create_index("ix_audit_entries_record", "audit_entries", ["table_name", "record_id"])
    op.create_index(op.f("ix_audit_entries_action_id"), "audit_entries", ["action_id"])
    op.create_index(
        "ix_audit_entries_unsealed",
        "audit_entries",
        ["id"],
        sqlite_where=sa.text("seq IS NULL"),
        postgresql_where=sa.text("seq IS NULL"),
    )
    # Entries sealed before keep their place and their (narrower) hash: version 1.
    op.execute(
        "INSERT INTO audit_entries (id, seq, occurred_at, recorded_at, actor_id, actor_name, "
        "action, table_name, record_id, field, old_value, new_value, reason, hash_version, "
        "prev_hash, entry_hash) SELECT seq, seq, occurred_at, occurred_at, actor_id, actor_name, "
        "action, table_name, record_id, field, old_value, new_value, reason, 1, prev_hash, "
        "entry_hash FROM audit_entries_v1"
    )
    op.drop_table("audit_entries_v1")
    if postgres:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_entries', 'id'), "
            "COALESCE((SELECT MAX(id) FROM audit_entries), 0) + 1, false)"
        )
        _postgres_trail_guards()
    else:
        _sqlite_trail_guards()

    inspector = sa.inspect(op.get_bind())
    for table, exempt in AUDITED.items():
        if inspector.has_table(table):
            guard_audited_table(op, table, exempt)


def _postgres_trail_guards() -> None:
    unchanged = "ARRAY[" + ", ".join(f"'{c}'" for c in SEALING) + "]"
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION audit_entry_guard() RETURNS trigger AS $$
        BEGIN
            IF coalesce(current_setting('dct.audit_writer', true), '') <> 'on' THEN
                RAISE EXCEPTION 'audit trail is append-only: % on % refused: {REFUSED}',
                    TG_OP, TG_TABLE_NAME;
            END IF;
            IF TG_OP = 'INSERT' THEN
                IF TG_TABLE_NAME = 'audit_entries' THEN
                    IF NEW.seq IS NOT NULL THEN
                        RAISE EXCEPTION 'audit entries are born unsealed';
                    END IF;
                END IF;
                NEW.recorded_at := clock_timestamp();
                RETURN NEW;
            END IF;
            -- UPDATE: only the sealer, only once, only the chain's own columns.
            IF TG_TABLE_NAME <> 'audit_entries' THEN
                RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
            END IF;
            IF OLD.seq IS NOT NULL
               OR (to_jsonb(NEW) - {unchanged}) <> (to_jsonb(OLD) - {unchanged}) THEN
                RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    for table in ("audit_entries", "audit_actions"):
        op.execute(
            f"CREATE TRIGGER {table}_guard BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_entry_guard()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()"
        )


def _sqlite_trail_guards() -> None:
    def refuse(message: str) -> str:
        return f"BEGIN SELECT RAISE(ABORT, '{message}'); END"

    op.execute(
        "CREATE TRIGGER audit_entries_insert_guard BEFORE INSERT ON audit_entries "
        "WHEN NOT dct_audit_writing() OR NEW.seq IS NOT NULL "
        + refuse(f"INSERT on audit_entries refused: {REFUSED}")
    )
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in ENTRY_COLUMNS)
    op.execute(
        "CREATE TRIGGER audit_entries_update_guard BEFORE UPDATE ON audit_entries "
        f"WHEN NOT dct_audit_writing() OR OLD.seq IS NOT NULL OR {changed} "
        + refuse("audit trail is append-only: UPDATE on audit_entries refused")
    )
    op.execute(
        "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
        + refuse("audit trail is append-only: DELETE on audit_entries refused")
    )
    op.execute(
        "CREATE TRIGGER audit_actions_insert_guard BEFORE INSERT ON audit_actions "
        "WHEN NOT dct_audit_writing() " + refuse(f"INSERT on audit_actions refused: {REFUSED}")
    )
    op.execute(
        "CREATE TRIGGER audit_actions_no_change BEFORE UPDATE ON audit_actions "
        + refuse("audit trail is append-only: UPDATE on audit_actions refused")
    )
    op.execute(
        "CREATE TRIGGER audit_actions_no_delete BEFORE DELETE ON audit_actions "
        + refuse("audit trail is append-only: DELETE on audit_actions refused")
    )


def downgrade() -> None:
    raise NotImplementedError(
        "0009 is not reversible: the trail's unsealed entries and actions have no place in "
        "the earlier schema. Restore a backup taken before the upgrade instead."
    )
