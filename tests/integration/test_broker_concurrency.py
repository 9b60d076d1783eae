"""The broker never promises capacity it does not have, under concurrent requests and accepts.

Every caller here is a `BrokerService` over an engine of its own (its own connections), as
separate voexec processes sharing one database would be; they race on a barrier. A broker
computes offers from bookings it read without locks, then checks and stores them under the
locks of their platforms: the races fill a platform from many processes at once, and
`StoreWithInterloper` makes another process take the room at exactly the worst moment, between
the read and the write. The checks read `broker_booking` straight from the database
(`bench.capacity.committed`) and sweep every interval endpoint (`broker.scheduling.audit`), so
they do not trust the store's own queries. Runs on a SQLite file and on PostgreSQL (`postgres`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.capacity import committed, overbooked
from broker import model
from broker.model import codec
from broker.model.codec import Media
from broker.platforms.simulated import SimulatedPlatform
from broker.scheduling.resources import Booking, PlatformSpec
from broker.service import AcceptRefused, BrokerService, DirectExecutionFailed, IllegalUpdate
from broker.store.sql import SqlBrokerStore, StoreTransaction
from core.clock import ManualClock
from core.db import make_engine
from core.settings import BrokerSettings, settings_from_mapping
from tests.integration.conftest import fresh_postgres_database, postgres_server_url
from tests.threads import race

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
CALLERS = 20
CORES, MEMORY = 8, 32
SESSION_CORES, SESSION_MEMORY = 2, 8
FITS_AT_ONCE = min(CORES // SESSION_CORES, MEMORY // SESSION_MEMORY)
ACCEPT = model.EnumValueUpdate(path="phase", value="ACCEPTED")
BASE_URL = "http://testserver.local/broker"
SMALL = {"name": "sim", "cores": CORES, "memory": MEMORY}
"""The platform every test fights over: FITS_AT_ONCE sessions at a time."""
BIG = {"name": "xbig", "cores": 5 * CORES, "memory": 5 * MEMORY}
"""Listed after `sim` (it loses ties) and named after it (it is locked after it)."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh broker database: a SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    with fresh_postgres_database(postgres_server_url()) as url:
        yield url


def broker_settings(*platforms: dict[str, Any], max_offers: int = 1) -> BrokerSettings:
    """These platforms (default: `SMALL`); one offer per request unless told otherwise."""
    configured = [
        {
            "name": platform["name"],
            "capacity": {"cores": platform["cores"], "memory": platform["memory"]},
            "executables": ["docker-container"],
            "preparation": "PT1M",
        }
        for platform in platforms or (SMALL,)
    ]
    settings = settings_from_mapping(
        {
            "vocabularies": {"offline": True},
            "broker": {"platforms": configured, "max_offers": max_offers},
        }
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


class StoreWithInterloper(SqlBrokerStore):
    """A store after whose first read `meanwhile` runs: another process acting in between.

    The broker reads the bookings it computes offers from in a read transaction, without
    locks, and stores the offers in a write transaction that follows. `meanwhile` runs between
    the two, as a request in another process could, every time.
    """

    def __init__(self, engine: Engine, meanwhile: Callable[[], object]) -> None:
        super().__init__(engine)
        self._meanwhile: Callable[[], object] | None = meanwhile

    @contextmanager
    def read(self) -> Iterator[StoreTransaction]:
        with super().read() as tx:
            yield tx
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()


@dataclass
class Process:
    """One broker "process": its own engine and service over the shared database."""

    engine: Engine
    broker: BrokerService
    clock: ManualClock


Build = Callable[..., list[Process]]


@pytest.fixture
def processes(database_url: str) -> Iterator[Build]:
    """Builds `n` independent brokers over the database (migrated once, before any of them).

    `build(n, settings=None, meanwhile=None)`: with `meanwhile`, each broker's store runs it
    after the broker's first read (`StoreWithInterloper`).
    """
    engines: list[Engine] = []

    def build(
        n: int,
        settings: BrokerSettings | None = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> list[Process]:
        settings = settings or broker_settings()
        built = []
        for index in range(n):
            engine = make_engine(database_url)
            engines.append(engine)
            store = (
                SqlBrokerStore(engine)
                if meanwhile is None
                else StoreWithInterloper(engine, meanwhile)
            )
            if not engines[:-1]:
                store.migrate()
            platforms = {p.name: SimulatedPlatform(p) for p in settings.platforms}
            clock = ManualClock(NOW)
            broker = BrokerService(settings, clock, store, platforms, worker_id=f"worker-{index}")
            built.append(Process(engine, broker, clock))
        return built

    yield build
    for engine in engines:
        engine.dispose()


def assert_within_capacity(engine: Engine, settings: BrokerSettings | None = None) -> list[Booking]:
    """Every commitment read raw from the database, checked against every platform's capacity."""
    specs = [PlatformSpec.from_settings(p) for p in (settings or broker_settings()).platforms]
    commitments = committed(engine, NOW)
    assert overbooked(commitments, specs) == []
    return commitments


def stored_bookings(engine: Engine) -> dict[str, str]:
    """Every row of `broker_booking`, live or not: session -> `hold` or `booking`."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT session_id, kind FROM broker_booking"))
        return {row.session_id: row.kind for row in rows}


def offers_of(answers: list[Any]) -> list[model.ScheduledExecutionSession]:
    """The offers of every offer set answered; fails on any exception among the answers."""
    assert not [a for a in answers if isinstance(a, Exception)], answers
    return [offer for answer in answers for offer in answer.offers]


def start_of(offer: Any) -> datetime:
    """When an offered session starts."""
    start: datetime = offer.schedule.available.start.start
    return start


def platform_of(offer: Any) -> str:
    """The platform an offer (or a session booked directly) is on, from its message."""
    messages = offer.meta.messages if offer.meta else []
    [said] = [m for m in messages if m.kind == "urn:voexec:offer-platform"]
    return str(said.values["platform"])


def test_concurrent_requests_then_accepts_book_exactly_the_capacity(processes: Build) -> None:
    brokers = processes(CALLERS)
    # Any one-hour slot starting in this half hour overlaps 09:30-10:00, so at most
    # FITS_AT_ONCE of them can ever be promised, whoever asks first.
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z")
    answers = race([partial(p.broker.request_offers, request, BASE_URL) for p in brokers])
    offers = offers_of(answers)
    refused = [a for a in answers if isinstance(a, model.OfferSetResponse) and a.result == "NO"]
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

    assert len(assert_within_capacity(brokers[0].engine)) == FITS_AT_ONCE
    assert stored_bookings(brokers[0].engine) == dict.fromkeys(map(str, uuids), "booking")


def test_two_processes_making_offers_at_once_never_hold_beyond_capacity(processes: Build) -> None:
    first, second = processes(2)
    # Five disjoint hours of FITS_AT_ONCE sessions each fit in this start range.
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T13:00:00Z")
    per_process = CALLERS // 2
    answers = race(
        [partial(p.broker.request_offers, request, BASE_URL) for p in [first, second] * per_process]
    )
    offered = len(offers_of(answers))
    print(f"two processes: attempted {CALLERS}, offered {offered}")
    assert len(assert_within_capacity(first.engine)) == offered
    # Holds pack the range instead of refusing: every request found a slot, also those
    # whose first choice another request had taken by the time they stored it.
    assert offered == CALLERS


def test_racing_offers_and_direct_bookings_on_a_nearly_full_platform_never_exceed_it(
    processes: Build,
) -> None:
    brokers = processes(CALLERS)
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z")
    for _ in range(FITS_AT_ONCE - 1):
        brokers[0].broker.direct(request, BASE_URL)  # booked: room for one more session
    calls: list[Callable[[], object]] = [
        partial(p.broker.request_offers if index % 2 else p.broker.direct, request, BASE_URL)
        for index, p in enumerate(brokers)
    ]
    outcomes = race(calls)
    unexpected = [
        o for o in outcomes if isinstance(o, Exception) and not isinstance(o, DirectExecutionFailed)
    ]
    assert not unexpected, unexpected
    offered = len(offers_of([o for o in outcomes if isinstance(o, model.OfferSetResponse)]))
    booked = [o for o in outcomes if isinstance(o, model.ScheduledExecutionSession)]
    print(f"nearly full: attempted {CALLERS}, offered {offered}, booked directly {len(booked)}")
    assert offered + len(booked) == 1
    assert len(assert_within_capacity(brokers[0].engine)) == FITS_AT_ONCE


def test_racing_requests_spill_over_to_the_next_platform_while_it_has_room(
    processes: Build,
) -> None:
    settings = broker_settings(SMALL, BIG)
    brokers = processes(CALLERS, settings)
    # `sim` wins every tie, so every request first computes an offer there; once it is full,
    # the requests that lose it must be offered `xbig` (a platform they had not locked).
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z")
    offers = offers_of(race([partial(p.broker.request_offers, request, BASE_URL) for p in brokers]))
    on_small = [offer for offer in offers if platform_of(offer) == "sim"]
    print(f"two platforms: attempted {CALLERS}, offered {len(offers)}, on sim {len(on_small)}")
    assert len(offers) == CALLERS
    assert len(on_small) <= FITS_AT_ONCE
    assert len(assert_within_capacity(brokers[0].engine, settings)) == CALLERS


@pytest.mark.parametrize(
    ("start_range", "taken_meanwhile", "expected"),
    [
        # The interloper fills 09:00-10:00: the next free start is 10:00.
        ("2026-09-01T09:00:00Z/2026-09-01T11:00:00Z", FITS_AT_ONCE, "10:00 on sim"),
        # ... and there is no later start in the range: NO, for capacity.
        ("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z", FITS_AT_ONCE, "NO"),
        # Some room is left at 09:00: the offer computed from the stale view still fits.
        ("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z", FITS_AT_ONCE - 1, "09:00 on sim"),
    ],
)
def test_an_offer_computed_before_another_process_took_the_room_is_checked_under_the_lock(
    processes: Build, start_range: str, taken_meanwhile: int, expected: str
) -> None:
    request = request_for(start_range)
    [other] = processes(1)

    def meanwhile() -> None:
        for _ in range(taken_meanwhile):
            assert other.broker.request_offers(request, BASE_URL).result == "YES"

    [late] = processes(1, meanwhile=meanwhile)
    answer = late.broker.request_offers(request, BASE_URL)
    said = [f"{start_of(offer):%H:%M} on {platform_of(offer)}" for offer in answer.offers]
    assert (said[0] if said else answer.result) == expected
    if expected == "NO":
        assert answer.meta is not None
        assert any("sim: no free" in (m.message or "") for m in answer.meta.messages)
    assert len(assert_within_capacity(late.engine)) == taken_meanwhile + len(said)


def test_an_offer_whose_platform_filled_up_meanwhile_goes_to_another_platform(
    processes: Build,
) -> None:
    settings = broker_settings(SMALL, BIG)
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z")
    [other] = processes(1, settings)

    held: list[str] = []

    def meanwhile() -> None:
        # Ties between the two platforms take turns, so the other process asks until "sim",
        # which the late process's stale view still shows free, is full.
        while held.count("sim") < FITS_AT_ONCE:
            assert len(held) < 4 * FITS_AT_ONCE, held
            [offer] = other.broker.request_offers(request, BASE_URL).offers
            held.append(platform_of(offer))

    [late] = processes(1, settings, meanwhile=meanwhile)
    [offer] = late.broker.request_offers(request, BASE_URL).offers
    assert platform_of(offer) == "xbig"
    assert len(assert_within_capacity(late.engine, settings)) == len(held) + 1


def test_accepting_different_offers_of_one_set_at_once_accepts_exactly_one(
    processes: Build,
) -> None:
    settings = broker_settings(SMALL, BIG, max_offers=4)
    brokers = processes(8, settings)
    request = request_for("2026-09-01T09:00:00Z/2026-09-01T11:00:00Z")
    offers = brokers[0].broker.request_offers(request, BASE_URL).offers
    uuids = [offer.meta.uuid for offer in offers if offer.meta and offer.meta.uuid]
    assert len(uuids) == 4
    # Accepting one offer rejects the others: accepts of different offers of one set must
    # take turns, not wait for each other's sessions (a deadlock on PostgreSQL).
    outcomes = race(
        [
            partial(p.broker.update_session, uuids[index % len(uuids)], ACCEPT)
            for index, p in enumerate(brokers)
        ]
    )
    succeeded = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, IllegalUpdate)]
    assert len(succeeded) == 1, outcomes
    assert len(refused) == len(brokers) - 1, outcomes
    [winner] = [s.meta.uuid for s in succeeded if s.meta]
    for refusal in refused:
        lost_race = refusal.session == winner
        phase = model.SessionPhase.ACCEPTED if lost_race else model.SessionPhase.REJECTED
        assert refusal.phase is phase
    assert stored_bookings(brokers[0].engine) == {str(winner): "booking"}
    assert_within_capacity(brokers[0].engine, settings)


def test_eight_racing_requesters_all_start_now_as_their_sets_are_alternatives(
    processes: Build,
) -> None:
    sixteen = {"name": "sixteen", "cores": 16, "memory": 64}
    settings = broker_settings(sixteen, max_offers=4)
    brokers = processes(9, settings)
    request = request_for("2026-09-01T08:00:00Z/2026-09-02T08:00:00Z")
    soonest = datetime(2026, 9, 1, 8, 1, tzinfo=UTC)  # now + the platform's preparation
    # Eight sets of alternatives, each holding 2 cores: the sixteen cores fill exactly.
    answers = race([partial(p.broker.request_offers, request, BASE_URL) for p in brokers[:8]])
    sets = [answer for answer in answers if isinstance(answer, model.OfferSetResponse)]
    assert len(sets) == 8, answers
    assert all(min(start_of(offer) for offer in s.offers) == soonest for s in sets), [
        [start_of(offer) for offer in s.offers] for s in sets
    ]
    assert all(len(s.offers) > 1 for s in sets)
    assert_within_capacity(brokers[0].engine, settings)
    ninth = brokers[8].broker.request_offers(request, BASE_URL)
    assert ninth.result == "YES"
    assert min(start_of(offer) for offer in ninth.offers) > soonest
    # Every process accepts an offer at once, several of them racing for the same sets.
    offers = [offer for s in [*sets, ninth] for offer in s.offers]
    uuids = [offer.meta.uuid for offer in offers if offer.meta and offer.meta.uuid]
    outcomes = race(
        [
            partial(p.broker.update_session, uuids[(7 * i) % len(uuids)], ACCEPT)
            for i, p in enumerate(brokers)
        ]
        + [
            partial(p.broker.update_session, uuids[(5 * i + 1) % len(uuids)], ACCEPT)
            for i, p in enumerate(brokers)
        ]
    )
    unexpected = [
        o for o in outcomes if isinstance(o, Exception) and not isinstance(o, IllegalUpdate)
    ]
    assert not unexpected, unexpected
    accepted = {
        o.meta.uuid for o in outcomes if isinstance(o, model.ScheduledExecutionSession) and o.meta
    }
    print(f"eight sets and a ninth: {len(accepted)} accepted by 18 racing accepts")
    assert accepted
    commitments = assert_within_capacity(brokers[0].engine, settings)
    assert sum(1 for c in commitments if c.kind.value == "booking") == len(accepted)


def test_racing_late_accepts_move_or_are_refused_and_never_exceed_capacity(
    processes: Build,
) -> None:
    sixteen = {"name": "sixteen", "cores": 16, "memory": 64}
    settings = broker_settings(sixteen, max_offers=1)
    brokers = processes(12, settings)
    # Eight sessions fill the platform from 08:01; they may start until 08:10 at the latest.
    request = request_for("2026-09-01T08:00:00Z/2026-09-01T08:10:00Z")
    sets = [brokers[0].broker.request_offers(request, BASE_URL) for _ in range(8)]
    assert [s.result for s in sets] == ["YES"] * 8
    # Someone books half the platform from 09:02: the moved hours (08:04-09:04) overlap it,
    # so only four of the eight sessions can move; the range allows no start after 08:10.
    blocker = request_for("2026-09-01T09:02:00Z")
    assert blocker.compute is not None
    blocker_document = msgspec.structs.replace(
        blocker,
        compute=msgspec.structs.replace(blocker.compute, cores=model.MinMaxCount(min=8, max=8)),
    )
    brokers[0].broker.direct(blocker_document, BASE_URL)
    for process in brokers:
        process.clock.set(datetime(2026, 9, 1, 8, 3, tzinfo=UTC))  # every offer is late now
    uuids = [s.offers[0].meta.uuid for s in sets if s.offers[0].meta and s.offers[0].meta.uuid]
    outcomes = race(
        [
            partial(p.broker.update_session, uuids[i % len(uuids)], ACCEPT)
            for i, p in enumerate(brokers)
        ]
    )
    moved = [o for o in outcomes if isinstance(o, model.ScheduledExecutionSession)]
    refused = [o for o in outcomes if isinstance(o, AcceptRefused)]
    repeated = [o for o in outcomes if isinstance(o, IllegalUpdate)]
    unexpected = [o for o in outcomes if isinstance(o, Exception) and o not in refused + repeated]
    print(f"late accepts: moved {len(moved)}, refused {len(refused)}, repeated {len(repeated)}")
    assert not unexpected, unexpected
    # Moved to 08:04 (now + preparation) with the whole hour, or refused: never shortened.
    assert all(start_of(session) == datetime(2026, 9, 1, 8, 4, tzinfo=UTC) for session in moved)
    assert len({session.meta.uuid for session in moved if session.meta}) == len(moved) == 4
    left = [uuid for uuid in uuids if uuid not in {s.meta.uuid for s in moved if s.meta}]
    assert len(refused) >= len(left) == 4  # a refused offer stays open: others may try too
    assert {brokers[0].broker.get_session(uuid).phase for uuid in left} == {
        model.SessionPhase.OFFERED
    }
    assert all("would run shorter than offered" in str(refusal) for refusal in refused)
    assert_within_capacity(brokers[0].engine, settings)
