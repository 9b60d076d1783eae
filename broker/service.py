"""`BrokerService`: the broker's use cases, behind the HTTP layer and the CLI.

This first version keeps offer sets and sessions in memory and makes one offer, on the first
configured platform that can serve the request, with a deliberately simple first-fit search
(`broker.first_fit`); an offer past `expires` reads as EXPIRED and frees its capacity. The
scheduler across platforms, the SQL store and the work queue that drives sessions replace its
insides; the public methods below, their arguments, results and errors are the contract the
web layer, the CLI and the catalogue's hand-off rely on, and stay as they are.

Semantic problems with a request (an unknown kind, min above max, more cores than the platform
has, no free slot) are answers, not exceptions: an offer set with `result: NO` whose messages
carry `values` and the rendered `message`. Exceptions are for the caller's mistakes about
sessions: `NotFound`, `IllegalUpdate` (a `Conflict`), `Invalid`, and `DirectExecutionFailed`.

Imports `core` and the pure `broker` modules only: no web framework, no encoding.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, TypeVar
from uuid import UUID, uuid4

import msgspec

from broker.first_fit import OfferPlan, plan_offer
from broker.isotime import Duration, Interval
from broker.model import (
    TERMINAL_PHASES,
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
    MessageItem,
    MessageLevel,
    OfferSetResponse,
    ScheduledExecutionSchedule,
    ScheduledExecutionSession,
    SessionPhase,
    SimpleComputeCores,
    SimpleComputeMemory,
    SimpleComputeResource,
    SimpleMinMaxFloatCost,
    UnknownKind,
    message_item,
)
from core.clock import Clock
from core.errors import Conflict, DomainError, Invalid, NotFound, Problem
from core.settings import BrokerSettings

__all__ = ["CLIENT_UPDATES", "BrokerService", "DirectExecutionFailed", "IllegalUpdate"]

CLIENT_UPDATES: Final[dict[SessionPhase, tuple[SessionPhase, ...]]] = {
    SessionPhase.OFFERED: (SessionPhase.ACCEPTED, SessionPhase.REJECTED),
    SessionPhase.ACCEPTED: (SessionPhase.CANCELLED,),
    SessionPhase.WAITING: (SessionPhase.CANCELLED,),
    SessionPhase.PREPARING: (SessionPhase.CANCELLED,),
    SessionPhase.AVAILABLE: (SessionPhase.CANCELLED,),
    SessionPhase.RUNNING: (SessionPhase.CANCELLED,),
}
"""The phases a client may move a session to, by its current phase (absent: none)."""

PHASE_PATHS: Final = frozenset({"phase", "/phase"})


class IllegalUpdate(Conflict):
    """The session's phase does not allow the update; says which updates it does allow."""

    def __init__(self, session: UUID, phase: SessionPhase, requested: str) -> None:
        self.session = session
        self.phase = phase
        self.requested = requested
        self.allowed: tuple[SessionPhase, ...] = CLIENT_UPDATES.get(phase, ())
        allowed = ", ".join(self.allowed) or "none"
        super().__init__(
            f"session {session} is {phase}; it cannot become {requested} "
            f"(allowed updates of phase: {allowed})"
        )


class DirectExecutionFailed(DomainError):
    """`direct()` could not start a session; `session` is the FAILED session saying why."""

    def __init__(self, session: ScheduledExecutionSession) -> None:
        messages = session.meta.messages if session.meta else []
        reasons = "; ".join(m.message or "" for m in messages if m.level is MessageLevel.ERROR)
        super().__init__(f"direct execution failed: {reasons or 'no reason given'}")
        self.session = session


@dataclass
class _OfferSet:
    meta: ComponentMetadata
    result: Literal["YES", "NO"]
    sessions: list[UUID] = field(default_factory=list)


@dataclass
class _Session:
    value: ScheduledExecutionSession
    plan: OfferPlan


class BrokerService:
    """The Execution Broker's use cases: offers, offer sets, sessions and their updates.

    Thread-safe: every method holds one lock while it reads or changes state.
    """

    def __init__(self, settings: BrokerSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._offersets: dict[UUID, _OfferSet] = {}
        self._sessions: dict[UUID, _Session] = {}

    # ----------------------------------------------------------------- public API
    def request_offers(
        self,
        request: ExecutionRequest,
        base_url: str,
        *,
        unknown_kinds: Sequence[UnknownKind] = (),
    ) -> OfferSetResponse:
        """Answer a request with an offer set (not idempotent: each call makes new offers).

        Args:
            request: the decoded request.
            base_url: the broker's absolute base URL (ending in `/broker`, no slash); offer sets
                and sessions get `meta.url` under it (`<base_url>/offersets/<uuid>`).
            unknown_kinds: components the codec set aside because their kind is unknown; each
                makes the answer NO with a message naming the kind.

        Returns:
            `result: YES` with offers (sessions in phase OFFERED, each with `expires`), or
            `result: NO` with `meta.messages` saying why.
        """
        now = self._now()
        offerset_id = uuid4()
        with self._lock:
            plan = self._plan(request, unknown_kinds, now)
            messages = list(plan.messages)
            session_ids: list[UUID] = []
            if plan.offer is not None:
                offer = self._open_session(
                    request,
                    plan.offer,
                    base_url=base_url,
                    now=now,
                    phase=SessionPhase.OFFERED,
                )
                session_ids.append(offer)
            meta = ComponentMetadata(
                uuid=offerset_id,
                url=f"{base_url}/offersets/{offerset_id}",
                created=now,
                modified=now,
                messages=messages,
            )
            record = _OfferSet(meta, "YES" if session_ids else "NO", session_ids)
            self._offersets[offerset_id] = record
            return self._offerset_view(record, now)

    def get_offerset(self, uuid: UUID) -> OfferSetResponse:
        """The offer set as it is now (its offers show their current phases).

        Raises:
            NotFound: no offer set has this UUID.
        """
        now = self._now()
        with self._lock:
            record = self._offersets.get(uuid)
            if record is None:
                raise NotFound(f"offer set {uuid} does not exist")
            return self._offerset_view(record, now)

    def get_session(self, uuid: UUID) -> AnySession:
        """The session (or offer) as it is now; an offer past `expires` reads as EXPIRED.

        Raises:
            NotFound: no session has this UUID.
        """
        now = self._now()
        with self._lock:
            return self._current(uuid, now).value

    def update_session(self, uuid: UUID, update: AnyUpdate) -> AnySession:
        """Apply one client update; only `phase` can be changed (accept, reject, cancel).

        (This version makes one offer per offer set, so accepting has no siblings to reject.)

        Raises:
            NotFound: no session has this UUID.
            Invalid: the update is not an enum update of `phase`, or names no phase.
            IllegalUpdate: the current phase does not allow it (e.g. accepting an EXPIRED offer).
        """
        target = _requested_phase(update)
        now = self._now()
        with self._lock:
            record = self._current(uuid, now)
            phase = record.value.phase
            if target not in CLIENT_UPDATES.get(phase, ()):
                raise IllegalUpdate(uuid, phase, target)
            self._set_phase(record, target, now)
            return record.value

    def direct(
        self,
        request: ExecutionRequest,
        base_url: str,
        *,
        unknown_kinds: Sequence[UnknownKind] = (),
    ) -> AnySession:
        """Start a session at once, skipping the offer round-trip (POST /direct).

        Returns:
            The new session, already ACCEPTED, at `<base_url>/sessions/<uuid>`.

        Raises:
            DirectExecutionFailed: the request cannot be served; carries a FAILED session whose
                messages say why (it is not stored).
        """
        now = self._now()
        with self._lock:
            plan = self._plan(request, unknown_kinds, now)
            if plan.offer is None:
                failed = ScheduledExecutionSession(
                    meta=ComponentMetadata(created=now, modified=now, messages=list(plan.messages)),
                    phase=SessionPhase.FAILED,
                    executable=request.executable,
                    compute=request.compute,
                    storage=request.storage,
                    data=request.data,
                )
                raise DirectExecutionFailed(failed)
            session = self._open_session(
                request,
                plan.offer,
                base_url=base_url,
                now=now,
                phase=SessionPhase.ACCEPTED,
            )
            return self._sessions[session].value

    # ----------------------------------------------------------------- internals
    def _now(self) -> datetime:
        return self._clock.now().replace(microsecond=0)

    def _plan(
        self, request: ExecutionRequest, unknown: Sequence[UnknownKind], now: datetime
    ) -> _Planned:
        held = [
            record.plan for record in self._sessions.values() if _holds_capacity(record.value, now)
        ]
        messages, offer = plan_offer(
            request,
            unknown,
            platforms=self._settings.platforms,
            held=held,
            settings=self._settings,
            now=now,
        )
        return _Planned(messages, offer)

    def _open_session(
        self,
        request: ExecutionRequest,
        plan: OfferPlan,
        *,
        base_url: str,
        now: datetime,
        phase: SessionPhase,
    ) -> UUID:
        """Store a new session for `plan` in `phase` and return its UUID."""
        session_id = uuid4()
        executable_meta = request.executable.meta if request.executable else None
        name = executable_meta.name if executable_meta and executable_meta.name else "session"
        meta = ComponentMetadata(
            uuid=session_id,
            name=f"{name}-offer-1" if phase is SessionPhase.OFFERED else name,
            url=f"{base_url}/sessions/{session_id}",
            created=now,
            modified=now,
            messages=[
                message_item(
                    "urn:voexec:offer-platform",
                    "Offered on platform {platform}",
                    time=now,
                    platform=plan.platform,
                )
            ],
            options=_options_for(phase),
        )
        expires = now + self._settings.offer_ttl if phase is SessionPhase.OFFERED else None
        session = _offered_session(
            plan, meta=meta, phase=phase, expires=expires, request=request, now=now
        )
        self._sessions[session_id] = _Session(session, plan)
        return session_id

    def _current(self, uuid: UUID, now: datetime) -> _Session:
        record = self._sessions.get(uuid)
        if record is None:
            raise NotFound(f"session {uuid} does not exist")
        expires = record.value.expires
        if record.value.phase is SessionPhase.OFFERED and expires is not None and now >= expires:
            self._set_phase(record, SessionPhase.EXPIRED, expires)
        return record

    def _set_phase(self, record: _Session, phase: SessionPhase, now: datetime) -> None:
        meta = record.value.meta or ComponentMetadata()
        record.value = msgspec.structs.replace(
            record.value,
            phase=phase,
            meta=msgspec.structs.replace(meta, modified=now, options=_options_for(phase)),
        )

    def _offerset_view(self, record: _OfferSet, now: datetime) -> OfferSetResponse:
        offers = [self._current(uuid, now).value for uuid in record.sessions]
        return OfferSetResponse(
            meta=record.meta,
            result=record.result,
            offers=list(offers),
        )


@dataclass(frozen=True)
class _Planned:
    messages: list[MessageItem]
    offer: OfferPlan | None


def _holds_capacity(session: ScheduledExecutionSession, now: datetime) -> bool:
    """An offer holds capacity until it expires; an accepted session until it ends."""
    if session.phase is SessionPhase.OFFERED:
        return session.expires is None or now < session.expires
    return session.phase not in TERMINAL_PHASES


def _options_for(phase: SessionPhase) -> list[AnyOption]:
    allowed = CLIENT_UPDATES.get(phase, ())
    return [EnumValueOption(path="phase", values=list(allowed))] if allowed else []


def _requested_phase(update: AnyUpdate) -> SessionPhase:
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


# ------------------------------------------------------------------------- shaping an offer
RELEASE_TIME: Final = timedelta(seconds=10)
"""How long releasing is announced to take (this version runs nothing, so nothing to release)."""

C = TypeVar("C", bound=msgspec.Struct)


def _offered_session(
    plan: OfferPlan,
    *,
    meta: ComponentMetadata,
    phase: SessionPhase,
    expires: datetime | None,
    request: ExecutionRequest,
    now: datetime,
) -> ScheduledExecutionSession:
    """The session for a slot: the request's components as offered, with the slot's schedule."""
    schedule = ScheduledExecutionSchedule(
        preparing=LifecycleStartDurationInstant(
            start=plan.start - plan.preparation, duration=Duration.of(plan.preparation)
        ),
        available=LifecycleStartDurationInterval(
            start=Interval.at(plan.start), duration=Duration.of(plan.duration)
        ),
        releasing=LifecycleStartDurationInstant(start=plan.end, duration=Duration.of(RELEASE_TIME)),
    )
    return ScheduledExecutionSession(
        meta=meta,
        phase=phase,
        expires=expires,
        executable=_offered(request.executable, now) if request.executable else None,
        compute=_offered_compute(plan, request.compute, schedule, now),
        storage=[_offered(storage, now) for storage in request.storage],
        data=[_offered(data, now) for data in request.data],
        schedule=schedule,
        costs=_costs(plan),
    )


def _offered(component: C, now: datetime) -> C:
    """A requested component as offered: a fresh UUID, INITIALIZING, the client's name kept."""
    meta = getattr(component, "meta", None) or ComponentMetadata()
    return msgspec.structs.replace(
        component,
        meta=ComponentMetadata(
            uuid=uuid4(), name=meta.name, description=meta.description, created=now
        ),
        phase=LifecyclePhase.INITIALIZING,
    )


def _offered_compute(
    plan: OfferPlan,
    requested: AnyCompute | None,
    schedule: ScheduledExecutionSchedule,
    now: datetime,
) -> AnyCompute:
    """The compute resource as offered: min = max = what the slot gives."""
    base = requested or SimpleComputeResource(meta=ComponentMetadata(name="Default compute"))
    offered = msgspec.structs.replace(
        _offered(base, now),
        cores=SimpleComputeCores(min=plan.cores, max=plan.cores),
        memory=SimpleComputeMemory(min=plan.memory, max=plan.memory),
        schedule=schedule,
    )
    gpu = plan.gpu
    if isinstance(offered, AcceleratedComputeResource) and gpu is not None:
        capability = gpu.compute_capability
        offered = msgspec.structs.replace(
            offered,
            accelerators=Accelerators(
                count=AcceleratorCount(min=plan.gpus, max=plan.gpus),
                vendor=gpu.vendor,
                models=[gpu.model],
                memory=AcceleratorMemory(min=gpu.memory),
                compute_capability=ComputeCapability(min=capability) if capability else None,
            ),
        )
    return offered


def _costs(plan: OfferPlan) -> list[AnyCost]:
    """What the slot costs, when the platform has a cost model."""
    if plan.cost is None or plan.cost_unit is None:
        return []
    unit = plan.cost_unit
    currency = len(unit) == 3 and unit.isalpha() and unit.isupper()
    return [
        SimpleMinMaxFloatCost(
            type="urn:ivoa:calycopis:cost:monetary" if currency else "urn:voexec:cost:allocation",
            description=f"{unit} for the whole slot",
            min=round(plan.cost, 4),
            max=round(plan.cost, 4),
        )
    ]
