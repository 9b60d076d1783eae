"""The broker's SQL store: offer sets, sessions, holds and bookings, and the work queue.

Owns the broker's tables and their queries; portable between SQLite and PostgreSQL. Instants
are stored as integer microseconds since the epoch (UTC), so that comparisons are exact and
alike on both. Holds and accepts on a platform are serialised: every write transaction runs
under `core.db.write_transaction` (BEGIN IMMEDIATE on SQLite) and, on PostgreSQL, the service
locks the rows of `broker_platform` it needs (`lock_platforms`: `SELECT ... FOR UPDATE`, or
`FOR SHARE` for accepts, in name order, so that two transactions never wait on each other in a
cycle) and the offer set of a session it accepts (`lock_offerset_of`). Platform rows are
created with `INSERT ... ON CONFLICT DO NOTHING`, so that several processes starting at once on
a fresh database do not trip over each other's inserts.

Inserts are queued and sent one statement per table (`StoreTransaction.flush`, before any
other statement and before the commit): storing an offer set of four offers costs four
statements, not thirteen, while its transaction holds its platforms' locks.

Session documents are stored in their JSON wire form (`broker.model.codec`). Implements the
port `broker.store.port.SessionStore` (whose records it returns). Imports `core`, SQLAlchemy
and the `broker` model and codec; no web framework.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from broker.lifecycle import AnyEvent, Phase, PlatformCheckDue, SessionState
from broker.model import AnySession, OfferSetResponse, codec
from broker.scheduling.intervals import Interval, from_micros, to_micros
from broker.scheduling.resources import Booking, BookingKind, GpuShare, Resources
from broker.store.port import (
    BookingSnapshot,
    Instruction,
    SessionRecord,
    StoredSession,
    WorkItem,
)
from core.db import Base, migrate, session_factory, write_transaction

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "Instruction",
    "SessionRecord",
    "SqlBrokerStore",
    "StoreTransaction",
    "StoredSession",
    "WorkItem",
    "from_micros",
    "to_micros",
]

MIGRATIONS: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "alembic_version_broker"

platform_table = Table(
    "broker_platform",
    Base.metadata,
    Column("name", String(200), primary_key=True),
    Column("taken", BigInteger, nullable=False, default=0, server_default="0"),
    Column("longest", BigInteger, nullable=False, default=0, server_default="0"),
)
"""One row per platform: the row its transactions lock. `taken` grows by one in each
transaction that adds or moves a hold or booking of the platform; `longest` is the longest
hold or booking ever stored for it (microseconds), which bounds `live_bookings`' index walk."""
offerset_table = Table(
    "broker_offerset",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("created", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    Column("requester", String(200), nullable=True, index=True),
)
session_table = Table(
    "broker_session",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("offerset_id", String(36), nullable=True, index=True),
    Column("position", Integer, nullable=False, default=0),
    Column("platform", String(200), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("expires", BigInteger, nullable=True),
    Column("slot_start", BigInteger, nullable=False),
    Column("slot_end", BigInteger, nullable=False),
    Column("resources", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("document", Text, nullable=False),
    Column("requester", String(200), nullable=True),
)
booking_table = Table(
    "broker_booking",
    Base.metadata,
    Column("session_id", String(36), primary_key=True),
    Column("platform", String(200), nullable=False, index=True),
    Column("slot_start", BigInteger, nullable=False),
    Column("slot_end", BigInteger, nullable=False),
    Column("cores", Integer, nullable=False),
    Column("memory", Float, nullable=False),
    Column("storage", Float, nullable=False),
    Column("gpus", Text, nullable=False),
    Column("kind", String(8), nullable=False),
)
work_table = Table(
    "broker_work",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(36), nullable=False, index=True),
    Column("due_at", BigInteger, nullable=False, index=True),
    Column("event", Text, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
)
outbox_table = Table(
    "broker_outbox",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(36), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("effective_at", BigInteger, nullable=False),
    Column("noted_at", BigInteger, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
)


_event_decoder: Final = msgspec.json.Decoder(AnyEvent)
_POLL_EVENT: Final = msgspec.json.encode(PlatformCheckDue()).decode()
"""A queued poll as stored (polls carry no fields, so they are all alike)."""
_state_decoder: Final = msgspec.json.Decoder(SessionState)
_resources_decoder: Final = msgspec.json.Decoder(Resources)
_gpus_decoder: Final = msgspec.json.Decoder(tuple[GpuShare, ...])
_NO_GPUS: Final = msgspec.json.encode(()).decode()
_BOOKING_KINDS: Final = {kind.value: kind for kind in BookingKind}


def _document(text: str) -> AnySession:
    # Decoded without the body-size cap: the cap bounds what clients send, while a stored
    # document (an offer echoes the request's components) may be larger and must read back.
    session: AnySession = codec.decode_stored(text, AnySession)
    return session


def _booking(row: Any, offerset: str | None = None) -> Booking:
    """The hold or booking of a `broker_booking` row, GPU shares included.

    A hold belongs to its session's offer set (`offerset`): the holds of one set are
    alternatives and count together by their maximum (`broker.scheduling.resources.counted`).
    """
    # An offer request reads hundreds of these: a dict instead of the enum's lookup, and no
    # decoding for the commonest GPU list, the empty one.
    kind = _BOOKING_KINDS[row.kind]
    return Booking(
        platform=row.platform,
        interval=Interval(from_micros(row.slot_start), from_micros(row.slot_end)),
        resources=Resources(
            cores=row.cores,
            memory=row.memory,
            storage=row.storage,
            gpus=() if row.gpus == _NO_GPUS else _gpus_decoder.decode(row.gpus),
        ),
        kind=kind,
        group=offerset if kind is BookingKind.HOLD else None,
    )


_LIVE_BRANCH: Final = (
    "SELECT b.platform, b.slot_start, b.slot_end, b.cores, b.memory, b.storage, b.gpus,"
    " b.kind, s.offerset_id"
    " FROM broker_booking b JOIN broker_session s ON s.id = b.session_id"
    " WHERE b.platform = {m} AND b.slot_end > {m}{bound}"
    " AND (b.kind = 'booking' OR (s.phase = 'OFFERED' AND s.expires > {m}))"
)
_SNAPSHOT_BRANCH: Final = (
    "SELECT b.platform, b.slot_start, b.slot_end, b.cores, b.memory, b.storage, b.gpus,"
    " b.kind, s.offerset_id, s.expires"
    " FROM broker_booking b JOIN broker_session s ON s.id = b.session_id"
    " WHERE b.platform = {m} AND b.slot_end > {m}{bound}"
    " AND (b.kind = 'booking' OR s.phase = 'OFFERED')"
)
"""`_LIVE_BRANCH` with every hold of an OFFERED session and its expiry, for `bookings_snapshot`."""
_BOUND: Final = (
    " AND b.slot_end < {m} + (SELECT longest FROM broker_platform WHERE name = {m})"
    " AND b.slot_start < {m}"
)
_live_statements: dict[tuple[str, int, bool, bool], str] = {}
_COUNT_TAKEN: Final = (
    "INSERT INTO broker_platform (name, taken, longest) VALUES (?, 1, ?)"
    " ON CONFLICT (name) DO UPDATE SET taken = broker_platform.taken + 1,"
    " longest = max(broker_platform.longest, excluded.longest)"
)
"""Per platform: `taken` grows by one, `longest` to the new booking's length if longer.

An upsert, so that a platform has its row once it has bookings (a bounded `live_bookings`
reads its `longest`), whether or not `ensure_platforms` made it. In a transaction holding
the platform's lock exclusively (offers, late accepts), the row is already this one's."""
_COUNT_TAKEN_PG: Final = _COUNT_TAKEN.replace("?", "%s").replace("max(", "GREATEST(")


def _live_sql(mark: str, platforms: int, *, bounded: bool, snapshot: bool = False) -> str:
    """The statement of `live_bookings` (or `bookings_snapshot`): a branch per platform, once."""
    key = (mark, platforms, bounded, snapshot)
    sql = _live_statements.get(key)
    if sql is None:
        bound = _BOUND.format(m=mark) if bounded else ""
        branch = (_SNAPSHOT_BRANCH if snapshot else _LIVE_BRANCH).format(m=mark, bound=bound)
        sql = _live_statements[key] = " UNION ALL ".join([branch] * platforms)
    return sql


_decoded: dict[tuple[Any, ...], Booking] = {}
"""Bookings read back, by their row (`_LIVE_BRANCH`'s columns): an offer request reads hundreds,
mostly the same ones as the request before it. Bookings are frozen, so they are shared."""
_DECODED_MOST: Final = 65_536


def _bookings(rows: Iterable[tuple[Any, ...]]) -> list[Booking]:
    """`live_bookings`' rows as bookings (each hold grouped by its offer set)."""
    decoded = _decoded
    if len(decoded) > _DECODED_MOST:
        decoded.clear()
    found = []
    for row in rows:
        booking = decoded.get(row)
        if booking is None:
            booking = decoded[row] = _decode_booking(*row)
        found.append(booking)
    return found


def _decode_booking(  # noqa: PLR0917 - one argument per column of the row
    platform: str,
    start: int,
    end: int,
    cores: int,
    memory: float,
    storage: float,
    gpus: str,
    kind_text: str,
    offerset: str | None,
) -> Booking:
    kind = _BOOKING_KINDS[kind_text]
    return Booking(
        platform=platform,
        interval=Interval(from_micros(start), from_micros(end)),
        resources=Resources(
            cores=cores,
            memory=memory,
            storage=storage,
            gpus=() if gpus == _NO_GPUS else _gpus_decoder.decode(gpus),
        ),
        kind=kind,
        group=offerset if kind is BookingKind.HOLD else None,
    )


def _record(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        offerset_id=row.offerset_id,
        platform=row.platform,
        resources=_resources_decoder.decode(row.resources),
        state=_state_decoder.decode(row.state),
        document=_document(row.document),
    )


_SAVE_SESSION: Final = (
    update(session_table)
    .where(session_table.c.id == bindparam("session_id"))
    .values(
        phase=bindparam("new_phase"),
        state=bindparam("new_state"),
        document=bindparam("new_document"),
    )
)
"""`save_session` for several sessions at once (executemany)."""


@dataclass(slots=True)
class _Batch:
    """What `StoreTransaction.batched` holds back: sessions released, work dropped, saves."""

    released: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    saved: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.released or self.dropped or self.saved)


class StoreTransaction:
    """The store's operations inside one transaction (see `SqlBrokerStore.write`)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._inserts: dict[Table, list[dict[str, Any]]] = {}
        self._batch: _Batch | None = None
        self._taken: dict[str, int] = {}
        """Platforms capacity was taken on, not yet counted, with their longest new booking."""
        self._locked: set[str] = set()
        self._locked_taken: dict[str, int] = {}
        """`taken` of the platforms `lock_platforms` locked (PostgreSQL), as it read them."""
        self.instructions = 0
        """How many platform calls this transaction queued (none: nothing to carry out)."""

    def _run(self, statement: Any) -> Any:
        self.flush()
        return self._session.execute(statement)

    def _insert(self, table: Table, row: dict[str, Any]) -> None:
        """Queue a row to insert; `flush` sends the queued rows of each table at once.

        An offer set stores several sessions, holds and queued events: one statement per
        table instead of one per row keeps the transaction, and the platform locks it holds,
        short. Rows are flushed before any other statement, so the transaction reads its own
        writes as usual.
        """
        self._inserts.setdefault(table, []).append(row)

    def flush(self) -> None:
        """Send every queued write (`SqlBrokerStore.write` flushes before it commits).

        Inserts first, then what `batched` holds back: deletes, then session updates.
        """
        while self._inserts:
            table, rows = self._inserts.popitem()
            self._session.execute(insert(table), rows)
        if self._taken:
            taken = [(name, longest) for name, longest in sorted(self._taken.items())]
            self._taken = {}
            self._locked, self._locked_taken = set(), {}
            cursor = self._session.connection().connection.cursor()
            try:
                cursor.executemany(_COUNT_TAKEN_PG if self._postgres else _COUNT_TAKEN, taken)
            finally:
                cursor.close()
        batch = self._batch
        if batch is None or batch.empty:
            return
        self._batch = _Batch()
        if batch.released:
            self._session.execute(
                delete(booking_table).where(booking_table.c.session_id.in_(batch.released))
            )
        if batch.dropped:
            self._session.execute(
                delete(work_table).where(work_table.c.session_id.in_(batch.dropped))
            )
        if batch.saved:
            self._session.execute(_SAVE_SESSION, list(batch.saved.values()))

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Hold back releases, dropped work and session saves, and send each kind at once.

        For steps of several sessions in one transaction (an accept rejects its siblings):
        three statements for them all instead of three per session. What is held back is
        sent before the next statement of any kind, so the transaction still reads its own
        writes; the steps batched must not depend on the order of a delete and an insert of
        the same session (inserts go first).
        """
        self._batch = _Batch()
        try:
            yield
            self.flush()
        finally:
            self._batch = None

    # -------------------------------------------------------------- platforms
    def lock_platforms(self, names: Iterable[str], *, shared: bool = False) -> None:
        """Serialise on these platforms until the transaction ends (PostgreSQL row locks).

        Args:
            names: the platforms; locked in name order, as every lock of them is taken.
            shared: take a shared lock (`FOR SHARE`): holders of shared locks do not wait for
                each other, only for an exclusive holder (and it for them). Accepts share a
                platform, which only offers (which take capacity) hold exclusively.

        On SQLite the whole write transaction already holds the database's write lock.
        """
        ordered = sorted(set(names))
        if ordered and self._postgres:
            query = (
                select(platform_table.c.name, platform_table.c.taken)
                .where(platform_table.c.name.in_(ordered))
                .order_by(platform_table.c.name)
                .with_for_update(read=shared)
            )
            # No other transaction can count capacity taken on a row locked here (that is an
            # update): `capacity_taken` answers from these until this one counts its own.
            self._locked_taken = {name: int(taken) for name, taken in self._run(query).all()}
            self._locked = set(ordered)

    def ensure_platforms(self, names: Iterable[str]) -> None:
        """Make sure every configured platform has its row (the row to lock).

        Safe when several processes start together on a fresh database: a row another
        transaction inserted first is skipped (`ON CONFLICT DO NOTHING`), not a unique
        violation. On PostgreSQL the insert waits for that transaction to end, then skips.
        """
        rows = [{"name": name} for name in sorted(set(names))]
        if not rows:
            return
        dialect_insert = postgresql.insert if self._postgres else sqlite.insert
        statement = dialect_insert(platform_table).on_conflict_do_nothing(
            index_elements=[platform_table.c.name]
        )
        self.flush()
        self._session.execute(statement, rows)

    # -------------------------------------------------------------- bookings
    def live_bookings(
        self, now: datetime, platforms: Sequence[str], within: Interval | None = None
    ) -> list[Booking]:
        """Holds of unexpired offers and bookings of accepted sessions that end after `now`.

        Each hold carries its offer set as its `group` (the holds of one set are alternatives).

        Args:
            now: the instant that decides which holds are live and which slots have ended.
            platforms: the platforms whose bookings are wanted.
            within: when given, only the bookings that overlap it (what a search needs).

        One prebuilt statement, one branch per platform, read through the driver as plain
        tuples. With `within`, each branch walks the index on (platform, slot_end) only from
        `within.start` to `within.end` plus the platform's longest booking (`longest`), past
        which no booking can start inside `within`: the walk touches what it returns.
        """
        names = list(dict.fromkeys(platforms))
        if not names:
            return []
        self.flush()
        at = to_micros(now)
        parameters: list[Any] = []
        if within is None:
            for name in names:
                parameters += (name, at, at)
        else:
            start, end = to_micros(within.start), to_micros(within.end)
            low = max(at, start)
            for name in names:
                parameters += (name, low, end, name, end, at)
        sql = _live_sql(self._mark, len(names), bounded=within is not None)
        return _bookings(self._fetch(sql, parameters))

    def bookings_snapshot(
        self, now: datetime, platforms: Sequence[str], within: Interval | None = None
    ) -> BookingSnapshot:
        """`live_bookings`, and the platforms with holds expired at `now` but still OFFERED.

        The same walk as `live_bookings` in one statement; the holds' expiry is judged here.
        """
        names = list(dict.fromkeys(platforms))
        if not names:
            return BookingSnapshot([], frozenset())
        self.flush()
        at = to_micros(now)
        parameters: list[Any] = []
        if within is None:
            for name in names:
                parameters += (name, at)
        else:
            start, end = to_micros(within.start), to_micros(within.end)
            low = max(at, start)
            for name in names:
                parameters += (name, low, end, name, end)
        sql = _live_sql(self._mark, len(names), bounded=within is not None, snapshot=True)
        live: list[tuple[Any, ...]] = []
        pending: set[str] = set()
        for *row, expires in self._fetch(sql, parameters):
            if row[7] == BookingKind.BOOKING.value or (expires is not None and expires > at):
                live.append(tuple(row))
            else:
                pending.add(row[0])
        return BookingSnapshot(_bookings(live), frozenset(pending))

    def capacity_taken(self, platforms: Sequence[str]) -> dict[str, int]:
        """How many transactions have taken capacity on each platform.

        Taking capacity is adding or moving a hold or booking; a platform no transaction
        ever took capacity on may be missing. Unchanged between two reads: no capacity was
        taken there in between, so bookings read after the first read are still all there is
        (releases only free capacity).
        """
        names = sorted(set(platforms))
        if not names:
            return {}
        if not self._taken and self._locked.issuperset(names):
            return {name: self._locked_taken[name] for name in names if name in self._locked_taken}
        self.flush()
        marks = ", ".join([self._mark] * len(names))
        sql = f"SELECT name, taken FROM broker_platform WHERE name IN ({marks})"  # noqa: S608
        return {name: int(taken) for name, taken in self._fetch(sql, names)}

    @property
    def _mark(self) -> str:
        return "%s" if self._postgres else "?"

    def _fetch(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Rows of one statement through the driver, in this transaction: plain tuples."""
        cursor = self._session.connection().connection.cursor()
        try:
            cursor.execute(sql, tuple(parameters))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _took(self, platform: str, length: int) -> None:
        """Note capacity taken on `platform` by a booking of `length` microseconds."""
        self._taken[platform] = max(self._taken.get(platform, 0), length)

    def add_booking(self, session_id: str, booking: Booking) -> None:
        """Store the hold or booking of one session (its platform's `taken` grows)."""
        resources = booking.resources
        self._took(
            booking.platform,
            to_micros(booking.interval.end) - to_micros(booking.interval.start),
        )
        self._insert(
            booking_table,
            {
                "session_id": session_id,
                "platform": booking.platform,
                "slot_start": to_micros(booking.interval.start),
                "slot_end": to_micros(booking.interval.end),
                "cores": resources.cores,
                "memory": resources.memory,
                "storage": resources.storage,
                "gpus": msgspec.json.encode(resources.gpus).decode(),
                "kind": booking.kind.value,
            },
        )

    def convert_hold(self, session_id: str) -> None:
        """The session's hold becomes a booking (it no longer expires)."""
        self._run(
            update(booking_table)
            .where(booking_table.c.session_id == session_id)
            .values(kind=BookingKind.BOOKING.value)
        )

    def move_slot(self, session_id: str, start: datetime, end: datetime) -> None:
        """Move a session's slot, and its hold or booking with it (a late accept).

        Takes capacity at new times: the platform's `taken` grows.
        """
        slot = {"slot_start": to_micros(start), "slot_end": to_micros(end)}
        moved = self._run(
            update(booking_table)
            .where(booking_table.c.session_id == session_id)
            .values(slot)
            .returning(booking_table.c.platform)
        ).scalars()
        for platform in moved:
            self._took(platform, slot["slot_end"] - slot["slot_start"])
        self._run(update(session_table).where(session_table.c.id == session_id).values(slot))

    def release(self, session_id: str) -> None:
        """Free the session's hold or booking."""
        if self._batch is not None:
            self._batch.released.append(session_id)
            return
        self._run(delete(booking_table).where(booking_table.c.session_id == session_id))

    def bookings_of(self, platform: str) -> list[tuple[str, Booking]]:
        """Every stored hold and booking of a platform, with its session (for checks)."""
        rows = self._run(
            select(booking_table, session_table.c.offerset_id)
            .join(session_table, session_table.c.id == booking_table.c.session_id)
            .where(booking_table.c.platform == platform)
            .order_by(booking_table.c.slot_start, booking_table.c.session_id)
        )
        return [(row.session_id, _booking(row, row.offerset_id)) for row in rows]

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
        self._insert(
            offerset_table,
            {
                "id": offerset_id,
                "created": to_micros(created),
                "document": codec.encode(document, codec.Media.JSON).decode(),
                "requester": requester,
            },
        )

    def held_offersets(self, requester: str, now: datetime) -> list[datetime]:
        """When each offer set of `requester` still holding capacity at `now` stops holding it.

        A set holds while one of its offers is OFFERED and unexpired; the answer is, per such
        set, the latest expiry of its open offers, soonest first.
        """
        at = to_micros(now)
        query = (
            select(func.max(session_table.c.expires))
            .select_from(offerset_table)
            .join(session_table, session_table.c.offerset_id == offerset_table.c.id)
            .where(offerset_table.c.requester == requester)
            .where(session_table.c.phase == Phase.OFFERED.value, session_table.c.expires > at)
            .group_by(offerset_table.c.id)
        )
        return sorted(from_micros(expires) for expires in self._run(query).scalars())

    def owner(self, *, offerset_id: str | None = None, session_id: str | None = None) -> str | None:
        """Who asked for an offer set, or for a session.

        A session's owner is its offer set's requester, or its own when it was run directly.
        None when nothing was recorded (before owners were kept, or an in-process caller), or
        when there is no such set or session.
        """
        if session_id is not None:
            query = (
                select(func.coalesce(offerset_table.c.requester, session_table.c.requester))
                .select_from(session_table)
                .outerjoin(offerset_table, session_table.c.offerset_id == offerset_table.c.id)
                .where(session_table.c.id == session_id)
            )
        else:
            query = select(offerset_table.c.requester).where(offerset_table.c.id == offerset_id)
        found: str | None = self._run(query).scalar()
        return found

    def offerset(self, offerset_id: str) -> tuple[OfferSetResponse, list[SessionRecord]] | None:
        """An offer set's document and its sessions in their order, or None."""
        row = self._run(select(offerset_table).where(offerset_table.c.id == offerset_id)).first()
        if row is None:
            return None
        # Without the body-size cap, as `_document` says.
        document: OfferSetResponse = codec.decode_stored(row.document, OfferSetResponse)
        sessions = self._run(
            select(session_table)
            .where(session_table.c.offerset_id == offerset_id)
            .order_by(session_table.c.position)
        )
        return document, [_record(session) for session in sessions]

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
        self._insert(
            session_table,
            {
                "id": record.id,
                "offerset_id": record.offerset_id,
                "position": position,
                "platform": record.platform,
                "phase": record.state.phase.value,
                "expires": to_micros(record.state.expires) if record.state.expires else None,
                "slot_start": to_micros(start),
                "slot_end": to_micros(end),
                "resources": msgspec.json.encode(record.resources).decode(),
                "state": msgspec.json.encode(record.state).decode(),
                "document": codec.encode(record.document, codec.Media.JSON).decode(),
                "requester": requester,
            },
        )

    def lock_offerset_of(self, session_id: str) -> None:
        """Serialise on the session's offer set until the transaction ends (PostgreSQL).

        Accepting one offer rejects its siblings: two accepts (or an accept and a reject) in
        one set take this lock before any session's, so that they never wait for each other's
        session rows in a cycle. Nothing to lock for a session outside an offer set.
        """
        if self._postgres:
            query = (
                select(offerset_table.c.id)
                .join(session_table, session_table.c.offerset_id == offerset_table.c.id)
                .where(session_table.c.id == session_id)
                .with_for_update(of=offerset_table)
            )
            self._run(query).all()

    def session(self, session_id: str, *, lock: bool = False) -> SessionRecord | None:
        """One session, or None; `lock` takes its row lock (PostgreSQL)."""
        query = select(session_table).where(session_table.c.id == session_id)
        if lock and self._postgres:
            query = query.with_for_update()
        row = self._run(query).first()
        return None if row is None else _record(row)

    def siblings(self, record: SessionRecord) -> list[SessionRecord]:
        """The other sessions of the same offer set."""
        if record.offerset_id is None:
            return []
        rows = self._run(
            select(session_table)
            .where(session_table.c.offerset_id == record.offerset_id)
            .where(session_table.c.id != record.id)
            .order_by(session_table.c.position)
        )
        return [_record(row) for row in rows]

    def save_session(self, record: SessionRecord) -> None:
        """Store a session's new state and document."""
        if self._batch is not None:
            self._batch.saved[record.id] = {
                "session_id": record.id,
                "new_phase": record.state.phase.value,
                "new_state": msgspec.json.encode(record.state).decode(),
                "new_document": codec.encode(record.document, codec.Media.JSON).decode(),
            }
            return
        self._run(
            update(session_table)
            .where(session_table.c.id == record.id)
            .values(
                phase=record.state.phase.value,
                state=msgspec.json.encode(record.state).decode(),
                document=codec.encode(record.document, codec.Media.JSON).decode(),
            )
        )

    def expired_offers(self, now: datetime) -> list[str]:
        """Sessions still OFFERED whose `expires` has come."""
        query = select(session_table.c.id).where(
            session_table.c.phase == Phase.OFFERED.value, session_table.c.expires <= to_micros(now)
        )
        return list(self._run(query).scalars())

    # -------------------------------------------------------------- the work queue
    def enqueue(self, session_id: str, due_at: datetime, event: AnyEvent) -> None:
        """Deliver `event` to the session at `due_at`."""
        self._insert(
            work_table,
            {
                "session_id": session_id,
                "due_at": to_micros(due_at),
                "event": msgspec.json.encode(event).decode(),
            },
        )

    def drop_work(self, session_id: str) -> None:
        """Forget every event still queued for a session (it has ended)."""
        if self._batch is not None:
            self._batch.dropped.append(session_id)
            return
        self._run(delete(work_table).where(work_table.c.session_id == session_id))

    def claim(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """Claim up to `limit` due items not claimed by a live worker, oldest first.

        An item whose session has an item claimed by another live worker waits for it: two
        processes never drive one session at once, so a session's events are delivered in
        the order they fell due.
        """
        at = to_micros(now)
        other = work_table.alias("other")
        query = (
            select(work_table.c.id)
            .where(work_table.c.due_at <= at)
            .where(or_(work_table.c.claimed_until.is_(None), work_table.c.claimed_until <= at))
            .where(
                ~select(other.c.id)
                .where(
                    other.c.session_id == work_table.c.session_id,
                    other.c.id != work_table.c.id,
                    other.c.claimed_by != worker,
                    other.c.claimed_until > at,
                )
                .exists()
            )
            .order_by(work_table.c.due_at, work_table.c.id)
            .limit(limit)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=work_table)
        ids = list(self._run(query).scalars())
        if ids:
            self._run(
                update(work_table)
                .where(work_table.c.id.in_(ids))
                .values(claimed_by=worker, claimed_until=to_micros(now + lease))
            )
        return ids

    def take_batch(self, item_ids: Sequence[int], worker: str, now: datetime) -> list[WorkItem]:
        """Remove and return, of these claimed items, the first due of each session.

        The others are unclaimed for the next batch: a session's next event is chosen only
        once the platform calls its last one decided have been made (they may queue an
        earlier event). Polls collapse as in `take`.
        """
        rows = self._run(
            select(work_table)
            .where(work_table.c.id.in_(list(item_ids)), work_table.c.claimed_by == worker)
            .order_by(work_table.c.due_at, work_table.c.id)
        )
        first: dict[str, Any] = {}
        for row in rows:
            first.setdefault(row.session_id, row)
        if not first:
            return []
        taken = [r.id for r in first.values()]
        self._run(delete(work_table).where(work_table.c.id.in_(taken)))
        later = sorted(set(item_ids) - set(taken))
        if later:
            self._run(
                update(work_table)
                .where(work_table.c.id.in_(later), work_table.c.claimed_by == worker)
                .values(claimed_by=None, claimed_until=None)
            )
        polled = [r.session_id for r in first.values() if r.event == _POLL_EVENT]
        if polled:
            self._run(
                delete(work_table).where(
                    work_table.c.session_id.in_(polled),
                    work_table.c.event == _POLL_EVENT,
                    work_table.c.due_at <= to_micros(now),
                )
            )
        return [
            WorkItem(r.id, r.session_id, from_micros(r.due_at), _event_decoder.decode(r.event))
            for r in first.values()
        ]

    def take(self, item_id: int, worker: str, now: datetime | None = None) -> WorkItem | None:
        """Remove a claimed item and return it; None when it is not (or no longer) ours.

        A poll (`PlatformCheckDue`) taken at `now` takes every other poll of its session that
        is due by then with it: after a pause (a broker that was down, a clock that jumped)
        the platform is asked once how the work goes now, not once per poll it missed.
        """
        row = self._run(
            select(work_table).where(work_table.c.id == item_id, work_table.c.claimed_by == worker)
        ).first()
        if row is None:
            return None
        self._run(delete(work_table).where(work_table.c.id == item_id))
        if now is not None and row.event == _POLL_EVENT:
            self._run(
                delete(work_table).where(
                    work_table.c.session_id == row.session_id,
                    work_table.c.event == _POLL_EVENT,
                    work_table.c.due_at <= to_micros(now),
                )
            )
        return WorkItem(
            row.id, row.session_id, from_micros(row.due_at), _event_decoder.decode(row.event)
        )

    # -------------------------------------------------------------- the outbox
    def add_instruction(
        self, session_id: str, action: str, effective_at: datetime, noted_at: datetime
    ) -> None:
        """Queue a platform call, committed with the transition that decided it."""
        self.instructions += 1
        self._insert(
            outbox_table,
            {
                "session_id": session_id,
                "action": action,
                "effective_at": to_micros(effective_at),
                "noted_at": to_micros(noted_at),
            },
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
        """Claim up to `limit` calls not claimed by a live worker, each its session's first.

        A session's calls are made in the order they were decided: a call is claimed only when
        no earlier call of the same session is still in the outbox (claimed or not). A claim
        whose lease ran out (its worker died before it reported back) is claimed again: the
        call is repeated, which the platform port allows (its calls are idempotent per
        session). `session_ids` limits the claim to those sessions.
        """
        at = to_micros(now)
        earlier = outbox_table.alias("earlier")
        query = (
            select(outbox_table)
            .where(or_(outbox_table.c.claimed_until.is_(None), outbox_table.c.claimed_until <= at))
            .where(
                ~select(earlier.c.id)
                .where(
                    earlier.c.session_id == outbox_table.c.session_id,
                    earlier.c.id < outbox_table.c.id,
                )
                .exists()
            )
            .order_by(outbox_table.c.id)
            .limit(limit)
        )
        if session_ids is not None:
            query = query.where(outbox_table.c.session_id.in_(list(session_ids)))
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=outbox_table)
        rows = list(self._run(query))
        if rows:
            self._run(
                update(outbox_table)
                .where(outbox_table.c.id.in_([row.id for row in rows]))
                .values(claimed_by=worker, claimed_until=to_micros(now + lease))
            )
        return [
            Instruction(
                row.id,
                row.session_id,
                row.action,
                from_micros(row.effective_at),
                from_micros(row.noted_at),
            )
            for row in rows
        ]

    def finish_instruction(self, instruction_id: int, worker: str) -> bool:
        """Remove a call carried out; False when it is no longer ours (another took it over)."""
        done = self._run(
            delete(outbox_table).where(
                outbox_table.c.id == instruction_id, outbox_table.c.claimed_by == worker
            )
        )
        return bool(done.rowcount)

    def outbox_size(self) -> int:
        """How many platform calls are still to make (for tests and the health page)."""
        return int(self._run(select(func.count()).select_from(outbox_table)).scalar_one())

    def pending(self, session_id: str) -> list[WorkItem]:
        """The events still queued for a session, in the order they are due."""
        rows = self._run(
            select(work_table)
            .where(work_table.c.session_id == session_id)
            .order_by(work_table.c.due_at, work_table.c.id)
        )
        return [
            WorkItem(
                row.id, row.session_id, from_micros(row.due_at), _event_decoder.decode(row.event)
            )
            for row in rows
        ]


_SESSION_READ: Final = (
    "SELECT s.id, s.phase, s.expires, s.document, COALESCE(o.requester, s.requester)"
    " FROM broker_session s LEFT JOIN broker_offerset o ON o.id = s.offerset_id"
    " WHERE s.id = {mark}"
)
_OFFERSET_READ: Final = "SELECT document, requester FROM broker_offerset WHERE id = {mark}"
_OFFERS_READ: Final = (
    "SELECT id, phase, expires, document FROM broker_session"
    " WHERE offerset_id = {mark} ORDER BY position"
)


def _text_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _stored(row: Sequence[Any], owner: str | None = None) -> StoredSession:
    return StoredSession(
        id=row[0],
        phase=Phase(row[1]),
        expires=None if row[2] is None else from_micros(row[2]),
        document=_text_bytes(row[3]),
        owner=owner,
    )


class SqlBrokerStore:
    """The broker's tables on one engine (shared with the catalogue and the harvest)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        # Reads that send documents on use the driver directly: one statement, no ORM session
        # and no SQL compilation, on a pooled connection (WAL: SQLite readers never wait for
        # the writer; PostgreSQL readers never wait for row locks).
        self._local = threading.local()
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._session_read = _SESSION_READ.format(mark=mark)
        self._offerset_read = _OFFERSET_READ.format(mark=mark)
        self._offers_read = _OFFERS_READ.format(mark=mark)

    @property
    def reads_are_local(self) -> bool:
        """True when a read waits on no network (SQLite): cheaper to run than to hand off."""
        return self.engine.dialect.name == "sqlite"

    @property
    def shares_platform_locks(self) -> bool:
        """True on PostgreSQL, where `lock_platforms(shared=True)` takes `FOR SHARE`.

        Accepts on one platform then run side by side; on SQLite every write runs alone.
        """
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.reads_are_local:
            # One connection per thread, kept: taking one from the pool costs as much as the
            # read itself. Each statement commits by itself (pysqlite's transaction handling
            # is off, see `core.db`), so a kept connection holds no snapshot between reads.
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = self.engine.raw_connection()
                connection.detach()  # ours for the thread's life, not the pool's
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            return
        pooled = self.engine.raw_connection()
        try:
            cursor = pooled.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            pooled.close()  # back to the pool, which ends the transaction the read began

    def stored_session(self, session_id: str) -> StoredSession | None:
        """A session's stored document, phase, expiry and owner, in one plain select."""
        with self._cursor() as cursor:
            cursor.execute(self._session_read, (session_id,))
            row = cursor.fetchone()
        return None if row is None else _stored(row, row[4])

    def stored_offerset(
        self, offerset_id: str
    ) -> tuple[bytes, str | None, list[StoredSession]] | None:
        """An offer set's stored document, its requester and its sessions as stored, in order.

        Two plain selects: a set and its sessions are committed together, so the second
        finds every offer of a set the first found.
        """
        with self._cursor() as cursor:
            cursor.execute(self._offerset_read, (offerset_id,))
            found = cursor.fetchone()
            if found is None:
                return None
            cursor.execute(self._offers_read, (offerset_id,))
            offers = [_stored(row) for row in cursor.fetchall()]
        return _text_bytes(found[0]), found[1], offers

    def migrate(self) -> None:
        """Bring the broker's tables to the newest revision."""
        migrate(self.engine, MIGRATIONS, VERSION_TABLE)

    @contextmanager
    def write(self) -> Iterator[StoreTransaction]:
        """A serialised write transaction (BEGIN IMMEDIATE on SQLite); commits on success."""
        with write_transaction(self._sessions) as session:
            transaction = StoreTransaction(session)
            yield transaction
            transaction.flush()

    @contextmanager
    def read(self) -> Iterator[StoreTransaction]:
        """A read-only transaction."""
        with self._sessions() as session, session.begin():
            transaction = StoreTransaction(session)
            yield transaction
            transaction.flush()
