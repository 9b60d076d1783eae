"""The outbox: platform calls a transition decided, carried out after its commit.

Revision ID: broker_0003
Revises: broker_0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "broker_0003"
down_revision = "broker_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `broker_outbox` (one row per platform call still to make)."""
    op.create_table(
        "broker_outbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("effective_at", sa.BigInteger, nullable=False),
        sa.Column("noted_at", sa.BigInteger, nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claimed_until", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_broker_outbox"),
    )
    op.create_index("ix_broker_outbox_session_id", "broker_outbox", ["session_id"])


def downgrade() -> None:
    """Drop the outbox (calls still in it are lost: drain it first)."""
    op.drop_index("ix_broker_outbox_session_id", table_name="broker_outbox")
    op.drop_table("broker_outbox")
