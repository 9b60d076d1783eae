"""One contract suite for the broker's store, run over every adapter of the port.

What `BrokerService` relies on: holds and bookings keep their resources and intervals and count
only while they are live; an offer set and its sessions come back exactly as stored; the work
queue hands each due event to one worker, in the order the events fell due, and never to a
second worker while the first one's lease runs; a failed transaction leaves nothing behind; and
several stores (processes) on one database see each other's commits and can start together.

Every case runs over SQLite (a file), PostgreSQL (when `VOEXEC_TEST_POSTGRES_URL` names a
server, `make services`; each test in a fresh database; skipped otherwise, a failure in CI) and
the in-memory fake (`broker.store.memory`, where "several stores on one database" are threads
sharing the one store). What a case checks beyond the port's answers (the platforms stored, a
session's slot) it reads through `Inspector`, one per adapter: straight from the rows. The cases
that are SQL only say so in their name's section: migrations, and PostgreSQL's row locks.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from broker import model
from broker.lifecycle import (
    OfferExpired,
    Phase,
    PlatformCheckDue,
    PreparationDue,
    SessionState,
    StartReached,
    Transition,
    WorkQueued,
)
from broker.model import codec
from broker.model.codec import Media
from broker.platforms.simulated import SimulatedPlatform
from broker.scheduling.intervals import Interval, from_micros
from broker.scheduling.resources import Booking, BookingKind, GpuShare, Resources
from broker.service import BrokerService, IllegalUpdate
from broker.store.memory import DuplicateKey, MemorySessionStore
from broker.store.port import SessionStore
from broker.store.sql import VERSION_TABLE, SessionRecord, SqlBrokerStore, StoreTransaction
from core.clock import ManualClock
from core.db import make_engine
from tests.broker_audit import AuditedBroker
from tests.integration import test_broker_concurrency as concurrency
from tests.integration.conftest import fresh_postgres_database, postgres_server_url
from tests.threads import race

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)
LEASE = timedelta(minutes=1)
RACERS = 8

AnyStore = SqlBrokerStore | MemorySessionStore
"""The adapters under test (both also answer the reads tests use beyond the port: `take`,
`pending`, `expired_offers`)."""

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("memory", id="memory"),
]
SQL_DATABASES = BACKENDS[:2]


def _implements_the_port(store: MemorySessionStore) -> SessionStore:
    """What mypy checks for the fake as for the SQL store (never called)."""
    return store


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database (a SQLite file, or a new PostgreSQL database), or "memory"."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
    elif request.param == "memory":
        yield "memory"
    else:
        with fresh_postgres_database(postgres_server_url(), prefix="voexec_broker") as url:
            yield url


@pytest.fixture(params=SQL_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQL database, for the cases that are about SQL itself (migrations)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    with fresh_postgres_database(postgres_server_url(), prefix="voexec_broker") as url:
        yield url


@pytest.fixture
def open_store(backend: str) -> Iterator[Callable[[], AnyStore]]:
    """Opens stores on one database, each over an engine of its own (as a process would).

    In memory there is one store for the test: every "process" shares it, as processes share
    one database.
    """
    engines: list[Engine] = []
    memory = MemorySessionStore()

    def open_one() -> AnyStore:
        if backend == "memory":
            return memory
        engine = make_engine(backend)
        engines.append(engine)
        return SqlBrokerStore(engine)

    yield open_one
    for engine in engines:
        engine.dispose()


def migrate(store: AnyStore) -> None:
    """Bring a SQL store's tables to the newest revision (the fake has no schema)."""
    if isinstance(store, SqlBrokerStore):
        store.migrate()


@pytest.fixture
def store(open_store: Callable[[], AnyStore]) -> AnyStore:
    """A migrated store with the platforms `small` and `gpu`."""
    opened = open_store()
    migrate(opened)
    with opened.write() as tx:
        tx.ensure_platforms(["small", "gpu"])
    return opened


@dataclass(frozen=True)
class Inspector:
    """What a case checks beyond the port's answers, read from the adapter's own rows."""

    store: AnyStore

    def platforms(self) -> list[str]:
        """The names of the platform rows, in order."""
        if isinstance(self.store, MemorySessionStore):
            return sorted(self.store.tables().platforms)
        with self.store.engine.connect() as connection:
            names = connection.execute(text("SELECT name FROM broker_platform ORDER BY name"))
            return list(names.scalars())

    def slot(self, session_id: str) -> tuple[datetime, datetime]:
        """The slot stored with the session itself (not its hold), as aware UTC instants."""
        if isinstance(self.store, MemorySessionStore):
            row = self.store.tables().sessions[session_id]
            return row.slot_start, row.slot_end
        with self.store.engine.connect() as connection:
            found = connection.execute(
                text("SELECT slot_start, slot_end FROM broker_session WHERE id = :id"),
                {"id": session_id},
            ).one()
        return from_micros(found.slot_start), from_micros(found.slot_end)

    @property
    def duplicate(self) -> type[Exception]:
        """What a write storing a key twice raises."""
        return DuplicateKey if isinstance(self.store, MemorySessionStore) else IntegrityError


# ------------------------------------------------------------------------- test data
def request_parts() -> model.ExecutionRequest:
    """The documented Docker request: an executable, compute with a volume, a data resource."""
    body = (ROOT / "docs" / "examples" / "request-docker.yaml").read_bytes()
    return codec.decode_request(body, Media.YAML).value


def session_document(
    session_id: str, phase: model.SessionPhase, *, expires: datetime | None
) -> model.ScheduledExecutionSession:
    """A session document using most of the wire model: components, schedule, messages, options."""
    request = request_parts()
    return model.ScheduledExecutionSession(
        meta=model.ComponentMetadata(
            uuid=UUID(session_id),
            name="checksum-job-offer-1",
            url=f"http://broker.example.org/broker/sessions/{session_id}",
            created=NOW,
            modified=NOW,
            messages=[
                model.message_item(
                    "urn:voexec:offer-platform",
                    "Offered on platform {platform} ({strategy})",
                    time=NOW,
                    platform="small",
                    strategy="earliest",
                )
            ],
            options=[
                model.EnumValueOption(
                    path="phase",
                    values=[model.SessionPhase.ACCEPTED, model.SessionPhase.REJECTED],
                )
            ],
        ),
        phase=phase,
        expires=expires,
        executable=request.executable,
        compute=request.compute,
        data=request.data,
        schedule=model.ScheduledExecutionSchedule(
            available=model.LifecycleStartDurationInterval(
                start=model.Interval(NOW + HOUR, NOW + HOUR), duration=HOUR
            )
        ),
    )


def session_id(number: int) -> str:
    return str(UUID(int=number))


def record(
    number: int,
    *,
    offerset: str | None = None,
    platform: str = "small",
    phase: Phase = Phase.OFFERED,
    expires: datetime | None = NOW + timedelta(minutes=5),
    start: datetime = NOW + HOUR,
    resources: Resources | None = None,
) -> SessionRecord:
    """A session as the service stores it, in `phase`, holding `resources` from `start`."""
    identifier = session_id(number)
    state = SessionState(
        session_id=identifier,
        phase=phase,
        start=start,
        end=start + HOUR,
        preparation=timedelta(minutes=1),
        expires=expires,
        history=(Transition(at=NOW, event="OffersMade", source=Phase.INITIAL, target=phase),),
    )
    return SessionRecord(
        id=identifier,
        offerset_id=offerset,
        platform=platform,
        resources=resources or Resources(cores=2, memory=4.0),
        state=state,
        document=session_document(
            identifier, model.SessionPhase(phase.value), expires=expires if offerset else None
        ),
    )


def booking_of(stored: SessionRecord, kind: BookingKind = BookingKind.HOLD) -> Booking:
    """The session's hold (of its offer set, as the store reads it back) or booking."""
    return Booking(
        platform=stored.platform,
        interval=Interval(stored.state.start, stored.state.end),
        resources=stored.resources,
        kind=kind,
        group=stored.offerset_id if kind is BookingKind.HOLD else None,
    )


def add(
    store: AnyStore,
    stored: SessionRecord,
    kind: BookingKind | None = BookingKind.HOLD,
    *,
    position: int = 0,
) -> Booking | None:
    """Store a session (and its hold or booking, unless `kind` is None) as the service does."""
    booking = booking_of(stored, kind) if kind else None
    with store.write() as tx:
        tx.add_session(stored, position=position, start=stored.state.start, end=stored.state.end)
        if booking:
            tx.add_booking(stored.id, booking)
    return booking


def with_phase(stored: SessionRecord, phase: Phase) -> SessionRecord:
    """The record after a step to `phase` (state and document both change)."""
    state = msgspec.structs.replace(
        stored.state,
        phase=phase,
        history=(
            *stored.state.history,
            Transition(at=NOW, event="Step", source=stored.state.phase, target=phase),
        ),
    )
    document = msgspec.structs.replace(stored.document, phase=model.SessionPhase(phase.value))
    return SessionRecord(
        stored.id, stored.offerset_id, stored.platform, stored.resources, state, document
    )


def live(store: AnyStore, at: datetime, platforms: list[str] | None = None) -> list[Booking]:
    with store.read() as tx:
        return sorted(
            tx.live_bookings(at, ["small", "gpu"] if platforms is None else platforms),
            key=lambda b: (b.platform, b.interval.start),
        )


# ------------------------------------------------------------------------- migrations, platforms
# The SQL store's own: its Alembic migrations (the fake has no schema to migrate).
def test_migrations_are_idempotent_and_use_their_own_version_table(database_url: str):
    store = SqlBrokerStore(make_engine(database_url))
    store.migrate()
    store.migrate()
    tables = set(inspect(store.engine).get_table_names())
    expected = {"broker_platform", "broker_offerset", "broker_session", "broker_booking"}
    assert expected | {"broker_work", VERSION_TABLE} <= tables
    with store.engine.connect() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar_one() == 1
    store.engine.dispose()


def test_ensure_platforms_adds_only_what_is_missing_and_the_rows_can_be_locked(store):
    with store.write() as tx:
        tx.ensure_platforms(["gpu", "large", "gpu"])
        tx.ensure_platforms([])
    with store.write() as tx:
        tx.lock_platforms(["large", "small", "gpu", "small"])
    assert Inspector(store).platforms() == ["gpu", "large", "small"]


def test_processes_starting_together_on_a_fresh_database_all_ensure_their_platforms(
    open_store: Callable[[], AnyStore],
):
    """Every voexec process ensures its platform rows at start; none may fail on another's."""
    stores = [open_store() for _ in range(RACERS)]
    migrate(stores[0])
    names = [f"platform-{index}" for index in range(20)]

    def ensure(store: AnyStore) -> None:
        with store.write() as tx:
            tx.ensure_platforms(names)

    results = race([lambda store=store: ensure(store) for store in stores])
    assert [result for result in results if isinstance(result, Exception)] == []
    assert Inspector(stores[0]).platforms() == sorted(names)


@pytest.mark.postgres
def test_a_platform_row_another_process_is_still_inserting_is_skipped_once_it_commits():
    """The interleaving behind the race, made certain: B reads no row, then waits on A's insert.

    PostgreSQL only: on SQLite the second writer cannot even begin before the first commits.
    """
    with fresh_postgres_database(postgres_server_url(), prefix="voexec_broker") as url:
        first, second = SqlBrokerStore(make_engine(url)), SqlBrokerStore(make_engine(url))
        first.migrate()
        outcome: list[Exception | None] = []

        def ensure_second() -> None:
            try:
                with second.write() as tx:
                    tx.ensure_platforms(["sim"])
                outcome.append(None)
            except Exception as error:  # noqa: BLE001 - judged by the test
                outcome.append(error)

        try:
            with first.write() as tx:
                tx.ensure_platforms(["sim"])
                waiter = threading.Thread(target=ensure_second)
                waiter.start()
                wait_for_a_lock_wait(first.engine, waiter)
            waiter.join(timeout=60)
            assert outcome == [None]
        finally:
            first.engine.dispose()
            second.engine.dispose()


def wait_for_a_lock_wait(engine: Engine, thread: threading.Thread) -> None:
    """Return once a session of this database waits on a lock (or `thread` has ended)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )

    def lock_waits() -> int:
        # A transaction of its own each time: pg_stat_activity is a snapshot per transaction.
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    deadline = time.monotonic() + 60
    while thread.is_alive() and not lock_waits():
        assert time.monotonic() < deadline, "the second insert never waited"
        time.sleep(0.01)


# ------------------------------------------------------------------------- holds and bookings
def test_holds_and_bookings_round_trip_with_their_resources_and_intervals(store):
    gpus = Resources(cores=8, memory=61.5, storage=100.25, gpus=(GpuShare("A100", 2),))
    hold = add(store, record(1, platform="gpu", resources=gpus))
    booking = add(store, record(2, phase=Phase.ACCEPTED, start=NOW + 2 * HOUR), BookingKind.BOOKING)
    assert live(store, NOW) == [hold, booking]
    with store.read() as tx:
        assert tx.bookings_of("gpu") == [(session_id(1), hold)]
        assert tx.bookings_of("small") == [(session_id(2), booking)]
        assert tx.bookings_of("nowhere") == []


def test_live_bookings_leave_out_ended_and_released_ones_and_other_platforms(store):
    ending = record(1, phase=Phase.RUNNING, start=NOW - HOUR)  # ends at NOW
    running = record(2, phase=Phase.RUNNING, start=NOW - HOUR / 2)
    released = record(3, phase=Phase.ACCEPTED)
    elsewhere = record(4, phase=Phase.ACCEPTED, platform="gpu")
    for stored in (ending, running, released, elsewhere):
        add(store, stored, BookingKind.BOOKING)
    with store.write() as tx:
        tx.release(released.id)
    assert live(store, NOW - MICROSECOND, ["small"]) == [
        booking_of(ending, BookingKind.BOOKING),
        booking_of(running, BookingKind.BOOKING),
    ]
    # Slots are half-open: one that ends now no longer takes capacity.
    assert live(store, NOW, ["small"]) == [booking_of(running, BookingKind.BOOKING)]
    assert live(store, NOW, ["gpu"]) == [booking_of(elsewhere, BookingKind.BOOKING)]
    assert live(store, NOW, []) == []


def test_live_bookings_within_an_interval_are_those_that_overlap_it(store):
    early = record(1, phase=Phase.ACCEPTED, start=NOW + HOUR)  # 09:00-10:00
    late = record(2, phase=Phase.ACCEPTED, start=NOW + 3 * HOUR)  # 11:00-12:00
    for stored in (early, late):
        add(store, stored, BookingKind.BOOKING)

    def within(start: datetime, end: datetime) -> list[Booking]:
        with store.read() as tx:
            return tx.live_bookings(NOW, ["small"], Interval(start, end))

    assert within(NOW, NOW + HOUR) == []  # half-open: ends as the early one starts
    assert within(NOW, NOW + HOUR + MICROSECOND) == [booking_of(early, BookingKind.BOOKING)]
    assert within(NOW + 2 * HOUR, NOW + 3 * HOUR) == []  # the gap between them
    assert len(within(NOW + HOUR + HOUR / 2, NOW + 3 * HOUR + MICROSECOND)) == 2
    assert within(NOW + 4 * HOUR, NOW + 5 * HOUR) == []


def test_a_hold_counts_only_while_its_offer_is_offered_and_unexpired(store):
    offered = record(1, expires=NOW + timedelta(minutes=5))
    rejected = record(2, start=NOW + 3 * HOUR)
    hold = add(store, offered)
    add(store, rejected)
    with store.write() as tx:
        tx.save_session(with_phase(rejected, Phase.REJECTED))  # its hold not released yet
    assert live(store, NOW + timedelta(minutes=5) - MICROSECOND) == [hold]
    assert live(store, NOW + timedelta(minutes=5)) == []


def test_a_snapshot_is_live_bookings_and_names_platforms_with_expired_offered_holds(store):
    # The holds a snapshot leaves out as expired, while their offers are still OFFERED, are
    # the ones an accept on time may yet turn into bookings without changing the count.
    expiry = NOW + timedelta(minutes=5)
    hold = add(store, record(1, expires=expiry))
    rejected = record(2, start=NOW + 3 * HOUR, platform="gpu")
    add(store, rejected)
    booking = add(store, record(3, phase=Phase.ACCEPTED, start=NOW + 2 * HOUR), BookingKind.BOOKING)
    with store.write() as tx:
        tx.save_session(with_phase(rejected, Phase.REJECTED))
    window = Interval(NOW, NOW + 4 * HOUR)
    for at in (expiry - MICROSECOND, expiry):
        for within in (None, window):
            with store.read() as tx:
                snapshot = tx.bookings_snapshot(at, ["small", "gpu"], within)
                assert snapshot.bookings == tx.live_bookings(at, ["small", "gpu"], within)
            expired = at >= expiry
            assert snapshot.pending_holds == (frozenset({"small"}) if expired else frozenset())
            assert (hold in snapshot.bookings) is not expired
            assert booking in snapshot.bookings
    with store.read() as tx:
        assert tx.bookings_snapshot(NOW, [], window).bookings == []


def test_convert_hold_turns_a_hold_into_a_booking_that_outlives_the_offer(store):
    offered = record(1)
    other = record(2, start=NOW + 2 * HOUR)
    add(store, offered)
    add(store, other)
    with store.write() as tx:
        tx.convert_hold(offered.id)
        tx.save_session(with_phase(offered, Phase.ACCEPTED))
    booking = booking_of(offered, BookingKind.BOOKING)
    assert live(store, NOW + timedelta(minutes=10)) == [booking]  # the other hold expired
    with store.read() as tx:
        assert dict(tx.bookings_of("small")) == {
            offered.id: booking,
            other.id: booking_of(other, BookingKind.HOLD),
        }


def test_release_frees_only_that_sessions_capacity(store):
    first, second = record(1), record(2, start=NOW + 2 * HOUR)
    add(store, first, BookingKind.BOOKING)
    kept = add(store, second, BookingKind.BOOKING)
    with store.write() as tx:
        tx.release(first.id)
        tx.release(session_id(99))  # nothing held: nothing happens
    with store.read() as tx:
        assert tx.bookings_of("small") == [(second.id, kept)]


def test_move_slot_moves_the_session_and_its_hold_together(store):
    moved = record(1, offerset=str(UUID(int=1000)))
    add(store, moved)
    later = NOW + HOUR + timedelta(minutes=3)
    with store.write() as tx:
        tx.move_slot(moved.id, later, later + HOUR)
    [hold] = live(store, NOW)
    assert hold.interval == Interval(later, later + HOUR)
    assert hold.group == moved.offerset_id  # still one of its set's alternatives
    assert Inspector(store).slot(moved.id) == (later, later + HOUR)


def test_capacity_taken_grows_with_each_transaction_that_adds_or_moves_a_booking(store):
    def taken(platforms: list[str] | None = None) -> dict[str, int]:
        with store.read() as tx:
            return tx.capacity_taken(
                ["small", "gpu", "nowhere"] if platforms is None else platforms
            )

    before = taken()
    assert "nowhere" not in before  # no row, nothing ever booked there
    assert taken([]) == {}
    first, second = record(1), record(2, start=NOW + 2 * HOUR)
    add(store, first)
    after_add = taken()
    assert after_add["small"] > before.get("small", 0)
    assert after_add.get("gpu") == before.get("gpu")  # nothing booked there
    # Converting, saving and releasing take no capacity: the count stays.
    with store.write() as tx:
        tx.convert_hold(first.id)
        tx.save_session(with_phase(first, Phase.ACCEPTED))
    with store.write() as tx:
        tx.release(first.id)
    assert taken() == after_add
    # Moving a slot takes capacity at new times; a transaction reads its own count.
    add(store, second)
    after_second = taken()
    assert after_second["small"] > after_add["small"]
    with store.write() as tx:
        tx.move_slot(second.id, NOW + 3 * HOUR, NOW + 4 * HOUR)
        moved = tx.capacity_taken(["small"])["small"]
    assert moved > after_second["small"]
    assert taken(["small"]) == {"small": moved}

    # A failed transaction counts nothing.
    def book_then_fail() -> None:
        with store.write() as tx:
            tx.add_booking(session_id(3), booking_of(record(3)))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        book_then_fail()
    assert taken(["small"]) == {"small": moved}


def test_held_offersets_are_a_requesters_sets_with_an_open_offer(store):
    def offerset(number: int, requester: str | None, expires: list[datetime]) -> None:
        identifier = str(UUID(int=1000 + number))
        with store.write() as tx:
            tx.add_offerset(identifier, NOW, offerset_document(identifier), requester=requester)
        for index, expiry in enumerate(expires):
            add(store, record(10 * number + index, offerset=identifier, expires=expiry))

    soon, later = NOW + timedelta(minutes=2), NOW + timedelta(minutes=5)
    offerset(1, "token:a", [soon, later])  # one set: its last open offer says until when
    offerset(2, "token:a", [soon])
    offerset(3, "token:b", [later])
    offerset(4, None, [later])
    offerset(5, "token:a", [NOW])  # expired already
    with store.read() as tx:
        assert tx.held_offersets("token:a", NOW) == [soon, later]
        assert tx.held_offersets("token:b", NOW) == [later]
        assert tx.held_offersets("token:a", soon) == [later]
        assert tx.held_offersets("token:c", NOW) == []
    # A set whose offers were all answered holds nothing.
    with store.write() as tx:
        for number in (10, 11):
            stored = tx.session(session_id(number))
            assert stored is not None
            tx.save_session(with_phase(stored, Phase.REJECTED))
    with store.read() as tx:
        assert tx.held_offersets("token:a", NOW) == [soon]


# ------------------------------------------------------------------------- offer sets, sessions
def offerset_document(identifier: str) -> model.OfferSetResponse:
    """An offer set as the service stores it: its own metadata and messages, no offers."""
    return model.OfferSetResponse(
        meta=model.ComponentMetadata(
            uuid=UUID(identifier),
            url=f"http://broker.example.org/broker/offersets/{identifier}",
            created=NOW,
            modified=NOW,
            messages=[
                model.message_item(
                    "urn:voexec:no-free-slot",
                    "{platform}: no free slot of {cores} cores",
                    time=NOW,
                    level=model.MessageLevel.ERROR,
                    platform="gpu",
                    cores=8,
                )
            ],
        ),
        result="YES",
    )


def test_an_offer_set_and_its_sessions_round_trip_exactly_in_their_order(store):
    offerset = str(UUID(int=1000))
    document = offerset_document(offerset)
    offers = [record(number, offerset=offerset) for number in (1, 2, 3)]
    with store.write() as tx:
        tx.add_offerset(offerset, NOW, document)
    for position, offer in reversed(list(enumerate(offers))):  # stored last first
        add(store, offer, position=position)
    with store.read() as tx:
        assert tx.offerset(offerset) == (document, offers)
        assert tx.offerset(str(UUID(int=1001))) is None


def test_a_session_round_trips_exactly_and_save_session_replaces_state_and_document(store):
    stored = record(1, offerset=None, phase=Phase.ACCEPTED, expires=None)
    add(store, stored, BookingKind.BOOKING)
    with store.read() as tx:
        assert tx.session(stored.id) == stored
        assert tx.session(session_id(2)) is None
    waiting = with_phase(stored, Phase.WAITING)
    noted = msgspec.structs.replace(
        waiting.document,
        meta=msgspec.structs.replace(
            waiting.document.meta,
            modified=NOW + HOUR,
            messages=[
                *waiting.document.meta.messages,
                model.message_item(
                    "urn:voexec:phase", "{phase}: {note}", time=NOW, phase="WAITING", note="queued"
                ),
            ],
            options=[],
        ),
    )
    changed = SessionRecord(
        waiting.id, None, waiting.platform, waiting.resources, waiting.state, noted
    )
    with store.write() as tx:
        assert tx.session(stored.id, lock=True) == stored
        tx.save_session(changed)
    with store.read() as tx:
        assert tx.session(stored.id) == changed
        assert tx.session(stored.id).phase is Phase.WAITING


def test_siblings_are_the_other_sessions_of_the_same_offer_set_in_order(store):
    first_set, second_set = str(UUID(int=1000)), str(UUID(int=1001))
    offers = [record(number, offerset=first_set) for number in (1, 2, 3)]
    for position, offer in enumerate(offers):
        add(store, offer, position=position)
    stranger = record(4, offerset=second_set)
    direct = record(5, offerset=None, phase=Phase.ACCEPTED, expires=None)
    add(store, stranger)
    add(store, direct, BookingKind.BOOKING)
    with store.read() as tx:
        assert tx.siblings(offers[1]) == [offers[0], offers[2]]
        assert tx.siblings(stranger) == []
        assert tx.siblings(direct) == []


def test_expired_offers_are_the_offered_sessions_whose_expiry_has_come(store):
    offerset = str(UUID(int=1000))
    due = record(1, offerset=offerset, expires=NOW)
    later = record(2, offerset=offerset, expires=NOW + MICROSECOND)
    accepted = record(3, offerset=offerset, expires=NOW - HOUR)
    direct = record(4, phase=Phase.ACCEPTED, expires=None)
    for stored in (due, later, accepted, direct):
        add(store, stored)
    with store.write() as tx:
        tx.save_session(with_phase(accepted, Phase.ACCEPTED))
    with store.read() as tx:
        assert tx.expired_offers(NOW - MICROSECOND) == []
        assert tx.expired_offers(NOW) == [due.id]
        assert sorted(tx.expired_offers(NOW + HOUR)) == [due.id, later.id]


# ------------------------------------------------------------------------- the work queue
def test_due_events_are_claimed_and_taken_in_the_order_they_fell_due(store):
    plan = [
        (session_id(1), NOW + 2 * MICROSECOND, StartReached()),
        (session_id(2), NOW, WorkQueued()),
        (session_id(1), NOW + MICROSECOND, PreparationDue()),
        (session_id(3), NOW, OfferExpired()),  # same instant: queued order decides
        (session_id(1), NOW + HOUR, StartReached()),  # not due yet
    ]
    with store.write() as tx:
        for session, due_at, event in plan:
            tx.enqueue(session, due_at, event)
    with store.write() as tx:
        claimed = tx.claim("worker-a", NOW + timedelta(minutes=1), LEASE, limit=10)
    taken = []
    with store.write() as tx:
        for item_id in claimed:
            item = tx.take(item_id, "worker-a")
            assert item is not None
            taken.append((item.session_id, item.due_at, item.event))
    assert taken == [plan[1], plan[3], plan[2], plan[0]]
    with store.read() as tx:
        assert [(w.session_id, w.due_at, w.event) for w in tx.pending(session_id(1))] == [plan[4]]
        assert tx.pending(session_id(2)) == []


def test_claim_takes_at_most_limit_items_and_only_due_ones(store):
    with store.write() as tx:
        for minute in range(5):
            tx.enqueue(session_id(1), NOW + timedelta(minutes=minute), WorkQueued())
    with store.write() as tx:
        assert tx.claim("worker-a", NOW - MICROSECOND, LEASE, limit=10) == []
        first = tx.claim("worker-a", NOW + timedelta(minutes=3), LEASE, limit=2)
        rest = tx.claim("worker-a", NOW + timedelta(minutes=3), LEASE, limit=10)
    assert len(first) == 2
    assert len(rest) == 2  # the fifth item is not due
    with store.read() as tx:
        due = [item.id for item in tx.pending(session_id(1))][:4]
    assert first + rest == due


def test_a_claimed_item_goes_to_no_other_worker_until_its_lease_expires(store):
    with store.write() as tx:
        tx.enqueue(session_id(1), NOW, WorkQueued())
    with store.write() as tx:
        (claimed,) = tx.claim("worker-a", NOW, LEASE, limit=1)
    with store.write() as tx:
        assert tx.claim("worker-b", NOW + LEASE - MICROSECOND, LEASE, limit=1) == []
        assert tx.take(claimed, "worker-b") is None  # not b's to take
        # worker-a stopped without taking it; once its lease is over, worker-b may.
        assert tx.claim("worker-b", NOW + LEASE, LEASE, limit=1) == [claimed]
    with store.write() as tx:
        assert tx.take(claimed, "worker-a") is None  # a's claim is over
        item = tx.take(claimed, "worker-b")
    assert item is not None
    assert (item.session_id, item.due_at, item.event) == (session_id(1), NOW, WorkQueued())
    with store.write() as tx:
        assert tx.take(claimed, "worker-b") is None  # taken once only
        assert tx.claim("worker-c", NOW + HOUR, LEASE, limit=1) == []


def test_an_unclaimed_item_cannot_be_taken(store):
    with store.write() as tx:
        tx.enqueue(session_id(1), NOW, WorkQueued())
    with store.write() as tx:
        (item,) = tx.pending(session_id(1))
        assert tx.take(item.id, "worker-a") is None
    with store.read() as tx:
        assert len(tx.pending(session_id(1))) == 1


def test_drop_work_forgets_every_pending_event_of_one_session_only(store):
    with store.write() as tx:
        tx.enqueue(session_id(1), NOW, WorkQueued())
        tx.enqueue(session_id(1), NOW + HOUR, StartReached())
        tx.enqueue(session_id(2), NOW, WorkQueued())
    with store.write() as tx:
        claimed = tx.claim("worker-a", NOW, LEASE, limit=1)
        tx.drop_work(session_id(1))
    with store.write() as tx:
        assert tx.pending(session_id(1)) == []
        assert [w.session_id for w in tx.pending(session_id(2))] == [session_id(2)]
        assert tx.take(claimed[0], "worker-a") is None  # dropped although it was claimed
        assert tx.claim("worker-a", NOW + HOUR, LEASE, limit=10) != []


def test_workers_claiming_at_once_never_share_an_item(
    store: AnyStore, open_store: Callable[[], AnyStore]
):
    items = RACERS * 3
    with store.write() as tx:
        for number in range(items):
            tx.enqueue(session_id(number), NOW, WorkQueued())
    workers = [open_store() for _ in range(RACERS)]

    def claim(index: int) -> list[int]:
        with workers[index].write() as tx:
            return tx.claim(f"worker-{index}", NOW, LEASE, limit=4)

    results = race([lambda index=index: claim(index) for index in range(RACERS)])
    claims = [result for result in results if not isinstance(result, Exception)]
    assert len(claims) == RACERS, results
    claimed = [item for claim in claims for item in claim]
    assert len(claimed) == len(set(claimed)) == items  # 8 x 4 asked for 24: each taken once


# ------------------------------------------------------------------------- transactions
def test_a_transaction_reads_what_it_has_just_inserted(store):
    offerset = str(UUID(int=1000))
    offers = [record(number, offerset=offerset) for number in (1, 2)]
    with store.write() as tx:
        tx.add_offerset(offerset, NOW, offerset_document(offerset))
        for position, offer in enumerate(offers):
            tx.add_session(offer, position=position, start=offer.state.start, end=offer.state.end)
            tx.add_booking(offer.id, booking_of(offer))
            tx.enqueue(offer.id, NOW, WorkQueued())
        assert tx.offerset(offerset) == (offerset_document(offerset), offers)
        assert tx.live_bookings(NOW, ["small"]) == [booking_of(offers[0])] * 2
        assert [item.session_id for item in tx.pending(offers[1].id)] == [offers[1].id]
    with store.read() as tx:
        assert tx.offerset(offerset) == (offerset_document(offerset), offers)


def test_a_duplicate_found_only_at_commit_leaves_nothing_of_its_transaction(store):
    first = record(1)
    add(store, first)
    second = record(2, start=NOW + 2 * HOUR)

    def store_both() -> None:
        with store.write() as tx:
            tx.add_session(second, start=second.state.start, end=second.state.end)
            tx.add_booking(second.id, booking_of(second))
            tx.add_session(first, start=first.state.start, end=first.state.end)  # stored already

    with pytest.raises(Inspector(store).duplicate):
        store_both()
    with store.read() as tx:
        assert tx.session(second.id) is None
        assert [session for session, _ in tx.bookings_of("small")] == [first.id]


def test_a_failed_write_leaves_nothing_behind(store):
    class Crash(Exception):
        pass

    offer = record(1, offerset=None)

    def accept_then_crash() -> None:
        with store.write() as tx:
            tx.add_session(offer, start=offer.state.start, end=offer.state.end)
            tx.add_booking(offer.id, booking_of(offer))
            tx.enqueue(offer.id, NOW, WorkQueued())
            raise Crash

    with pytest.raises(Crash):
        accept_then_crash()
    with store.read() as tx:
        assert tx.session(offer.id) is None
        assert tx.bookings_of("small") == []
        assert tx.pending(offer.id) == []


def test_two_stores_on_one_database_see_each_others_commits(
    store: AnyStore, open_store: Callable[[], AnyStore]
):
    other = open_store()
    migrate(other)  # a second process starting: nothing to do
    offer = record(1)
    hold = add(store, offer)
    with other.read() as tx:
        assert tx.session(offer.id) == offer
        assert tx.live_bookings(NOW, ["small"]) == [hold]
    with other.write() as tx:
        tx.convert_hold(offer.id)
        tx.save_session(with_phase(offer, Phase.ACCEPTED))
        tx.enqueue(offer.id, NOW, WorkQueued())
    with store.write() as tx:
        assert tx.session(offer.id).phase is Phase.ACCEPTED
        assert tx.live_bookings(NOW + HOUR, ["small"]) == [booking_of(offer, BookingKind.BOOKING)]
        assert len(tx.claim("worker-a", NOW, LEASE, limit=1)) == 1


# ---------------------------------------------------------------------- the service on each store
def test_brokers_racing_on_one_store_offer_and_book_exactly_the_capacity(
    open_store: Callable[[], AnyStore], broker_capacity_audit: list[AuditedBroker]
):
    """Holds and accepts are serialised on every store: the service's capacity checks hold.

    Each caller is a broker of its own over the shared store (a process of its own, on a
    database); the fake serialises them under its one lock.
    """
    settings = concurrency.broker_settings()
    brokers = []
    for index in range(concurrency.CALLERS):
        store = open_store()
        if index == 0:
            migrate(store)
        platforms = {p.name: SimulatedPlatform(p) for p in settings.platforms}
        clock = ManualClock(concurrency.NOW)
        brokers.append(BrokerService(settings, clock, store, platforms, worker_id=f"w-{index}"))
    request = concurrency.request_for("2026-09-01T09:00:00Z/2026-09-01T09:30:00Z")
    answers = race([partial(b.request_offers, request, concurrency.BASE_URL) for b in brokers])
    offers = concurrency.offers_of(answers)
    assert len(offers) == concurrency.FITS_AT_ONCE, answers
    uuids = [offer.meta.uuid for offer in offers if offer.meta and offer.meta.uuid]
    targets = [uuids[index % len(uuids)] for index in range(concurrency.CALLERS)]
    outcomes = race(
        [
            partial(b.update_session, uuid, concurrency.ACCEPT)
            for b, uuid in zip(brokers, targets, strict=True)
        ]
    )
    succeeded = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(succeeded) == concurrency.FITS_AT_ONCE, outcomes
    assert all(isinstance(o, IllegalUpdate) for o in outcomes if isinstance(o, Exception))
    audited = broker_capacity_audit[0]
    assert audited.problems() == []
    assert len(audited.commitments()) == concurrency.FITS_AT_ONCE


# ------------------------------------------------------------------------- the fake, beside SQLite
class Differential:
    """One random sequence of operations, made on SQLite and on the fake; answers compared.

    Answers are made comparable without the ids each store gives its queued events and calls
    (each store's own ids are kept to claim, take and finish with).
    """

    PHASES = (Phase.OFFERED, Phase.ACCEPTED, Phase.REJECTED, Phase.EXPIRED, Phase.WAITING)
    EVENTS = (WorkQueued(), StartReached(), PreparationDue(), OfferExpired(), PlatformCheckDue())
    WORKERS = ("worker-a", "worker-b")

    def __init__(self, stores: list[AnyStore], seed: int) -> None:
        self.stores = stores
        self.rng = random.Random(seed)
        self.records: dict[int, SessionRecord] = {}
        self.sets: list[str] = []
        self.claimed: dict[tuple[int, str], list[int]] = {}
        self.calls: dict[tuple[int, str], list[int]] = {}

    def instant(self) -> datetime:
        return NOW + timedelta(minutes=5 * self.rng.randrange(-2, 30))

    def number(self) -> int:
        return self.rng.choice(sorted(self.records)) if self.records else 1

    def both(self, what: str, step: Callable[[int, Any], object]) -> None:
        answers = []
        for index, store in enumerate(self.stores):
            with store.write() as tx:
                answers.append(step(index, tx))
        assert answers[0] == answers[1], f"{what}: SQLite {answers[0]!r}, fake {answers[1]!r}"

    def add_offerset(self) -> None:
        identifier = str(UUID(int=5000 + len(self.sets)))
        self.sets.append(identifier)
        requester = self.rng.choice(["token:a", "token:b", None])
        offers = []
        for _ in range(self.rng.randint(1, 3)):
            number = 100 + len(self.records)
            offers.append(
                record(
                    number,
                    offerset=identifier,
                    platform=self.rng.choice(["small", "gpu"]),
                    expires=self.instant(),
                    start=NOW + HOUR * self.rng.randint(0, 4),
                )
            )
            self.records[number] = offers[-1]
        document = offerset_document(identifier)

        def store_set(index: int, tx: Any) -> None:
            tx.add_offerset(identifier, NOW, document, requester=requester)
            for position, offer in enumerate(offers):
                tx.add_session(
                    offer, position=position, start=offer.state.start, end=offer.state.end
                )
                tx.add_booking(offer.id, booking_of(offer))

        self.both("add_offerset", store_set)

    def add_direct(self) -> None:
        number = 100 + len(self.records)
        direct = record(number, phase=Phase.ACCEPTED, expires=None, start=self.instant())
        self.records[number] = direct
        requester = self.rng.choice(["token:c", None])

        def store_direct(index: int, tx: Any) -> None:
            tx.add_session(
                direct, start=direct.state.start, end=direct.state.end, requester=requester
            )
            tx.add_booking(direct.id, booking_of(direct, BookingKind.BOOKING))

        self.both("add_direct", store_direct)

    def change(self) -> None:
        number = self.number()
        target = self.records.get(number)
        if target is None:
            return
        kind = self.rng.choice(["save", "convert", "release", "move", "reject_siblings"])
        if kind == "save":
            self.records[number] = changed = with_phase(target, self.rng.choice(self.PHASES))
            self.both("save_session", lambda i, tx: tx.save_session(changed))
        elif kind == "convert":
            self.both("convert_hold", lambda i, tx: tx.convert_hold(target.id))
        elif kind == "release":
            self.both("release", lambda i, tx: tx.release(target.id))
        elif kind == "move":
            start = self.instant()
            self.both("move_slot", lambda i, tx: tx.move_slot(target.id, start, start + HOUR))
        else:

            def reject_siblings(index: int, tx: Any) -> list[str]:
                siblings = tx.siblings(target)
                with tx.batched():
                    for sibling in siblings:
                        tx.release(sibling.id)
                        tx.drop_work(sibling.id)
                        tx.save_session(with_phase(sibling, Phase.REJECTED))
                return [sibling.id for sibling in siblings]

            self.both("reject_siblings", reject_siblings)
            for sibling_number, sibling in list(self.records.items()):
                same_set = sibling.offerset_id and sibling.offerset_id == target.offerset_id
                if same_set and sibling.id != target.id:
                    self.records[sibling_number] = with_phase(sibling, Phase.REJECTED)

    def queue(self) -> None:
        number, due, event = self.number(), self.instant(), self.rng.choice(self.EVENTS)
        if self.rng.random() < 0.2:
            self.both("drop_work", lambda i, tx: tx.drop_work(session_id(number)))
        else:
            self.both("enqueue", lambda i, tx: tx.enqueue(session_id(number), due, event))

    def work(self) -> None:
        worker, now = self.rng.choice(self.WORKERS), self.instant()
        if self.rng.random() < 0.5:
            limit = self.rng.randint(1, 6)

            def claim(index: int, tx: Any) -> int:
                self.claimed[index, worker] = tx.claim(worker, now, LEASE, limit)
                return len(self.claimed[index, worker])

            self.both("claim", claim)
        else:

            def take(index: int, tx: Any) -> list[tuple[str, datetime, object]]:
                items = tx.take_batch(self.claimed.pop((index, worker), []), worker, now)
                return [(item.session_id, item.due_at, item.event) for item in items]

            self.both("take_batch", take)

    def outbox(self) -> None:
        worker, now = self.rng.choice(self.WORKERS), self.instant()
        kind = self.rng.choice(["add", "add", "claim", "finish"])
        if kind == "add":
            number, action = self.number(), self.rng.choice(["prepare", "start", "release"])
            self.both(
                "add_instruction",
                lambda i, tx: tx.add_instruction(session_id(number), action, now, NOW),
            )
        elif kind == "claim":
            limit = self.rng.randint(1, 4)
            only = None if self.rng.random() < 0.7 else [session_id(self.number())]

            def claim(index: int, tx: Any) -> list[tuple[str, str, datetime, datetime]]:
                calls = tx.claim_instructions(worker, now, LEASE, limit=limit, session_ids=only)
                self.calls[index, worker] = [call.id for call in calls]
                return [(c.session_id, c.action, c.effective_at, c.noted_at) for c in calls]

            self.both("claim_instructions", claim)
        else:
            finisher = self.rng.choice(self.WORKERS)

            def finish(index: int, tx: Any) -> list[bool]:
                return [
                    tx.finish_instruction(i, finisher) for i in self.calls.get((index, worker), [])
                ]

            self.both("finish_instruction", finish)

    def fail(self) -> None:
        """A write that fails halfway leaves nothing, on either."""
        number = 100 + len(self.records)
        lost = record(number, start=self.instant())
        for store in self.stores:
            with pytest.raises(ZeroDivisionError), store.write() as tx:  # noqa: PT012
                tx.add_session(lost, start=lost.state.start, end=lost.state.end)
                tx.add_booking(lost.id, booking_of(lost))
                tx.enqueue(lost.id, NOW, WorkQueued())
                _ = 1 / 0

    def look(self) -> None:
        """Every read of the port, at a random instant, on both."""
        now = self.instant()
        answers = []
        for store in self.stores:
            with store.read() as tx:
                seen: dict[str, object] = {
                    "live": sorted(
                        tx.live_bookings(now, ["small", "gpu"]),
                        key=lambda b: (b.platform, b.interval.start, b.interval.end, str(b)),
                    ),
                    "within": sorted(
                        tx.live_bookings(now, ["small"], Interval(now, now + 2 * HOUR)),
                        key=lambda b: (b.interval.start, b.interval.end, str(b)),
                    ),
                    "small": tx.bookings_of("small"),
                    "gpu": tx.bookings_of("gpu"),
                    "held": [tx.held_offersets(who, now) for who in ("token:a", "token:b")],
                    "expired": sorted(tx.expired_offers(now)),
                    "sessions": [tx.session(r.id) for r in self.records.values()],
                    "owners": [tx.owner(session_id=r.id) for r in self.records.values()],
                    "set_owners": [tx.owner(offerset_id=s) for s in self.sets],
                    "sets": [tx.offerset(s) for s in self.sets],
                    "siblings": [tx.siblings(r) for r in self.records.values()],
                    "pending": [
                        [(w.session_id, w.due_at, w.event) for w in tx.pending(session_id(n))]
                        for n in self.records
                    ],
                }
            seen["stored"] = [store.stored_session(r.id) for r in self.records.values()]
            seen["stored_sets"] = [store.stored_offerset(s) for s in self.sets]
            answers.append(seen)
        for key in answers[0]:
            assert answers[0][key] == answers[1][key], f"{key}: SQLite and the fake differ"


@pytest.mark.parametrize("seed", range(6))
def test_the_fake_answers_as_sqlite_does_over_random_sequences_of_operations(
    seed: int, tmp_path: Path
):
    """The fake's own check against the reference: the same steps, the same answers."""
    sql = SqlBrokerStore(make_engine(f"sqlite:///{tmp_path / 'broker.db'}"))
    sql.migrate()
    stores: list[AnyStore] = [sql, MemorySessionStore()]
    for store in stores:
        with store.write() as tx:
            tx.ensure_platforms(["small", "gpu"])
    run = Differential(stores, seed)
    steps = [run.add_offerset, run.add_direct, run.change, run.change, run.queue, run.queue]
    steps += [run.work, run.work, run.outbox, run.outbox, run.fail, run.look]
    try:
        for _ in range(160):
            run.rng.choice(steps)()
        run.look()
    finally:
        sql.engine.dispose()


# ------------------------------------------------------------------------- row locks
# PostgreSQL's own: SQLite and the fake run each write alone, so there are no row locks.
@pytest.fixture
def postgres_stores() -> Iterator[list[SqlBrokerStore]]:
    """Three stores (processes) on a fresh PostgreSQL database with the platform `small`.

    PostgreSQL only: SQLite has one writer at a time, so there are no row locks to share.
    """
    with fresh_postgres_database(postgres_server_url(), prefix="voexec_broker") as url:
        stores = [SqlBrokerStore(make_engine(url)) for _ in range(3)]
        stores[0].migrate()
        with stores[0].write() as tx:
            tx.ensure_platforms(["small"])
        try:
            yield stores
        finally:
            for store in stores:
                store.engine.dispose()


def in_a_thread(
    store: SqlBrokerStore, step: Callable[[StoreTransaction], object]
) -> threading.Thread:
    """Run `step` in a write transaction of `store`, in a thread of its own (started)."""

    def run() -> None:
        with store.write() as tx:
            step(tx)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.postgres
def test_shared_platform_locks_do_not_wait_for_each_other_and_an_exclusive_one_waits_for_them(
    postgres_stores: list[SqlBrokerStore],
):
    first, second, third = postgres_stores
    with first.write() as tx:
        tx.lock_platforms(["small"], shared=True)  # an accept in progress
        other = in_a_thread(second, lambda tx: tx.lock_platforms(["small"], shared=True))
        other.join(timeout=60)
        assert not other.is_alive(), "a shared lock waited for another shared lock"
        exclusive = in_a_thread(third, lambda tx: tx.lock_platforms(["small"]))
        wait_for_a_lock_wait(first.engine, exclusive)
        assert exclusive.is_alive(), "an exclusive lock did not wait for a shared one"
    exclusive.join(timeout=60)
    assert not exclusive.is_alive()


@pytest.mark.postgres
def test_lock_offerset_of_serialises_the_sessions_of_one_set_and_only_them(
    postgres_stores: list[SqlBrokerStore],
):
    first, second, third = postgres_stores
    sets = [str(UUID(int=1000)), str(UUID(int=2000))]
    sessions = [
        record(1, offerset=sets[0]),
        record(2, offerset=sets[0]),
        record(3, offerset=sets[1]),
    ]
    with first.write() as tx:
        for offerset in sets:
            tx.add_offerset(offerset, NOW, offerset_document(offerset))
        for stored in sessions:
            tx.add_session(stored, start=stored.state.start, end=stored.state.end)
    with first.write() as tx:
        tx.lock_offerset_of(sessions[0].id)
        elsewhere = in_a_thread(second, lambda tx: tx.lock_offerset_of(sessions[2].id))
        elsewhere.join(timeout=60)
        assert not elsewhere.is_alive(), "another offer set was locked too"
        sibling = in_a_thread(third, lambda tx: tx.lock_offerset_of(sessions[1].id))
        wait_for_a_lock_wait(first.engine, sibling)
        assert sibling.is_alive(), "a sibling's offer set was not locked"
    sibling.join(timeout=60)
    assert not sibling.is_alive()
    with second.write() as tx:
        tx.lock_offerset_of(session_id(99))  # no such session: nothing to lock
