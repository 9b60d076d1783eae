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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

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


def _fill(row: VersionRow, version: EntryVersion, *, now: datetime) -> None:
    """Write a version's content and provenance into its row (the label and `published_at` stay)."""
    origin = version.provenance
    row.declared_version = version.spec.version
    row.content_hash = version.content_hash
    row.document = msgspec.json.encode(version.spec, order="deterministic").decode()
    row.source = origin.source
    row.repository = origin.repository
    row.path = origin.path
    row.ref = origin.ref
    row.ref_kind = origin.ref_kind
    row.commit = origin.commit
    row.harvested_at = origin.harvested_at
    row.updated_at = now


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
                return [self._save_one(session, write, now) for write in writes]
        except IntegrityError as error:
            raise Conflict("the entry was published concurrently; try again") from error
        except OperationalError as error:
            raise Unavailable(f"the catalogue database does not answer: {error.orig}") from error

    def save_all(
        self, documents: Sequence[Sequence[VersionWrite]], *, now: datetime
    ) -> list[list[PublishStatus]]:
        """`save` for several documents' writes in one transaction (a harvest batch).

        Each document's writes still stand or fall together: should the shared transaction fail
        on a concurrent writer, it is rolled back and each document is saved on its own
        (`save`), so one conflict costs only its document.

        Raises:
            Conflict: (from the one-by-one retry) a document's entry was created concurrently.
            Unavailable: the database does not answer.
        """
        if len(documents) <= 1:
            return [self.save(writes, now=now) for writes in documents]
        try:
            with write_transaction(self._sessions) as session:
                return [
                    [self._save_one(session, write, now) for write in writes]
                    for writes in documents
                ]
        except IntegrityError:
            return [self.save(writes, now=now) for writes in documents]
        except OperationalError as error:
            raise Unavailable(f"the catalogue database does not answer: {error.orig}") from error

    def _save_one(self, session: Session, write: VersionWrite, now: datetime) -> PublishStatus:
        version = write.version
        spec, origin = version.spec, version.provenance
        entry = session.scalars(
            select(EntryRow).where(EntryRow.id == write.entry_id).with_for_update()
        ).one_or_none()
        if entry is None:
            entry = EntryRow(
                id=write.entry_id,
                name=spec.name,
                source=origin.source,
                repository=origin.repository,
                path=origin.path,
                current_version=version.version,
                withdrawn=False,
                created_at=now,
                updated_at=now,
            )
            session.add(entry)
            session.add(self._version_row(write.entry_id, version, published_at=now, now=now))
            return "new"
        row = session.get(VersionRow, (write.entry_id, version.version))
        if row is not None and row.content_hash == version.content_hash and not entry.withdrawn:
            return "unchanged"
        if row is None:
            session.add(self._version_row(write.entry_id, version, published_at=now, now=now))
        elif row.content_hash != version.content_hash:
            _fill(row, version, now=now)
        session.flush()
        labels = session.scalars(
            select(VersionRow.version).where(VersionRow.entry_id == write.entry_id)
        ).all()
        entry.current_version = current_version(labels)
        entry.withdrawn = False
        entry.withdrawn_at = None
        entry.updated_at = now
        return "updated"

    @staticmethod
    def _version_row(
        entry_id: str, version: EntryVersion, *, published_at: datetime, now: datetime
    ) -> VersionRow:
        row = VersionRow(entry_id=entry_id, version=version.version, published_at=published_at)
        _fill(row, version, now=now)
        return row

    def withdraw(self, entry_id: str, *, now: datetime) -> bool:
        """Mark an entry withdrawn (kept, and readable, but no longer searchable).

        Returns:
            False when there is no such entry; True otherwise (also when already withdrawn).
        """
        with write_transaction(self._sessions) as session:
            entry = session.get(EntryRow, entry_id, with_for_update=True)
            if entry is None:
                return False
            if not entry.withdrawn:
                entry.withdrawn = True
                entry.withdrawn_at = now
                entry.updated_at = now
            return True

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
