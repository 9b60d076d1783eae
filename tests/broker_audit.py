"""The capacity audit after a test: no platform of any broker the test built is over-promised.

The fixture `broker_capacity_audit` records every `BrokerService` constructed while the test
runs (its platforms' capacities, its clock and its store) and, at teardown, reads each
broker's state straight from its rows, not through the store's own queries: a database's with
`bench.capacity.committed`, the in-memory store's (`broker.store.memory`) from its committed
tables with `committed_in_memory` (bookings, and the holds of offers still OFFERED and
unexpired at the broker's own `now`, either way). It runs the pure audit
(`broker.scheduling.audit`) over them. Any platform committed beyond its capacity at any
instant fails the test, naming the platform, the resource, the instant and the amounts.

Recording wraps the constructor for the test's duration only (monkeypatch): the product has
no test hook. A database only stores opened without a service is not audited: nothing there
says what the platforms can hold; nor is a SQLite file the test removed. A test that
over-fills a platform on purpose (say, through raw SQL, to prove the audit finds it) carries
the marker `over_capacity`.

The api and contract suites turn the fixture on for every test (their `conftest.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bench.capacity import committed, overbooked
from broker.lifecycle import Phase
from broker.platforms.port import Platform
from broker.scheduling.intervals import Interval
from broker.scheduling.resources import Booking, BookingKind, PlatformSpec
from broker.service import BrokerService
from broker.store.memory import MemorySessionStore, MemoryTables
from broker.store.port import SessionStore
from broker.store.sql import SqlBrokerStore
from core.clock import Clock
from core.settings import BrokerSettings

MARKER = "over_capacity"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: over-fills a platform on purpose; no capacity audit after it"
    )


def committed_in_memory(tables: MemoryTables, now: datetime) -> list[Booking]:
    """What the in-memory store has promised at `now`, from its rows (as `committed` reads SQL).

    Every booking, and the hold of every offer still OFFERED and unexpired at `now`; holds
    carry their offer set, so that the audit counts the holds of one set by their maximum.
    """
    found = []
    for row in tables.bookings.values():
        session = tables.sessions.get(row.session_id)
        if session is None:
            continue
        live_hold = (
            session.phase is Phase.OFFERED and session.expires is not None and session.expires > now
        )
        if row.kind is not BookingKind.BOOKING and not live_hold:
            continue
        found.append(
            Booking(
                platform=row.platform,
                interval=Interval(row.slot_start, row.slot_end),
                resources=row.resources,
                kind=row.kind,
                group=session.offerset_id if row.kind is BookingKind.HOLD else None,
            )
        )
    return found


@dataclass(frozen=True)
class AuditedBroker:
    """What the audit needs of one broker: its platforms, its clock and its store."""

    specs: tuple[PlatformSpec, ...]
    clock: Clock
    store: SqlBrokerStore | MemorySessionStore

    @property
    def engine(self) -> Engine:
        """The database of a broker over the SQL store."""
        assert isinstance(self.store, SqlBrokerStore), "this broker keeps no database"
        return self.store.engine

    @property
    def gone(self) -> bool:
        """True when the database no longer exists: a SQLite file the test removed (as a command
        cleaning up after itself does) or a throwaway PostgreSQL database its fixture dropped
        before this audit's teardown. Nothing is promised there any more."""
        if isinstance(self.store, MemorySessionStore):
            return False
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            path = url.database or ""
            return path not in {"", ":memory:"} and not Path(path).exists()
        try:
            with self.engine.connect():
                return False
        except OperationalError as error:
            if "does not exist" in str(error):
                return True
            raise

    def commitments(self) -> list[Booking]:
        """What the broker has promised at its clock's `now`, read from its rows."""
        now = self.clock.now()
        if isinstance(self.store, MemorySessionStore):
            return committed_in_memory(self.store.tables(), now)
        return committed(self.engine, now)

    def problems(self) -> list[str]:
        """What this broker's store promises beyond some platform's capacity, in words."""
        if self.gone:
            return []
        return overbooked(self.commitments(), self.specs)


@pytest.fixture
def broker_capacity_audit(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[AuditedBroker]]:
    """Audit, after the test, every broker it constructed; yields the brokers recorded."""
    brokers: list[AuditedBroker] = []
    construct = BrokerService.__init__

    def recording(
        service: BrokerService,
        settings: BrokerSettings,
        clock: Clock,
        store: SessionStore,
        platforms: Mapping[str, Platform],
        **options: Any,
    ) -> None:
        construct(service, settings, clock, store, platforms, **options)
        if not isinstance(store, SqlBrokerStore | MemorySessionStore):
            return  # a store whose rows the audit cannot read (a test's own stand-in)
        specs = tuple(PlatformSpec.from_settings(platform) for platform in settings.platforms)
        brokers.append(AuditedBroker(specs=specs, clock=clock, store=store))

    monkeypatch.setattr(BrokerService, "__init__", recording)
    yield brokers
    if request.node.get_closest_marker(MARKER) is not None:
        return
    # Several brokers on one database (a restart) report alike: each problem once.
    problems = list(dict.fromkeys(p for broker in brokers for p in broker.problems()))
    if problems:
        pytest.fail("over capacity after the test:\n  " + "\n  ".join(problems), pytrace=False)
