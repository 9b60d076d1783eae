"""The broker's store as `BrokerService` sees it: the `SessionStore` port and its records.

`SessionStore` opens transactions (`write`, `read`) and answers the plain reads that send
stored documents on; `SessionTransaction` is what one transaction offers: platform locks,
holds and bookings, offer sets and sessions, the work queue and the outbox. The SQL adapter
(`broker.store.sql.SqlBrokerStore`) implements both, on SQLite and PostgreSQL; the contract
suite `tests/contract/test_broker_store.py` says what an implementation must do.

Pure declarations: no I/O. Imports the broker's model, lifecycle and scheduling types only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from broker.lifecycle import AnyEvent, Phase, SessionState
from broker.model import AnySession, OfferSetResponse
from broker.scheduling.intervals import Interval
from broker.scheduling.resources import Booking, Resources

__all__ = [
    "BookingSnapshot",
    "Instruction",
    "SessionRecord",
    "SessionStore",
    "SessionTransaction",
    "StoredSession",
    "WorkItem",
]


@dataclass(frozen=True, slots=True)
class BookingSnapshot:
    """The live bookings of some platforms, read without a lock, and what may yet change them.

    `bookings` are those of `live_bookings`. `pending_holds` names the platforms that also
    have holds of offers still OFFERED but expired at the snapshot's instant: not counted
    here, yet an accept that read its clock before they expired may still turn them into
    bookings without taking capacity anew (so without changing `capacity_taken`).
    """

    bookings: list[Booking]
    pending_holds: frozenset[str]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored session: its lifecycle state, its slot and its wire document."""

    id: str
    offerset_id: str | None
    platform: str
    resources: Resources
    state: SessionState
    document: AnySession

    @property
    def phase(self) -> Phase:
        """The stored phase (an OFFERED session past `expires` is not swept yet)."""
        return self.state.phase


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as stored, for reads that send it on: its phase, expiry, owner and document.

    `document` is the JSON wire form exactly as stored (`codec.encode(..., Media.JSON)`).
    """

    id: str
    phase: Phase
    expires: datetime | None
    document: bytes
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Instruction:
    """One platform call of the outbox: what to ask the platform for one session.

    `effective_at` is the instant the transition that decided it took effect (the platform is
    called with it); `noted_at` the clock at that transition (the time of its notes).
    """

    id: int
    session_id: str
    action: str
    effective_at: datetime
    noted_at: datetime


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One due event of the work queue."""

    id: int
    session_id: str
    due_at: datetime
    event: AnyEvent


class SessionTransaction(Protocol):
    """The store's operations inside one transaction (see `SessionStore.write`)."""

    @property
    def instructions(self) -> int:
        """How many platform calls this transaction queued (none: nothing to carry out)."""
        ...

    def batched(self) -> AbstractContextManager[None]:
        """Hold back releases, dropped work and session saves, and send each kind at once."""
        ...

    # -------------------------------------------------------------- platforms
    def lock_platforms(self, names: Iterable[str], *, shared: bool = False) -> None:
        """Serialise on these platforms until the transaction ends, in name order."""
        ...

    def ensure_platforms(self, names: Iterable[str]) -> None:
        """Make sure every configured platform has its row (the row to lock)."""
        ...

    # -------------------------------------------------------------- bookings
    def live_bookings(
        self, now: datetime, platforms: Sequence[str], within: Interval | None = None
    ) -> list[Booking]:
        """Holds of unexpired offers and bookings of accepted sessions that end after `now`."""
        ...

    def bookings_snapshot(
        self, now: datetime, platforms: Sequence[str], within: Interval | None = None
    ) -> BookingSnapshot:
        """`live_bookings`, and the platforms with holds expired at `now` but still OFFERED."""
        ...

    def capacity_taken(self, platforms: Sequence[str]) -> dict[str, int]:
        """Per platform, a count that grows with each transaction taking capacity there.

        A transaction takes capacity when it adds or moves a hold or booking of the
        platform; a platform nothing was ever booked on may be missing. Unchanged between two
        reads means no capacity was taken there in between: bookings read after the first
        read are still all the platform holds, or more than it holds (releases, expiries and
        accepts on time take nothing and leave it as it is), provided that no hold expired
        but still OFFERED was left out of them (`bookings_snapshot`): an accept on time turns
        such a hold into a booking without changing the count.
        """
        ...

    def add_booking(self, session_id: str, booking: Booking) -> None:
        """Store the hold or booking of one session (its platform's `capacity_taken` grows)."""
        ...

    def convert_hold(self, session_id: str) -> None:
        """The session's hold becomes a booking (it no longer expires)."""
        ...

    def move_slot(self, session_id: str, start: datetime, end: datetime) -> None:
        """Move a session's slot, and its hold or booking with it (a late accept).

        Its platform's `capacity_taken` grows.
        """
        ...

    def release(self, session_id: str) -> None:
        """Free the session's hold or booking."""
        ...

    def bookings_of(self, platform: str) -> list[tuple[str, Booking]]:
        """Every stored hold and booking of a platform, with its session (for checks)."""
        ...

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
        ...

    def held_offersets(self, requester: str, now: datetime) -> list[datetime]:
        """When each offer set of `requester` still holding capacity at `now` stops holding it."""
        ...

    def owner(self, *, offerset_id: str | None = None, session_id: str | None = None) -> str | None:
        """Who asked for an offer set, or for a session."""
        ...

    def offerset(self, offerset_id: str) -> tuple[OfferSetResponse, list[SessionRecord]] | None:
        """An offer set's document and its sessions in their order, or None."""
        ...

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
        ...

    def lock_offerset_of(self, session_id: str) -> None:
        """Serialise on the session's offer set until the transaction ends."""
        ...

    def session(self, session_id: str, *, lock: bool = False) -> SessionRecord | None:
        """One session, or None; `lock` takes its row lock."""
        ...

    def siblings(self, record: SessionRecord) -> list[SessionRecord]:
        """The other sessions of the same offer set."""
        ...

    def save_session(self, record: SessionRecord) -> None:
        """Store a session's new state and document."""
        ...

    # -------------------------------------------------------------- the work queue
    def enqueue(self, session_id: str, due_at: datetime, event: AnyEvent) -> None:
        """Deliver `event` to the session at `due_at`."""
        ...

    def drop_work(self, session_id: str) -> None:
        """Forget every event still queued for a session (it has ended)."""
        ...

    def claim(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """Claim up to `limit` due items not claimed by a live worker, oldest first."""
        ...

    def take_batch(self, item_ids: Sequence[int], worker: str, now: datetime) -> list[WorkItem]:
        """Remove and return, of these claimed items, the first due of each session."""
        ...

    # -------------------------------------------------------------- the outbox
    def add_instruction(
        self, session_id: str, action: str, effective_at: datetime, noted_at: datetime
    ) -> None:
        """Queue a platform call, committed with the transition that decided it."""
        ...

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
        ...

    def finish_instruction(self, instruction_id: int, worker: str) -> bool:
        """Remove a call carried out; False when it is no longer ours (another took it over)."""
        ...


class SessionStore(Protocol):
    """Where the broker keeps its state; every change is one `write` transaction."""

    @property
    def reads_are_local(self) -> bool:
        """True when a read waits on no network: cheaper to run than to hand off."""
        ...

    @property
    def shares_platform_locks(self) -> bool:
        """True when `lock_platforms(shared=True)` lets accepts run side by side.

        Then an accept that must move its slot needs the exclusive lock (PostgreSQL).
        """
        ...

    def write(self) -> AbstractContextManager[SessionTransaction]:
        """A serialised write transaction; commits on success, leaves nothing on failure."""
        ...

    def read(self) -> AbstractContextManager[SessionTransaction]:
        """A read-only transaction."""
        ...

    def stored_session(self, session_id: str) -> StoredSession | None:
        """A session's stored document, phase, expiry and owner."""
        ...

    def stored_offerset(
        self, offerset_id: str
    ) -> tuple[bytes, str | None, list[StoredSession]] | None:
        """An offer set's stored document, its requester and its sessions as stored, in order."""
        ...
