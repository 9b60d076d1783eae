"""Each platform row counts the writes that took capacity on it and knows its longest booking.

`taken` grows by one in every transaction that adds a hold or booking on the platform or moves
one: an offer request that read it before computing its offers and finds it unchanged once it
holds the platform's lock knows no capacity was taken there since, and need not read the
bookings again. `longest` is the longest hold or booking ever stored on the platform, in
microseconds: a booking that overlaps `[start, end)` ends before `end + longest`, which bounds
the walk of the index on (platform, slot_end) to the bookings that can overlap.

Revision ID: broker_0005
Revises: broker_0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "broker_0005"
down_revision = "broker_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two columns; every platform with bookings gets its row and its longest."""
    with op.batch_alter_table("broker_platform") as batch:
        batch.add_column(
            sa.Column("taken", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("longest", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )
    op.execute(
        "INSERT INTO broker_platform (name, taken, longest)"
        " SELECT DISTINCT platform, 0, 0 FROM broker_booking"
        " WHERE platform NOT IN (SELECT name FROM broker_platform)"
    )
    op.execute(
        "UPDATE broker_platform SET longest = COALESCE("
        "(SELECT MAX(slot_end - slot_start) FROM broker_booking"
        " WHERE broker_booking.platform = broker_platform.name), 0)"
    )


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("broker_platform") as batch:
        batch.drop_column("longest")
        batch.drop_column("taken")
