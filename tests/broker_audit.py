"""The capacity audit after a test: no platform of any broker the test built is over-promised.

The fixture `broker_capacity_audit` records every `BrokerService` constructed while the test
runs (its platforms' capacities, its clock and its store's engine) and, at teardown, reads each
broker's database straight from its rows (`bench.capacity.committed`: bookings, and the holds
of offers still OFFERED and unexpired at the broker's own `now`) and runs the pure audit
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
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bench.capacity import committed, overbooked
from broker.platforms.port import Platform
from broker.scheduling.resources import PlatformSpec
from broker.service import BrokerService
from broker.store.port import SessionStore
from broker.store.sql import SqlBrokerStore
from core.clock import Clock
from core.settings import BrokerSettings

MARKER = "over_capacity"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: over-fills a platform on purpose; no capacity audit after it"
    )


@dataclass(frozen=True)
class AuditedBroker:
    """What the audit needs of one broker: its platforms, its clock and its database."""

    specs: tuple[PlatformSpec, ...]
    clock: Clock
    engine: Engine

    @property
    def gone(self) -> bool:
        """True when the database no longer exists: a SQLite file the test removed (as a command
        cleaning up after itself does) or a throwaway PostgreSQL database its fixture dropped
        before this audit's teardown. Nothing is promised there any more."""
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

    def problems(self) -> list[str]:
        """What this broker's database promises beyond some platform's capacity, in words."""
        if self.gone:
            return []
        return overbooked(committed(self.engine, self.clock.now()), self.specs)


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
        if not isinstance(store, SqlBrokerStore):
            return  # the audit reads database rows: a store without any has none to read
        specs = tuple(PlatformSpec.from_settings(platform) for platform in settings.platforms)
        brokers.append(AuditedBroker(specs=specs, clock=clock, engine=store.engine))

    monkeypatch.setattr(BrokerService, "__init__", recording)
    yield brokers
    if request.node.get_closest_marker(MARKER) is not None:
        return
    # Several brokers on one database (a restart) report alike: each problem once.
    problems = list(dict.fromkeys(p for broker in brokers for p in broker.problems()))
    if problems:
        pytest.fail("over capacity after the test:\n  " + "\n  ".join(problems), pytrace=False)
