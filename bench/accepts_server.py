"""The PostgreSQL side of `bench.bench_accepts`: a throwaway database, the server's settings,
and what the benchmark's connections are doing while it runs.

`throwaway_database` creates a uniquely named database and drops it afterwards, also when the
run fails (`WITH (FORCE)`, so a client left connected cannot keep it alive). `server_facts`
reads the version and the settings that decide what a commit costs, as the server reports
them. `ActivitySampler` polls `pg_stat_activity` in a thread: how many of the database's
connections wait for a lock, and how many hold a transaction open while their client
computes (`idle in transaction`), which tells waiting on locks from waiting on CPUs.
Imports SQLAlchemy through `core.db`; no broker code.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from core import db
from core.db import make_engine

__all__ = [
    "SERVER_SETTINGS",
    "Activity",
    "ActivitySampler",
    "ServerUnavailable",
    "server_facts",
    "throwaway_database",
]

SERVER_SETTINGS: Final = (
    "shared_buffers",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "max_connections",
)
"""The settings reported with the numbers: memory, durability, connection limit."""

_ACTIVITY: Final = text(
    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting,"
    " count(*) FILTER (WHERE state = 'idle in transaction') AS computing"
    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server to measure: none configured, or it does not answer."""


def throwaway_database(server_url: str) -> AbstractContextManager[str]:
    """A new database for one scenario, dropped afterwards (even on failure)."""
    return db.throwaway_database(server_url, "voexec_bench")


def server_facts(server_url: str) -> dict[str, str]:
    """The server's version and `SERVER_SETTINGS`, as it reports them.

    Raises:
        ServerUnavailable: the server does not answer.
    """
    engine = make_engine(server_url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            facts = {"version": str(connection.exec_driver_sql("SHOW server_version").scalar())}
            for name in SERVER_SETTINGS:
                facts[name] = str(connection.exec_driver_sql(f"SHOW {name}").scalar())
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        raise ServerUnavailable(f"PostgreSQL at {server_url} does not answer: {reason}") from None
    finally:
        engine.dispose()
    return facts


@dataclass(frozen=True)
class Activity:
    """Mean number of the database's connections in each state over the samples."""

    samples: int
    waiting_for_lock: float
    idle_in_transaction: float


class ActivitySampler:
    """Samples the database's `pg_stat_activity` every `interval` seconds until stopped.

    One connection of its own, in a daemon thread; a sample costs one small query.
    """

    def __init__(self, database_url: str, interval: float = 0.2) -> None:
        self._engine = make_engine(database_url, poolclass=NullPool)
        self._interval = interval
        self._stop = threading.Event()
        self._rows: list[tuple[int, int]] = []
        self._thread = threading.Thread(target=self._sample, name="pg-activity", daemon=True)

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> Activity:
        """Stop sampling and return the means (zero without samples)."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._engine.dispose()
        count = len(self._rows)
        return Activity(
            samples=count,
            waiting_for_lock=sum(row[0] for row in self._rows) / max(count, 1),
            idle_in_transaction=sum(row[1] for row in self._rows) / max(count, 1),
        )

    def _sample(self) -> None:
        with self._engine.connect() as connection:
            while not self._stop.wait(self._interval):
                row = connection.execute(_ACTIVITY).one()
                connection.rollback()  # a fresh snapshot of the statistics every time
                self._rows.append((int(row.waiting), int(row.computing)))
