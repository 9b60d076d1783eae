"""An accept costs a handful of statements, however many offers its set has.

Each statement is a round trip to the database while the accept holds its offer set's and
session's locks (PostgreSQL), so their number bounds how many accepts per second one offer set,
and the database, can take. Counted with SQLAlchemy's cursor events on SQLite, which runs the
same statements as PostgreSQL but for the row locks (two more there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from core.clock import ManualClock
from core.db import make_engine
from core.settings import BrokerSettings, Capacity, PlatformSettings
from tests.unit.broker.test_service_platforms import (
    ACCEPT,
    BASE,
    NOW,
    ScriptedPlatform,
    program_request,
)

MOST_STATEMENTS = 10


Counted = Callable[[int], tuple[BrokerService, list[str]]]


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[Counted]:
    engines: list[Engine] = []

    def make(max_offers: int) -> tuple[BrokerService, list[str]]:
        broker, statements, engine = _counted(tmp_path / f"{max_offers}.db", max_offers)
        engines.append(engine)
        return broker, statements

    yield make
    for engine in engines:
        engine.dispose()


def _counted(path: Path, max_offers: int) -> tuple[BrokerService, list[str], Engine]:
    names = [f"p{i}" for i in range(4)]
    settings = BrokerSettings(
        platforms=[
            PlatformSettings(
                name=name,
                capacity=Capacity(cores=16, memory=64),
                executables=["python-program"],
                preparation=timedelta(minutes=1),
            )
            for name in names
        ],
        max_offers=max_offers,
    )
    engine = make_engine(f"sqlite:///{path}")
    store = SqlBrokerStore(engine)
    store.migrate()
    broker = BrokerService(
        settings, ManualClock(NOW), store, {name: ScriptedPlatform(name) for name in names}
    )
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(*args: object) -> None:
        statements.append(str(args[2]).split()[0])

    return broker, statements, engine


def _accept_statements(broker: BrokerService, statements: list[str], offers: int) -> list[str]:
    answer = broker.request_offers(program_request(), BASE)
    assert len(answer.offers) == offers
    statements.clear()
    uuid = answer.offers[0].meta.uuid  # type: ignore[union-attr]
    broker.update_session(uuid, ACCEPT)  # type: ignore[arg-type]
    return [s for s in statements if s not in ("BEGIN", "COMMIT", "ROLLBACK")]


def test_an_accept_of_one_of_four_offers_costs_a_handful_of_statements(counted):
    broker, statements = counted(4)
    made = _accept_statements(broker, statements, offers=4)
    assert len(made) <= MOST_STATEMENTS, made


def test_rejecting_more_siblings_costs_no_more_statements(counted):
    with_three = _accept_statements(*counted(4), offers=4)
    with_one = _accept_statements(*counted(2), offers=2)
    assert len(with_three) == len(with_one)
