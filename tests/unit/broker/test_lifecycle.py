"""The session lifecycle: the full phase x event matrix, the invariants of the table, stories."""

import heapq
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.lifecycle import (
    EVENT_TYPES,
    HOLDING,
    TERMINAL,
    TRANSITIONS,
    AcceptedDirectly,
    AllowedUpdate,
    AnyEffect,
    AnyEvent,
    BookCapacity,
    CancelRequested,
    ComponentCancelled,
    ComponentPhase,
    ConvertHoldToBooking,
    Effect,
    EndReached,
    Event,
    Failed,
    HoldCapacity,
    InvalidTransition,
    Notify,
    ObservePlatform,
    OfferAccepted,
    OfferExpired,
    OfferHasExpired,
    OfferRejected,
    OffersMade,
    OfferStartPassed,
    Phase,
    PlatformCheckDue,
    PreparationDue,
    RejectSiblings,
    Release,
    ReleaseCapacity,
    ReleaseDone,
    ReleaseStarted,
    ResourcesReady,
    ScheduleTimer,
    SessionState,
    SiblingAccepted,
    StartPreparation,
    StartReached,
    StartWork,
    StillPreparing,
    StopWork,
    WorkFinished,
    WorkQueued,
    allowed_updates,
    step,
    summarise,
    update_event,
)
from core.errors import Conflict

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
START = T0 + timedelta(hours=2)
END = START + timedelta(hours=3)
PREPARATION = timedelta(minutes=10)
EXPIRES = T0 + timedelta(minutes=5)

SAMPLES: dict[type[Event], Event] = {
    OffersMade: OffersMade(expires=EXPIRES),
    ComponentCancelled: ComponentCancelled(components=("compute",)),
    Failed: Failed(reason="compute failed on the platform"),
}


def sample(event_type: type[Event]) -> Event:
    return SAMPLES.get(event_type) or event_type()


def session(phase: Phase = Phase.INITIAL, **more) -> SessionState:
    fields = {
        "session_id": "s-1",
        "phase": phase,
        "start": START,
        "end": END,
        "preparation": PREPARATION,
        "expires": EXPIRES,
    }
    return SessionState(**(fields | more))


def kinds(effects) -> list[type]:
    return [type(effect) for effect in effects]


# ------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_every_phase_and_event_is_a_row_or_an_invalid_transition(phase, event_type):
    state = session(phase)
    event = sample(event_type)
    rule = TRANSITIONS.get((phase, event_type))
    if rule is None:
        with pytest.raises(InvalidTransition) as caught:
            step(state, event, T0)
        error = caught.value
        assert (error.session_id, error.phase, error.event) == ("s-1", phase, event)
        assert error.history == state.history
        assert f"session s-1 is {phase}: {event_type.__name__} is not allowed" in str(error)
    else:
        result = step(state, event, T0)
        assert result.state.phase is rule.to
        assert len(result.effects) == len(rule.effects)


def test_terminal_phases_have_no_rows():
    assert {phase for phase, _ in TRANSITIONS} == set(Phase) - TERMINAL
    assert {p for p in Phase if p.terminal} == TERMINAL


def test_every_phase_is_reachable_and_every_session_can_end():
    edges: dict[Phase, set[Phase]] = {}
    for (source, _), rule in TRANSITIONS.items():
        edges.setdefault(source, set()).add(rule.to)
    reached, todo = {Phase.INITIAL}, [Phase.INITIAL]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert reached == set(Phase)
    for phase in set(Phase) - TERMINAL:
        assert edges[phase] - {phase}, f"{phase} can never be left"


def test_rows_that_stay_only_ignore_or_poll_and_rows_that_move_notify():
    for (phase, event_type), rule in TRANSITIONS.items():
        if rule.to is phase and event_type is PlatformCheckDue:
            assert rule.effects == (ObservePlatform,), phase
        elif rule.to is phase:
            assert rule.effects == (), (phase, event_type)
        else:
            assert Notify in rule.effects, (phase, event_type)
            assert ObservePlatform not in rule.effects, (phase, event_type)


ON_PLATFORM = (Phase.PREPARING, Phase.AVAILABLE, Phase.RUNNING, Phase.RELEASING)


def test_the_platform_is_polled_exactly_while_it_holds_the_session():
    polled = {phase for phase, event_type in TRANSITIONS if event_type is PlatformCheckDue}
    assert polled == set(ON_PLATFORM)


@pytest.mark.parametrize("phase", ON_PLATFORM)
def test_a_poll_asks_the_platform_and_changes_nothing(phase):
    state = session(phase)
    result = step(state, PlatformCheckDue(), T0)
    assert result.state is state  # no history entry, however often a long session is polled
    assert result.effects == (ObservePlatform(),)


@pytest.mark.parametrize("phase", [Phase.ACCEPTED, Phase.WAITING, *TERMINAL])
def test_a_poll_outside_the_platform_phases_is_not_a_transition(phase):
    with pytest.raises(InvalidTransition, match="PlatformCheckDue is not allowed"):
        step(session(phase), PlatformCheckDue(), T0)


def test_a_cancel_by_the_platform_says_why():
    result = step(session(Phase.RUNNING), ComponentCancelled(reason="cancelled by root"), START)
    assert result.state.phase is Phase.CANCELLED
    assert result.effects[-1] == Notify(
        phase=Phase.CANCELLED, message="RUNNING -> CANCELLED (cancelled by root)"
    )


def test_every_way_out_of_a_holding_phase_frees_the_capacity():
    """A session that stops holding capacity must release it: no leaked holds or bookings."""
    for (phase, event_type), rule in TRANSITIONS.items():
        if phase in HOLDING and rule.to not in HOLDING:
            assert ReleaseCapacity in rule.effects, (phase, event_type)
        if phase in HOLDING and rule.to in HOLDING:
            assert ReleaseCapacity not in rule.effects, (phase, event_type)


def test_work_on_the_platform_is_always_stopped_or_released_when_the_session_ends_early():
    on_platform = {Phase.PREPARING, Phase.AVAILABLE, Phase.RUNNING}
    for (phase, event_type), rule in TRANSITIONS.items():
        if phase in on_platform and rule.to in {Phase.FAILED, Phase.CANCELLED, Phase.RELEASING}:
            stops = {StopWork, Release} & set(rule.effects)
            platform_did_it = event_type in (ReleaseStarted,)
            assert stops or platform_did_it, (phase, event_type)


# ------------------------------------------------------------------------- stories
class Driver:
    """Runs a session the way the service does: effects out, timers back in at their time."""

    def __init__(self, state: SessionState) -> None:
        self.state = state
        self.timers: list[tuple[datetime, int, AnyEvent]] = []
        self.done: list[Effect] = []

    def send(self, event: Event, now: datetime) -> list[Effect]:
        result = step(self.state, event, now)
        self.state = result.state
        for effect in result.effects:
            if isinstance(effect, ScheduleTimer):
                heapq.heappush(self.timers, (effect.at, len(self.done), effect.event))
        self.done.extend(result.effects)
        return list(result.effects)

    def next_timer(self) -> tuple[datetime, AnyEvent]:
        at, _, event = heapq.heappop(self.timers)
        return at, event


def test_the_whole_life_of_a_session_on_time():
    """Offered, accepted; waits; prepares at start - preparation; runs at start; ends at end."""
    run = Driver(session())
    assert kinds(run.send(OffersMade(expires=EXPIRES), T0)) == [HoldCapacity, ScheduleTimer, Notify]
    accepted = run.send(OfferAccepted(), T0 + timedelta(minutes=1))
    assert kinds(accepted) == [ConvertHoldToBooking, RejectSiblings, ScheduleTimer, Notify]
    assert run.state.phase is Phase.ACCEPTED

    # The offer's expiry timer was set first, but the work queue's comes first in time.
    at, event = run.next_timer()
    assert (at, event) == (T0 + timedelta(minutes=1), WorkQueued())
    assert kinds(run.send(event, at)) == [ScheduleTimer, Notify]
    assert run.state.phase is Phase.WAITING

    at, event = run.next_timer()
    assert (at, event) == (EXPIRES, OfferExpired())
    assert run.send(event, at) == []  # ignored after acceptance, and no history entry
    assert run.state.phase is Phase.WAITING

    at, event = run.next_timer()
    assert (at, event) == (START - PREPARATION, PreparationDue())
    assert kinds(run.send(event, at)) == [StartPreparation, ScheduleTimer, Notify]
    assert run.state.phase is Phase.PREPARING

    assert run.send(summarise({"compute": "PREPARING", "data": "AVAILABLE"}), at) == []
    ready = summarise({"compute": ComponentPhase.AVAILABLE, "data": ComponentPhase.AVAILABLE})
    assert kinds(run.send(ready, START - timedelta(minutes=2))) == [ScheduleTimer, Notify]
    assert run.state.phase is Phase.AVAILABLE

    at, event = run.next_timer()
    assert (at, event) == (START, StartReached())
    assert kinds(run.send(event, at)) == [StartWork, Notify]
    assert run.state.phase is Phase.RUNNING

    at, event = run.next_timer()
    assert (at, event) == (END, EndReached())  # the offered end really ends the session
    assert kinds(run.send(event, at)) == [Release, Notify]
    assert run.state.phase is Phase.RELEASING

    done = summarise(["COMPLETED", "COMPLETED"])
    assert kinds(run.send(done, END + timedelta(seconds=20))) == [ReleaseCapacity, Notify]
    assert run.state.phase is Phase.COMPLETED
    assert [t.target for t in run.state.history] == [
        Phase.OFFERED,
        Phase.ACCEPTED,
        Phase.WAITING,
        Phase.PREPARING,
        Phase.AVAILABLE,
        Phase.RUNNING,
        Phase.RELEASING,
        Phase.COMPLETED,
    ]
    assert not run.timers


def test_work_that_finishes_early_is_released_and_completed():
    run = Driver(session(Phase.RUNNING))
    finished = summarise({"compute": "COMPLETED", "storage": "AVAILABLE"})
    assert finished == WorkFinished()
    assert kinds(run.send(finished, START + timedelta(hours=1))) == [Release, Notify]
    assert run.send(EndReached(), END) == []  # the end timer still fires: nothing to do
    run.send(ReleaseDone(), END)
    assert run.state.phase is Phase.COMPLETED


def test_a_late_preparation_starts_the_work_as_soon_as_it_is_ready():
    run = Driver(session(Phase.PREPARING))
    run.send(ResourcesReady(), START + timedelta(minutes=3))
    at, event = run.next_timer()
    assert (at, event) == (START, StartReached())  # already due: delivered at once
    run.send(event, START + timedelta(minutes=3))
    assert run.state.phase is Phase.RUNNING


def test_a_failure_while_preparing_fails_the_session_and_releases_the_rest():
    run = Driver(session(Phase.PREPARING))
    failure = summarise({"executable": "AVAILABLE", "compute": "FAILED", "data": "PREPARING"})
    effects = run.send(failure, START - timedelta(minutes=5))
    assert kinds(effects) == [Release, ReleaseCapacity, Notify]
    assert run.state.phase is Phase.FAILED
    assert run.state.message == "compute failed on the platform"
    assert effects[-1] == Notify(phase=Phase.FAILED, message="compute failed on the platform")


def test_cancel_while_running_really_stops_the_work():
    run = Driver(session(Phase.RUNNING))
    effects = run.send(update_event(run.state, "phase", "CANCELLED"), START + timedelta(hours=1))
    assert kinds(effects) == [StopWork, ReleaseCapacity, Notify]
    assert run.state.phase is Phase.CANCELLED


def test_cancel_before_the_platform_is_involved_only_frees_the_booking():
    run = Driver(session(Phase.WAITING))
    assert kinds(run.send(CancelRequested(), T0)) == [ReleaseCapacity, Notify]


def test_a_platform_cancel_ends_the_session_cancelled_and_releases_the_rest():
    run = Driver(session(Phase.AVAILABLE))
    event = summarise({"compute": "CANCELLED", "data": "AVAILABLE"})
    assert event == ComponentCancelled(components=("compute",))
    assert kinds(run.send(event, START)) == [Release, ReleaseCapacity, Notify]
    assert run.state.phase is Phase.CANCELLED


def test_a_failed_teardown_fails_the_session():
    """The standard: FAILED on any error, teardown included, even if the work succeeded."""
    run = Driver(session(Phase.RELEASING))
    run.send(Failed(reason="results could not be saved"), END)
    assert (run.state.phase, run.state.message) == (Phase.FAILED, "results could not be saved")


def test_offers_end_rejected_by_the_client_by_a_sibling_or_by_time():
    for event, phase in [
        (OfferRejected(), Phase.REJECTED),
        (SiblingAccepted(), Phase.REJECTED),
        (OfferExpired(), Phase.EXPIRED),
    ]:
        result = step(session(Phase.OFFERED), event, T0)
        assert result.state.phase is phase
        assert kinds(result.effects) == [ReleaseCapacity, Notify]


def test_a_direct_request_books_at_once_and_a_failed_one_is_failed():
    direct = step(session(expires=None), AcceptedDirectly(), T0)
    assert direct.state.phase is Phase.ACCEPTED
    assert kinds(direct.effects) == [BookCapacity, ScheduleTimer, Notify]
    refused = step(session(expires=None), Failed(reason="no platform runs it"), T0)
    assert (refused.state.phase, refused.state.message) == (Phase.FAILED, "no platform runs it")


PLATFORM_REPORTS: tuple[Event, ...] = (
    PlatformCheckDue(),
    StillPreparing(),
    ResourcesReady(),
    StartReached(),
    EndReached(),
    WorkFinished(),
    ReleaseStarted(),
    ReleaseDone(),
    ComponentCancelled(reason="cancelled by root"),
    Failed(reason="exit code 1"),
    CancelRequested(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PLATFORM_REPORTS), max_size=30))
def test_any_story_of_reports_and_polls_keeps_the_invariants(reports):
    """Reports in any order: illegal ones are refused, polls never move or remember anything,
    each move is remembered once, and a session that ended stops holding capacity."""
    run = Driver(session(Phase.PREPARING))
    moves = 0
    released = False
    for number, event in enumerate(reports):
        now = T0 + timedelta(seconds=number)
        before = run.state
        if (before.phase, type(event)) not in TRANSITIONS:
            with pytest.raises(InvalidTransition):
                run.send(event, now)
            continue
        effects = run.send(event, now)
        released = released or any(isinstance(effect, ReleaseCapacity) for effect in effects)
        if isinstance(event, PlatformCheckDue):
            assert run.state is before
            assert effects == [ObservePlatform()]
        elif run.state.phase is not before.phase:
            moves += 1
        assert len(run.state.history) == moves
    assert released == run.state.phase.terminal


# ------------------------------------------------------------------------- expiry
def test_accept_after_expiry_is_refused():
    offered = step(session(), OffersMade(expires=EXPIRES), T0).state
    assert step(offered, OfferAccepted(), EXPIRES - timedelta(microseconds=1)).state.phase is (
        Phase.ACCEPTED
    )
    for late in (EXPIRES, EXPIRES + timedelta(hours=1)):
        with pytest.raises(OfferHasExpired) as caught:
            step(offered, OfferAccepted(), late)
        assert isinstance(caught.value, Conflict)
        assert "expired at 2026-06-01T09:05:00+00:00" in str(caught.value)


def test_a_late_accept_needs_a_new_start_and_keeps_the_whole_session():
    late_offer = session(Phase.OFFERED, expires=START + timedelta(hours=1))
    late = START - PREPARATION + timedelta(minutes=1)  # preparation had to begin a minute ago
    with pytest.raises(OfferStartPassed) as caught:
        step(late_offer, OfferAccepted(), late)
    assert isinstance(caught.value, Conflict)
    assert "can only be accepted with a later start" in str(caught.value)
    with pytest.raises(OfferStartPassed):  # a new start that is late too
        step(late_offer, OfferAccepted(start=START), late)
    moved = step(late_offer, OfferAccepted(start=late + PREPARATION), late)
    assert (moved.state.start, moved.state.end) == (
        late + PREPARATION,
        late + PREPARATION + (END - START),
    )
    [note] = [effect for effect in moved.effects if isinstance(effect, Notify)]
    assert "the start moved to" in note.message
    on_time = step(late_offer, OfferAccepted(), START - PREPARATION).state
    assert (on_time.start, on_time.end) == (START, END)


def test_the_history_records_when_each_change_happened_in_order():
    offered = step(session(), OffersMade(expires=EXPIRES), T0).state
    accepted = step(offered, OfferAccepted(), T0, at=T0 + timedelta(seconds=3)).state
    assert accepted.history[-1].at == T0 + timedelta(seconds=3)
    # An event that fell due earlier takes effect then, but is recorded when it happened...
    queued = step(accepted, WorkQueued(), T0, at=T0 + timedelta(seconds=5))
    assert queued.state.history[-1].at == T0 + timedelta(seconds=5)
    assert ScheduleTimer(at=START - PREPARATION, event=PreparationDue()) in queued.effects
    # ... and never before the change before it, even when a clock steps back.
    preparing = step(queued.state, PreparationDue(), START, at=T0).state
    assert preparing.history[-1].at == T0 + timedelta(seconds=5)
    times = [transition.at for transition in preparing.history]
    assert times == sorted(times)


def test_offers_made_sets_the_expiry_and_its_timer():
    result = step(session(expires=None), OffersMade(expires=EXPIRES), T0)
    assert result.state.expires == EXPIRES
    assert ScheduleTimer(at=EXPIRES, event=OfferExpired()) in result.effects


# ------------------------------------------------------------------------- client updates
@pytest.mark.parametrize(
    ("phase", "values"),
    [
        (Phase.INITIAL, None),
        (Phase.OFFERED, ("ACCEPTED", "REJECTED")),
        (Phase.ACCEPTED, ("CANCELLED",)),
        (Phase.WAITING, ("CANCELLED",)),
        (Phase.PREPARING, ("CANCELLED",)),
        (Phase.AVAILABLE, ("CANCELLED",)),
        (Phase.RUNNING, ("CANCELLED",)),
        (Phase.RELEASING, None),
        *((phase, None) for phase in TERMINAL),
    ],
)
def test_allowed_updates_per_phase(phase, values):
    expected = [AllowedUpdate("phase", values)] if values else []
    assert allowed_updates(phase) == expected


def test_every_allowed_update_is_a_row_of_the_table():
    for phase in Phase:
        for update in allowed_updates(phase):
            for value in update.values:
                event = update_event(session(phase), update.path, value)
                assert (phase, type(event)) in TRANSITIONS


def test_update_events_accept_the_usual_spellings():
    offered = session(Phase.OFFERED)
    assert update_event(offered, "/phase", "accepted") == OfferAccepted()
    assert update_event(offered, "phase", "REJECTED") == OfferRejected()


@pytest.mark.parametrize(
    ("phase", "path", "value", "message"),
    [
        (Phase.RUNNING, "phase", "ACCEPTED", "allowed updates: phase -> CANCELLED"),
        (Phase.OFFERED, "phase", "CANCELLED", "allowed updates: phase -> ACCEPTED or REJECTED"),
        (Phase.OFFERED, "name", "x", "update name -> x is not allowed"),
        (Phase.COMPLETED, "phase", "CANCELLED", "no update is allowed now"),
    ],
)
def test_an_illegal_update_names_the_phase_and_what_is_allowed(phase, path, value, message):
    with pytest.raises(InvalidTransition) as caught:
        update_event(session(phase), path, value)
    assert f"session s-1 is {phase}" in str(caught.value)
    assert message in str(caught.value)


def test_an_invalid_transition_carries_the_story():
    run = Driver(session())
    run.send(OffersMade(expires=EXPIRES), T0)
    run.send(OfferRejected(), T0)
    with pytest.raises(InvalidTransition) as caught:
        run.send(OfferAccepted(), T0)
    assert [(t.event, t.target) for t in caught.value.history] == [
        ("OffersMade", Phase.OFFERED),
        ("OfferRejected", Phase.REJECTED),
    ]


# ------------------------------------------------------------------------- summarise
@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ({}, None),
        ({"a": "FAILED", "b": "CANCELLED"}, Failed(reason="a failed on the platform")),
        ({"a": "FAILED", "b": "FAILED"}, Failed(reason="a, b failed on the platform")),
        ({"a": "CANCELLED", "b": "PREPARING"}, ComponentCancelled(components=("a",))),
        ({"a": "WAITING", "b": "RELEASING"}, StillPreparing()),
        ({"a": "INITIALIZING", "b": "AVAILABLE"}, StillPreparing()),
        ({"a": "RELEASING", "b": "AVAILABLE"}, ReleaseStarted()),
        ({"a": "AVAILABLE", "b": "RUNNING"}, ResourcesReady()),
        ({"a": "COMPLETED", "b": "COMPLETED"}, ReleaseDone()),
        ({"a": "COMPLETED", "b": "RUNNING"}, WorkFinished()),
    ],
)
def test_summarise_follows_one_precedence_list(report, expected):
    assert summarise(report) == expected


def test_summarise_names_components_by_position_without_names():
    assert summarise(["AVAILABLE", "FAILED"]) == Failed(reason="component 2 failed on the platform")


def test_summarise_refuses_unknown_phases():
    with pytest.raises(ValueError, match="SLEEPING"):
        summarise({"a": "SLEEPING"})


# ------------------------------------------------------------------------- persistence
def test_states_events_and_effects_round_trip_through_json():
    run = Driver(session())
    run.send(OffersMade(expires=EXPIRES), T0)
    run.send(OfferAccepted(), T0)
    state = msgspec.json.decode(msgspec.json.encode(run.state), type=SessionState)
    assert state == run.state
    effects = msgspec.json.decode(msgspec.json.encode(run.done), type=list[AnyEffect])
    assert effects == run.done
    for event_type in EVENT_TYPES:
        event = sample(event_type)
        assert msgspec.json.decode(msgspec.json.encode(event), type=AnyEvent) == event
