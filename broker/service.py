"""`BrokerService`: the broker's use cases, behind the HTTP layer and the CLI.

The I/O shell around the pure core: requests are read as demands (`broker.service_demand`),
offers are made across every platform (`broker.offers`), and sessions move by the lifecycle's
table (`broker.lifecycle.step`). Every change is one serialised write transaction of the SQL
store (`broker.store_sql`): the new phase, the holds and bookings, and the next due events of
the work queue are stored together, so a restart carries on from the database alone.

Semantic problems with a request (an unknown kind, min above max, more cores than any platform
has, no free slot) are answers, not exceptions: an offer set with `result: NO` whose messages
carry `values` and the rendered `message`, per platform. Exceptions are for the caller's
mistakes about sessions: `NotFound`, `IllegalUpdate` (a `Conflict`), `Invalid`, and
`DirectExecutionFailed`.

Imports `core`, the `broker` model, the pure modules, the ports and the store; no web framework.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID, uuid4

import msgspec

from broker import lifecycle
from broker.intervals import Interval
from broker.lifecycle import (
    AcceptedDirectly,
    AnyEffect,
    AnyEvent,
    BookCapacity,
    ConvertHoldToBooking,
    HoldCapacity,
    InvalidTransition,
    Notify,
    ObservePlatform,
    OfferExpired,
    OffersMade,
    Phase,
    RejectSiblings,
    Release,
    ReleaseCapacity,
    ScheduleTimer,
    SessionState,
    SiblingAccepted,
    StartPreparation,
    StartWork,
    StopWork,
)
from broker.model import (
    AnyOption,
    AnySession,
    AnyUpdate,
    ComponentMetadata,
    EnumValueOption,
    EnumValueUpdate,
    ExecutionRequest,
    MessageItem,
    MessageLevel,
    OfferSetResponse,
    ScheduledExecutionSession,
    SessionPhase,
    UnknownKind,
    message_item,
)
from broker.offers import Offer, OfferPolicy, make_offers
from broker.ports import Platform
from broker.resources import Booking, BookingKind, PlatformSpec, Reason
from broker.service_demand import read_request
from broker.service_platforms import accepting_platforms, call_platform
from broker.service_shape import offered_session
from broker.store_sql import SessionRecord, SqlBrokerStore, StoreTransaction
from core.clock import Clock
from core.errors import Conflict, DomainError, Invalid, NotFound, Problem
from core.settings import BrokerSettings

__all__ = ["CLIENT_UPDATES", "BrokerService", "DirectExecutionFailed", "IllegalUpdate"]

log = logging.getLogger(__name__)

CLIENT_UPDATES: Final[dict[SessionPhase, tuple[SessionPhase, ...]]] = {
    SessionPhase(phase.value): tuple(
        SessionPhase(value)
        for update in lifecycle.allowed_updates(phase)
        for value in update.values
    )
    for phase in Phase
    if lifecycle.allowed_updates(phase)
}
"""The phases a client may move a session to, by its current phase (absent: none)."""

PHASE_PATHS: Final = frozenset({"phase", "/phase"})
CLAIM_LEASE: Final = timedelta(minutes=1)
"""How long a claimed work item stays ours before another process may take it over."""


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


class BrokerService:
    """The Execution Broker's use cases: offers, offer sets, sessions, and the work queue.

    Thread-safe and multi-process safe: all state is in the store, every change is one
    serialised transaction.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        clock: Clock,
        store: SqlBrokerStore,
        platforms: Mapping[str, Platform],
        *,
        worker_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._store = store
        self._platforms = platforms
        self._specs = [PlatformSpec.from_settings(platform) for platform in settings.platforms]
        self._spec = {spec.name: spec for spec in self._specs}
        self._policy = OfferPolicy.from_settings(settings)
        self._worker_id = worker_id or f"broker-{uuid4()}"
        with store.write() as tx:
            tx.ensure_platforms(self._spec)

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
            base_url: the broker's absolute base URL (ending in `/broker`, no slash).
            unknown_kinds: components the codec set aside because their kind is unknown.

        Returns:
            `result: YES` with offers (sessions in phase OFFERED, each holding its capacity
            until `expires`), or `result: NO` with `meta.messages` saying why, per platform.
        """
        now = self._now()
        offerset_id = uuid4()
        with self._store.write() as tx:
            messages, offers = self._offers(tx, request, unknown_kinds, now)
            meta = ComponentMetadata(
                uuid=offerset_id,
                url=f"{base_url}/offersets/{offerset_id}",
                created=now,
                modified=now,
                messages=messages,
            )
            document = OfferSetResponse(meta=meta, result="YES" if offers else "NO", offers=[])
            tx.add_offerset(str(offerset_id), now, document)
            sessions = [
                self._open(tx, request, offer, base_url, now, offerset=str(offerset_id), position=i)
                for i, offer in enumerate(offers)
            ]
        return msgspec.structs.replace(document, offers=[s.document for s in sessions])

    def get_offerset(self, uuid: UUID) -> OfferSetResponse:
        """The offer set as it is now (its offers show their current phases).

        Raises:
            NotFound: no offer set has this UUID.
        """
        now = self._now()
        with self._store.read() as tx:
            found = tx.offerset(str(uuid))
        if found is None:
            raise NotFound(f"offer set {uuid} does not exist")
        document, sessions = found
        return msgspec.structs.replace(document, offers=[_view(s, now) for s in sessions])

    def bookings(self, start: datetime, end: datetime) -> list[dict[str, object]]:
        """Holds and bookings overlapping [start, end), for the platforms' timeline page."""
        items: list[dict[str, object]] = []
        with self._store.read() as tx:
            for name in sorted(self._platforms):
                for session_id, booking in tx.bookings_of(name):
                    if booking.interval.end <= start or booking.interval.start >= end:
                        continue
                    record = tx.session(session_id)
                    items.append(
                        {
                            "platform": name,
                            "session": session_id,
                            "kind": booking.kind.value,
                            "phase": record.phase.value if record else None,
                            "start": booking.interval.start,
                            "end": booking.interval.end,
                            "cores": booking.resources.cores,
                            "memory": booking.resources.memory,
                            "expires": record.state.expires if record else None,
                        }
                    )
        return items

    def get_session(self, uuid: UUID) -> AnySession:
        """The session (or offer) as it is now; an offer past `expires` reads as EXPIRED.

        Raises:
            NotFound: no session has this UUID.
        """
        now = self._now()
        with self._store.read() as tx:
            record = tx.session(str(uuid))
        if record is None:
            raise NotFound(f"session {uuid} does not exist")
        return _view(record, now)

    def update_session(self, uuid: UUID, update: AnyUpdate) -> AnySession:
        """Apply one client update of `phase`: accept, reject or cancel, atomically.

        Accepting turns the offer's hold into a booking, rejects its siblings (releasing their
        holds) and queues the session's work; an offer past `expires` is marked EXPIRED and
        refused.

        Raises:
            NotFound: no session has this UUID.
            Invalid: the update is not an enum update of `phase`, or names no phase.
            IllegalUpdate: the current phase does not allow it (e.g. accepting an EXPIRED offer).
        """
        target = _requested_phase(update)
        now = self._now()
        refusal: IllegalUpdate | None = None
        with self._store.write() as tx:
            record = tx.session(str(uuid), lock=True)
            if record is None:
                raise NotFound(f"session {uuid} does not exist")
            tx.lock_platforms([record.platform])
            expires = record.state.expires
            if record.phase is Phase.OFFERED and expires is not None and now >= expires:
                record = self._apply(tx, record, OfferExpired(), now)
            phase = SessionPhase(record.phase.value)
            if target not in CLIENT_UPDATES.get(phase, ()):
                refusal = IllegalUpdate(uuid, phase, target)  # raised after the commit
            else:
                event = lifecycle.update_event(record.state, "phase", target.value)
                record = self._apply(tx, record, event, now)
        if refusal is not None:
            raise refusal
        return record.document

    def direct(
        self,
        request: ExecutionRequest,
        base_url: str,
        *,
        unknown_kinds: Sequence[UnknownKind] = (),
    ) -> AnySession:
        """Book the best offer at once and run it, skipping the offer round-trip.

        Returns:
            The new session, ACCEPTED, at `<base_url>/sessions/<uuid>`.

        Raises:
            DirectExecutionFailed: the request cannot be served; carries a FAILED session whose
                messages say why (it is not stored).
        """
        now = self._now()
        with self._store.write() as tx:
            messages, offers = self._offers(tx, request, unknown_kinds, now)
            if offers:
                record = self._open(tx, request, offers[0], base_url, now, offerset=None)
                return record.document
        raise DirectExecutionFailed(
            ScheduledExecutionSession(
                meta=ComponentMetadata(created=now, modified=now, messages=messages),
                phase=SessionPhase.FAILED,
                executable=request.executable,
                compute=request.compute,
                storage=request.storage,
                data=request.data,
            )
        )

    def tick(self, now: datetime | None = None) -> int:
        """Deliver every due event of the work queue, in the order they fell due.

        Each event is claimed (so that no other process takes it), then applied in its own
        transaction at the instant it fell due, so that a late tick replays what happened in
        order. Returns how many events were delivered.
        """
        now = now or self._now()
        delivered = 0
        while True:
            with self._store.write() as tx:
                claimed = tx.claim(self._worker_id, now, CLAIM_LEASE, limit=1)
            if not claimed:
                return delivered
            with self._store.write() as tx:
                item = tx.take(claimed[0], self._worker_id)
                record = tx.session(item.session_id, lock=True) if item else None
                if item is None or record is None or record.phase.terminal:
                    continue
                tx.lock_platforms([record.platform])
                try:
                    self._apply(tx, record, item.event, min(item.due_at, now))
                except InvalidTransition as error:
                    log.warning("dropped a queued event: %s", error)
                delivered += 1

    # ----------------------------------------------------------------- internals
    def _now(self) -> datetime:
        return self._clock.now().replace(microsecond=0)

    def _offers(
        self,
        tx: StoreTransaction,
        request: ExecutionRequest,
        unknown: Sequence[UnknownKind],
        now: datetime,
    ) -> tuple[list[MessageItem], tuple[Offer, ...]]:
        reading = read_request(request, unknown, self._settings, now)
        messages = list(reading.messages)
        if reading.demand is None or request.executable is None:
            return messages, ()
        if not self._specs:
            messages.append(
                message_item(
                    "urn:voexec:no-platform",
                    "This broker has no compute platform configured",
                    time=now,
                    level=MessageLevel.ERROR,
                )
            )
            return messages, ()
        specs, refusals = accepting_platforms(self._platforms, self._specs, request.executable)
        tx.lock_platforms(self._spec)
        bookings = tx.live_bookings(now, list(self._spec))
        found = make_offers(specs, bookings, reading.demand, now, self._policy)
        level = MessageLevel.INFO if found.offers else MessageLevel.ERROR
        reasons = [*refusals, *found.reasons]
        messages.extend(_reason_message(reason, now, level) for reason in reasons)
        return messages, found.offers

    def _open(
        self,
        tx: StoreTransaction,
        request: ExecutionRequest,
        offer: Offer,
        base_url: str,
        now: datetime,
        *,
        offerset: str | None,
        position: int = 0,
    ) -> SessionRecord:
        """Store a new session for `offer`: OFFERED in an offer set, else ACCEPTED at once."""
        session_id = uuid4()
        spec = self._spec[offer.platform]
        state = SessionState(
            session_id=str(session_id),
            start=offer.start,
            end=offer.end,
            preparation=spec.preparation,
        )
        event: AnyEvent = (
            OffersMade(expires=offer.expires) if offerset is not None else AcceptedDirectly()
        )
        result = lifecycle.step(state, event, now)
        executable_meta = request.executable.meta if request.executable else None
        name = executable_meta.name if executable_meta and executable_meta.name else "session"
        phase = SessionPhase(result.state.phase.value)
        meta = ComponentMetadata(
            uuid=session_id,
            name=f"{name}-offer-{position + 1}" if offerset is not None else name,
            url=f"{base_url}/sessions/{session_id}",
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
            options=_options_for(phase),
        )
        document = offered_session(
            offer,
            spec,
            meta=meta,
            phase=phase,
            expires=result.state.expires,
            request=request,
            now=now,
        )
        record = SessionRecord(
            id=str(session_id),
            offerset_id=offerset,
            platform=offer.platform,
            resources=offer.resources,
            state=result.state,
            document=document,
        )
        tx.add_session(record, position=position, start=offer.start, end=offer.end)
        record = self._carry_out(tx, record, result.effects, now)
        tx.save_session(record)
        return record

    def _apply(
        self, tx: StoreTransaction, record: SessionRecord, event: AnyEvent, now: datetime
    ) -> SessionRecord:
        """One lifecycle step for a stored session: the new state, its effects, stored."""
        result = lifecycle.step(record.state, event, now)
        if result.state is record.state:
            # Ignored in this phase, or a poll: the platform's answer is all there is to do.
            if result.effects:
                noted = self._carry_out(tx, record, result.effects, now)
                if noted is not record:
                    tx.save_session(noted)
                return noted
            return record
        phase = SessionPhase(result.state.phase.value)
        document = record.document
        meta = document.meta or ComponentMetadata()
        document = msgspec.structs.replace(
            document,
            phase=phase,
            meta=msgspec.structs.replace(meta, modified=now, options=_options_for(phase)),
        )
        record = SessionRecord(
            id=record.id,
            offerset_id=record.offerset_id,
            platform=record.platform,
            resources=record.resources,
            state=result.state,
            document=document,
        )
        record = self._carry_out(tx, record, result.effects, now)
        tx.save_session(record)
        return record

    def _carry_out(  # noqa: PLR0912 - one branch per effect of the lifecycle table
        self,
        tx: StoreTransaction,
        record: SessionRecord,
        effects: Sequence[AnyEffect],
        now: datetime,
    ) -> SessionRecord:
        """Carry out a step's effects in the same transaction; returns the noted record."""
        platform = self._platforms[record.platform]
        notes: list[MessageItem] = []
        for effect in effects:
            match effect:
                case HoldCapacity():
                    tx.add_booking(record.id, _booking(record, BookingKind.HOLD))
                case BookCapacity():
                    tx.add_booking(record.id, _booking(record, BookingKind.BOOKING))
                case ConvertHoldToBooking():
                    tx.convert_hold(record.id)
                case ReleaseCapacity():
                    tx.release(record.id)
                case RejectSiblings():
                    for sibling in tx.siblings(record):
                        if sibling.phase is Phase.OFFERED:
                            self._apply(tx, sibling, SiblingAccepted(), now)
                case StartPreparation() | StartWork() | ObservePlatform() | StopWork() | Release():
                    reports, trouble = call_platform(platform, effect, record, now)
                    for report in reports:
                        tx.enqueue(record.id, report.at, report.event)
                        if report.note:
                            notes.append(_platform_note(platform.name, report.note, now))
                    if trouble is not None:
                        notes.append(trouble)
                case ScheduleTimer(at=at, event=event):
                    tx.enqueue(record.id, at, event)
                case Notify(phase=phase, message=text):
                    failed = phase in (Phase.FAILED,)
                    notes.append(
                        message_item(
                            "urn:voexec:phase",
                            "{phase}: {note}",
                            time=now,
                            level=MessageLevel.ERROR if failed else MessageLevel.INFO,
                            phase=phase.value,
                            note=text,
                        )
                    )
        if record.phase.terminal:
            tx.drop_work(record.id)  # events for an ended session are never delivered
        if not notes:
            return record
        meta = record.document.meta or ComponentMetadata()
        document = msgspec.structs.replace(
            record.document, meta=msgspec.structs.replace(meta, messages=[*meta.messages, *notes])
        )
        return SessionRecord(
            id=record.id,
            offerset_id=record.offerset_id,
            platform=record.platform,
            resources=record.resources,
            state=record.state,
            document=document,
        )


def _platform_note(platform: str, note: str, now: datetime) -> MessageItem:
    return message_item(
        "urn:voexec:platform-note", "{platform}: {note}", time=now, platform=platform, note=note
    )


def _booking(record: SessionRecord, kind: BookingKind) -> Booking:
    return Booking(
        platform=record.platform,
        interval=Interval(record.state.start, record.state.end),
        resources=record.resources,
        kind=kind,
    )


def _view(record: SessionRecord, now: datetime) -> AnySession:
    """The session as a client sees it now: an offer past `expires` reads as EXPIRED."""
    expires = record.state.expires
    if record.phase is Phase.OFFERED and expires is not None and now >= expires:
        meta = record.document.meta or ComponentMetadata()
        return msgspec.structs.replace(
            record.document,
            phase=SessionPhase.EXPIRED,
            meta=msgspec.structs.replace(meta, options=[]),
        )
    return record.document


def _reason_message(reason: Reason, now: datetime, level: MessageLevel) -> MessageItem:
    return message_item(
        f"urn:voexec:{reason.code}", reason.template, time=now, level=level, **reason.values
    )


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
