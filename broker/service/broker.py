"""`BrokerService`: the broker's use cases, behind the HTTP layer and the CLI.

The I/O shell around the pure core: requests are read as demands (`broker.service.demand`),
offers are made across every platform (`broker.scheduling.offers`) and stored as holds
(`broker.service.offers`), and sessions move by the lifecycle's table
(`broker.lifecycle.step`). Every change is one write transaction of the SQL store
(`broker.store.sql`): the new phase, the holds and bookings, the next due events of the work
queue and the platform calls to make (the outbox) are stored together, so a restart carries on
from the database alone. The calls are made after the commit (`carry_out`), with no
transaction open, and their answers come back as events.

Locks (PostgreSQL rows; SQLite has one writer at a time) are taken so that no two
transactions wait for each other in a cycle: an offer set before any of its sessions
(accepting one offer rejects the others), a session before its platform, platforms in name
order. Offer requests compute without locks and hold their platforms' locks only to check and
store their holds; an accept shares its platform's lock with other
accepts (it takes no capacity) and excludes only offers being stored there; other updates and
the work queue (`tick`), which only ever free capacity, lock the session they drive and no
platform; no transaction is open during a platform call.

Semantic problems with a request (an unknown kind, min above max, more cores than any platform
has, no free slot) are answers, not exceptions: an offer set with `result: NO` whose messages
carry `values` and the rendered `message`, per platform. Exceptions are for the caller's
mistakes about sessions: `NotFound`, `IllegalUpdate` (a `Conflict`), `Invalid`, and
`DirectExecutionFailed`.

Imports `core`, the `broker` model, the pure modules, the ports and the store; no web framework.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID, uuid4

import msgspec

from broker import lifecycle
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
    OfferAccepted,
    OfferExpired,
    OffersMade,
    Phase,
    PlatformCheckDue,
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
    AnySession,
    AnyUpdate,
    ComponentMetadata,
    ExecutionRequest,
    MessageItem,
    MessageLevel,
    OfferSetResponse,
    ScheduledExecutionSession,
    SessionPhase,
    UnknownKind,
    message_item,
)
from broker.platforms.port import Platform
from broker.scheduling.audit import holds_fit
from broker.scheduling.intervals import Interval, format_duration
from broker.scheduling.offers import Offer, OfferPolicy, OfferSet
from broker.scheduling.resources import Booking, BookingKind, PlatformSpec
from broker.scheduling.slots import earliest_start
from broker.service.data import probes_data
from broker.service.federation import Federation, with_link
from broker.service.offers import Question, answer_messages, place_offers, read_question
from broker.service.platforms import action_of, call_platform, with_connectors
from broker.service.reads import DocumentRead, read_offerset, read_session
from broker.service.shape import (
    CLIENT_UPDATES,
    moved_session,
    new_session,
    options_for,
    refused_because,
    requested_phase,
    visible_session,
    with_component_phases,
)
from broker.store.port import Instruction, SessionRecord, SessionStore, SessionTransaction
from core.clock import Clock
from core.errors import Conflict, DomainError, NotFound
from core.settings import BrokerSettings

__all__ = [
    "CLIENT_UPDATES",
    "AcceptRefused",
    "BrokerService",
    "DirectExecutionFailed",
    "IllegalUpdate",
    "TooManyHeldOffers",
]

log = logging.getLogger(__name__)

CLAIM_LEASE: Final = timedelta(minutes=1)
"""How long a claimed work item stays ours before another process may take it over."""
TICK_BATCH: Final = 50
WRITERS_EMBEDDED: Final = 2
"""Client writes (offers, updates) of one process storing at once on an embedded database.

SQLite runs one write transaction at a time, and an offer request is mostly Python: more
threads storing at once only wait on the database's lock (whose waiters sleep and retry, so
the work queue's tick, competing with them all, could wait seconds for it) and take the GIL
from the event loop answering reads. The tick does not take this limit; network waits
(federation, data probes, platform calls) happen outside it."""
"""Most events the work queue delivers in one transaction (one per session)."""


class IllegalUpdate(Conflict):
    """The session's phase does not allow the update; says which updates it does allow."""

    def __init__(
        self, session: UUID, phase: SessionPhase, requested: str, *, why: str = ""
    ) -> None:
        self.session = session
        self.phase = phase
        self.requested = requested
        self.why = why or f"a session that is {phase} cannot become {requested}"
        """What happened to the session, in words (`shape.refused_because`)."""
        self.allowed: tuple[SessionPhase, ...] = CLIENT_UPDATES.get(phase, ())
        allowed = ", ".join(self.allowed) or "none"
        super().__init__(
            f"session {session} is {phase}; it cannot become {requested}: {self.why} "
            f"(allowed updates of phase: {allowed})"
        )


class AcceptRefused(Conflict):
    """An offer cannot be accepted as it stands: its platform has no room for its slot.

    Said when an offer accepted after its preparation should have begun finds no room for the
    whole session later in its requested start range (the session is never shortened), and
    when an accept's check against the bookings and the other sets' holds fails.
    """


class TooManyHeldOffers(Conflict):
    """The requester already holds `broker.held_offersets_per_requester` offer sets."""

    def __init__(self, limit: int, expiries: Sequence[datetime]) -> None:
        self.limit = limit
        soonest = min(expiries).isoformat() if expiries else "soon"
        super().__init__(
            f"you hold {len(expiries)} offer sets with open offers, the most one client may "
            f"hold at once is {limit}: accept or reject their offers, or wait until they "
            f"expire (the first at {soonest}), then ask again"
        )


class _NeedsExclusiveLock(Exception):
    """The accept turned out late under a shared platform lock: do it again, exclusively."""


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
    transaction, and capacity is taken on a platform only under its lock.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        clock: Clock,
        store: SessionStore,
        platforms: Mapping[str, Platform],
        *,
        worker_id: str | None = None,
        broker_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._store = store
        self._platforms = platforms
        self._work_due: Callable[[], None] = _nothing
        self._specs = [PlatformSpec.from_settings(platform) for platform in settings.platforms]
        self._spec = {spec.name: spec for spec in self._specs}
        # Remote platforms are other brokers: asked beside the local scheduler, not by it.
        self._federation = Federation(
            platforms,
            self._specs,
            broker_id=broker_id or f"urn:uuid:{uuid4()}",
            horizon=settings.horizon,
            max_offers=settings.max_offers,
            offer_ttl=settings.offer_ttl,
        )
        self._policy = OfferPolicy.from_settings(settings)
        # `direct` books the first offer chosen, which is the same whatever the number chosen.
        self._direct_policy = msgspec.structs.replace(self._policy, max_offers=1)
        self._worker_id = worker_id or f"broker-{uuid4()}"
        self._rotations = itertools.count()
        self._writing: AbstractContextManager[Any] = (
            threading.BoundedSemaphore(WRITERS_EMBEDDED)
            if store.reads_are_local
            else contextlib.nullcontext()
        )
        with store.write() as tx:
            tx.ensure_platforms(self._spec)

    # ----------------------------------------------------------------- public API
    def request_offers(
        self,
        request: ExecutionRequest,
        base_url: str,
        *,
        unknown_kinds: Sequence[UnknownKind] = (),
        requester: str | None = None,
        path: Sequence[str] = (),
    ) -> OfferSetResponse:
        """Answer a request with an offer set (not idempotent: each call makes new offers).

        Args:
            request: the decoded request.
            base_url: the broker's absolute base URL (ending in `/broker`, no slash).
            unknown_kinds: components the codec set aside because their kind is unknown.
            requester: who asks (a token's or an address's identity), for the limit on offer
                sets one requester may hold at once; None: no limit (in-process callers).
            path: the brokers a forwarded request passed through (`X-Execution-Broker-Path`);
                a request that passed through this one is answered NO and forwarded nowhere.

        Returns:
            `result: YES` with offers (sessions in phase OFFERED, each holding its capacity
            until `expires`), or `result: NO` with `meta.messages` saying why, per platform.

        Raises:
            TooManyHeldOffers: the requester already holds as many offer sets as allowed.
        """
        now = self._now()
        limit = self._settings.held_offersets_per_requester
        if requester is not None and limit:
            with self._store.read() as tx:
                self._check_held(tx, requester, limit, now)  # before any work
        offerset_id = uuid4()
        question = self._question(request, unknown_kinds, now)
        gathered = self._federation.gather(request, question.demand, path, now)
        if gathered.loop is not None:
            question = dataclasses.replace(
                question, messages=(*question.messages, gathered.loop), demand=None
            )
        demand = question.demand
        # How late an offer accepted late may start: the end of the requested start range.
        latest_start = max(w.end for w in demand.windows) if demand is not None else None

        def keep(tx: SessionTransaction, found: OfferSet) -> OfferSetResponse:
            found = gathered.merged(found)
            meta = ComponentMetadata(
                uuid=offerset_id,
                url=f"{base_url}/offersets/{offerset_id}",
                created=now,
                modified=now,
                messages=answer_messages(question, found, now),
            )
            document = OfferSetResponse(
                meta=meta, result="YES" if found.offers else "NO", offers=[]
            )
            if found.offers and requester is not None and limit:
                # Again under the platforms' locks: two requests of one client racing for one
                # platform are serialised here, so they cannot both pass.
                self._check_held(tx, requester, limit, now)
            tx.add_offerset(str(offerset_id), now, document, requester=requester)
            sessions = [
                self._open(
                    tx,
                    request,
                    offer,
                    base_url,
                    now,
                    offerset=str(offerset_id),
                    position=i,
                    latest_start=latest_start,
                    spec=question.spec(offer.platform),
                    link=gathered.link(offer),
                )
                for i, offer in enumerate(found.offers)
            ]
            return msgspec.structs.replace(document, offers=[s.document for s in sessions])

        rotation = next(self._rotations)  # equal platforms take turns (see `make_offers`)
        with self._writing:
            return place_offers(self._store, question, now, self._policy, keep, rotation=rotation)

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
        return msgspec.structs.replace(
            document, offers=[visible_session(s.document, s.state, now) for s in sessions]
        )

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

    def owner(self, *, offerset: UUID | None = None, session: UUID | None = None) -> str | None:
        """Who asked for this offer set or session.

        The `requester` given to `request_offers` or `direct`; None when none was recorded or
        nothing has this UUID.
        """
        with self._store.read() as tx:
            return tx.owner(
                offerset_id=str(offerset) if offerset else None,
                session_id=str(session) if session else None,
            )

    @property
    def reads_are_local(self) -> bool:
        """True when `read_session` and `read_offerset` wait on no network (SQLite)."""
        return self._store.reads_are_local

    def read_session(self, uuid: UUID) -> DocumentRead:
        """`get_session` as JSON ready to send, and its owner, in one plain select.

        The stored bytes when they read as they were stored, as most do (`broker.service.reads`).

        Raises:
            NotFound: no session has this UUID.
        """
        return read_session(self._store, uuid, self._now())

    def read_offerset(self, uuid: UUID) -> DocumentRead:
        """`get_offerset` as JSON ready to send, and its owner (`broker.service.reads`).

        Raises:
            NotFound: no offer set has this UUID.
        """
        return read_offerset(self._store, uuid, self._now())

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
        return visible_session(record.document, record.state, now)

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
        target = requested_phase(update)
        with self._federation.forwarding(self._store, uuid, target):
            return self._update_here(uuid, target)

    def on_work_due(self, wake: Callable[[], None]) -> None:
        """Call `wake` after an accept, whose first step is due at once: the runner ticks now.

        Without it, that step waits for the work queue's next tick (`broker.tick`).
        """
        self._work_due = wake

    def _update_here(self, uuid: UUID, target: SessionPhase) -> AnySession:
        """`update_session` on this broker, once it was forwarded where it must be."""
        with self._writing:
            try:
                document, calls = self._update(uuid, target, exclusive=False)
            except _NeedsExclusiveLock:
                document, calls = self._update(uuid, target, exclusive=True)
        if target is SessionPhase.ACCEPTED and document.phase is SessionPhase.ACCEPTED:
            self._work_due()
        # After the commit: a cancel stops the work before it is answered, and no
        # transaction (nor any platform lock) waits for the platform meanwhile. An update
        # that called for no platform call (an accept, a reject) looks for none.
        if calls and self.carry_out(session_ids=[str(uuid)]):
            return self.get_session(uuid)
        return document

    def _update(
        self, uuid: UUID, target: SessionPhase, *, exclusive: bool
    ) -> tuple[AnySession, int]:
        """`update_session` in one transaction; the document, and how many calls it queued.

        `exclusive` locks an offer's platform exclusively, for a late accept: it takes capacity
        at new times.
        """
        refusal: Conflict | None = None
        with self._store.write() as tx:
            tx.lock_offerset_of(str(uuid))  # first: accepting one offer rejects its siblings
            record = tx.session(str(uuid), lock=True)
            if record is None:
                raise NotFound(f"session {uuid} does not exist")
            if record.phase is Phase.OFFERED:
                # Whether the offer has expired decides whether its hold may become a booking.
                # The clock is read once the platform's lock is granted: an offer request that
                # counted this hold as expired (and may have reused its capacity) committed
                # before, at an instant no later. Shared: an accept on time takes no capacity
                # (its booking is one of the alternatives its set held), so accepts wait only
                # for (and hold up only) offer requests storing holds here. A late accept
                # moves its slot, taking capacity at new times: exclusive, as offers are.
                # Other updates only free capacity (a cancel may call the platform): no lock.
                tx.lock_platforms([record.platform], shared=not exclusive)
            now = self._now()
            expires = record.state.expires
            if record.phase is Phase.OFFERED and expires is not None and now >= expires:
                record = self._apply(tx, record, OfferExpired(), now)
            phase = record.phase
            if target not in CLIENT_UPDATES.get(phase, ()):
                why = refused_because(record.state, target)
                refusal = IllegalUpdate(uuid, phase, target, why=why)  # raised after the commit
            else:
                event = lifecycle.update_event(record.state, "phase", target.value)
                if isinstance(event, OfferAccepted):
                    accepted = self._accepting(tx, record, now, exclusive=exclusive)
                    if isinstance(accepted, AcceptRefused):
                        refusal = accepted
                    else:
                        record, event = accepted
                if refusal is None:
                    record = self._apply(tx, record, event, now)
        if refusal is not None:
            raise refusal
        return record.document, tx.instructions

    def _accepting(
        self, tx: SessionTransaction, record: SessionRecord, now: datetime, *, exclusive: bool
    ) -> tuple[SessionRecord, OfferAccepted] | AcceptRefused:
        """Check an accept firmly, moving a late offer's slot when there is room for it.

        The session's booking is checked against the platform's bookings and the other sets'
        holds (never its own set's: one of those alternatives is this offer). An offer whose
        preparation should already have begun moves to the earliest start, with the
        preparation, where its whole slot fits, within its requested start range; without
        one, the accept is refused, saying why: a session never runs shorter than offered.

        Raises:
            _NeedsExclusiveLock: the offer is late and the platform is locked only shared.
        """
        state = record.state
        # The session's own preparation: the platform's, plus moving this request's data.
        spec = msgspec.structs.replace(self._spec[record.platform], preparation=state.preparation)
        duration = state.end - state.start
        earliest = now + spec.preparation
        late = state.start < earliest
        if late and not exclusive and self._store.shares_platform_locks:
            raise _NeedsExclusiveLock
        start = state.start
        latest = state.latest_start or state.start  # never past the requested start range
        others = [
            booking
            for booking in tx.live_bookings(
                now, [record.platform], Interval(start, max(latest, start) + duration)
            )
            if record.offerset_id is None or booking.group != record.offerset_id
        ]
        if late:
            moved = None
            if latest >= earliest:
                moved = earliest_start(
                    spec, others, record.resources, duration, Interval(earliest, latest)
                )
            if moved is None:
                return AcceptRefused(_late_refusal(record, spec, earliest))
            start = moved
        booking = Booking(
            platform=record.platform,
            interval=Interval(start, start + duration),
            resources=record.resources,
        )
        if not holds_fit(spec, others, [booking]):
            return AcceptRefused(
                f"session {record.id}: {record.platform} has no room for this offer's slot "
                f"from {start.isoformat()} any more; ask for new offers"
            )
        if not late:
            return record, OfferAccepted()
        tx.move_slot(record.id, start, start + duration)
        document = moved_session(record.document, spec, start, start + duration)
        return dataclasses.replace(record, document=document), OfferAccepted(start=start)

    def direct(
        self,
        request: ExecutionRequest,
        base_url: str,
        *,
        unknown_kinds: Sequence[UnknownKind] = (),
        requester: str | None = None,
    ) -> AnySession:
        """Book the best offer at once and run it, skipping the offer round-trip.

        `requester` (who asks) is recorded as the session's owner (`owner`).

        Returns:
            The new session, ACCEPTED, at `<base_url>/sessions/<uuid>`.

        Raises:
            DirectExecutionFailed: the request cannot be served; carries a FAILED session whose
                messages say why (it is not stored).
        """
        now = self._now()
        question = self._question(request, unknown_kinds, now)

        def keep(tx: SessionTransaction, found: OfferSet) -> AnySession | list[MessageItem]:
            if not found.offers:
                return answer_messages(question, found, now)  # why not, for the failure
            offer = found.offers[0]
            spec = question.spec(offer.platform)
            return self._open(
                tx, request, offer, base_url, now, offerset=None, spec=spec, requester=requester
            ).document

        with self._writing:
            booked = place_offers(self._store, question, now, self._direct_policy, keep)
        if not isinstance(booked, list):
            if booked.meta is not None and booked.meta.uuid is not None:
                self.carry_out(session_ids=[str(booked.meta.uuid)])
            return booked
        raise DirectExecutionFailed(
            ScheduledExecutionSession(
                meta=ComponentMetadata(created=now, modified=now, messages=booked),
                phase=SessionPhase.FAILED,
                executable=request.executable,
                compute=request.compute,
                storage=request.storage,
                data=request.data,
            )
        )

    def tick(self, now: datetime | None = None) -> int:
        """Deliver every due event of the work queue, in the order they fell due.

        Due events are claimed in batches (so that no other process takes them), then applied
        in one transaction, each at the instant it fell due, so that a late tick replays what
        happened in order; a batch holds one event per session. Before each batch, the
        platform calls already decided are made (`carry_out`), so their reports are queued
        before a session's next event is chosen, as if each call had been answered at once.
        Returns how many events were delivered.
        """
        now = now or self._now()
        delivered = 0
        while True:
            self.carry_out()
            with self._store.write() as tx:
                claimed = tx.claim(self._worker_id, now, CLAIM_LEASE, limit=TICK_BATCH)
            if not claimed:
                return delivered
            try:
                delivered += self._deliver(claimed, now)
            except Exception:  # noqa: BLE001 - one event failing must not hold up the others
                for item_id in claimed:
                    try:
                        delivered += self._deliver([item_id], now)
                    except Exception:
                        # Its claim stays until the lease runs out; it is tried again then.
                        log.exception("broker work queue: event %s failed", item_id)

    def _deliver(self, claimed: Sequence[int], now: datetime) -> int:
        """Apply claimed events in one transaction, the first due of each session.

        One transaction for a batch: a busy database grants the write lock a few times a
        second, not once per event. Returns how many were delivered.
        """
        delivered = 0
        with self._store.write() as tx:
            for item in tx.take_batch(claimed, self._worker_id, now):
                record = tx.session(item.session_id, lock=True)
                if record is None or record.phase.terminal:
                    continue
                # No platform lock: no queued event takes capacity (only offers and direct
                # bookings do, under the lock); platform calls are made after the commit.
                try:
                    # The event takes effect when it fell due (a late tick replays what the
                    # platform would have done, in order); the history records the clock. A
                    # poll asks how the work goes now: it takes effect now, so the next poll
                    # is due from now and missed polls are not replayed one by one (the store
                    # took the session's other due polls with it).
                    due = now if isinstance(item.event, PlatformCheckDue) else item.due_at
                    self._apply(tx, record, item.event, min(due, now), at=self._now())
                except InvalidTransition as error:
                    log.warning("dropped a queued event: %s", error)
                delivered += 1
        return delivered

    def carry_out(self, session_ids: Sequence[str] | None = None) -> int:
        """Make the platform calls of the outbox, oldest first; returns how many were made.

        Each call is claimed in a short transaction, made with no transaction open, and its
        answer (the platform's reports, as events of the work queue, and its notes) stored in
        another. A process that dies during a call leaves its claim to expire; the call is then
        made again, which the platform port allows (its calls are idempotent per session).

        Args:
            session_ids: only these sessions' calls (a request carrying out what it decided).
        """
        made = 0
        while True:
            with self._store.write() as tx:
                claimed = tx.claim_instructions(
                    self._worker_id, self._now(), CLAIM_LEASE, limit=1, session_ids=session_ids
                )
            if not claimed:
                return made
            self._call(claimed[0])
            made += 1

    def _call(self, instruction: Instruction) -> None:
        """One platform call of the outbox, then its answer fed back into the store."""
        with self._store.read() as tx:
            record = tx.session(instruction.session_id)
        if record is None:  # never stored: nothing to call
            with self._store.write() as tx:
                tx.finish_instruction(instruction.id, self._worker_id)
            return
        platform = self._platforms[record.platform]
        staging = [
            configured.data
            for configured in self._settings.platforms
            if configured.name == record.platform and probes_data(configured)
        ]
        reports, trouble = call_platform(
            platform,
            instruction.action,
            record,
            instruction.effective_at,
            data=staging[0] if staging else None,
        )
        at = instruction.noted_at
        notes = [_platform_note(platform.name, r.note, at) for r in reports if r.note]
        notes += [message for report in reports for message in report.messages]
        if trouble is not None:
            notes.append(trouble)
        with self._store.write() as tx:
            if not tx.finish_instruction(instruction.id, self._worker_id):
                return  # our claim ran out and another worker made the call again
            current = tx.session(record.id, lock=True)
            if current is None:
                return
            if not current.phase.terminal:  # events for an ended session are never delivered
                for report in reports:
                    tx.enqueue(current.id, report.at, report.event)
            # The ways in the platform reported (a Jupyter server's URL) go on the session.
            current = with_connectors(current, reports) or current
            if notes:
                current = _noted(current, notes)
            if notes or any(report.connectors is not None for report in reports):
                tx.save_session(current)

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _check_held(tx: SessionTransaction, requester: str, limit: int, now: datetime) -> None:
        """Refuse a requester who already holds `limit` offer sets with open offers."""
        expiries = tx.held_offersets(requester, now)
        if len(expiries) >= limit:
            raise TooManyHeldOffers(limit, expiries)

    def _now(self) -> datetime:
        return self._clock.now().replace(microsecond=0)

    def _question(
        self, request: ExecutionRequest, unknown: Sequence[UnknownKind], now: datetime
    ) -> Question:
        return read_question(
            request,
            unknown,
            settings=self._settings,
            specs=self._federation.local(self._specs),
            forwarding=bool(self._federation.remotes),
            adapters=self._platforms,
            policy=self._policy,
            now=now,
        )

    def _open(
        self,
        tx: SessionTransaction,
        request: ExecutionRequest,
        offer: Offer,
        base_url: str,
        now: datetime,
        *,
        offerset: str | None,
        position: int = 0,
        latest_start: datetime | None = None,
        link: str | None = None,
        spec: PlatformSpec | None = None,
        requester: str | None = None,
    ) -> SessionRecord:
        """Store a new session for `offer`: OFFERED in an offer set, else ACCEPTED at once.

        `requester` is kept on a session outside any offer set (an offer set keeps its own).

        `spec` is the platform as the request saw it: its preparation includes moving the
        request's data there, and the session keeps that preparation.
        """
        session_id = uuid4()
        spec = spec or self._spec[offer.platform]
        state = SessionState(
            session_id=str(session_id),
            start=offer.start,
            end=offer.end,
            preparation=spec.preparation,
            latest_start=latest_start,
        )
        event: AnyEvent = (
            OffersMade(expires=offer.expires) if offerset is not None else AcceptedDirectly()
        )
        result = lifecycle.step(state, event, now)
        document = new_session(
            offer,
            spec,
            session_id=session_id,
            url=f"{base_url}/sessions/{session_id}",
            state=result.state,
            request=request,
            now=now,
            position=position if offerset is not None else None,
        )
        record = SessionRecord(
            id=str(session_id),
            offerset_id=offerset,
            platform=offer.platform,
            resources=offer.resources,
            state=result.state,
            document=document,
        )
        # Effects first, so that the session is inserted once, with their notes.
        record = self._carry_out(tx, record, result.effects, now, now)
        if link is not None:
            record = with_link(record, link, now)
        tx.add_session(
            record,
            position=position,
            start=offer.start,
            end=offer.end,
            requester=requester if offerset is None else None,
        )
        return record

    def _apply(
        self,
        tx: SessionTransaction,
        record: SessionRecord,
        event: AnyEvent,
        now: datetime,
        *,
        at: datetime | None = None,
    ) -> SessionRecord:
        """One lifecycle step for a stored session: the new state, its effects, stored.

        `now` is when the event takes effect; `at` when it happened (the clock at the
        transition; default `now`): the history, the phase notes and `modified` say `at`.
        """
        result = lifecycle.step(record.state, event, now, at=at)
        if result.state is record.state:
            # Ignored in this phase, or a poll: the platform's answer is all there is to do.
            if result.effects:
                noted = self._carry_out(tx, record, result.effects, now, at or now)
                if noted is not record:
                    tx.save_session(noted)
                return noted
            return record
        phase = result.state.phase
        recorded = result.state.history[-1].at
        document = record.document
        meta = document.meta or ComponentMetadata()
        document = msgspec.structs.replace(
            with_component_phases(document, phase),
            phase=phase,
            meta=msgspec.structs.replace(meta, modified=recorded, options=options_for(phase)),
        )
        record = SessionRecord(
            id=record.id,
            offerset_id=record.offerset_id,
            platform=record.platform,
            resources=record.resources,
            state=result.state,
            document=document,
        )
        record = self._carry_out(tx, record, result.effects, now, recorded)
        tx.save_session(record)
        return record

    def _carry_out(
        self,
        tx: SessionTransaction,
        record: SessionRecord,
        effects: Sequence[AnyEffect],
        now: datetime,
        at: datetime,
    ) -> SessionRecord:
        """Carry out a step's effects in the same transaction; returns the noted record.

        Capacity, timers and notes are stored here; platform calls are queued in the outbox
        and made after the commit.

        `now` is when the step takes effect (platforms are called with it, timers set from it);
        `at` is when it happened, the time of the notes.
        """
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
                    # The siblings' releases and saves go to the database together.
                    with tx.batched():
                        for sibling in tx.siblings(record):
                            if sibling.phase is Phase.OFFERED:
                                self._apply(tx, sibling, SiblingAccepted(), now, at=at)
                case StartPreparation() | StartWork() | ObservePlatform() | StopWork() | Release():
                    # Into the outbox, committed with the new phase; the call itself is made
                    # after the commit (`carry_out`), so no transaction waits on a platform.
                    tx.add_instruction(record.id, action_of(effect), now, at)
                case ScheduleTimer(at=due, event=event):
                    tx.enqueue(record.id, due, event)
                case Notify(phase=phase, message=text):
                    failed = phase in (Phase.FAILED,)
                    notes.append(
                        message_item(
                            "urn:voexec:phase",
                            "{phase}: {note}",
                            time=at,
                            level=MessageLevel.ERROR if failed else MessageLevel.INFO,
                            phase=phase.value,
                            note=text,
                        )
                    )
        if record.phase.terminal:
            tx.drop_work(record.id)  # events for an ended session are never delivered
        return _noted(record, notes) if notes else record


def _noted(record: SessionRecord, notes: Sequence[MessageItem]) -> SessionRecord:
    """The record with `notes` added to its document's messages."""
    meta = record.document.meta or ComponentMetadata()
    document = msgspec.structs.replace(
        record.document, meta=msgspec.structs.replace(meta, messages=[*meta.messages, *notes])
    )
    return dataclasses.replace(record, document=document)


def _late_refusal(record: SessionRecord, spec: PlatformSpec, earliest: datetime) -> str:
    state = record.state
    latest = state.latest_start or state.start
    where = (
        f"no room for its {_hours(state.end - state.start)} on {record.platform} between "
        f"{earliest.isoformat()} and {latest.isoformat()} (the end of the requested start range)"
        if latest >= earliest
        else f"the requested start range ended at {latest.isoformat()}"
    )
    return (
        f"session {record.id}: the offer starts at {state.start.isoformat()} and its "
        f"preparation ({_hours(spec.preparation)}) had to begin by "
        f"{(state.start - spec.preparation).isoformat()}; it cannot move later: {where}. "
        "The session would run shorter than offered, so the accept is refused; ask for new offers"
    )


def _hours(span: timedelta) -> str:
    return format_duration(span)


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
        group=record.offerset_id if kind is BookingKind.HOLD else None,
    )


def _nothing() -> None:
    """No work-queue runner to wake (tests drive the ticks)."""
