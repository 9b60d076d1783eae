"""The catalogue's SQL store: entries and their versions (SQLAlchemy 2, SQLite or PostgreSQL).

The store is the source of truth; the search index is derived from it. Rows never leave this
module: callers get `catalogue.model` Structs. Each version keeps its normalised document as
canonical JSON and a content hash, so publishing the same content again is one indexed read
and no write.

Portable SQL only (no dialect-specific statements): the same code and the Alembic migrations in
`catalogue/migrations/` serve SQLite and PostgreSQL. Writes run in `core.db.write_transaction`
(SQLite's write lock from the first statement; row locks on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

import msgspec
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from catalogue.model import (
    LATEST,
    Entry,
    EntryVersion,
    ExecutableSpec,
    Provenance,
    PublishStatus,
    VersionInfo,
    VersionWrite,
    current_version,
    version_key,
)
from catalogue.oai import ChangedEntry, FixedRecordStamp
from core.db import Base, migrate, read_transaction, session_factory, write_transaction
from core.errors import Conflict, Unavailable

MIGRATIONS: Final = Path(__file__).with_name("migrations")
VERSION_TABLE: Final = "alembic_version_catalogue"
_BATCH: Final = 500


class EntryRow(Base):
    """One catalogue entry; identity and state, shared by its versions."""

    __tablename__ = "catalogue_entry"
    __table_args__ = (
        Index("ix_catalogue_entry_origin", "source", "repository"),
        # The publishing registry lists entries in change order and resumes after a position.
        Index("ix_catalogue_entry_changed", "updated_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(200))
    repository: Mapped[str | None] = mapped_column(String(1000))
    path: Mapped[str | None] = mapped_column(String(1000))
    current_version: Mapped[str] = mapped_column(String(64))
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VersionRow(Base):
    """One version of an entry: the normalised document and its provenance."""

    __tablename__ = "catalogue_version"

    entry_id: Mapped[str] = mapped_column(
        String(120), ForeignKey("catalogue_entry.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    declared_version: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200))
    repository: Mapped[str | None] = mapped_column(String(1000))
    path: Mapped[str | None] = mapped_column(String(1000))
    ref: Mapped[str | None] = mapped_column(String(255))
    ref_kind: Mapped[str | None] = mapped_column(String(20))
    commit: Mapped[str | None] = mapped_column(String(64))
    harvested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RegistryRecordRow(Base):
    """Datestamps of a publishing-registry record built from configuration (not an entry)."""

    __tablename__ = "catalogue_registry_record"

    identifier: Mapped[str] = mapped_column(String(300), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    """Content digest without dates: a new one moves `updated_at` on."""
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_spec_decoder = msgspec.json.Decoder(ExecutableSpec)


def _aware(value: datetime) -> datetime:
    # SQLite keeps no zone; every instant we store is UTC, so reading it back as UTC is exact.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _maybe_aware(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def _to_version(row: VersionRow) -> EntryVersion:
    return _version_from_columns(
        (
            row.version,
            row.document,
            row.content_hash,
            row.source,
            row.repository,
            row.path,
            row.ref,
            row.ref_kind,
            row.commit,
            row.harvested_at,
            row.published_at,
            row.updated_at,
        )
    )


_VERSION_COLUMNS: Final = (
    VersionRow.version,
    VersionRow.document,
    VersionRow.content_hash,
    VersionRow.source,
    VersionRow.repository,
    VersionRow.path,
    VersionRow.ref,
    VersionRow.ref_kind,
    VersionRow.commit,
    VersionRow.harvested_at,
    VersionRow.published_at,
    VersionRow.updated_at,
)
"""What `_version_from_columns` takes, in its order: read as plain rows, no ORM objects."""


_CURRENT_VERSIONS: Final = (
    select(VersionRow.entry_id, *_VERSION_COLUMNS)
    .join(EntryRow, EntryRow.id == VersionRow.entry_id)
    .where(
        EntryRow.id.in_(bindparam("ids", expanding=True)),
        EntryRow.withdrawn.is_(False),
        VersionRow.version == EntryRow.current_version,
    )
)
"""The current versions of some entries (`ids`); built once, so its compiled form is reused."""


def _version_from_columns(columns: Sequence[Any]) -> EntryVersion:
    """A version from a plain row of `_VERSION_COLUMNS`, in that order."""
    (
        version,
        document,
        digest,
        source,
        repository,
        path,
        ref,
        ref_kind,
        commit,
        harvested_at,
        published_at,
        updated_at,
    ) = columns
    return EntryVersion(
        version=version,
        spec=_spec_decoder.decode(document),
        content_hash=digest,
        provenance=Provenance(
            source=source,
            repository=repository,
            path=path,
            ref=ref,
            ref_kind=ref_kind,  # read back as written, from the same Literal
            commit=commit,
            harvested_at=_maybe_aware(harvested_at),
        ),
        published_at=_aware(published_at),
        updated_at=_aware(updated_at),
    )


def _fixed_stamp(row: RegistryRecordRow) -> FixedRecordStamp:
    return FixedRecordStamp(
        identifier=row.identifier,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        deleted=row.deleted,
    )


_ENTRY: Final = cast("Table", EntryRow.__table__)
_VERSION: Final = cast("Table", VersionRow.__table__)


class PublishedFrom(NamedTuple):
    """An entry published from a repository: its current version's label and commit."""

    id: str
    version: str
    commit: str | None
    withdrawn: bool


@dataclass
class _Stored:
    """What a batch knows of one entry while it plans its writes."""

    withdrawn: bool
    hashes: dict[str, str]
    """Content hash by version label."""


def _content_columns(
    version: EntryVersion, document: bytes | None, now: datetime
) -> dict[str, Any]:
    """A version row's content and provenance columns (the label and `published_at` aside)."""
    origin = version.provenance
    if document is None:
        document = msgspec.json.encode(version.spec, order="deterministic")
    return {
        "declared_version": version.spec.version,
        "content_hash": version.content_hash,
        "document": document.decode(),
        "source": origin.source,
        "repository": origin.repository,
        "path": origin.path,
        "ref": origin.ref,
        "ref_kind": origin.ref_kind,
        "commit": origin.commit,
        "harvested_at": origin.harvested_at,
        "updated_at": now,
    }


def _load_stored(connection: Connection, ids: Sequence[str]) -> dict[str, _Stored]:
    """The entries among `ids` and their versions' hashes; their rows locked (PostgreSQL)."""
    stored: dict[str, _Stored] = {}
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        # Locked in id order, so two batches never wait for each other in a cycle.
        headers = connection.execute(
            select(_ENTRY.c.id, _ENTRY.c.withdrawn)
            .where(_ENTRY.c.id.in_(chunk))
            .order_by(_ENTRY.c.id)
            .with_for_update()
        )
        for key, withdrawn in headers:
            stored[key] = _Stored(withdrawn=bool(withdrawn), hashes={})
        versions = connection.execute(
            select(_VERSION.c.entry_id, _VERSION.c.version, _VERSION.c.content_hash).where(
                _VERSION.c.entry_id.in_(chunk)
            )
        )
        for key, label, digest in versions:
            if key in stored:
                stored[key].hashes[label] = digest
    return stored


def _save_batch(
    connection: Connection, documents: Sequence[Sequence[VersionWrite]], now: datetime
) -> list[list[PublishStatus]]:
    """Plan every write of a batch in memory, then run one statement per kind of change."""
    ids = sorted({write.entry_id for writes in documents for write in writes})
    plan = _Plan(_load_stored(connection, ids), now)
    statuses = [[plan.write(write) for write in writes] for writes in documents]
    plan.run(connection)
    return statuses


class _Plan:
    """The rows a batch inserts and updates, judged write by write as one by one would.

    A later write to an entry created or changed earlier in the batch sees that change.
    """

    def __init__(self, stored: dict[str, _Stored], now: datetime) -> None:
        self.stored = stored
        self.now = now
        self.new_entries: dict[str, dict[str, Any]] = {}
        self.changed_entries: dict[str, dict[str, Any]] = {}
        self.new_versions: dict[tuple[str, str], dict[str, Any]] = {}
        self.changed_versions: dict[tuple[str, str], dict[str, Any]] = {}

    def write(self, write: VersionWrite) -> PublishStatus:
        """Plan one write; what it does to its entry."""
        key, version, now = write.entry_id, write.version, self.now
        label = version.version
        entry = self.stored.get(key)
        if entry is None:
            self.stored[key] = _Stored(withdrawn=False, hashes={label: version.content_hash})
            origin = version.provenance
            self.new_entries[key] = {
                "id": key,
                "name": version.spec.name,
                "source": origin.source,
                "repository": origin.repository,
                "path": origin.path,
                "current_version": label,
                "withdrawn": False,
                "created_at": now,
                "updated_at": now,
                "withdrawn_at": None,
            }
            self._new_version(write)
            return "new"
        known = entry.hashes.get(label)
        if known == version.content_hash and not entry.withdrawn:
            return "unchanged"
        if known is None:
            self._new_version(write)
        elif known != version.content_hash:
            columns = _content_columns(version, write.document, now)
            if (key, label) in self.new_versions:
                self.new_versions[key, label].update(columns)
            else:
                self.changed_versions[key, label] = {"k_entry": key, "k_version": label, **columns}
        entry.hashes[label] = version.content_hash
        entry.withdrawn = False
        header = {"current_version": current_version(entry.hashes), "updated_at": now}
        if key in self.new_entries:
            self.new_entries[key].update(header)
        else:
            self.changed_entries[key] = {
                "k_id": key,
                "withdrawn": False,
                "withdrawn_at": None,
                **header,
            }
        return "updated"

    def _new_version(self, write: VersionWrite) -> None:
        columns = _content_columns(write.version, write.document, self.now)
        self.new_versions[write.entry_id, write.version.version] = {
            "entry_id": write.entry_id,
            "version": write.version.version,
            "published_at": self.now,
            **columns,
        }

    def run(self, connection: Connection) -> None:
        """One multi-row statement for each kind of change there is."""
        if self.new_entries:
            connection.execute(insert(_ENTRY), list(self.new_entries.values()))
        if self.new_versions:
            connection.execute(insert(_VERSION), list(self.new_versions.values()))
        if self.changed_versions:
            connection.execute(
                update(_VERSION).where(
                    _VERSION.c.entry_id == bindparam("k_entry"),
                    _VERSION.c.version == bindparam("k_version"),
                ),
                list(self.changed_versions.values()),
            )
        if self.changed_entries:
            connection.execute(
                update(_ENTRY).where(_ENTRY.c.id == bindparam("k_id")),
                list(self.changed_entries.values()),
            )


def _version_order(label: str) -> tuple[bool, tuple[tuple[int, int | str], ...]]:
    return (label == LATEST, version_key(label))


class SqlCatalogueStore:
    """Entries and versions in SQL; see the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)

    def migrate(self) -> None:
        """Create or upgrade the catalogue's tables (idempotent)."""
        migrate(self.engine, MIGRATIONS, VERSION_TABLE)

    # ------------------------------------------------------------------------ writes
    def save(self, writes: Sequence[VersionWrite], *, now: datetime) -> list[PublishStatus]:
        """Store versions, all or none; report for each whether it was new, updated or unchanged.

        A version whose content hash is already stored under the same label is `unchanged`
        and costs no write. Storing into a withdrawn entry restores it (`updated`).

        Raises:
            Conflict: another writer created the same entry at the same moment (retry).
            Unavailable: the database does not answer.
        """
        try:
            with write_transaction(self._sessions) as session:
                return _save_batch(session.connection(), [writes], now)[0]
        except IntegrityError as error:
            raise Conflict("the entry was published concurrently; try again") from error
        except OperationalError as error:
            raise Unavailable(f"the catalogue database does not answer: {error.orig}") from error

    def save_all(
        self, documents: Sequence[Sequence[VersionWrite]], *, now: datetime
    ) -> list[list[PublishStatus]]:
        """`save` for several documents' writes in one transaction (a harvest batch).

        The batch costs a few statements, whatever its size: one select of the entries and one
        of their versions' hashes per `_BATCH` entry ids, then one multi-row insert or update
        per table (Core `executemany`, no ORM objects). Each document's writes still stand or
        fall together: should the shared transaction fail on a concurrent writer, it is rolled
        back and each document is saved on its own (`save`), so one conflict costs only its
        document.

        Raises:
            Conflict: (from the one-by-one retry) a document's entry was created concurrently.
            Unavailable: the database does not answer.
        """
        if len(documents) <= 1:
            return [self.save(writes, now=now) for writes in documents]
        try:
            with write_transaction(self._sessions) as session:
                return _save_batch(session.connection(), documents, now)
        except IntegrityError:
            return [self.save(writes, now=now) for writes in documents]
        except OperationalError as error:
            raise Unavailable(f"the catalogue database does not answer: {error.orig}") from error

    def withdraw(self, entry_id: str, *, now: datetime) -> bool:
        """Mark an entry withdrawn (kept, and readable, but no longer searchable).

        Returns:
            False when there is no such entry; True otherwise (also when already withdrawn).
        """
        return entry_id in self.withdraw_all([entry_id], now=now)

    def withdraw_all(self, entry_ids: Sequence[str], *, now: datetime) -> list[str]:
        """Withdraw several entries in one transaction; returns those that exist (in order).

        Entries withdrawn already keep their withdrawal time.

        Raises:
            Unavailable: the database does not answer.
        """
        if not entry_ids:
            return []
        wanted = sorted(set(entry_ids))
        found: set[str] = set()
        try:
            with write_transaction(self._sessions) as session:
                connection = session.connection()
                for start in range(0, len(wanted), _BATCH):
                    chunk = wanted[start : start + _BATCH]
                    rows = connection.execute(
                        select(_ENTRY.c.id, _ENTRY.c.withdrawn)
                        .where(_ENTRY.c.id.in_(chunk))
                        .order_by(_ENTRY.c.id)  # in id order, as every write locks: no deadlock
                        .with_for_update()
                    ).all()
                    found.update(key for key, _ in rows)
                    live = [{"k_id": key} for key, withdrawn in rows if not withdrawn]
                    if live:
                        connection.execute(
                            update(_ENTRY)
                            .where(_ENTRY.c.id == bindparam("k_id"))
                            .values(withdrawn=True, withdrawn_at=now, updated_at=now),
                            live,
                        )
        except OperationalError as error:
            raise Unavailable(f"the catalogue database does not answer: {error.orig}") from error
        return [key for key in dict.fromkeys(entry_ids) if key in found]

    # ------------------------------------------------------------------------ reads
    def entry(self, entry_id: str) -> Entry | None:
        """An entry's header and version list, withdrawn or not."""
        with read_transaction(self._sessions) as session:
            row = session.get(EntryRow, entry_id)
            if row is None:
                return None
            versions = session.execute(
                select(
                    VersionRow.version,
                    VersionRow.declared_version,
                    VersionRow.published_at,
                    VersionRow.updated_at,
                    VersionRow.content_hash,
                ).where(VersionRow.entry_id == entry_id)
            ).all()
            infos = [
                VersionInfo(
                    version=label,
                    declared_version=declared,
                    published_at=_aware(published),
                    updated_at=_aware(updated),
                    content_hash=digest,
                )
                for label, declared, published, updated, digest in versions
            ]
            infos.sort(key=lambda info: _version_order(info.version), reverse=True)
            return Entry(
                id=row.id,
                name=row.name,
                source=row.source,
                repository=row.repository,
                path=row.path,
                current_version=row.current_version,
                withdrawn=row.withdrawn,
                created_at=_aware(row.created_at),
                updated_at=_aware(row.updated_at),
                versions=infos,
            )

    def version(self, entry_id: str, version: str) -> EntryVersion | None:
        """One version in full, or None."""
        with read_transaction(self._sessions) as session:
            row = session.get(VersionRow, (entry_id, version))
            return None if row is None else _to_version(row)

    def current_versions(self, entry_ids: Sequence[str]) -> dict[str, EntryVersion]:
        """The current version of each listed entry that exists and is not withdrawn.

        One plain select per 500 ids (columns, not ORM objects, through a statement built
        once): a search page loads its hits here, and building ORM objects and statements cost
        more than the query itself.
        """
        if not entry_ids:
            return {}
        found: dict[str, EntryVersion] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(entry_ids), _BATCH):
                rows = connection.execute(
                    _CURRENT_VERSIONS, {"ids": list(entry_ids[start : start + _BATCH])}
                )
                found.update((key, _version_from_columns(columns)) for key, *columns in rows)
        return found

    def iter_current(self) -> Iterator[tuple[str, EntryVersion]]:
        """Every searchable entry with its current version, by id, in batches (for reindex)."""
        after = ""
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    select(VersionRow.entry_id, *_VERSION_COLUMNS)
                    .join(EntryRow, EntryRow.id == VersionRow.entry_id)
                    .where(
                        EntryRow.withdrawn.is_(False),
                        VersionRow.version == EntryRow.current_version,
                        EntryRow.id > after,
                    )
                    .order_by(EntryRow.id)
                    .limit(_BATCH)
                ).all()
            batch = [(key, _version_from_columns(columns)) for key, *columns in rows]
            yield from batch
            if len(batch) < _BATCH:
                return
            after = batch[-1][0]

    def ids_from(self, source: str, repository: str | None = None) -> list[str]:
        """Ids of the searchable entries published from a source (and repository)."""
        query = select(EntryRow.id).where(EntryRow.source == source, EntryRow.withdrawn.is_(False))
        if repository is not None:
            query = query.where(EntryRow.repository == repository)
        with read_transaction(self._sessions) as session:
            return list(session.scalars(query.order_by(EntryRow.id)))

    def ids_by_repository(self, source: str, repositories: Sequence[str]) -> dict[str, list[str]]:
        """`ids_from` for many repositories (record identifiers) at once: one query per 500.

        Every repository asked for has a list, empty when nothing searchable came from it.
        """
        found: dict[str, list[str]] = {repository: [] for repository in repositories}
        wanted = sorted(found)
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), _BATCH):
                rows = connection.execute(
                    select(_ENTRY.c.repository, _ENTRY.c.id)
                    .where(
                        _ENTRY.c.source == source,
                        _ENTRY.c.repository.in_(wanted[start : start + _BATCH]),
                        _ENTRY.c.withdrawn.is_(False),
                    )
                    .order_by(_ENTRY.c.id)
                )
                for repository, key in rows:
                    found[repository].append(key)
        return found

    def published_by_repository(
        self, source: str, repositories: Sequence[str]
    ) -> dict[str, list[PublishedFrom]]:
        """Every entry of these repositories of a source, withdrawn ones too: one query per 500.

        Each with its current version's label and commit. Every repository (record
        identifier) asked for has a list, empty when nothing came from it.
        """
        found: dict[str, list[PublishedFrom]] = {repository: [] for repository in repositories}
        wanted = sorted(found)
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), _BATCH):
                rows = connection.execute(
                    select(
                        _ENTRY.c.repository,
                        _ENTRY.c.id,
                        _ENTRY.c.current_version,
                        _VERSION.c.commit,
                        _ENTRY.c.withdrawn,
                    )
                    .join(
                        _VERSION,
                        (_VERSION.c.entry_id == _ENTRY.c.id)
                        & (_VERSION.c.version == _ENTRY.c.current_version),
                    )
                    .where(
                        _ENTRY.c.source == source,
                        _ENTRY.c.repository.in_(wanted[start : start + _BATCH]),
                    )
                    .order_by(_ENTRY.c.id)
                )
                for repository, key, label, commit, withdrawn in rows:
                    found[repository].append(PublishedFrom(key, label, commit, bool(withdrawn)))
        return found

    def count(self, *, include_withdrawn: bool = False) -> int:
        """How many entries there are (searchable ones only, unless asked)."""
        query = select(func.count()).select_from(EntryRow)
        if not include_withdrawn:
            query = query.where(EntryRow.withdrawn.is_(False))
        with read_transaction(self._sessions) as session:
            return int(session.scalar(query) or 0)

    # ------------------------------------------------------------------------ publishing registry
    def changed_entries(
        self,
        *,
        after: tuple[datetime, str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        with_versions: bool,
    ) -> list[ChangedEntry]:
        """Entries, withdrawn ones too, in (updated_at, id) order: one page of an OAI list.

        Args:
            after: the (updated_at, id) of the last entry already listed, exclusive.
            since: earliest `updated_at`, inclusive.
            until: latest `updated_at`, inclusive.
            limit: most entries to return.
            with_versions: also load the current version of each entry that is not withdrawn.
        """
        conditions = []
        if after is not None:
            stamp, last_id = after
            conditions.append(
                or_(
                    EntryRow.updated_at > stamp,
                    and_(EntryRow.updated_at == stamp, EntryRow.id > last_id),
                )
            )
        if since is not None:
            conditions.append(EntryRow.updated_at >= since)
        if until is not None:
            conditions.append(EntryRow.updated_at <= until)
        order = (EntryRow.updated_at, EntryRow.id)
        with read_transaction(self._sessions) as session:
            if not with_versions:
                headers = select(EntryRow).where(*conditions).order_by(*order).limit(limit)
                return [_changed(row, None) for row in session.scalars(headers)]
            current = and_(
                VersionRow.entry_id == EntryRow.id, VersionRow.version == EntryRow.current_version
            )
            records = (
                select(EntryRow, VersionRow)
                .outerjoin(VersionRow, current)
                .where(*conditions)
                .order_by(*order)
                .limit(limit)
            )
            return [_changed(entry, version) for entry, version in session.execute(records).all()]

    def changed_entry(self, entry_id: str) -> ChangedEntry | None:
        """One entry with its current version (none when withdrawn), or None."""
        with read_transaction(self._sessions) as session:
            entry = session.get(EntryRow, entry_id)
            if entry is None:
                return None
            return _changed(entry, session.get(VersionRow, (entry_id, entry.current_version)))

    def registry_records(self) -> list[FixedRecordStamp]:
        """Every registry record built from configuration, deleted ones too, by identifier."""
        with read_transaction(self._sessions) as session:
            rows = session.scalars(select(RegistryRecordRow).order_by(RegistryRecordRow.identifier))
            return [_fixed_stamp(row) for row in rows]

    def sync_registry_records(
        self, digests: Mapping[str, str], *, now: datetime
    ) -> list[FixedRecordStamp]:
        """Record the current content digest of each configured record.

        A new record, or one whose digest changed, gets `updated_at = now`; a stored record
        missing from `digests` becomes deleted (a tombstone harvesters see). Unchanged records
        keep their datestamps, so restarting with the same configuration changes nothing.

        Returns:
            Every record's datestamps after the change.
        """
        try:
            with write_transaction(self._sessions) as session:
                rows = {row.identifier: row for row in session.scalars(select(RegistryRecordRow))}
                for identifier, digest in digests.items():
                    row = rows.get(identifier)
                    if row is None:
                        session.add(
                            RegistryRecordRow(
                                identifier=identifier,
                                digest=digest,
                                deleted=False,
                                created_at=now,
                                updated_at=now,
                            )
                        )
                    elif row.digest != digest or row.deleted:
                        row.digest, row.deleted, row.updated_at = digest, False, now
                for identifier, row in rows.items():
                    if identifier not in digests and not row.deleted:
                        row.deleted, row.updated_at = True, now
        except IntegrityError:
            pass  # another process stored the same records at the same moment: theirs stand
        except OperationalError as error:
            raise Unavailable(f"the catalogue database does not answer: {error.orig}") from error
        return self.registry_records()


def _changed(entry: EntryRow, version: VersionRow | None) -> ChangedEntry:
    return ChangedEntry(
        id=entry.id,
        created_at=_aware(entry.created_at),
        updated_at=_aware(entry.updated_at),
        withdrawn=entry.withdrawn,
        version=None if version is None or entry.withdrawn else _to_version(version),
    )
