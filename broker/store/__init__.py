"""Where the broker keeps its state: offer sets, sessions, holds, bookings and the work queue.

`port` is what `BrokerService` uses of it (`SessionStore`, `SessionTransaction` and their
records). Two adapters implement it: `sql`, the SQL store (SQLite and PostgreSQL) with its
Alembic migrations in `migrations/`, which the server runs on; and `memory`, the in-memory
fake (`MemorySessionStore`: no I/O, each write alone under one lock) for tests of the
service's own logic. One contract suite (`tests/contract/test_broker_store.py`) runs over
SQLite, PostgreSQL and the fake.
"""
