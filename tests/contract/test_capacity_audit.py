"""The capacity audit that ends every api and contract test (`tests.broker_audit`) finds an
over-booking, and names the platform, the resource, the instant and the amounts.

The bookings are written as raw rows (or, in memory, straight through the store's transaction),
past the service's checks: the only way to over-fill a platform, which is what the audit exists
to notice. The test carries the marker
`over_capacity`, so that the audit at its teardown lets the over-booking it made stand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import text

from broker import model
from broker.lifecycle import Phase, SessionState
from broker.platforms import build_platform
from broker.scheduling.intervals import Interval
from broker.scheduling.resources import Booking, BookingKind, Resources
from broker.service import BrokerService
from broker.store.memory import MemorySessionStore
from broker.store.port import SessionRecord
from broker.store.sql import SqlBrokerStore, to_micros
from core.clock import ManualClock
from core.db import make_engine
from core.settings import BrokerSettings, Capacity, PlatformSettings
from tests.broker_audit import AuditedBroker

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

_SESSION = text(
    "INSERT INTO broker_session (id, position, platform, phase, slot_start, slot_end,"
    " resources, state, document) VALUES (:id, 0, 'small', 'EXECUTING', :start, :end,"
    " '{}', '{}', '{}')"
)
_BOOKING = text(
    "INSERT INTO broker_booking (session_id, platform, slot_start, slot_end, cores, memory,"
    " storage, gpus, kind) VALUES (:id, 'small', :start, :end, 2, 1.0, 0.0, '[]', 'booking')"
)


def book_two_cores(broker: AuditedBroker, session_id: str, start: datetime) -> None:
    """A booking of 2 cores and 1 GiB on `small` for two hours from `start`, as raw rows."""
    span = {"id": session_id, "start": to_micros(start), "end": to_micros(start + 2 * HOUR)}
    with broker.engine.begin() as connection:
        connection.execute(_SESSION, span)
        connection.execute(_BOOKING, span)


@pytest.mark.over_capacity
def test_the_audit_names_the_platform_instant_and_amounts_of_an_overbooking(
    broker_capacity_audit: list[AuditedBroker], tmp_path: Path
) -> None:
    platform = PlatformSettings(name="small", capacity=Capacity(cores=2, memory=3))
    store = SqlBrokerStore(make_engine(f"sqlite:///{tmp_path / 'broker.db'}"))
    store.migrate()
    BrokerService(
        BrokerSettings(platforms=[platform]),
        ManualClock(NOW),
        store,
        {platform.name: build_platform(platform, tmp_path / "var")},
    )
    [broker] = broker_capacity_audit
    book_two_cores(broker, "00000000-0000-0000-0000-000000000001", NOW)
    assert broker.problems() == []  # 2 of 2 cores: full, not over
    book_two_cores(broker, "00000000-0000-0000-0000-000000000002", NOW + HOUR)
    assert broker.problems() == [
        "small: 4 cores committed from 2026-09-01T09:00:00+00:00 (capacity 2)"
    ]
    store.engine.dispose()


@pytest.mark.over_capacity
def test_the_audit_reads_the_in_memory_store_too(
    broker_capacity_audit: list[AuditedBroker], tmp_path: Path
) -> None:
    """The fake's rows are read as a database's are: a booking past the service over-fills."""
    platform = PlatformSettings(name="small", capacity=Capacity(cores=2, memory=3))
    store = MemorySessionStore()
    clock = ManualClock(NOW)
    BrokerService(
        BrokerSettings(platforms=[platform]),
        clock,
        store,
        {platform.name: build_platform(platform, tmp_path / "var")},
    )
    [broker] = broker_capacity_audit

    def book_two_cores(number: int, start: datetime, kind: BookingKind, expires: datetime) -> None:
        identifier = str(UUID(int=number))
        state = SessionState(
            session_id=identifier,
            phase=Phase.OFFERED if kind is BookingKind.HOLD else Phase.WAITING,
            start=start,
            end=start + 2 * HOUR,
            preparation=timedelta(0),
            expires=expires if kind is BookingKind.HOLD else None,
        )
        document = model.ScheduledExecutionSession(phase=model.SessionPhase(state.phase.value))
        record = SessionRecord(
            identifier, None, "small", Resources(cores=2, memory=1.0), state, document
        )
        booking = Booking(
            platform="small",
            interval=Interval(start, start + 2 * HOUR),
            resources=record.resources,
            kind=kind,
        )
        with store.write() as tx:
            tx.add_session(record, start=start, end=start + 2 * HOUR)
            tx.add_booking(identifier, booking)

    book_two_cores(1, NOW, BookingKind.BOOKING, NOW)
    assert broker.problems() == []
    # A hold counts while its offer is OFFERED and unexpired at the broker's clock.
    book_two_cores(2, NOW + HOUR, BookingKind.HOLD, NOW + timedelta(minutes=5))
    assert broker.problems() == [
        "small: 4 cores committed from 2026-09-01T09:00:00+00:00 (capacity 2)"
    ]
    clock.set(NOW + timedelta(minutes=5))
    assert broker.problems() == []
