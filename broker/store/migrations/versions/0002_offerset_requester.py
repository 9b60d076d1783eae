"""Offer sets remember who asked for them, for the limit on sets one requester holds at once.

Revision ID: broker_0002
Revises: broker_0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "broker_0002"
down_revision = "broker_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `broker_offerset.requester` (NULL for sets made before, and for in-process callers)."""
    with op.batch_alter_table("broker_offerset") as batch:
        batch.add_column(sa.Column("requester", sa.String(200), nullable=True))
    op.create_index("ix_broker_offerset_requester", "broker_offerset", ["requester"])


def downgrade() -> None:
    """Drop the column and its index."""
    op.drop_index("ix_broker_offerset_requester", table_name="broker_offerset")
    with op.batch_alter_table("broker_offerset") as batch:
        batch.drop_column("requester")
