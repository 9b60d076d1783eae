"""Publishing registry: list entries by change time; datestamps of the fixed records.

Adds an index on `catalogue_entry (updated_at, id)` (the OAI-PMH listing order and its
resumption cursor) and the table `catalogue_registry_record`, which keeps the datestamp of each
record built from configuration (registry, authority, broker) and moves it on when the record's
content changes. Existing rows are untouched.

Revision ID: catalogue_0002
Revises: catalogue_0001
Create Date: 2026-08-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "catalogue_0002"
down_revision = "catalogue_0001"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the change-order index and the fixed-record table."""
    op.create_index("ix_catalogue_entry_changed", "catalogue_entry", ["updated_at", "id"])
    op.create_table(
        "catalogue_registry_record",
        sa.Column("identifier", sa.String(300), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("identifier", name="pk_catalogue_registry_record"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("catalogue_registry_record")
    op.drop_index("ix_catalogue_entry_changed", table_name="catalogue_entry")
