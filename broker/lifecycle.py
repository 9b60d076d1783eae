"""The session lifecycle: phases, the events that move them, the effects they call for.

Owns `Phase`, the events (facts, past tense), the effects (commands), the `TRANSITIONS` table,
`step`, `summarise`, `allowed_updates` and `update_event`. Pure: no I/O, no clock (`now` is an
argument), imports `core` and msgspec only. The shape follows dask/distributed's
`worker_state_machine`: a closed set of phases; one explicit table listing every legal
`(phase, event)` pair, including the pairs where the event is deliberately ignored; anything
else raises `InvalidTransition` carrying the session's history.

The service (`BrokerService`) is the I/O shell: it calls `step`, stores the new state and the
effects (an outbox) in one transaction, then carries the effects out through the ports. Their
outcomes come back as events (`ScheduleTimer` comes back as its event at its time; platform
reports come back through `summarise`). Events for a session in a terminal phase are never
delivered: terminal phases have no rows, so the service drops a timer whose session has ended.

The timeline after acceptance: ACCEPTED until the work queue takes the session, WAITING until
preparation must start (`start - preparation`), PREPARING, AVAILABLE when every component is
ready, RUNNING at the offered start, RELEASING when the work finishes or at the offered end
(the offered end really ends the session), COMPLETED when the platform has released
everything. Any component failure makes the session FAILED (with a message) and releases the
rest; a client's cancel makes it CANCELLED and really stops the work (`StopWork`).

Work that ends on its own time is observed: a platform's report may ask for `PlatformCheckDue`
at a later instant; in the phases where the platform holds the session (PREPARING to
RELEASING) that event calls for `ObservePlatform`, whose answer is more reports, and so on until
the work has ended. These polls change nothing by themselves and leave no history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, TypeAlias, cast

import msgspec

from broker.model import TERMINAL_PHASES, LifecyclePhase, SessionPhase
from core.errors import Conflict

# The wire model's enums are the phases: one list of names, whether a session is stored,
# stepped or sent.
Phase: TypeAlias = SessionPhase
ComponentPhase: TypeAlias = LifecyclePhase
TERMINAL: Final = TERMINAL_PHASES
HOLDING: Final = frozenset(
    {
        Phase.OFFERED,
        Phase.ACCEPTED,
        Phase.WAITING,
        Phase.PREPARING,
        Phase.AVAILABLE,
        Phase.RUNNING,
        Phase.RELEASING,
    }
)
"""Phases whose session holds or books capacity (OFFERED only until it expires)."""


# ------------------------------------------------------------------------- events: facts
class Event(msgspec.Struct, frozen=True, tag_field="event", tag=True):
    """Something that happened to a session; tagged by class name when stored."""


class OffersMade(Event, frozen=True):
    """The session was created as an offer, holding its capacity until `expires`."""

    expires: datetime


class AcceptedDirectly(Event, frozen=True):
    """The session was created already accepted (`POST /direct`)."""


class OfferAccepted(Event, frozen=True):
    """The client accepted this offer.

    `start`, when given, is the session's new start: the offer was accepted too late for its
    preparation to begin on time, and the service found room for the whole slot later. The
    session keeps its duration; it never starts with less preparation than the platform needs
    nor runs shorter than offered (`step` refuses a late accept without a new start).
    """

    start: datetime | None = None


class OfferRejected(Event, frozen=True):
    """The client rejected this offer."""


class SiblingAccepted(Event, frozen=True):
    """The client accepted another offer of the same offer set."""


class OfferExpired(Event, frozen=True):
    """The offer's `expires` instant passed."""


class WorkQueued(Event, frozen=True):
    """The work queue took the accepted session."""


class PreparationDue(Event, frozen=True):
    """The instant when preparation must start (`start - preparation`) came."""


class StillPreparing(Event, frozen=True):
    """The platform reported components still waiting or preparing."""


class ResourcesReady(Event, frozen=True):
    """The platform reported every component available (or already running)."""


class StartReached(Event, frozen=True):
    """The offered start came."""


class EndReached(Event, frozen=True):
    """The offered end came."""


class WorkFinished(Event, frozen=True):
    """The platform reported the work done while other components are still available."""


class ReleaseStarted(Event, frozen=True):
    """The platform reported components releasing."""


class ReleaseDone(Event, frozen=True):
    """The platform reported every component completed: everything is released."""


class CancelRequested(Event, frozen=True):
    """The client asked to cancel the session."""


class ComponentCancelled(Event, frozen=True):
    """The platform reported components cancelled (not at the client's request)."""

    components: tuple[str, ...] = ()
    reason: str | None = None
    """What the platform said, when it said something (e.g. `cancelled by the operator`)."""


class PlatformCheckDue(Event, frozen=True):
    """The time came to ask the platform how the session's work goes.

    A platform whose work finishes on its own time (a process, a batch job) asks for these in
    its reports; each answer carries the next one until the work has ended.
    """


class Failed(Event, frozen=True):
    """Something failed; `reason` says what, for the client."""

    reason: str


AnyEvent: TypeAlias = (
    OffersMade
    | AcceptedDirectly
    | OfferAccepted
    | OfferRejected
    | SiblingAccepted
    | OfferExpired
    | WorkQueued
    | PreparationDue
    | StillPreparing
    | ResourcesReady
    | StartReached
    | EndReached
    | WorkFinished
    | ReleaseStarted
    | ReleaseDone
    | CancelRequested
    | ComponentCancelled
    | PlatformCheckDue
    | Failed
)
EVENT_TYPES: Final[tuple[type[Event], ...]] = AnyEvent.__args__


# ------------------------------------------------------------------------- effects: commands
class Effect(msgspec.Struct, frozen=True, tag_field="effect", tag=True):
    """Something the service must do for the session; tagged by class name in the outbox."""


class HoldCapacity(Effect, frozen=True):
    """Hold the offer's capacity until it expires."""


class BookCapacity(Effect, frozen=True):
    """Book the session's capacity (a direct request: no hold before)."""


class ConvertHoldToBooking(Effect, frozen=True):
    """Turn the offer's hold into a booking that no longer expires."""


class ReleaseCapacity(Effect, frozen=True):
    """Free the session's hold or booking."""


class RejectSiblings(Effect, frozen=True):
    """Send `SiblingAccepted` to every other OFFERED session of the offer set."""


class StartPreparation(Effect, frozen=True):
    """Ask the platform to prepare the session (stage data, pull images)."""


class StartWork(Effect, frozen=True):
    """Ask the platform to start the work."""


class StopWork(Effect, frozen=True):
    """Stop the work on the platform now and release what it holds there (a cancel)."""


class Release(Effect, frozen=True):
    """Ask the platform to end the session in order: stop what still runs, release the rest."""


class ObservePlatform(Effect, frozen=True):
    """Ask the platform how the work goes; its answer comes back as reports (events)."""


class ScheduleTimer(Effect, frozen=True):
    """Deliver `event` to the session at `at` (at once if `at` has passed)."""

    at: datetime
    event: AnyEvent


class Notify(Effect, frozen=True):
    """Record a message on the session for the client."""

    phase: Phase
    message: str


AnyEffect: TypeAlias = (
    HoldCapacity
    | BookCapacity
    | ConvertHoldToBooking
    | ReleaseCapacity
    | RejectSiblings
    | StartPreparation
    | StartWork
    | StopWork
    | Release
    | ObservePlatform
    | ScheduleTimer
    | Notify
)


# ------------------------------------------------------------------------- the state
class Transition(msgspec.Struct, frozen=True):
    """One step of a session's story: when, which event, from which phase to which."""

    at: datetime
    event: str
    source: Phase
    target: Phase


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """What the lifecycle needs to know about one session."""

    session_id: str
    phase: Phase = Phase.INITIAL
    start: datetime
    """The offered start."""
    end: datetime
    """The offered end: the session is released then at the latest."""
    preparation: timedelta = timedelta(0)
    expires: datetime | None = None
    """When the offer stops holding capacity (set by `OffersMade`)."""
    latest_start: datetime | None = None
    """The end of the requested start range: how late an offer accepted late may start."""
    message: str | None = None
    """Why the session failed."""
    history: tuple[Transition, ...] = ()


class Step(msgspec.Struct, frozen=True):
    """The result of one event: the new state and what the service must now do."""

    state: SessionState
    effects: tuple[AnyEffect, ...]


class InvalidTransition(Conflict):
    """The event (or client update) is not legal in the session's phase.

    Carries the session's story (`history`), and says which updates the client may make now.
    """

    def __init__(
        self,
        session_id: str,
        phase: Phase,
        event: Event | str,
        history: tuple[Transition, ...],
        *,
        message: str | None = None,
    ) -> None:
        self.session_id, self.phase, self.event, self.history = session_id, phase, event, history
        if message is None:
            name = event if isinstance(event, str) else type(event).__name__
            updates = allowed_updates(phase)
            allowed = (
                "; allowed updates: "
                + "; ".join(f"{u.path} -> {' or '.join(u.values)}" for u in updates)
                if updates
                else "; no update is allowed now"
            )
            message = f"session {session_id} is {phase}: {name} is not allowed{allowed}"
        super().__init__(message)


class OfferHasExpired(InvalidTransition):
    """An accept came at or after the offer's `expires`: its hold is gone."""

    def __init__(self, state: SessionState, now: datetime) -> None:
        self.expires = state.expires
        expired = state.expires.isoformat() if state.expires else "?"
        super().__init__(
            state.session_id,
            state.phase,
            OfferAccepted(),
            state.history,
            message=f"session {state.session_id}: the offer expired at {expired} "
            f"(now {now.isoformat()}) and can no longer be accepted",
        )


class OfferStartPassed(InvalidTransition):
    """An accept came after preparation should have begun, and no later start was given."""

    def __init__(self, state: SessionState, now: datetime) -> None:
        begin = state.start - state.preparation
        super().__init__(
            state.session_id,
            state.phase,
            OfferAccepted(),
            state.history,
            message=f"session {state.session_id}: the offer starts at "
            f"{state.start.isoformat()}, and its preparation had to begin at "
            f"{begin.isoformat()} (now {now.isoformat()}); it can only be accepted with a later "
            "start",
        )


# ------------------------------------------------------------------------- the table
class Anchor(StrEnum):
    """Which instant of the session a timer is set for."""

    NOW = "now"
    EXPIRES = "expires"
    PREPARATION_START = "preparation start"
    START = "start"
    END = "end"


@dataclass(frozen=True, slots=True)
class Timer:
    """In a rule: schedule `event` at the session's `at` instant."""

    event: type[Event]
    at: Anchor


@dataclass(frozen=True, slots=True)
class Rule:
    """What an event does in a phase: the phase it leads to and the effects it calls for."""

    to: Phase
    effects: tuple[type[Effect] | Timer, ...] = ()


def ignore(phase: Phase) -> Rule:
    """A row that ignores the event: the session stays in `phase` and nothing is done."""
    return Rule(phase)


def check(phase: Phase) -> Rule:
    """A row that asks the platform how the work goes: the phase stays, nothing is remembered.

    The platform's answer (reports) decides what happens next; the poll leaves no trace in the
    session's history, so a long session polled every few seconds keeps a short story.
    """
    return Rule(phase, (ObservePlatform,))


P = Phase
_EXPIRE_LATER = Timer(OfferExpired, Anchor.EXPIRES)
_QUEUE_NOW = Timer(WorkQueued, Anchor.NOW)
_PREPARE_LATER = Timer(PreparationDue, Anchor.PREPARATION_START)
_START_LATER = Timer(StartReached, Anchor.START)
_END_LATER = Timer(EndReached, Anchor.END)
_REJECT_OR_EXPIRE = (ReleaseCapacity, Notify)
_CANCEL_BEFORE_PLATFORM = (ReleaseCapacity, Notify)
_CANCEL_ON_PLATFORM = (StopWork, ReleaseCapacity, Notify)
_FAIL_BEFORE_PLATFORM = (ReleaseCapacity, Notify)
_FAIL_ON_PLATFORM = (Release, ReleaseCapacity, Notify)

TRANSITIONS: Final[Mapping[tuple[Phase, type[Event]], Rule]] = {
    # Offers and direct requests.
    (P.INITIAL, OffersMade): Rule(P.OFFERED, (HoldCapacity, _EXPIRE_LATER, Notify)),
    (P.INITIAL, AcceptedDirectly): Rule(P.ACCEPTED, (BookCapacity, _QUEUE_NOW, Notify)),
    (P.INITIAL, Failed): Rule(P.FAILED, (Notify,)),
    (P.OFFERED, OfferAccepted): Rule(
        P.ACCEPTED, (ConvertHoldToBooking, RejectSiblings, _QUEUE_NOW, Notify)
    ),
    (P.OFFERED, OfferRejected): Rule(P.REJECTED, _REJECT_OR_EXPIRE),
    (P.OFFERED, SiblingAccepted): Rule(P.REJECTED, _REJECT_OR_EXPIRE),
    (P.OFFERED, OfferExpired): Rule(P.EXPIRED, _REJECT_OR_EXPIRE),
    # Accepted, not yet on the platform. The offer's expiry timer may still fire: ignored.
    (P.ACCEPTED, WorkQueued): Rule(P.WAITING, (_PREPARE_LATER, Notify)),
    (P.ACCEPTED, OfferExpired): ignore(P.ACCEPTED),
    (P.ACCEPTED, CancelRequested): Rule(P.CANCELLED, _CANCEL_BEFORE_PLATFORM),
    (P.ACCEPTED, Failed): Rule(P.FAILED, _FAIL_BEFORE_PLATFORM),
    (P.WAITING, PreparationDue): Rule(P.PREPARING, (StartPreparation, _END_LATER, Notify)),
    (P.WAITING, OfferExpired): ignore(P.WAITING),
    (P.WAITING, CancelRequested): Rule(P.CANCELLED, _CANCEL_BEFORE_PLATFORM),
    (P.WAITING, Failed): Rule(P.FAILED, _FAIL_BEFORE_PLATFORM),
    # On the platform, before the start.
    (P.PREPARING, StillPreparing): ignore(P.PREPARING),
    (P.PREPARING, PlatformCheckDue): check(P.PREPARING),
    (P.PREPARING, ResourcesReady): Rule(P.AVAILABLE, (_START_LATER, Notify)),
    (P.PREPARING, ReleaseStarted): Rule(P.RELEASING, (Notify,)),
    (P.PREPARING, EndReached): Rule(P.RELEASING, (Release, Notify)),
    (P.PREPARING, OfferExpired): ignore(P.PREPARING),
    (P.PREPARING, CancelRequested): Rule(P.CANCELLED, _CANCEL_ON_PLATFORM),
    (P.PREPARING, ComponentCancelled): Rule(P.CANCELLED, _FAIL_ON_PLATFORM),
    (P.PREPARING, Failed): Rule(P.FAILED, _FAIL_ON_PLATFORM),
    (P.AVAILABLE, StartReached): Rule(P.RUNNING, (StartWork, Notify)),
    (P.AVAILABLE, StillPreparing): ignore(P.AVAILABLE),
    (P.AVAILABLE, PlatformCheckDue): check(P.AVAILABLE),
    (P.AVAILABLE, ResourcesReady): ignore(P.AVAILABLE),
    (P.AVAILABLE, WorkFinished): Rule(P.RELEASING, (Release, Notify)),
    (P.AVAILABLE, ReleaseStarted): Rule(P.RELEASING, (Notify,)),
    (P.AVAILABLE, ReleaseDone): Rule(P.COMPLETED, (ReleaseCapacity, Notify)),
    (P.AVAILABLE, EndReached): Rule(P.RELEASING, (Release, Notify)),
    (P.AVAILABLE, OfferExpired): ignore(P.AVAILABLE),
    (P.AVAILABLE, CancelRequested): Rule(P.CANCELLED, _CANCEL_ON_PLATFORM),
    (P.AVAILABLE, ComponentCancelled): Rule(P.CANCELLED, _FAIL_ON_PLATFORM),
    (P.AVAILABLE, Failed): Rule(P.FAILED, _FAIL_ON_PLATFORM),
    # Running: the work ends by itself, or at the offered end.
    (P.RUNNING, StartReached): ignore(P.RUNNING),
    (P.RUNNING, StillPreparing): ignore(P.RUNNING),
    (P.RUNNING, PlatformCheckDue): check(P.RUNNING),
    (P.RUNNING, ResourcesReady): ignore(P.RUNNING),
    (P.RUNNING, WorkFinished): Rule(P.RELEASING, (Release, Notify)),
    (P.RUNNING, ReleaseStarted): Rule(P.RELEASING, (Notify,)),
    (P.RUNNING, ReleaseDone): Rule(P.COMPLETED, (ReleaseCapacity, Notify)),
    (P.RUNNING, EndReached): Rule(P.RELEASING, (Release, Notify)),
    (P.RUNNING, OfferExpired): ignore(P.RUNNING),
    (P.RUNNING, CancelRequested): Rule(P.CANCELLED, _CANCEL_ON_PLATFORM),
    (P.RUNNING, ComponentCancelled): Rule(P.CANCELLED, _FAIL_ON_PLATFORM),
    (P.RUNNING, Failed): Rule(P.FAILED, _FAIL_ON_PLATFORM),
    # Releasing: late reports and timers change nothing; a failed teardown fails the session.
    (P.RELEASING, ReleaseDone): Rule(P.COMPLETED, (ReleaseCapacity, Notify)),
    (P.RELEASING, StartReached): ignore(P.RELEASING),
    (P.RELEASING, StillPreparing): ignore(P.RELEASING),
    (P.RELEASING, PlatformCheckDue): check(P.RELEASING),
    (P.RELEASING, ResourcesReady): ignore(P.RELEASING),
    (P.RELEASING, WorkFinished): ignore(P.RELEASING),
    (P.RELEASING, ReleaseStarted): ignore(P.RELEASING),
    (P.RELEASING, EndReached): ignore(P.RELEASING),
    (P.RELEASING, OfferExpired): ignore(P.RELEASING),
    (P.RELEASING, ComponentCancelled): Rule(P.CANCELLED, (ReleaseCapacity, Notify)),
    (P.RELEASING, Failed): Rule(P.FAILED, (ReleaseCapacity, Notify)),
}


# ------------------------------------------------------------------------- client updates
class AllowedUpdate(msgspec.Struct, frozen=True):
    """One thing a client may change now: `path` to one of `values` (for `meta.options`)."""

    path: str
    values: tuple[str, ...]


_CLIENT_PHASES: Final[Mapping[Phase, tuple[Phase, ...]]] = {
    Phase.OFFERED: (Phase.ACCEPTED, Phase.REJECTED),
    Phase.ACCEPTED: (Phase.CANCELLED,),
    Phase.WAITING: (Phase.CANCELLED,),
    Phase.PREPARING: (Phase.CANCELLED,),
    Phase.AVAILABLE: (Phase.CANCELLED,),
    Phase.RUNNING: (Phase.CANCELLED,),
}
_CLIENT_EVENTS: Final[Mapping[Phase, type[OfferAccepted | OfferRejected | CancelRequested]]] = {
    Phase.ACCEPTED: OfferAccepted,
    Phase.REJECTED: OfferRejected,
    Phase.CANCELLED: CancelRequested,
}


def allowed_updates(phase: Phase) -> list[AllowedUpdate]:
    """What a client may change in this phase (empty in terminal phases and while releasing)."""
    targets = _CLIENT_PHASES.get(phase, ())
    return [AllowedUpdate("phase", tuple(str(target) for target in targets))] if targets else []


def update_event(
    state: SessionState, path: str, value: str
) -> OfferAccepted | OfferRejected | CancelRequested:
    """The event a client's update stands for (`phase` -> `ACCEPTED` is `OfferAccepted`).

    Raises:
        InvalidTransition: naming the phase and the allowed updates, when the update is not
            allowed now.
    """
    field, wanted = path.strip().strip("/"), value.strip().upper()
    allowed = {target.value for target in _CLIENT_PHASES.get(state.phase, ())}
    if field != "phase" or wanted not in allowed:
        raise InvalidTransition(
            state.session_id, state.phase, f"update {path} -> {value}", state.history
        )
    return _CLIENT_EVENTS[Phase(wanted)]()


# ------------------------------------------------------------------------- step, summarise
def _instant(state: SessionState, anchor: Anchor, now: datetime) -> datetime:
    match anchor:
        case Anchor.NOW:
            return now
        case Anchor.EXPIRES:
            return state.expires or now
        case Anchor.PREPARATION_START:
            return state.start - state.preparation
        case Anchor.START:
            return state.start
        case Anchor.END:
            return state.end


def _note(source: Phase, target: Phase, event: Event, state: SessionState) -> str:
    if isinstance(event, Failed):
        return event.reason
    if isinstance(event, OfferAccepted) and event.start is not None:
        return (
            f"{source} -> {target} (OfferAccepted late: the start moved to "
            f"{state.start.isoformat()}, the session keeps its full duration)"
        )
    if isinstance(event, ComponentCancelled) and event.reason:
        return f"{source} -> {target} ({event.reason})"
    return f"{source} -> {target} ({type(event).__name__})"


def _accepting(state: SessionState, event: OfferAccepted, now: datetime) -> dict[str, object]:
    """Check an accept against the offer's expiry and start; the new slot when it moved."""
    if state.expires is not None and now >= state.expires:
        raise OfferHasExpired(state, now)
    if (event.start or state.start) - state.preparation < now:
        raise OfferStartPassed(state, now)
    if event.start is None:
        return {}
    return {"start": event.start, "end": event.start + (state.end - state.start)}


def step(state: SessionState, event: Event, now: datetime, *, at: datetime | None = None) -> Step:
    """Apply one event to a session: the new state and the effects, in the order to run them.

    Args:
        state: the session.
        event: what happened.
        now: the instant the event takes effect: timers anchored at "now" and the expiry of
            an offer are measured from it (the work queue delivers a late event at the
            instant it fell due).
        at: when the change is recorded in the history: the clock at the transition (default
            `now`). Never earlier than the last recorded change, so that the history stays in
            order even if a clock steps back (another process, a restart).

    Raises:
        OfferHasExpired: an accept at or after the offer's `expires`.
        OfferStartPassed: an accept after preparation should have begun, without a new start.
        InvalidTransition: the table has no row for the phase and the event.
    """
    rule = TRANSITIONS.get((state.phase, type(event)))
    if rule is None:
        raise InvalidTransition(state.session_id, state.phase, event, state.history)
    changes = _accepting(state, event, now) if isinstance(event, OfferAccepted) else {}
    if isinstance(event, OffersMade):
        changes["expires"] = event.expires
    if isinstance(event, Failed):
        changes["message"] = event.reason
    if rule.to == state.phase:
        # A row that ignores the event, or one that only asks the platform (`check`): the state
        # is unchanged and nothing is remembered.
        asked = (effect for effect in rule.effects if isinstance(effect, type))
        return Step(state, tuple(cast("AnyEffect", effect()) for effect in asked))
    recorded = at or now
    if state.history:
        recorded = max(recorded, state.history[-1].at)
    new = msgspec.structs.replace(
        state,
        phase=rule.to,
        history=(*state.history, Transition(recorded, type(event).__name__, state.phase, rule.to)),
        **changes,
    )
    effects: list[AnyEffect] = []
    for effect in rule.effects:
        if isinstance(effect, Timer):
            timed = cast("AnyEvent", effect.event())
            effects.append(ScheduleTimer(at=_instant(new, effect.at, now), event=timed))
        elif effect is Notify:
            effects.append(Notify(phase=rule.to, message=_note(state.phase, rule.to, event, new)))
        else:
            effects.append(cast("AnyEffect", effect()))
    return Step(new, tuple(effects))


_PREPARING = frozenset(
    {ComponentPhase.INITIALIZING, ComponentPhase.WAITING, ComponentPhase.PREPARING}
)
_READY = frozenset({ComponentPhase.AVAILABLE, ComponentPhase.RUNNING})
_Report: TypeAlias = dict[str, ComponentPhase]


def _named(report: _Report, phase: ComponentPhase) -> tuple[str, ...]:
    return tuple(name for name, value in report.items() if value is phase)


SUMMARY: Final[
    tuple[tuple[str, Callable[[set[ComponentPhase]], bool], Callable[[_Report], Event]], ...]
] = (
    (
        "any FAILED",
        lambda phases: ComponentPhase.FAILED in phases,
        lambda report: Failed(
            reason=", ".join(_named(report, ComponentPhase.FAILED)) + " failed on the platform"
        ),
    ),
    (
        "any CANCELLED",
        lambda phases: ComponentPhase.CANCELLED in phases,
        lambda report: ComponentCancelled(components=_named(report, ComponentPhase.CANCELLED)),
    ),
    ("any preparing", lambda phases: bool(phases & _PREPARING), lambda _: StillPreparing()),
    (
        "any RELEASING",
        lambda phases: ComponentPhase.RELEASING in phases,
        lambda _: ReleaseStarted(),
    ),
    ("all AVAILABLE", lambda phases: phases <= _READY, lambda _: ResourcesReady()),
    ("all COMPLETED", lambda phases: phases == {ComponentPhase.COMPLETED}, lambda _: ReleaseDone()),
    ("the rest: COMPLETED and AVAILABLE", lambda _: True, lambda _: WorkFinished()),
)
"""The precedence list of `summarise`, first match wins: (what, test, event)."""


def summarise(
    component_phases: Mapping[str, ComponentPhase | str] | Iterable[ComponentPhase | str],
) -> Event | None:
    """Turn a platform's report on a session's components into one event, or None.

    The first matching entry of `SUMMARY` wins: any FAILED, then any CANCELLED, then any still
    preparing (INITIALIZING, WAITING, PREPARING), then any RELEASING, then all ready (AVAILABLE
    or RUNNING), then all COMPLETED; what is left is a mix of COMPLETED and ready components:
    the work finished while other components are still up.

    Args:
        component_phases: phase per component name, or just the phases.

    Returns:
        The event, or None for an empty report.
    """
    if isinstance(component_phases, Mapping):
        report = {name: ComponentPhase(phase) for name, phase in component_phases.items()}
    else:
        report = {
            f"component {index}": ComponentPhase(phase)
            for index, phase in enumerate(component_phases, start=1)
        }
    if not report:
        return None
    phases = set(report.values())
    return next(make(report) for _, test, make in SUMMARY if test(phases))
