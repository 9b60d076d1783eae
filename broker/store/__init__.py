"""Where the broker keeps its state: offer sets, sessions, holds, bookings and the work queue.

`port` is what `BrokerService` uses of it (`SessionStore`, `SessionTransaction` and their
records); `sql` is the SQL adapter (SQLite and PostgreSQL) with its Alembic migrations in
`migrations/`.
"""
