"""Shaping sessions as the wire shows them: offers, the updates a client may make, expiry.

Owns the wire document of a new session (the request's components as offered, with the
slot's schedule), the phases a client may move a session to and how an update names one, and
how a stored session reads now (an offer past `expires` reads as EXPIRED).

Pure: no I/O, `now` is an argument. Imports the broker's model, lifecycle and offers only.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Final, TypeVar
from uuid import UUID

import msgspec

from broker import lifecycle
from broker.lifecycle import Phase, SessionState
from broker.model import (
    AcceleratedComputeResource,
    AcceleratorCount,
    AcceleratorMemory,
    Accelerators,
    AnyCompute,
    AnyCost,
    AnyOption,
    AnySession,
    AnyUpdate,
    ComponentMetadata,
    ComputeCapability,
    EnumValueOption,
    EnumValueUpdate,
    ExecutionRequest,
    LifecyclePhase,
    LifecycleStartDurationInstant,
    LifecycleStartDurationInterval,
    ScheduledExecutionSchedule,
    ScheduledExecutionSession,
    SessionPhase,
    SimpleComputeCores,
    SimpleComputeMemory,
    SimpleComputeResource,
    SimpleMinMaxFloatCost,
    message_item,
)
from broker.scheduling.offers import Offer
from broker.scheduling.resources import PlatformSpec
from core.errors import Invalid, Problem
from core.time import Duration, Interval, format_instant

__all__ = [
    "CLIENT_UPDATES",
    "RELEASE_TIME",
    "moved_session",
    "new_session",
    "offered_session",
    "options_for",
    "refused_because",
    "requested_phase",
    "visible_session",
    "with_component_phases",
]

RELEASE_TIME: Final = timedelta(seconds=10)
"""How long releasing is announced to take."""

CLIENT_UPDATES: Final[dict[SessionPhase, tuple[SessionPhase, ...]]] = {
    phase: tuple(
        SessionPhase(value)
        for update in lifecycle.allowed_updates(phase)
        for value in update.values
    )
    for phase in Phase
    if lifecycle.allowed_updates(phase)
}
"""The phases a client may move a session to, by its current phase (absent: none)."""

PHASE_PATHS: Final = frozenset({"phase", "/phase"})

C = TypeVar("C", bound=msgspec.Struct)


def offered_session(
    offer: Offer,
    platform: PlatformSpec,
    *,
    meta: ComponentMetadata,
    phase: SessionPhase,
    expires: datetime | None,
    request: ExecutionRequest,
    now: datetime,
) -> ScheduledExecutionSession:
    """The session for an offer: the request's components as offered, with the slot's schedule."""
    schedule = _schedule(platform, offer.start, offer.end)
    return ScheduledExecutionSession(
        meta=meta,
        phase=phase,
        expires=expires,
        executable=_offered(request.executable, now) if request.executable else None,
        compute=_offered_compute(offer, platform, request.compute, schedule, now),
        storage=[_offered(storage, now) for storage in request.storage],
        data=[_offered(data, now) for data in request.data],
        schedule=schedule,
        costs=_costs(offer),
    )


_COMPONENT_PHASE: Final[dict[SessionPhase, LifecyclePhase]] = {
    SessionPhase.WAITING: LifecyclePhase.WAITING,
    SessionPhase.PREPARING: LifecyclePhase.PREPARING,
    SessionPhase.AVAILABLE: LifecyclePhase.AVAILABLE,
    SessionPhase.RUNNING: LifecyclePhase.RUNNING,
    SessionPhase.RELEASING: LifecyclePhase.RELEASING,
    SessionPhase.COMPLETED: LifecyclePhase.COMPLETED,
    SessionPhase.FAILED: LifecyclePhase.FAILED,
    SessionPhase.CANCELLED: LifecyclePhase.CANCELLED,
}
"""A component's phase in each session phase once work is booked (before: INITIALIZING)."""


def with_component_phases(document: AnySession, phase: SessionPhase) -> AnySession:
    """The session with its components in the phase the session's phase gives them.

    The components are prepared, available and released with the session. While it runs,
    the executable and the compute resource run; its data and storage stay available.
    """
    component_phase = _COMPONENT_PHASE.get(phase)
    if component_phase is None:  # an offer, or an offer that ended: nothing was set up
        return document
    passive = LifecyclePhase.AVAILABLE if component_phase is LifecyclePhase.RUNNING else None

    def moved(component: C, to: LifecyclePhase) -> C:
        return msgspec.structs.replace(component, phase=to)

    return msgspec.structs.replace(
        document,
        executable=moved(document.executable, component_phase) if document.executable else None,
        compute=moved(document.compute, component_phase) if document.compute else None,
        storage=[moved(item, passive or component_phase) for item in document.storage],
        data=[moved(item, passive or component_phase) for item in document.data],
    )


def moved_session(
    document: AnySession, platform: PlatformSpec, start: datetime, end: datetime
) -> AnySession:
    """The session with its slot moved to `[start, end)` (an offer accepted late)."""
    if not isinstance(document, ScheduledExecutionSession):
        return document
    schedule = _schedule(platform, start, end)
    compute = document.compute
    if compute is not None and compute.schedule is not None:
        compute = msgspec.structs.replace(compute, schedule=schedule)
    return msgspec.structs.replace(document, schedule=schedule, compute=compute)


def _schedule(platform: PlatformSpec, start: datetime, end: datetime) -> ScheduledExecutionSchedule:
    """Preparing before `start`, available over `[start, end)`, releasing after."""
    return ScheduledExecutionSchedule(
        preparing=LifecycleStartDurationInstant(
            start=start - platform.preparation, duration=Duration.of(platform.preparation)
        ),
        available=LifecycleStartDurationInterval(
            start=Interval.at(start), duration=Duration.of(end - start)
        ),
        releasing=LifecycleStartDurationInstant(start=end, duration=Duration.of(RELEASE_TIME)),
    )


def _offered(component: C, now: datetime) -> C:
    """A requested component as offered: a fresh UUID, INITIALIZING, the client's name kept."""
    from uuid import uuid4

    meta = getattr(component, "meta", None) or ComponentMetadata()
    return msgspec.structs.replace(
        component,
        meta=ComponentMetadata(
            uuid=uuid4(), name=meta.name, description=meta.description, created=now
        ),
        phase=LifecyclePhase.INITIALIZING,
    )


def _offered_compute(
    offer: Offer,
    platform: PlatformSpec,
    requested: AnyCompute | None,
    schedule: ScheduledExecutionSchedule,
    now: datetime,
) -> AnyCompute:
    """The compute resource as offered: min = max = what the slot gives."""
    base = requested or SimpleComputeResource(meta=ComponentMetadata(name="Default compute"))
    resources = offer.resources
    memory = math.floor(resources.memory)
    offered = msgspec.structs.replace(
        _offered(base, now),
        cores=SimpleComputeCores(min=resources.cores, max=resources.cores),
        memory=SimpleComputeMemory(min=memory, max=memory),
        schedule=schedule,
    )
    if isinstance(offered, AcceleratedComputeResource) and resources.gpus:
        share = resources.gpus[0]
        gpu = next(g for g in platform.gpus if g.model == share.model)
        capability = gpu.compute_capability
        offered = msgspec.structs.replace(
            offered,
            accelerators=Accelerators(
                count=AcceleratorCount(min=share.count, max=share.count),
                vendor=gpu.vendor,
                models=[gpu.model],
                memory=AcceleratorMemory(min=gpu.memory),
                compute_capability=ComputeCapability(min=capability) if capability else None,
            ),
        )
    return offered


def _costs(offer: Offer) -> list[AnyCost]:
    """What the slot costs, when the platform has a cost model."""
    if offer.cost is None:
        return []
    unit = offer.cost.unit
    currency = len(unit) == 3 and unit.isalpha() and unit.isupper()
    return [
        SimpleMinMaxFloatCost(
            type="urn:ivoa:calycopis:cost:monetary" if currency else "urn:voexec:cost:allocation",
            description=f"{unit} for the whole slot",
            min=round(offer.cost.amount, 4),
            max=round(offer.cost.amount, 4),
        )
    ]


def new_session(
    offer: Offer,
    platform: PlatformSpec,
    *,
    session_id: UUID,
    url: str,
    state: SessionState,
    request: ExecutionRequest,
    now: datetime,
    position: int | None,
) -> ScheduledExecutionSession:
    """The document of a session just opened for `offer`, in the phase of `state`.

    Args:
        offer: what is offered.
        platform: the platform it is on.
        session_id: the new session's UUID.
        url: where the session can be read.
        state: its lifecycle state (OFFERED with its expiry, or ACCEPTED when booked at once).
        request: what was asked.
        now: the current instant.
        position: the offer's place in its offer set (None: booked directly, no offer set).
    """
    executable_meta = request.executable.meta if request.executable else None
    name = executable_meta.name if executable_meta and executable_meta.name else "session"
    phase = state.phase
    meta = ComponentMetadata(
        uuid=session_id,
        name=f"{name}-offer-{position + 1}" if position is not None else name,
        url=url,
        created=now,
        modified=now,
        messages=[
            message_item(
                "urn:voexec:offer-platform",
                "Offered on platform {platform} ({strategy})",
                time=now,
                platform=offer.platform,
                strategy=offer.strategy,
            )
        ],
        options=options_for(phase),
    )
    return offered_session(
        offer, platform, meta=meta, phase=phase, expires=state.expires, request=request, now=now
    )


_CONNECTORS_FINISHED: Final = frozenset({Phase.RELEASING, *lifecycle.TERMINAL})
"""Phases whose session's connectors lead nowhere any more."""


def visible_session(document: AnySession, state: SessionState, now: datetime) -> AnySession:
    """The session as a client sees it now.

    An offer past `expires` reads as EXPIRED; the connectors of a session that is ending or has
    ended read as FINISHED.
    """
    return visible_document(document, state.phase, state.expires, now)


def visible_document(
    document: AnySession, phase: Phase, expires: datetime | None, now: datetime
) -> AnySession:
    """`visible_session` from the stored phase and expiry alone."""
    if phase is Phase.OFFERED and expires is not None and now >= expires:
        meta = document.meta or ComponentMetadata()
        return msgspec.structs.replace(
            document, phase=SessionPhase.EXPIRED, meta=msgspec.structs.replace(meta, options=[])
        )
    if phase in _CONNECTORS_FINISHED and document.connectors:
        finished = [
            msgspec.structs.replace(connector, status="FINISHED")
            for connector in document.connectors
        ]
        return msgspec.structs.replace(document, connectors=finished)
    return document


def reads_as_stored(phase: Phase, expires: datetime | None, document: bytes, now: datetime) -> bool:
    """Whether `visible_document` would leave this stored JSON document as it is.

    False for an offer past `expires`, and for a session that is ending with connectors (by a
    look at the bytes: a false alarm only costs a decode).
    """
    if phase is Phase.OFFERED and expires is not None and now >= expires:
        return False
    return phase not in _CONNECTORS_FINISHED or b'"connectors"' not in document


def refused_because(state: SessionState, requested: SessionPhase) -> str:
    """What happened to a session that refuses the update to `requested`, in words.

    Read from its story: an offer whose sibling was accepted, one that expired (and when), a
    session already cancelled or ended.
    """
    last = state.history[-1] if state.history else None
    when = f" at {format_instant(last.at)}" if last is not None else ""
    phase = state.phase
    if phase is Phase.EXPIRED:
        expired = state.expires or (last.at if last is not None else None)
        return "this offer expired" + (f" at {format_instant(expired)}" if expired else "")
    sibling = last is not None and last.event == "SiblingAccepted"
    told = {  # the phases named below say more than "already" does
        requested: f"the session was already {phase.lower()}",
        Phase.REJECTED: "another offer of this set was accepted"
        if sibling
        else "this offer was already rejected",
        Phase.CANCELLED: "the session was already cancelled",
        Phase.COMPLETED: "the session already ended: COMPLETED",
        Phase.FAILED: "the session already ended: FAILED",
    }.get(phase)
    return told + when if told else f"a session that is {phase} cannot become {requested}"


def options_for(phase: SessionPhase) -> list[AnyOption]:
    """The updates a client may make in `phase`, as the session's `meta.options`."""
    allowed = CLIENT_UPDATES.get(phase, ())
    return [EnumValueOption(path="phase", values=list(allowed))] if allowed else []


def requested_phase(update: AnyUpdate) -> SessionPhase:
    """The phase a client update asks for.

    Raises:
        Invalid: the update is not an enum update of `phase`, or names no phase.
    """
    if not isinstance(update, EnumValueUpdate) or update.path not in PHASE_PATHS:
        raise Invalid(
            "only the session phase can be updated",
            [
                Problem(
                    "$.path" if isinstance(update, EnumValueUpdate) else "$.kind",
                    "this broker accepts one update: uri:enum-value-update of path `phase`",
                )
            ],
        )
    try:
        return SessionPhase(update.value)
    except ValueError:
        raise Invalid(
            f"{update.value!r} is not a session phase",
            [Problem("$.value", f"{update.value!r} is not a session phase")],
        ) from None
