"""The service and the Platform port: polls, adapters that raise, platforms that say NO.

A scripted adapter stands in for a real platform: it answers each call from a script and
records what it was asked. The service is the real one over a SQLite file, driven by a
`ManualClock`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker import model
from broker.lifecycle import (
    AnyEvent,
    Phase,
    PlatformCheckDue,
    ReleaseDone,
    ResourcesReady,
    WorkFinished,
)
from broker.model import codec
from broker.platforms.port import PlatformReport, SessionPlan
from broker.service import BrokerService
from broker.service.platforms import session_plan
from core.clock import ManualClock
from core.settings import BrokerSettings, Capacity, PlatformSettings
from tests.broker_support import StoreKind, broker_store, close_store

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
K = model.KINDS
BASE = "http://broker.test/broker"
POLL = timedelta(seconds=5)
CANCEL = model.EnumValueUpdate(path="phase", value="CANCELLED")
ACCEPT = model.EnumValueUpdate(path="phase", value="ACCEPTED")

Answer = Callable[[SessionPlan, datetime], Sequence[PlatformReport]]


class ScriptedPlatform:
    """A `Platform` answering from a script: `answers[call]` is a list used in turn."""

    def __init__(self, name: str, refuse: Sequence[str] = ()) -> None:
        self.name = name
        self.refuse = list(refuse)
        self.calls: list[tuple[str, str]] = []
        self.answers: dict[str, list[Answer]] = {}

    def _answer(self, call: str, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        self.calls.append((call, plan.session_id))
        script = self.answers.get(call, [])
        return script.pop(0)(plan, now) if script else []

    def accepts(self, executable: model.AnyExecutable, gpus: int = 0) -> Sequence[str]:
        return self.refuse

    def prepare(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        return self._answer("prepare", plan, now)

    def start(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        return self._answer("start", plan, now)

    def observe(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        return self._answer("observe", plan, now)

    def release(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        return self._answer("release", plan, now)

    def stop(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        return self._answer("stop", plan, now)


def reports(*events: AnyEvent, poll: bool = True) -> Answer:
    """An answer giving `events` now, and asking to be polled again unless `poll` is false."""

    def answer(plan: SessionPlan, now: datetime) -> list[PlatformReport]:
        given = [PlatformReport(now, event) for event in events]
        return [*given, PlatformReport(now + POLL, PlatformCheckDue())] if poll else given

    return answer


def raises(error: Exception) -> Answer:
    def answer(plan: SessionPlan, now: datetime) -> list[PlatformReport]:
        raise error

    return answer


def program_request(**schedule: str) -> model.ExecutionRequest:
    document: dict[str, Any] = {
        "executable": {
            "kind": model.PYTHON_PROGRAM_KIND,
            "meta": {"name": "hello"},
            "location": "file:///srv/hello.py",
        },
        "compute": {"kind": K + "compute/simple-compute-resource.yaml", "cores": {"min": 1}},
        "data": [
            {
                "kind": K + "data/simple-data-resource.yaml",
                "meta": {"name": "input"},
                "location": "https://data.example.org/a.fits",
            }
        ],
        "schedule": {"requested": {"start": "2026-09-01T09:00:00Z/PT1H", "duration": "PT1H"}},
    }
    return codec.convert(document, model.ExecutionRequest).value


class World:
    """A broker with scripted platforms, its clock, and helpers to drive a session."""

    def __init__(
        self, tmp_path: Path, *platforms: ScriptedPlatform, store: StoreKind = "memory"
    ) -> None:
        self.clock = ManualClock(NOW)
        settings = BrokerSettings(
            platforms=[
                PlatformSettings(
                    name=platform.name,
                    capacity=Capacity(cores=4, memory=8),
                    executables=["python-program"],
                    preparation=timedelta(minutes=1),
                )
                for platform in platforms
            ],
            max_offers=1,
        )
        # The service's own logic: its state in memory unless the test is about the database
        # (the store's contract suite holds the fake and the SQL store to the same answers).
        self.store = broker_store(store, tmp_path)
        self.broker = BrokerService(
            settings, self.clock, self.store, {platform.name: platform for platform in platforms}
        )

    def accepted(self) -> str:
        offers = self.broker.request_offers(program_request(), BASE)
        assert offers.result == "YES", offers.meta
        uuid = offers.offers[0].meta.uuid  # type: ignore[union-attr]
        self.broker.update_session(uuid, ACCEPT)  # type: ignore[arg-type]
        return str(uuid)

    def run_until(self, instant: datetime) -> None:
        """Tick every poll interval up to `instant`, as the work queue would.

        Starts a little before preparation (08:59), so that the polls are few.
        """
        self.clock.set(max(self.clock.now(), datetime(2026, 9, 1, 8, 58, 55, tzinfo=UTC)))
        while self.clock.now() < instant:
            self.clock.set(min(self.clock.now() + POLL, instant))
            self.broker.tick()

    def session(self, session_id: str) -> model.AnySession:
        from uuid import UUID

        return self.broker.get_session(UUID(session_id))

    def messages(self, session_id: str) -> list[str]:
        meta = self.session(session_id).meta
        return [item.message or "" for item in (meta.messages if meta else [])]


@pytest.fixture
def world_of(tmp_path: Path) -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(*platforms: ScriptedPlatform, store: StoreKind = "memory") -> World:
        worlds.append(World(tmp_path, *platforms, store=store))
        return worlds[-1]

    yield make
    for world in worlds:
        close_store(world.store)


def test_a_platform_observed_by_polls_drives_the_session_to_completed(world_of):
    platform = ScriptedPlatform("real")
    platform.answers = {
        "prepare": [reports()],
        "observe": [
            reports(),  # still preparing
            reports(ResourcesReady()),
            *[reports()] * 400,  # available, then running until the work is done
        ],
    }
    world = world_of(platform)
    session = world.accepted()
    world.run_until(datetime(2026, 9, 1, 9, 0, 30, tzinfo=UTC))
    assert world.session(session).phase is model.SessionPhase.RUNNING
    platform.answers["observe"] = [reports(WorkFinished()), reports(ReleaseDone(), poll=False)]
    world.run_until(datetime(2026, 9, 1, 9, 1, tzinfo=UTC))

    assert world.session(session).phase is model.SessionPhase.COMPLETED
    called = [call for call, _ in platform.calls]
    assert called[:3] == ["prepare", "observe", "observe"]
    assert "start" in called
    assert "release" in called
    assert "stop" not in called
    assert called.index("prepare") < called.index("start") < called.index("release")
    # The polls left no trace in the session's story: one entry per phase.
    with world.broker._store.read() as tx:
        record = tx.session(session)
        assert record is not None
        assert [t.target for t in record.state.history][-5:] == [
            Phase.PREPARING,
            Phase.AVAILABLE,
            Phase.RUNNING,
            Phase.RELEASING,
            Phase.COMPLETED,
        ]
        assert tx.pending(session) == []


@pytest.mark.parametrize("call", ["prepare", "observe", "start"])
def test_a_platform_call_that_raises_fails_the_session_with_the_reason(world_of, call):
    platform = ScriptedPlatform("real")
    platform.answers = {"prepare": [reports()], "observe": [reports(ResourcesReady())] * 400}
    platform.answers[call] = [raises(OSError(f"{call}: disk full"))]
    world = world_of(platform)
    session = world.accepted()
    world.run_until(datetime(2026, 9, 1, 9, 5, tzinfo=UTC))

    found = world.session(session)
    assert found.phase is model.SessionPhase.FAILED
    assert any(
        f"real: {call} failed: OSError: {call}: disk full" in m for m in world.messages(session)
    )
    assert ("release", session) in platform.calls  # what the platform holds is released


def test_a_stop_that_raises_still_cancels_and_says_what_failed(world_of):
    platform = ScriptedPlatform("real")
    platform.answers = {"prepare": [reports()], "stop": [raises(RuntimeError("scancel: timeout"))]}
    world = world_of(platform)
    session = world.accepted()
    world.run_until(datetime(2026, 9, 1, 8, 59, 30, tzinfo=UTC))
    assert world.session(session).phase is model.SessionPhase.PREPARING

    from uuid import UUID

    cancelled = world.broker.update_session(UUID(session), CANCEL)
    assert cancelled.phase is model.SessionPhase.CANCELLED
    assert any("stop failed: RuntimeError: scancel: timeout" in m for m in world.messages(session))
    world.run_until(datetime(2026, 9, 1, 9, 0, tzinfo=UTC))
    assert world.session(session).phase is model.SessionPhase.CANCELLED


def test_a_platform_that_cannot_run_the_request_answers_no_with_its_reason(world_of):
    refusing = ScriptedPlatform("batch", refuse=["no Python 3.9 here (this platform has 3.11)"])
    world = world_of(refusing)
    offers = world.broker.request_offers(program_request(), BASE)
    assert offers.result == "NO"
    texts = [item.message for item in offers.meta.messages]  # type: ignore[union-attr]
    assert "batch: no Python 3.9 here (this platform has 3.11)" in texts


def test_a_refusing_platform_leaves_the_others_offering(world_of):
    world = world_of(
        ScriptedPlatform("batch", refuse=["no container engine"]), ScriptedPlatform("ok")
    )
    offers = world.broker.request_offers(program_request(), BASE)
    assert offers.result == "YES"
    assert [o.meta.messages[0].values["platform"] for o in offers.offers] == ["ok"]  # type: ignore[union-attr]
    texts = [item.message for item in offers.meta.messages]  # type: ignore[union-attr]
    assert "batch: no container engine" in texts


def test_an_adapter_whose_check_raises_refuses_with_the_error(world_of):
    def refuse_with_an_error(executable: model.AnyExecutable, gpus: int = 0) -> Sequence[str]:
        raise ValueError("bad settings")

    broken = ScriptedPlatform("broken")
    broken.accepts = refuse_with_an_error  # type: ignore[method-assign]
    offers = world_of(broken).broker.request_offers(program_request(), BASE)
    assert offers.result == "NO"
    texts = [item.message or "" for item in offers.meta.messages]  # type: ignore[union-attr]
    assert any("cannot check the request: ValueError: bad settings" in text for text in texts)


def test_the_plan_carries_the_offered_slot_and_the_data(world_of):
    world = world_of(ScriptedPlatform("real"))
    session = world.accepted()
    with world.broker._store.read() as tx:
        record = tx.session(session)
    assert record is not None
    plan = session_plan(record)
    assert isinstance(plan.executable, model.PythonProgram)
    assert plan.executable.location == "file:///srv/hello.py"
    assert (plan.start, plan.end) == (record.state.start, record.state.end)
    assert plan.end - plan.start == timedelta(hours=1)
    assert (plan.cores, plan.memory, plan.gpus) == (
        record.resources.cores,
        record.resources.memory,
        0,
    )
    assert [(d.name, d.location) for d in plan.data] == [
        ("input", "https://data.example.org/a.fits")
    ]
