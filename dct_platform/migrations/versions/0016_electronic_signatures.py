"""electronic signatures

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 09:00:00

Signatures are audited like every regulated table (only the trail's flush may insert), and
append-only besides: no UPDATE or DELETE gets through, not even from that flush. A
signature that no longer holds is shown as invalidated, never removed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dct_platform.audit_ddl import guard_audited_table

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "electronic_signatures"
APPEND_ONLY = f"{TABLE} is append-only"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column("printed_name", sa.String(length=200), nullable=False),
        sa.Column("meaning", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_table", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("fingerprint_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["signer_id"], ["users.id"], name=op.f("fk_electronic_signatures_signer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_electronic_signatures")),
    )
    op.create_index(
        "ix_electronic_signatures_record", TABLE, ["record_table", "record_id"], unique=False
    )
    op.create_index(op.f("ix_electronic_signatures_signer_id"), TABLE, ["signer_id"], unique=False)
    guard_audited_table(op, TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION electronic_signatures_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY}: % refused', TG_OP;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION electronic_signatures_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION electronic_signatures_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{verb.lower()} BEFORE {verb} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: {verb} refused'); END"
            )


def downgrade() -> None:
    signed = op.get_bind().scalar(sa.text(f"SELECT count(*) FROM {TABLE}"))
    if signed:
        # Signatures are regulated records; dropping them would erase who signed what.
        raise RuntimeError(
            f"{signed} electronic signatures are stored; 0016 is reversed only without "
            "any. Restore a backup taken before the upgrade instead."
        )
    # Dropping the table drops its triggers (the audit guard's and the append-only ones).
    op.drop_index(op.f("ix_electronic_signatures_signer_id"), table_name=TABLE)
    op.drop_index("ix_electronic_signatures_record", table_name=TABLE)
    op.drop_table(TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS electronic_signatures_append_only()")
