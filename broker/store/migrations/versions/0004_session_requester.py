"""Sessions run directly (outside any offer set) remember who asked, as offer sets do.

Revision ID: broker_0004
Revises: broker_0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "broker_0004"
down_revision = "broker_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `broker_session.requester` (NULL for sessions of offer sets: theirs is the set's)."""
    with op.batch_alter_table("broker_session") as batch:
        batch.add_column(sa.Column("requester", sa.String(200), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("broker_session") as batch:
        batch.drop_column("requester")
