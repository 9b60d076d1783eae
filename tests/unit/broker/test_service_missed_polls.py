"""Polls missed while the broker was away collapse into one.

A platform whose work ends on its own time is polled (`PlatformCheckDue`) every few seconds.
When the work queue falls behind (the broker was down, the clock jumped), the polls it missed
are not replayed one by one, each a platform call (a Slurm `squeue`): the platform is asked once
how the work goes now, and polling goes on from now. Timers that are not polls (the offered
end) still take effect as of when they fell due.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from broker import model
from broker.lifecycle import PlatformCheckDue, ResourcesReady
from broker.platforms.port import PlatformReport, SessionPlan
from tests.unit.broker.test_service_platforms import (
    POLL,
    ScriptedPlatform,
    reports,
    world_of,  # noqa: F401  (the fixture)
)

RUNNING_AT = datetime(2026, 9, 1, 9, 0, 30, tzinfo=UTC)
GAP = timedelta(minutes=11)


def _observes(platform: ScriptedPlatform) -> int:
    return sum(1 for call, _ in platform.calls if call == "observe")


def test_a_clock_jump_of_eleven_minutes_costs_one_poll_not_one_per_interval(world_of):  # noqa: F811
    platform = ScriptedPlatform("batch")
    platform.answers = {
        "prepare": [reports()],
        "observe": [reports(ResourcesReady()), *[reports()] * 1000],
    }
    world = world_of(platform)
    session = world.accepted()
    world.run_until(RUNNING_AT)
    assert world.session(session).phase is model.SessionPhase.RUNNING
    before = _observes(platform)

    world.clock.set(RUNNING_AT + GAP)  # the broker was away for 11 minutes
    world.broker.tick()

    missed = GAP // POLL  # what replaying every missed poll would have cost
    assert missed > 100
    assert _observes(platform) - before == 1
    # Polling goes on from now: the next poll is one interval after the jump, and only one.
    with world.broker._store.read() as tx:
        polls = [i for i in tx.pending(session) if isinstance(i.event, PlatformCheckDue)]
    assert [p.due_at for p in polls] == [RUNNING_AT + GAP + POLL]
    assert world.session(session).phase is model.SessionPhase.RUNNING


def test_several_due_polls_of_one_session_are_delivered_once(world_of):  # noqa: F811
    platform = ScriptedPlatform("batch")
    platform.answers = {
        "prepare": [reports()],
        "observe": [reports(ResourcesReady()), *[reports()] * 1000],
    }
    world = world_of(platform)
    session = world.accepted()
    world.run_until(RUNNING_AT)
    now = world.clock.now()
    with world.broker._store.write() as tx:  # as repeated platform calls could have left them
        for back in (1, 2, 3):
            tx.enqueue(session, now - timedelta(seconds=back), PlatformCheckDue())
    before = _observes(platform)
    world.broker.tick()
    assert _observes(platform) - before == 1
    assert world.broker.get_session(UUID(session)).phase is model.SessionPhase.RUNNING


def test_the_offered_end_still_takes_effect_when_it_fell_due(world_of):  # noqa: F811
    released_at: list[datetime] = []

    def release(plan: SessionPlan, now: datetime) -> list[PlatformReport]:
        released_at.append(now)
        return []

    platform = ScriptedPlatform("batch")
    platform.answers = {
        "prepare": [reports()],
        "observe": [reports(ResourcesReady()), *[reports()] * 1000],
        "release": [release],
    }
    world = world_of(platform)
    session = world.accepted()
    world.run_until(RUNNING_AT)
    world.clock.set(datetime(2026, 9, 1, 12, 0, tzinfo=UTC))  # past the offered end (10:00)
    world.broker.tick()
    assert world.broker.get_session(UUID(session)).phase is model.SessionPhase.RELEASING
    assert released_at == [datetime(2026, 9, 1, 10, 0, tzinfo=UTC)]
