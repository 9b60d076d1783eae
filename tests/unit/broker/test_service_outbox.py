"""Platform calls are made after the commit that decided them (the outbox).

A transition stores its new phase and the platform calls it needs in one transaction; the
calls are made with no transaction open and their answers come back as events. So a platform
that takes long holds up no offer request and no read, and a process that dies during a call
loses nothing: the call is made again once its claim has run out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from broker import model
from broker.lifecycle import ResourcesReady
from broker.platforms.port import PlatformReport, SessionPlan
from broker.service import BrokerService
from broker.service.broker import CLAIM_LEASE
from tests.unit.broker.test_service_platforms import (
    BASE,
    ScriptedPlatform,
    program_request,
    reports,
    world_of,  # noqa: F401  (the fixture)
)

PREPARATION_DUE = datetime(2026, 9, 1, 8, 59, tzinfo=UTC)
BOUND = 30.0  # seconds: generous, the machine may be busy


class BlockingPlatform(ScriptedPlatform):
    """A platform whose `prepare` blocks until the test lets it go."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.inside = threading.Event()
        self.go_on = threading.Event()

    def prepare(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        self.inside.set()
        assert self.go_on.wait(BOUND), "the test never let prepare go on"
        return [PlatformReport(now, ResourcesReady())]


class ProcessDied(BaseException):
    """Stands for the process being killed during a platform call (not an adapter error)."""


def in_thread(work, *args):  # type: ignore[no-untyped-def]
    done = threading.Event()
    result: list[object] = []

    def run() -> None:
        result.append(work(*args))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, result


def test_a_slow_prepare_holds_up_no_offer_request_and_no_read(world_of):  # noqa: F811
    platform = BlockingPlatform("slow")
    world = world_of(platform)
    session = world.accepted()
    world.clock.set(PREPARATION_DUE)
    ticking, _ = in_thread(world.broker.tick)
    assert platform.inside.wait(BOUND), "prepare was never called"

    # While prepare blocks: a new offer request on the same platform, and reads, go through.
    offered, answer = in_thread(world.broker.request_offers, program_request(), BASE)
    read, seen = in_thread(world.broker.get_session, UUID(session))
    assert offered.wait(BOUND / 3)
    assert read.wait(BOUND / 3)
    assert not ticking.is_set(), "prepare returned early: the test proved nothing"
    assert answer[0].result == "YES"  # type: ignore[attr-defined]
    assert seen[0].phase is model.SessionPhase.PREPARING  # type: ignore[attr-defined]

    platform.go_on.set()
    assert ticking.wait(BOUND)
    world.broker.tick()
    assert world.session(session).phase is model.SessionPhase.AVAILABLE


def test_a_call_cut_short_by_a_dying_process_is_made_again_by_the_next_one(world_of):  # noqa: F811
    platform = ScriptedPlatform("real")

    def dies(plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        raise ProcessDied

    platform.answers = {"prepare": [dies, reports(ResourcesReady(), poll=False)]}
    world = world_of(platform)
    session = world.accepted()
    world.clock.set(PREPARATION_DUE)
    try:
        world.broker.tick()
    except ProcessDied:
        pass
    else:
        raise AssertionError("the platform call did not run")
    # The transition that decided the call was committed before it: nothing is lost.
    assert world.session(session).phase is model.SessionPhase.PREPARING

    # A new process (another worker) over the same store takes the call over once the dead
    # one's claim has run out, and the session carries on.
    settings = world.broker._settings
    restarted = BrokerService(settings, world.clock, world.store, {"real": platform})
    restarted.tick()
    assert [call for call, _ in platform.calls] == ["prepare"]  # still claimed: not yet
    world.clock.set(PREPARATION_DUE + CLAIM_LEASE)  # also the offered start: it runs
    restarted.tick()
    assert [call for call, _ in platform.calls] == ["prepare", "prepare", "start"]
    assert world.session(session).phase is model.SessionPhase.RUNNING


def test_a_cancel_is_answered_after_the_platform_stopped_the_work(world_of):  # noqa: F811
    platform = ScriptedPlatform("real")
    platform.answers = {"prepare": [reports(poll=False)]}
    world = world_of(platform)
    session = world.accepted()
    world.clock.set(PREPARATION_DUE)
    world.broker.tick()
    cancelled = world.broker.update_session(
        UUID(session), model.EnumValueUpdate(path="phase", value="CANCELLED")
    )
    assert cancelled.phase is model.SessionPhase.CANCELLED
    assert [call for call, _ in platform.calls] == ["prepare", "stop"]
