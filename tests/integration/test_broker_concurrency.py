"""The broker never promises capacity it does not have, under concurrent requests and accepts.

Every caller here is a `BrokerService` over an engine of its own (its own connections), as
separate voexec processes sharing one database would be; they race on a barrier. The checks
read `broker_booking` straight from the database and sweep every interval endpoint, so they do
not trust the store's own queries. Runs on a SQLite file and on PostgreSQL (`postgres`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from broker import codec, model
from broker.codec import Media
from broker.platforms.simulated import SimulatedPlatform
from broker.service import BrokerService, IllegalUpdate
from broker.store_sql import SqlBrokerStore, to_micros
from core.clock import ManualClock
from core.db import make_engine
from core.settings import BrokerSettings, settings_from_mapping
from tests.integration.conftest import fresh_postgres_database, postgres_server_url

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
CALLERS = 20
CORES, MEMORY = 8, 32
SESSION_CORES, SESSION_MEMORY = 2, 8
FITS_AT_ONCE = min(CORES // SESSION_CORES, MEMORY // SESSION_MEMORY)
ACCEPT = model.EnumValueUpdate(path="phase", value="ACCEPTED")
T = TypeVar("T")
BASE_URL = "http://testserver.local/broker"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh broker database: a SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    with fresh_postgres_database(postgres_server_url()) as url:
        yield url


def broker_settings() -> BrokerSettings:
    """One platform; one offer per request, so that each offer set holds one session's worth."""
    platform = {
        "name": "sim",
        "capacity": {"cores": CORES, "memory": MEMORY},
        "executables": ["docker-container"],
        "preparation": "PT1M",
    }
    settings = settings_from_mapping(
        {"vocabularies": {"offline": True}, "broker": {"platforms": [platform], "max_offers": 1}}
    )
    return settings.broker


def request_for(start_range: str) -> model.ExecutionRequest:
    """A one-hour request for exactly 2 cores and 8 GiB, starting within `start_range`."""
    document = {
        "executable": {
            "kind": model.KINDS + "executable/docker-container.yaml",
            "meta": {"name": "job"},
            "image": {"locations": ["ghcr.io/example/job:1.0"]},
        },
        "compute": {
            "kind": model.KINDS + "compute/simple-compute-resource.yaml",
            "cores": {"min": SESSION_CORES, "max": SESSION_CORES},
            "memory": {"min": SESSION_MEMORY, "max": SESSION_MEMORY},
        },
        "schedule": {"requested": {"start": start_range, "duration": "PT1H"}},
    }
    return codec.decode_request(codec.encode(document, Media.JSON), Media.JSON).value


@dataclass
class Process:
    """One broker "process": its own engine and service over the shared database."""

    engine: Engine
    broker: BrokerService


@pytest.fixture
def processes(database_url: str) -> Iterator[Callable[[int], list[Process]]]:
    """Builds `n` independent brokers over the database (migrated once, before any of them)."""
    settings = broker_settings()
    engines: list[Engine] = []

    def build(n: int) -> list[Process]:
        built = []
        for index in range(n):
            engine = make_engine(database_url)
            engines.append(engine)
            store = SqlBrokerStore(engine)
            if not engines[:-1]:
                store.migrate()
            platforms = {p.name: SimulatedPlatform(p) for p in settings.platforms}
            broker = BrokerService(
                settings, ManualClock(NOW), store, platforms, worker_id=f"worker-{index}"
            )
            built.append(Process(engine, broker))
        return built

    yield build
    for engine in engines:
        engine.dispose()


def race(calls: list[Callable[[], T]]) -> list[T | Exception]:
    """Run every call in its own thread, all released at once; results (or errors) in order."""
    barrier = threading.Barrier(len(calls))
    results: list[T | Exception] = [RuntimeError("did not run")] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # noqa: BLE001 - collected and judged by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a caller hung"
    return results


def committed(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """Every booking, and every hold of an offer still OFFERED and unexpired, read raw."""
    query = text(
        "SELECT b.session_id, b.slot_start, b.slot_end, b.cores, b.memory, b.kind"
        " FROM broker_booking b JOIN broker_session s ON s.id = b.session_id"
        " WHERE b.platform = 'sim'"
        " AND (b.kind = 'booking' OR (s.phase = 'OFFERED' AND s.expires > :now))"
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query, {"now": to_micros(now)})]


def peak_use(rows: list[dict[str, Any]]) -> tuple[int, float]:
    """The most cores and the most memory committed at any one instant (over every endpoint).

    Use is constant between endpoints, and slots are half-open, so looking at each endpoint
    (what is committed from it on) sees every level the use ever takes.
    """
    peak_cores, peak_memory = 0, 0.0
    for instant in sorted({row["slot_start"] for row in rows} | {row["slot_end"] for row in rows}):
        covering = [row for row in rows if row["slot_start"] <= instant < row["slot_end"]]
        peak_cores = max(peak_cores, sum(row["cores"] for row in covering))
        peak_memory = max(peak_memory, sum(row["memory"] for row in covering))
    return peak_cores, peak_memory


def assert_within_capacity(engine: Engine) -> list[dict[str, Any]]:
    rows = committed(engine, NOW)
    cores, memory = peak_use(rows)
    assert cores <= CORES, f"{cores} cores committed at once on an {CORES}-core platform"
    assert memory <= MEMORY, f"{memory} GiB committed at once on a {MEMORY} GiB platform"
    return rows


def test_concurrent_requests_then_accepts_book_exactly_the_capacity(
    processes: Callable[[int], list[Process]],
) -> None:
    brokers = processes(CALLERS)
    # Any one-hour slot starting in this half hour overlaps 09:30-10:00, so at most
    # FITS_AT_ONCE of them can ever be promised, whoever asks first.
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z")
    answers = race([partial(p.broker.request_offers, request, BASE_URL) for p in brokers])
    assert not [a for a in answers if isinstance(a, Exception)], answers
    offer_sets = [a for a in answers if isinstance(a, model.OfferSetResponse)]
    offers = [offer for answer in offer_sets for offer in answer.offers]
    refused = [answer for answer in offer_sets if answer.result == "NO"]
    print(f"requests: attempted {CALLERS}, offered {len(offers)}, refused {len(refused)}")
    # Holds count against capacity: the platform is filled by offers and never beyond it.
    assert len(offers) == FITS_AT_ONCE
    assert len(refused) == CALLERS - FITS_AT_ONCE
    for answer in refused:
        assert answer.meta is not None
        assert any("sim: no free" in (m.message or "") for m in answer.meta.messages)
    assert len(assert_within_capacity(brokers[0].engine)) == FITS_AT_ONCE

    # Every caller accepts one of the offers; each offer is raced by several callers.
    uuids = [offer.meta.uuid for offer in offers if offer.meta and offer.meta.uuid]
    targets = [uuids[index % len(uuids)] for index in range(CALLERS)]
    outcomes = race(
        [
            partial(p.broker.update_session, uuid, ACCEPT)
            for p, uuid in zip(brokers, targets, strict=True)
        ]
    )
    succeeded = [o for o in outcomes if not isinstance(o, Exception)]
    conflicts = [o for o in outcomes if isinstance(o, IllegalUpdate)]
    print(f"accepts: attempted {CALLERS}, succeeded {len(succeeded)}, 409 {len(conflicts)}")
    assert len(succeeded) == FITS_AT_ONCE, outcomes
    assert len(conflicts) == CALLERS - FITS_AT_ONCE, outcomes
    assert all(c.phase is model.SessionPhase.ACCEPTED for c in conflicts)
    assert {s.meta.uuid for s in succeeded if s.meta} == set(uuids)

    rows = assert_within_capacity(brokers[0].engine)
    assert sorted(row["session_id"] for row in rows) == sorted(str(u) for u in uuids)
    assert {row["kind"] for row in rows} == {"booking"}


def test_two_processes_making_offers_at_once_never_hold_beyond_capacity(
    processes: Callable[[int], list[Process]],
) -> None:
    first, second = processes(2)
    # Five disjoint hours of FITS_AT_ONCE sessions each fit in this start range.
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T13:00:00Z")
    per_process = CALLERS // 2
    answers = race(
        [partial(p.broker.request_offers, request, BASE_URL) for p in [first, second] * per_process]
    )
    assert not [a for a in answers if isinstance(a, Exception)], answers
    offered = sum(len(a.offers) for a in answers if isinstance(a, model.OfferSetResponse))
    print(f"two processes: attempted {CALLERS}, offered {offered}")
    rows = assert_within_capacity(first.engine)
    assert len(rows) == offered
    # Serialised holds pack the range instead of refusing: every request found a slot.
    assert offered == CALLERS
