"""Harvest state per project, runs and per-project reports.

Revision ID: harvest_0001
Revises:
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "harvest_0001"
down_revision = None
branch_labels = ("harvest",)
depends_on = None


def upgrade() -> None:
    """Create the three harvest tables."""
    op.create_table(
        "harvest_projects",
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("harvested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("source", "project_id", name="pk_harvest_projects"),
    )
    op.create_table(
        "harvest_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_harvest_runs"),
    )
    op.create_index("ix_harvest_runs_source", "harvest_runs", ["source"])
    op.create_index("ix_harvest_runs_started_at", "harvest_runs", ["started_at"])
    op.create_table(
        "harvest_project_reports",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("has_problems", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["harvest_runs.id"],
            name="fk_harvest_project_reports_run_id_harvest_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "project_id", name="pk_harvest_project_reports"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("harvest_project_reports")
    op.drop_index("ix_harvest_runs_started_at", table_name="harvest_runs")
    op.drop_index("ix_harvest_runs_source", table_name="harvest_runs")
    op.drop_table("harvest_runs")
    op.drop_table("harvest_projects")
