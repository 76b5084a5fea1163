"""devices: an index on when diary windows open, for the reminders job

Revision ID: dv05
Revises: dv04
Create Date: 2026-11-26 08:00:00

The reminders job asks every minute which windows opened since its last run. The other
indexes lead with the patient or the site, so without this one PostgreSQL read the whole
occurrences table (hundreds of thousands of rows after a quarter-year) on each run.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "dv05"
down_revision: str | None = "dv04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ediary_occurrences_opens", "ediary_occurrences", ["opens_at"])


def downgrade() -> None:
    op.drop_index("ix_ediary_occurrences_opens", table_name="ediary_occurrences")
