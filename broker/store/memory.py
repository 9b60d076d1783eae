"""The broker's store in memory: the `SessionStore` port with no database, for tests.

`MemorySessionStore` keeps what `broker.store.sql.SqlBrokerStore` keeps (platforms, offer
sets, sessions, holds and bookings, the work queue with its leases, the outbox) in plain
tables of immutable rows, and answers every operation of the port as the SQL adapter does; the
contract suite `tests/contract/test_broker_store.py` runs over both. No I/O.

Transactions: every `write` runs alone under the store's lock (as on SQLite, where the whole
write transaction holds the database's write lock), on a copy of the tables that replaces them
only when the block ends without an error; a failed write leaves nothing. So the service's
capacity checks, made under `lock_platforms`, are serialised here as they are on a database:
no offer and no accept can slip between another's check and its commit. A `read` (and the
plain reads `stored_session` and `stored_offerset`) sees the tables as last committed and never
waits for a writer. Instants are kept to the microsecond, as the SQL store keeps them; session
and offer set documents are kept in their JSON wire form, so what is read back is a new
object, as from a database.

`MemorySessionStore.tables()` gives the committed rows themselves, for checks that must not go
through the store's own queries (the capacity audit of `tests/broker_audit.py`).

Imports the broker's model, codec, lifecycle and scheduling types, and msgspec.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

import msgspec

from broker.lifecycle import AnyEvent, Phase, PlatformCheckDue, SessionState
from broker.model import AnySession, OfferSetResponse, codec
from broker.scheduling.intervals import Interval, from_micros, to_micros
from broker.scheduling.resources import Booking, BookingKind, Resources
from broker.store.port import (
    BookingSnapshot,
    Instruction,
    SessionRecord,
    SessionStore,
    SessionTransaction,
    StoredSession,
    WorkItem,
)

__all__ = [
    "BookingRow",
    "DuplicateKey",
    "MemorySessionStore",
    "MemoryTables",
    "MemoryTransaction",
    "OfferSetRow",
    "OutboxRow",
    "SessionRow",
    "WorkRow",
]

_state_decoder: Final = msgspec.json.Decoder(SessionState)
_resources_decoder: Final = msgspec.json.Decoder(Resources)
_event_decoder: Final = msgspec.json.Decoder(AnyEvent)


class DuplicateKey(Exception):
    """A row with this key is stored already (the SQL store's unique violation)."""


def _instant(value: datetime) -> datetime:
    """`value` as the SQL store reads it back: UTC, whole microseconds."""
    return from_micros(to_micros(value))


def _json(document: AnySession | OfferSetResponse) -> bytes:
    return codec.encode(document, codec.Media.JSON)


# ------------------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class OfferSetRow:
    """One stored offer set: when, its own document (JSON) and who asked for it."""

    id: str
    created: datetime
    document: bytes
    requester: str | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One stored session, as the SQL store's `broker_session` row holds it.

    `expires` is the expiry stored with the session when it was added (`save_session` changes
    the state and the document, not this), as in the SQL store.
    """

    id: str
    offerset_id: str | None
    position: int
    platform: str
    phase: Phase
    expires: datetime | None
    slot_start: datetime
    slot_end: datetime
    resources: Resources
    state: SessionState
    document: bytes
    requester: str | None
    order: int
    """The order sessions were added in (a tie-break where the SQL store's order is free)."""


@dataclass(frozen=True, slots=True)
class BookingRow:
    """The hold or booking of one session."""

    session_id: str
    platform: str
    slot_start: datetime
    slot_end: datetime
    resources: Resources
    kind: BookingKind


@dataclass(frozen=True, slots=True)
class WorkRow:
    """One queued event, with the claim on it (worker and lease end) if any."""

    id: int
    session_id: str
    due_at: datetime
    event: AnyEvent
    claimed_by: str | None = None
    claimed_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One platform call still to make, with the claim on it if any."""

    id: int
    session_id: str
    action: str
    effective_at: datetime
    noted_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None


@dataclass(slots=True)
class MemoryTables:
    """The store's tables. Rows are immutable; a write changes its own copy of the tables."""

    platforms: set[str] = field(default_factory=set)
    offersets: dict[str, OfferSetRow] = field(default_factory=dict)
    sessions: dict[str, SessionRow] = field(default_factory=dict)
    bookings: dict[str, BookingRow] = field(default_factory=dict)
    work: dict[int, WorkRow] = field(default_factory=dict)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)
    """Per platform, how many transactions took capacity there (see `capacity_taken`)."""
    next_id: int = 1
    """The next id of a queued event or a platform call (never reused, like a sequence)."""

    def copy(self) -> MemoryTables:
        """A copy a write can change: new tables holding the same (immutable) rows."""
        return MemoryTables(
            set(self.platforms),
            dict(self.offersets),
            dict(self.sessions),
            dict(self.bookings),
            dict(self.work),
            dict(self.outbox),
            dict(self.taken),
            self.next_id,
        )

    def new_id(self) -> int:
        """Take the next id."""
        self.next_id += 1
        return self.next_id - 1


def _record(row: SessionRow) -> SessionRecord:
    document: AnySession = codec.decode_stored(row.document, AnySession)
    return SessionRecord(
        id=row.id,
        offerset_id=row.offerset_id,
        platform=row.platform,
        resources=row.resources,
        state=row.state,
        document=document,
    )


def _stored(row: SessionRow, owner: str | None = None) -> StoredSession:
    return StoredSession(
        id=row.id, phase=row.phase, expires=row.expires, document=row.document, owner=owner
    )


def _booking(row: BookingRow, session: SessionRow) -> Booking:
    """The Booking of a row; a hold carries its session's offer set as its group."""
    return Booking(
        platform=row.platform,
        interval=Interval(row.slot_start, row.slot_end),
        resources=row.resources,
        kind=row.kind,
        group=session.offerset_id if row.kind is BookingKind.HOLD else None,
    )


def _is_poll(event: AnyEvent) -> bool:
    return isinstance(event, PlatformCheckDue)


class MemoryTransaction:
    """The store's operations inside one transaction (see `MemorySessionStore.write`)."""

    def __init__(self, tables: MemoryTables, *, writable: bool) -> None:
        self._tables = tables
        self._writable = writable
        self._took: set[str] = set()
        """The platforms this transaction has counted capacity taken on already."""
        self.instructions = 0
        """How many platform calls this transaction queued (none: nothing to carry out)."""

    def _changing(self) -> MemoryTables:
        if not self._writable:
            raise RuntimeError("a read transaction cannot change the store; use write()")
        return self._tables

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Nothing to hold back: every change is made at once, and read back at once."""
        yield

    # -------------------------------------------------------------- platforms
    def lock_platforms(self, names: Iterable[str], *, shared: bool = False) -> None:
        """Nothing more to lock: the whole write transaction runs alone."""
        del names, shared

    def ensure_platforms(self, names: Iterable[str]) -> None:
        """Make sure every configured platform has its row."""
        self._changing().platforms.update(names)

    # -------------------------------------------------------------- bookings
    def _joined(self) -> Iterator[tuple[BookingRow, SessionRow]]:
        """Every booking with its session (a booking whose session is gone counts nowhere)."""
        sessions = self._tables.sessions
        for row in self._tables.bookings.values():
            session = sessions.get(row.session_id)
            if session is not None:
                yield row, session

    def live_bookings(
        self, now: datetime, platforms: Sequence[str], within: Interval | None = None
    ) -> list[Booking]:
        """Holds of unexpired offers and bookings of accepted sessions that end after `now`."""
        return self.bookings_snapshot(now, platforms, within).bookings

    def bookings_snapshot(
        self, now: datetime, platforms: Sequence[str], within: Interval | None = None
    ) -> BookingSnapshot:
        """`live_bookings`, and the platforms with holds expired at `now` but still OFFERED."""
        wanted = set(platforms)
        found = []
        pending: set[str] = set()
        for row, session in self._joined():
            if row.platform not in wanted or row.slot_end <= now:
                continue
            if within is not None and not (
                row.slot_start < within.end and row.slot_end > within.start
            ):
                continue
            if row.kind is not BookingKind.BOOKING:
                if session.phase is not Phase.OFFERED:
                    continue
                if session.expires is None or session.expires <= now:
                    pending.add(row.platform)
                    continue
            found.append(_booking(row, session))
        return BookingSnapshot(found, frozenset(pending))

    def capacity_taken(self, platforms: Sequence[str]) -> dict[str, int]:
        """How many transactions have taken capacity on each platform.

        A transaction takes capacity when it adds or moves a hold or booking; a platform with
        no row, on which nothing was ever booked, is missing. Unchanged between two reads: no
        capacity was taken there in between.
        """
        tables = self._tables
        return {
            name: tables.taken.get(name, 0)
            for name in sorted(set(platforms))
            if name in tables.platforms or name in tables.taken
        }

    def _take(self, platform: str) -> None:
        """Count capacity taken on `platform`, once per transaction (it gets its row too)."""
        tables = self._changing()
        if platform in self._took:
            return
        self._took.add(platform)
        tables.platforms.add(platform)
        tables.taken[platform] = tables.taken.get(platform, 0) + 1

    def add_booking(self, session_id: str, booking: Booking) -> None:
        """Store the hold or booking of one session (its platform's `capacity_taken` grows)."""
        tables = self._changing()
        if session_id in tables.bookings:
            raise DuplicateKey(f"broker_booking: session {session_id} has a booking already")
        self._take(booking.platform)
        tables.bookings[session_id] = BookingRow(
            session_id=session_id,
            platform=booking.platform,
            slot_start=_instant(booking.interval.start),
            slot_end=_instant(booking.interval.end),
            resources=_resources_decoder.decode(msgspec.json.encode(booking.resources)),
            kind=BookingKind(booking.kind),
        )

    def convert_hold(self, session_id: str) -> None:
        """The session's hold becomes a booking (it no longer expires)."""
        tables = self._changing()
        row = tables.bookings.get(session_id)
        if row is not None:
            tables.bookings[session_id] = replace(row, kind=BookingKind.BOOKING)

    def move_slot(self, session_id: str, start: datetime, end: datetime) -> None:
        """Move a session's slot, and its hold or booking with it (a late accept).

        Takes capacity at new times: the platform's `capacity_taken` grows.
        """
        tables = self._changing()
        start, end = _instant(start), _instant(end)
        booking = tables.bookings.get(session_id)
        if booking is not None:
            self._take(booking.platform)
            tables.bookings[session_id] = replace(booking, slot_start=start, slot_end=end)
        session = tables.sessions.get(session_id)
        if session is not None:
            tables.sessions[session_id] = replace(session, slot_start=start, slot_end=end)

    def release(self, session_id: str) -> None:
        """Free the session's hold or booking."""
        self._changing().bookings.pop(session_id, None)

    def bookings_of(self, platform: str) -> list[tuple[str, Booking]]:
        """Every stored hold and booking of a platform, with its session (for checks)."""
        rows = sorted(
            ((row, session) for row, session in self._joined() if row.platform == platform),
            key=lambda pair: (pair[0].slot_start, pair[0].session_id),
        )
        return [(row.session_id, _booking(row, session)) for row, session in rows]

    # -------------------------------------------------------------- offer sets, sessions
    def add_offerset(
        self,
        offerset_id: str,
        created: datetime,
        document: OfferSetResponse,
        *,
        requester: str | None = None,
    ) -> None:
        """Store an offer set's own document (its offers are sessions) and who asked for it."""
        tables = self._changing()
        if offerset_id in tables.offersets:
            raise DuplicateKey(f"broker_offerset: {offerset_id} is stored already")
        tables.offersets[offerset_id] = OfferSetRow(
            offerset_id, _instant(created), _json(document), requester
        )

    def _sessions_of(self, offerset_id: str) -> list[SessionRow]:
        """The sessions of an offer set in their order."""
        rows = [row for row in self._tables.sessions.values() if row.offerset_id == offerset_id]
        return sorted(rows, key=lambda row: (row.position, row.order))

    def held_offersets(self, requester: str, now: datetime) -> list[datetime]:
        """When each offer set of `requester` still holding capacity at `now` stops holding it."""
        latest: dict[str, datetime] = {}
        offersets = self._tables.offersets
        for row in self._tables.sessions.values():
            if row.offerset_id is None or row.phase is not Phase.OFFERED:
                continue
            if row.expires is None or row.expires <= now:
                continue
            offerset = offersets.get(row.offerset_id)
            if offerset is None or offerset.requester != requester:
                continue
            known = latest.get(row.offerset_id)
            latest[row.offerset_id] = row.expires if known is None else max(known, row.expires)
        return sorted(latest.values())

    def owner(self, *, offerset_id: str | None = None, session_id: str | None = None) -> str | None:
        """Who asked for an offer set, or for a session (its set's requester, or its own)."""
        tables = self._tables
        if session_id is not None:
            session = tables.sessions.get(session_id)
            if session is None:
                return None
            offerset = tables.offersets.get(session.offerset_id or "")
            if offerset is not None and offerset.requester is not None:
                return offerset.requester
            return session.requester
        found = tables.offersets.get(offerset_id or "")
        return None if found is None else found.requester

    def offerset(self, offerset_id: str) -> tuple[OfferSetResponse, list[SessionRecord]] | None:
        """An offer set's document and its sessions in their order, or None."""
        row = self._tables.offersets.get(offerset_id)
        if row is None:
            return None
        document: OfferSetResponse = codec.decode_stored(row.document, OfferSetResponse)
        return document, [_record(session) for session in self._sessions_of(offerset_id)]

    def add_session(
        self,
        record: SessionRecord,
        *,
        position: int = 0,
        start: datetime,
        end: datetime,
        requester: str | None = None,
    ) -> None:
        """Store a new session (`requester`: who asked, for a session outside any offer set)."""
        tables = self._changing()
        if record.id in tables.sessions:
            raise DuplicateKey(f"broker_session: {record.id} is stored already")
        state = _state_decoder.decode(msgspec.json.encode(record.state))
        tables.sessions[record.id] = SessionRow(
            id=record.id,
            offerset_id=record.offerset_id,
            position=position,
            platform=record.platform,
            phase=state.phase,
            expires=_instant(state.expires) if state.expires else None,
            slot_start=_instant(start),
            slot_end=_instant(end),
            resources=_resources_decoder.decode(msgspec.json.encode(record.resources)),
            state=state,
            document=_json(record.document),
            requester=requester,
            order=tables.new_id(),
        )

    def lock_offerset_of(self, session_id: str) -> None:
        """Nothing more to lock: the whole write transaction runs alone."""
        del session_id

    def session(self, session_id: str, *, lock: bool = False) -> SessionRecord | None:
        """One session, or None (`lock`: nothing more to lock, the write runs alone)."""
        del lock
        row = self._tables.sessions.get(session_id)
        return None if row is None else _record(row)

    def siblings(self, record: SessionRecord) -> list[SessionRecord]:
        """The other sessions of the same offer set."""
        if record.offerset_id is None:
            return []
        return [
            _record(row) for row in self._sessions_of(record.offerset_id) if row.id != record.id
        ]

    def save_session(self, record: SessionRecord) -> None:
        """Store a session's new state and document (its slot and expiry stay)."""
        tables = self._changing()
        row = tables.sessions.get(record.id)
        if row is None:
            return  # as an UPDATE that finds no row
        state = _state_decoder.decode(msgspec.json.encode(record.state))
        tables.sessions[record.id] = replace(
            row, phase=state.phase, state=state, document=_json(record.document)
        )

    def expired_offers(self, now: datetime) -> list[str]:
        """Sessions still OFFERED whose `expires` has come."""
        return [
            row.id
            for row in self._tables.sessions.values()
            if row.phase is Phase.OFFERED and row.expires is not None and row.expires <= now
        ]

    # -------------------------------------------------------------- the work queue
    def _queued(self, rows: Iterable[WorkRow]) -> list[WorkRow]:
        return sorted(rows, key=lambda row: (row.due_at, row.id))

    def enqueue(self, session_id: str, due_at: datetime, event: AnyEvent) -> None:
        """Deliver `event` to the session at `due_at`."""
        tables = self._changing()
        identifier = tables.new_id()
        stored = _event_decoder.decode(msgspec.json.encode(event))
        tables.work[identifier] = WorkRow(identifier, session_id, _instant(due_at), stored)

    def drop_work(self, session_id: str) -> None:
        """Forget every event still queued for a session (it has ended)."""
        work = self._changing().work
        for row in [row for row in work.values() if row.session_id == session_id]:
            del work[row.id]

    def claim(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """Claim up to `limit` due items not claimed by a live worker, oldest first.

        An item whose session has an item claimed by another live worker waits for it.
        """
        work = self._changing().work
        busy = {
            row.session_id
            for row in work.values()
            if row.claimed_by is not None
            and row.claimed_by != worker
            and row.claimed_until is not None
            and row.claimed_until > now
        }
        due = [
            row
            for row in self._queued(work.values())
            if row.due_at <= now
            and (row.claimed_until is None or row.claimed_until <= now)
            and row.session_id not in busy
        ][: max(limit, 0)]
        until = _instant(now + lease)
        for row in due:
            work[row.id] = replace(row, claimed_by=worker, claimed_until=until)
        return [row.id for row in due]

    def take_batch(self, item_ids: Sequence[int], worker: str, now: datetime) -> list[WorkItem]:
        """Remove and return, of these claimed items, the first due of each session.

        The others are unclaimed for the next batch; polls collapse as in `take`.
        """
        work = self._changing().work
        ours = [work[i] for i in set(item_ids) if i in work and work[i].claimed_by == worker]
        first: dict[str, WorkRow] = {}
        for row in self._queued(ours):
            first.setdefault(row.session_id, row)
        if not first:
            return []
        for row in first.values():
            del work[row.id]
        taken = {row.id for row in first.values()}
        for row in ours:
            if row.id not in taken:
                work[row.id] = replace(row, claimed_by=None, claimed_until=None)
        for row in first.values():
            if _is_poll(row.event):
                self._collapse_polls(row.session_id, now)
        return [WorkItem(r.id, r.session_id, r.due_at, r.event) for r in first.values()]

    def _collapse_polls(self, session_id: str, now: datetime) -> None:
        work = self._tables.work
        for row in list(work.values()):
            if row.session_id == session_id and _is_poll(row.event) and row.due_at <= now:
                del work[row.id]

    def take(self, item_id: int, worker: str, now: datetime | None = None) -> WorkItem | None:
        """Remove a claimed item and return it; None when it is not (or no longer) ours.

        A poll taken at `now` takes every other poll of its session due by then with it.
        """
        work = self._changing().work
        row = work.get(item_id)
        if row is None or row.claimed_by != worker:
            return None
        del work[item_id]
        if now is not None and _is_poll(row.event):
            self._collapse_polls(row.session_id, now)
        return WorkItem(row.id, row.session_id, row.due_at, row.event)

    def pending(self, session_id: str) -> list[WorkItem]:
        """The events still queued for a session, in the order they are due."""
        rows = self._queued(r for r in self._tables.work.values() if r.session_id == session_id)
        return [WorkItem(row.id, row.session_id, row.due_at, row.event) for row in rows]

    # -------------------------------------------------------------- the outbox
    def add_instruction(
        self, session_id: str, action: str, effective_at: datetime, noted_at: datetime
    ) -> None:
        """Queue a platform call, committed with the transition that decided it."""
        tables = self._changing()
        self.instructions += 1
        identifier = tables.new_id()
        tables.outbox[identifier] = OutboxRow(
            identifier, session_id, action, _instant(effective_at), _instant(noted_at)
        )

    def claim_instructions(
        self,
        worker: str,
        now: datetime,
        lease: timedelta,
        *,
        limit: int,
        session_ids: Sequence[str] | None = None,
    ) -> list[Instruction]:
        """Claim up to `limit` calls not claimed by a live worker, each its session's first."""
        outbox = self._changing().outbox
        wanted = None if session_ids is None else set(session_ids)
        firsts: dict[str, OutboxRow] = {}
        for row in sorted(outbox.values(), key=lambda row: row.id):
            firsts.setdefault(row.session_id, row)
        chosen = [
            row
            for row in sorted(firsts.values(), key=lambda row: row.id)
            if (row.claimed_until is None or row.claimed_until <= now)
            and (wanted is None or row.session_id in wanted)
        ][: max(limit, 0)]
        until = _instant(now + lease)
        for row in chosen:
            outbox[row.id] = replace(row, claimed_by=worker, claimed_until=until)
        return [
            Instruction(row.id, row.session_id, row.action, row.effective_at, row.noted_at)
            for row in chosen
        ]

    def finish_instruction(self, instruction_id: int, worker: str) -> bool:
        """Remove a call carried out; False when it is no longer ours (another took it over)."""
        outbox = self._changing().outbox
        row = outbox.get(instruction_id)
        if row is None or row.claimed_by != worker:
            return False
        del outbox[instruction_id]
        return True

    def outbox_size(self) -> int:
        """How many platform calls are still to make (for tests and the health page)."""
        return len(self._tables.outbox)


class MemorySessionStore:
    """The broker's state in this process's memory; lost when the process ends."""

    def __init__(self) -> None:
        self._tables = MemoryTables()
        self._lock = threading.Lock()
        self._writer: int | None = None

    @property
    def reads_are_local(self) -> bool:
        """Always: a read waits on no network."""
        return True

    @property
    def shares_platform_locks(self) -> bool:
        """Never: every write runs alone, as on SQLite."""
        return False

    def tables(self) -> MemoryTables:
        """The tables as last committed (for checks that read rows, not the store's answers).

        Committed tables are never changed in place: a write works on a copy and replaces
        them, so what this returns stays as it was even while writes go on.
        """
        return self._tables

    @contextmanager
    def write(self) -> Iterator[MemoryTransaction]:
        """A write transaction that runs alone; commits on success, leaves nothing on failure."""
        me = threading.get_ident()
        if self._writer == me:
            raise RuntimeError("a write transaction is open in this thread already")
        with self._lock:
            self._writer = me
            try:
                working = self._tables.copy()
                yield MemoryTransaction(working, writable=True)
                self._tables = working
            finally:
                self._writer = None

    @contextmanager
    def read(self) -> Iterator[MemoryTransaction]:
        """A read-only transaction over the tables as last committed."""
        yield MemoryTransaction(self._tables, writable=False)

    def stored_session(self, session_id: str) -> StoredSession | None:
        """A session's stored document, phase, expiry and owner."""
        tables = self._tables
        row = tables.sessions.get(session_id)
        if row is None:
            return None
        owner = MemoryTransaction(tables, writable=False).owner(session_id=session_id)
        return _stored(row, owner)

    def stored_offerset(
        self, offerset_id: str
    ) -> tuple[bytes, str | None, list[StoredSession]] | None:
        """An offer set's stored document, its requester and its sessions as stored, in order."""
        tables = self._tables
        row = tables.offersets.get(offerset_id)
        if row is None:
            return None
        sessions = MemoryTransaction(tables, writable=False)._sessions_of(offerset_id)
        return row.document, row.requester, [_stored(session) for session in sessions]


def _implements_the_port(
    store: MemorySessionStore, transaction: MemoryTransaction
) -> tuple[SessionStore, SessionTransaction]:
    """Never called: mypy checks here that the fake implements the port."""
    return store, transaction
