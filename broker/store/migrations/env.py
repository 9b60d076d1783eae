"""Alembic environment of the broker's tables (run through `core.db.migrate`)."""

from __future__ import annotations

import broker.store.sql  # noqa: F401  (registers the broker's tables on the metadata)
from core.db import Base, run_migrations_in_env

run_migrations_in_env(Base.metadata)
