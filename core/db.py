"""SQLAlchemy plumbing shared by the stores: the declarative base, engines, transactions.

SQLite is the embedded default and PostgreSQL the scale-out store; the same code serves both.
Writers that must be serialised (holds and accepts on one platform) open their transaction with
`write_transaction`, which is `BEGIN IMMEDIATE` on SQLite (one writer at a time, taken before
the first read) and an ordinary transaction on PostgreSQL, where the stores take row locks
(`SELECT ... FOR UPDATE`) themselves.

Each package keeps its own Alembic migrations and its own version table, so packages evolve
their schemas independently; `migrate()` runs one package's migrations.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every table of ours (constraint names are deterministic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Build an engine for `url` with the pragmas and transaction mode we rely on.

    On SQLite: WAL journal (readers do not block the writer), foreign keys on, a busy timeout,
    and pysqlite's own transaction handling switched off so that `BEGIN IMMEDIATE` really is
    the first statement of a write transaction (the SQLAlchemy-documented recipe).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def read_transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A short transaction for reads (and writes that need no serialisation)."""
    with sessions() as session, session.begin():
        yield session


@contextmanager
def write_transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that holds the database's write lock from its first statement (SQLite).

    On PostgreSQL it is an ordinary READ COMMITTED transaction: callers lock the rows they
    serialise on with `SELECT ... FOR UPDATE`.
    """
    with sessions() as session:
        # Autobegins with BEGIN IMMEDIATE on SQLite (see the "begin" listener above).
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def migrate(engine: Engine, migrations_dir: Path, version_table: str) -> None:
    """Bring one package's tables to the newest revision with Alembic."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["version_table"] = version_table
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes starting together on a new release must not race on the
            # upgrade: the first takes the lock and migrates, the others wait and find `head`.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:table))"), {"table": version_table}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def run_migrations_in_env(target_metadata: MetaData) -> None:
    """The body of every package's Alembic `env.py`: online migrations on a given connection.

    `migrate()` passes the connection and the package's version table through
    `config.attributes`; the Alembic CLI is not used.
    """
    from alembic import context

    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def throwaway_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create a uniquely named PostgreSQL database, yield its URL, drop it afterwards.

    For tests and benchmarks that need a database of their own on a shared server. The drop
    uses `WITH (FORCE)`, so connections left open cannot keep it alive, and runs even when the
    body fails.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    admin = make_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
