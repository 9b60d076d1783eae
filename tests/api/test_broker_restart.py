"""The process killed mid-session and restarted: the session carries on from the database alone.

Each "process" is a whole app (services, engine, broker) over the same data directory with its
own `ManualClock`. A kill is simulated by dropping the first process without its shutdown
hooks, once while the session simply runs and once after it claimed a due event of the work
queue but before delivering it. The new process, built at the instant of the kill, must finish
the session with one booking, every phase reached once and in order, and no event left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from broker import model
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from core.clock import ManualClock
from core.settings import settings_from_mapping
from tests.api.test_broker_lifecycle import accepted
from tests.api.test_broker_requests import NOW
from tests.api.test_broker_sessions import session_of
from voexec.app import create_app
from voexec.wiring import build_services

P = model.SessionPhase
RUNNING_AT = NOW + timedelta(hours=1, minutes=10)  # the slot is 09:00-10:00
END = NOW + timedelta(hours=2)  # the offered end
FINISHED = END + timedelta(minutes=5)  # released, and past any claim's lease
LIFE = [P.OFFERED, P.ACCEPTED, P.WAITING, P.PREPARING, P.AVAILABLE, P.RUNNING, P.RELEASING]


@dataclass
class Process:
    """One running voexec: its HTTP client, its broker and its database engine."""

    client: TestClient[Any]
    broker: BrokerService
    engine: Engine
    clock: ManualClock


def start_process(data_dir: Path, clock: ManualClock) -> Process:
    """A voexec over `data_dir`, its lifespan never run: it is killed, never shut down."""
    settings = settings_from_mapping(
        {
            "data_dir": str(data_dir),
            "vocabularies": {"offline": True},
            "broker": {
                "platforms": [
                    {
                        "name": "sim",
                        "capacity": {"cores": 8, "memory": 32},
                        "executables": ["docker-container"],
                        "preparation": "PT1M",
                        "simulated": {"prepare": "PT10S", "release": "PT5S"},
                    }
                ]
            },
        }
    )
    services = build_services(settings, clock=clock)
    client = TestClient(create_app(settings, services))
    return Process(client, services.components["broker"], services.components["engine"], clock)


def count(engine: Engine, table: str, session: str) -> int:
    query = text(f"SELECT count(*) FROM {table} WHERE session_id = :session")
    with engine.connect() as connection:
        return int(connection.execute(query, {"session": session}).scalar_one())


def phase_history(session: model.AnySession) -> list[tuple[datetime, P]]:
    """Every phase the session entered, with when, as its phase notes record them."""
    assert session.meta is not None
    return [
        (m.time, P(m.values["phase"]))
        for m in session.meta.messages
        if m.kind == "urn:voexec:phase" and m.time is not None
    ]


def session_id(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def run_until_killed(data_dir: Path) -> tuple[str, int]:
    """Accept a session and drive it to RUNNING; returns its URL and queued events."""
    clock = ManualClock(NOW)
    process = start_process(data_dir, clock)
    url = accepted(process.client)
    process.broker.tick()
    clock.set(RUNNING_AT)
    process.broker.tick()
    assert session_of(process.client.get(url)).phase is P.RUNNING
    assert count(process.engine, "broker_booking", session_id(url)) == 1
    return url, count(process.engine, "broker_work", session_id(url))


def finish_after_restart(data_dir: Path, url: str, killed_at: datetime) -> Process:
    """A new process at the instant of the kill, ticked on to the end of the session."""
    clock = ManualClock(killed_at)
    process = start_process(data_dir, clock)
    assert session_of(process.client.get(url)).phase is P.RUNNING
    assert count(process.engine, "broker_booking", session_id(url)) == 1
    return process


def assert_completed_once(process: Process, url: str) -> None:
    session = session_of(process.client.get(url))
    assert session.phase is P.COMPLETED
    history = phase_history(session)
    assert [phase for _, phase in history] == [*LIFE, P.COMPLETED]
    times = [at for at, _ in history]
    assert times == sorted(times)
    # Completed: the booking was released once, and nothing is left to deliver.
    assert count(process.engine, "broker_booking", session_id(url)) == 0
    assert count(process.engine, "broker_work", session_id(url)) == 0


def test_a_running_session_carries_on_after_the_process_is_killed(tmp_path: Path) -> None:
    url, queued = run_until_killed(tmp_path / "var")
    assert queued >= 1  # the offered end is waiting in the queue, not in memory
    process = finish_after_restart(tmp_path / "var", url, RUNNING_AT)
    process.clock.set(FINISHED)
    process.broker.tick()
    assert_completed_once(process, url)
    # Each change is recorded at the clock of the process that made it, when it made it (the
    # first process ticked at 08:00 and 09:10, the second at FINISHED), not when it was due.
    history = phase_history(session_of(process.client.get(url)))
    assert history == [
        (NOW, P.OFFERED),
        (NOW, P.ACCEPTED),
        (NOW, P.WAITING),
        (RUNNING_AT, P.PREPARING),
        (RUNNING_AT, P.AVAILABLE),
        (RUNNING_AT, P.RUNNING),
        (FINISHED, P.RELEASING),
        (FINISHED, P.COMPLETED),
    ]


def test_an_event_claimed_by_a_killed_process_is_delivered_once_by_the_next(
    tmp_path: Path,
) -> None:
    url, queued = run_until_killed(tmp_path / "var")
    dying = start_process(tmp_path / "var", ManualClock(END))
    with SqlBrokerStore(dying.engine).write() as tx:
        # The end falls due; the dying process claims it and is killed before delivering it.
        claimed = tx.claim("killed-process", END, timedelta(minutes=1), limit=queued)
    assert claimed, "the session's end should have been due"
    process = finish_after_restart(tmp_path / "var", url, END)
    # The claim is the dead process's until its lease runs out: nothing is delivered twice.
    assert process.broker.tick() == 0
    assert session_of(process.client.get(url)).phase is P.RUNNING
    process.clock.set(FINISHED)
    process.broker.tick()
    assert_completed_once(process, url)
