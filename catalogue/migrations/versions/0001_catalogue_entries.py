"""Catalogue entries and their versions.

Revision ID: catalogue_0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "catalogue_0001"
down_revision = None
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the entry and version tables."""
    op.create_table(
        "catalogue_entry",
        sa.Column("id", sa.String(120), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("repository", sa.String(1000), nullable=True),
        sa.Column("path", sa.String(1000), nullable=True),
        sa.Column("current_version", sa.String(64), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.Column("withdrawn_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_catalogue_entry"),
    )
    op.create_index("ix_catalogue_entry_name", "catalogue_entry", ["name"])
    op.create_index("ix_catalogue_entry_origin", "catalogue_entry", ["source", "repository"])
    op.create_table(
        "catalogue_version",
        sa.Column("entry_id", sa.String(120), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("declared_version", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("repository", sa.String(1000), nullable=True),
        sa.Column("path", sa.String(1000), nullable=True),
        sa.Column("ref", sa.String(255), nullable=True),
        sa.Column("ref_kind", sa.String(20), nullable=True),
        sa.Column("commit", sa.String(64), nullable=True),
        sa.Column("harvested_at", _TZ, nullable=True),
        sa.Column("published_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalogue_entry.id"],
            name="fk_catalogue_version_entry_id_catalogue_entry",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", "version", name="pk_catalogue_version"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("catalogue_version")
    op.drop_index("ix_catalogue_entry_origin", table_name="catalogue_entry")
    op.drop_index("ix_catalogue_entry_name", table_name="catalogue_entry")
    op.drop_table("catalogue_entry")
