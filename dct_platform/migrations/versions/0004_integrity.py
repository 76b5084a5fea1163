"""integrity: record versions, non-overlapping ownership periods, an audit table only the
trail writes, server-side web sessions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = ("patients", "patient_identities", "users", "sites", "trials")
# (table, the column whose periods must not overlap)
PERIODS = (("patient_site_assignments", "patient_id"), ("site_investigator_periods", "site_id"))
REFUSED = "only the audit trail writes it"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in VERSIONED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("version", sa.Integer(), nullable=False, server_default="1")
            )

    for table, owner in PERIODS:
        op.create_index(
            f"uq_{table}_open",
            table,
            [owner],
            unique=True,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_period_order"), "valid_to IS NULL OR valid_to > valid_from"
            )
    if postgres:
        # Overlap of half-open periods, checked by the database itself: the last word
        # whatever a service or a hand-written statement does.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        for table, owner in PERIODS:
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT ex_{table}_no_overlap EXCLUDE USING gist "
                f"({owner} WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)"
            )

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("sid_hash", name=op.f("uq_web_sessions_sid_hash")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"])

    # Entries and the chain head are written by the audit mechanism only: it raises a
    # transaction-local flag around its own statements (dct_platform/audit_guard.py).
    if postgres:
        op.execute(
            f"""
            CREATE FUNCTION audit_written_by_trail() RETURNS trigger AS $$
            BEGIN
                IF coalesce(current_setting('dct.audit_writer', true), '') <> 'on' THEN
                    RAISE EXCEPTION '% on % refused: {REFUSED}', TG_OP, TG_TABLE_NAME;
                END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_entries_insert_guard BEFORE INSERT ON audit_entries "
            "FOR EACH ROW EXECUTE FUNCTION audit_written_by_trail()"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_update_guard BEFORE UPDATE ON audit_chain_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_written_by_trail()"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_entries_insert_guard BEFORE INSERT ON audit_entries "
            "WHEN NOT dct_audit_writing() "
            f"BEGIN SELECT RAISE(ABORT, 'INSERT on audit_entries refused: {REFUSED}'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_update_guard BEFORE UPDATE ON audit_chain_head "
            "WHEN NOT dct_audit_writing() "
            f"BEGIN SELECT RAISE(ABORT, 'UPDATE on audit_chain_head refused: {REFUSED}'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head "
            "BEGIN SELECT RAISE(ABORT, 'audit_chain_head: DELETE refused'); END"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for trigger, table in (
            ("audit_entries_insert_guard", "audit_entries"),
            ("audit_chain_head_update_guard", "audit_chain_head"),
            ("audit_chain_head_no_delete", "audit_chain_head"),
            ("audit_chain_head_no_truncate", "audit_chain_head"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_written_by_trail()")
        for table, _owner in PERIODS:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS ex_{table}_no_overlap")
    else:
        for trigger in (
            "audit_entries_insert_guard",
            "audit_chain_head_update_guard",
            "audit_chain_head_no_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    for table, _owner in PERIODS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_period_order"), type_="check")
        op.drop_index(f"uq_{table}_open", table_name=table)
    for table in VERSIONED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("version")
