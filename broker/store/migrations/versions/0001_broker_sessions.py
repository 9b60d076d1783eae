"""Broker platforms, offer sets, sessions, holds and bookings, and the work queue.

Revision ID: broker_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "broker_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the broker's tables."""
    op.create_table(
        "broker_platform",
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_broker_platform"),
    )
    op.create_table(
        "broker_offerset",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_broker_offerset"),
    )
    op.create_table(
        "broker_session",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("offerset_id", sa.String(36), nullable=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("platform", sa.String(200), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=True),
        sa.Column("slot_start", sa.BigInteger, nullable=False),
        sa.Column("slot_end", sa.BigInteger, nullable=False),
        sa.Column("resources", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_broker_session"),
    )
    op.create_index("ix_broker_session_offerset_id", "broker_session", ["offerset_id"])
    op.create_index("ix_broker_session_phase_expires", "broker_session", ["phase", "expires"])
    op.create_table(
        "broker_booking",
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("platform", sa.String(200), nullable=False),
        sa.Column("slot_start", sa.BigInteger, nullable=False),
        sa.Column("slot_end", sa.BigInteger, nullable=False),
        sa.Column("cores", sa.Integer, nullable=False),
        sa.Column("memory", sa.Float, nullable=False),
        sa.Column("storage", sa.Float, nullable=False),
        sa.Column("gpus", sa.Text, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_broker_booking"),
    )
    op.create_index("ix_broker_booking_platform", "broker_booking", ["platform", "slot_end"])
    op.create_table(
        "broker_work",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claimed_until", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_broker_work"),
    )
    op.create_index("ix_broker_work_session_id", "broker_work", ["session_id"])
    op.create_index("ix_broker_work_due_at", "broker_work", ["due_at"])


def downgrade() -> None:
    """Drop the broker's tables."""
    for table in ("broker_work", "broker_booking", "broker_session", "broker_offerset"):
        op.drop_table(table)
    op.drop_table("broker_platform")
