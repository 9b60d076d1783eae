"""`CatalogueService`: the catalogue's use cases, shared by the web API, the CLI and harvest.

Publish (validate, normalise, store, index), withdraw, read an entry or one of its versions,
faceted search with facet trees, rebuild the index from the store, and hand an entry off to the
Execution Broker as an ExecutionRequest.

The SQL store is the source of truth: the service commits to it first, then updates the search
index. An index failure after the commit is reported as a warning, never as an error: the
service remembers since when the index may lack changes and re-applies the store's changes since
then (minus `CATCH_UP_MARGIN`) on a later publish or search, at most every
`index_retry_seconds`; `reindex()` repairs everything. Before each search and index write it
also asks the index to `follow` a rebuild another process (`voexec reindex`) has swapped in, and
then re-applies what was stored while that rebuild ran.
Takes its collaborators as ports (`CatalogueStore`, `SearchIndex`, `BrokerGateway`, a
vocabulary registry, a clock); imports nothing from Litestar, the broker or SQLAlchemy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import msgspec

from catalogue import handoff
from catalogue.executables import executable_kind
from catalogue.facet_views import facet_views, resolve_filters
from catalogue.facets import MAX_PAGE_SIZE, MAX_TEXT_LENGTH, facet_problems, requested_facets
from catalogue.model import (
    Concept,
    Entry,
    EntryDetail,
    EntrySummary,
    EntryVersion,
    Facet,
    HandOff,
    ProblemItem,
    Provenance,
    PublishOutcome,
    PublishReport,
    PublishStatus,
    SearchPage,
    SearchRequest,
    VersionWrite,
    canonical_json,
    content_hash,
    entry_id,
)
from catalogue.oai import ChangedEntry
from catalogue.ports import (
    BrokerGateway,
    IndexChanges,
    IndexDocument,
    OfferAnswer,
    SearchIndex,
    SearchQuery,
)
from catalogue.publisher import (
    FUNCTIONS,
    MESSENGERS,
    SUBJECTS,
    CheckedDocument,
    check_document,
)
from catalogue.search_cache import LruCache
from core.clock import Clock
from core.errors import Conflict, DomainError, Invalid, NotFound, Problem
from vocabularies.expand import with_ancestors
from vocabularies.model import UnknownVocabulary
from vocabularies.registry import VocabularyRegistry

log = logging.getLogger(__name__)

MAX_LABEL_LENGTH: Final = 64
CATCH_UP_MARGIN: Final = timedelta(minutes=2)
"""Changes are re-applied from this long before the instant asked for: an entry's stamp is taken
just before its transaction commits, which may wait for the database (SQLite waits up to 30 s),
and processes sharing a store may disagree a little about the time."""
CATCH_UP_PAGE: Final = 500
INDEX_RETRY_SECONDS: Final = 5.0
"""Least time between two attempts to catch a failing index up."""
VIEWS_CACHE_SIZE: Final = 256
"""Facet trees kept (one per text, filters and facets asked for): a few KiB each."""
PAGES_CACHE_SIZE: Final = 512
"""Search answers kept (a page of summaries and its facet trees, as JSON)."""
_PAGE_ENCODER: Final = msgspec.json.Encoder()
_PAGE_DECODER: Final = msgspec.json.Decoder(SearchPage)


class CatalogueStore(Protocol):
    """What the service needs from storage (`catalogue.store_sql.SqlCatalogueStore`)."""

    def save(self, writes: Sequence[VersionWrite], *, now: datetime) -> list[PublishStatus]:
        """Store versions all-or-none; new / updated / unchanged for each."""
        ...

    def save_all(
        self, documents: Sequence[Sequence[VersionWrite]], *, now: datetime
    ) -> list[list[PublishStatus]]:
        """`save` for several documents, each all-or-none, in as few transactions as it can."""
        ...

    def withdraw(self, entry_id: str, *, now: datetime) -> bool:
        """Withdraw an entry; False when it does not exist."""
        ...

    def withdraw_all(self, entry_ids: Sequence[str], *, now: datetime) -> list[str]:
        """Withdraw several entries in one transaction; the ids of those that exist."""
        ...

    def entry(self, entry_id: str) -> Entry | None:
        """An entry's header and versions."""
        ...

    def version(self, entry_id: str, version: str) -> EntryVersion | None:
        """One version in full."""
        ...

    def current_versions(self, entry_ids: Sequence[str]) -> dict[str, EntryVersion]:
        """Current versions of searchable entries."""
        ...

    def iter_current(self) -> Iterator[tuple[str, EntryVersion]]:
        """Every searchable entry's current version."""
        ...

    def ids_from(self, source: str, repository: str | None = None) -> list[str]:
        """Ids of searchable entries from a source."""
        ...

    def ids_by_repository(self, source: str, repositories: Sequence[str]) -> dict[str, list[str]]:
        """`ids_from` for many repositories at once (each one asked for has a list)."""
        ...

    def published_by_repository(
        self, source: str, repositories: Sequence[str]
    ) -> Mapping[str, Sequence[tuple[str, str, str | None, bool]]]:
        """Every entry of these repositories, withdrawn too, as (id, version, commit, withdrawn).

        Every repository asked for has a list.
        """
        ...

    def count(self, *, include_withdrawn: bool = False) -> int:
        """How many entries."""
        ...

    def changed_entries(
        self,
        *,
        after: tuple[datetime, str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        with_versions: bool,
    ) -> list[ChangedEntry]:
        """Entries, withdrawn ones too, in (updated_at, id) order, from `since` on."""
        ...


def _items(problems: Sequence[Problem]) -> list[ProblemItem]:
    return [
        ProblemItem(field=p.field, reason=p.reason, suggestions=list(p.suggestions))
        for p in problems
    ]


class _Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A checked document's writes, waiting to be stored with the rest of its batch."""

    writes: list[VersionWrite]
    labels: list[str]
    warnings: list[ProblemItem]

    def report(self, statuses: Sequence[PublishStatus]) -> PublishReport:
        """The document's report once the store said what each write did."""
        outcomes = [
            PublishOutcome(id=w.entry_id, name=w.version.spec.name, version=label, status=status)
            for w, label, status in zip(self.writes, self.labels, statuses, strict=True)
        ]
        return PublishReport(entries=outcomes, warnings=self.warnings)


class CatalogueService:
    """The catalogue's use cases; see the module docstring."""

    def __init__(
        self,
        store: CatalogueStore,
        index: SearchIndex,
        vocabularies: VocabularyRegistry,
        broker: BrokerGateway,
        clock: Clock,
        *,
        page_size: int = 20,
        index_retry_seconds: float = INDEX_RETRY_SECONDS,
        views_cache_size: int = VIEWS_CACHE_SIZE,
        pages_cache_size: int = PAGES_CACHE_SIZE,
    ) -> None:
        self.store = store
        self.index = index
        self.vocabularies = vocabularies
        self.broker = broker
        self.clock = clock
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.index_retry_seconds = index_retry_seconds
        self._behind_since: datetime | None = None
        """The index may lack changes stored since this instant (None: it is up to date)."""
        self._behind_marks = 0
        """Bumped by every mark, so a catch-up clears only the marks it has covered."""
        self._next_attempt = 0.0
        self._state = threading.Lock()
        self._catching_up = threading.Lock()
        self._views: LruCache[list[Facet]] = LruCache(views_cache_size)
        """Facet trees by (index generation, text, filters, facets): shared by every page."""
        self._pages: LruCache[bytes] = LruCache(pages_cache_size)
        """Whole answers, as their JSON, by the same key plus sort, cursor and limit: one bytes
        object each, which the API sends as it is and the garbage collector never walks."""

    # ------------------------------------------------------------------------ publishing
    def check(
        self,
        document: str | bytes | Mapping[str, Any],
        *,
        require_vocabularies: bool = True,
        repository: str | None = None,
    ) -> CheckedDocument:
        """Validate a publisher's document without storing anything (a packager's pre-flight).

        `require_vocabularies=False` keeps values of vocabularies this server lacks, unchecked;
        `repository` (where the document comes from) names executables that give no name
        (see `catalogue.publisher.check_document`).
        """
        return check_document(
            document,
            vocabularies=self.vocabularies,
            validate_executable=self.broker.validate_executable,
            require_vocabularies=require_vocabularies,
            normalise_executable=self.broker.normalise_executable,
            repository=repository,
        )

    def publish(
        self, document: str | bytes | Mapping[str, Any], provenance: Provenance
    ) -> PublishReport:
        """Validate and store every executable of a document, then index what changed.

        All or nothing: a document with any problem stores nothing, and the report lists the
        problems. Warnings (deprecated terms and their replacements) never stop it.

        Raises:
            Unavailable: the database or a needed vocabulary is not available.
        """
        return self.publish_all([(document, provenance)])[0]

    def publish_all(
        self,
        documents: Iterable[tuple[str | bytes | Mapping[str, Any], Provenance]],
        *,
        require_vocabularies: bool = True,
    ) -> list[PublishReport]:
        """Publish several documents, each all-or-nothing, and update the index once at the end.

        What a batch (the demo catalogue, a harvest) uses: one index commit instead of one per
        document. `require_vocabularies=False` is for the bundled demo only (see `check`).
        """
        started = self.clock.now()
        prepared = [
            self._prepare(document, provenance, require_vocabularies=require_vocabularies)
            for document, provenance in documents
        ]
        # One transaction for the whole batch (the store falls back to one per document).
        writes = [p.writes for p in prepared if isinstance(p, _Prepared)]
        saved = iter(self.store.save_all(writes, now=self.clock.now()) if writes else [])
        reports = [p.report(next(saved)) if isinstance(p, _Prepared) else p for p in prepared]
        changed = [o.id for report in reports for o in report.entries if o.status != "unchanged"]
        if changed and not self._index_entries(changed, stored_since=started):
            warning = ProblemItem(
                field="(index)",
                reason="stored, but the search index could not be updated yet; "
                "it is updated again shortly and search shows the change then",
            )
            reports = [
                msgspec.structs.replace(r, warnings=[*r.warnings, warning]) if r.entries else r
                for r in reports
            ]
        return reports

    def _prepare(
        self,
        document: str | bytes | Mapping[str, Any],
        provenance: Provenance,
        *,
        require_vocabularies: bool,
    ) -> PublishReport | _Prepared:
        """A document checked and turned into writes, or the report of why it cannot be."""
        checked = self.check(
            document, require_vocabularies=require_vocabularies, repository=provenance.repository
        )
        warnings = _items(checked.warnings)
        if not checked.ok:
            return PublishReport(problems=_items(checked.problems), warnings=warnings)
        writes, labels, problems = self._writes(checked, provenance)
        if problems:
            return PublishReport(problems=_items(problems), warnings=warnings)
        return _Prepared(
            writes=writes,
            labels=labels,
            warnings=warnings,
        )

    def _writes(
        self, checked: CheckedDocument, provenance: Provenance
    ) -> tuple[list[VersionWrite], list[str], list[Problem]]:
        now = self.clock.now()
        writes: list[VersionWrite] = []
        labels: list[str] = []
        problems: list[Problem] = []
        for item in checked.executables:
            spec = item.spec
            label = provenance.version_label(spec.version)
            if len(label) > MAX_LABEL_LENGTH:
                problems.append(
                    Problem(
                        "version" if not item.field else f"{item.field}.version",
                        f"the version label {label!r} is longer than {MAX_LABEL_LENGTH} characters",
                    )
                )
                continue
            key = entry_id(provenance.source, provenance.repository, provenance.path, spec.name)
            document = canonical_json(spec)  # hashed and stored: encoded once
            version = EntryVersion(
                version=label,
                spec=spec,
                content_hash=content_hash(spec, document),
                provenance=provenance,
                published_at=now,
                updated_at=now,
            )
            writes.append(VersionWrite(entry_id=key, version=version, document=document))
            labels.append(label)
        return writes, labels, problems

    def withdraw(self, entry_id: str) -> Entry:
        """Withdraw an entry: it stays readable (marked withdrawn) but leaves search.

        Raises:
            NotFound: no such entry.
        """
        started = self.clock.now()
        if not self.store.withdraw(entry_id, now=started):
            raise NotFound(f"no catalogue entry {entry_id!r}")
        self.follow_index()
        try:
            self.index.delete([entry_id])
        except Exception as error:  # noqa: BLE001 - stored already: the index catches up later
            log.warning("withdrew %s but could not remove it from the index: %s", entry_id, error)
            self._mark_behind(started)
        entry = self.store.entry(entry_id)
        assert entry is not None  # withdrawn entries are kept
        return entry

    def withdraw_all(self, entry_ids: Sequence[str]) -> list[str]:
        """Withdraw several entries at once: one store transaction, one index deletion.

        What a harvest uses for the entries of records that are gone. Unknown ids are skipped.

        Returns:
            The ids of the entries that exist (now withdrawn), in the order given.
        """
        started = self.clock.now()
        found = self.store.withdraw_all(entry_ids, now=started)
        if found:
            self.follow_index()
            try:
                self.index.delete(found)
            except Exception as error:  # noqa: BLE001 - stored already: the index catches up
                log.warning("withdrew %d entries but not from the index: %s", len(found), error)
                self._mark_behind(started)
        return found

    def entry_ids(self, source: str, repository: str | None = None) -> list[str]:
        """Ids of the searchable entries published from a source (harvest uses it to withdraw)."""
        return self.store.ids_from(source, repository)

    def entry_ids_by_repository(
        self, source: str, repositories: Sequence[str]
    ) -> dict[str, list[str]]:
        """`entry_ids` of many repositories (registry records) of a source, in one query."""
        return self.store.ids_by_repository(source, repositories)

    def published_by_repository(
        self, source: str, repositories: Sequence[str]
    ) -> Mapping[str, Sequence[tuple[str, str, str | None, bool]]]:
        """What many repositories (registry records) of a source published, in one query.

        Each entry, withdrawn ones too, as (id, current version label, that version's
        provenance commit, withdrawn): a registry harvest keeps the digest of the description
        it published as the commit, and publishes an unchanged description again only when
        the catalogue no longer holds what it gave.
        """
        return self.store.published_by_repository(source, repositories)

    # ------------------------------------------------------------------------ reading
    def get(self, entry_id: str, version: str | None = None) -> EntryDetail:
        """An entry in full: its current version, or the one asked for.

        Raises:
            NotFound: no such entry, or no such version of it.
        """
        entry = self.store.entry(entry_id)
        if entry is None:
            raise NotFound(f"no catalogue entry {entry_id!r}")
        label = version or entry.current_version
        found = self.store.version(entry_id, label)
        if found is None:
            known = ", ".join(v.version for v in entry.versions)
            raise NotFound(f"entry {entry_id!r} has no version {label!r} (it has: {known})")
        spec = found.spec
        kind = executable_kind(spec, self.vocabularies)
        return EntryDetail(
            id=entry.id,
            name=entry.name,
            withdrawn=entry.withdrawn,
            version=label,
            current_version=entry.current_version,
            spec=spec,
            subjects=self._concepts(SUBJECTS, spec.subjects),
            functions=self._concepts(FUNCTIONS, spec.functions),
            kind=kind,
            gpu=spec.needs.gpu,
            platforms=self._runnable_on(kind, found),
            provenance=found.provenance,
            content_hash=found.content_hash,
            published_at=found.published_at,
            updated_at=found.updated_at,
            versions=entry.versions,
        )

    def _concepts(self, vocabulary: str, terms: Sequence[str]) -> list[Concept]:
        try:
            vocab = self.vocabularies.get(vocabulary)
        except UnknownVocabulary:
            return [Concept(term, term) for term in terms]
        return [Concept(term, vocab.label_of(term)) for term in terms]

    def _runnable_on(self, kind: str, version: EntryVersion) -> list[str]:
        try:
            return sorted(self.broker.runnable_on(kind, version.spec.needs.for_broker()))
        except DomainError as error:
            # Which platforms fit is a hint; an unreachable broker must not hide the entry.
            log.warning("cannot ask the broker which platforms run %s: %s", kind, error)
            return []

    # ------------------------------------------------------------------------ search
    def search(self, request: SearchRequest) -> SearchPage:
        """Faceted search: hits resolved to summaries, facet trees, the next page's cursor.

        Raises:
            Invalid: an unknown facet or value (with suggestions), a bad cursor or limit.
        """
        page, encoded = self._search(request)
        return page if page is not None else _PAGE_DECODER.decode(encoded)

    def search_json(self, request: SearchRequest) -> bytes:
        """`search`'s answer as JSON (what `GET /catalogue/search` sends), kept for repeats.

        Raises:
            Invalid: as `search`.
        """
        return self._search(request)[1]

    def _search(self, request: SearchRequest) -> tuple[SearchPage | None, bytes]:
        """The page (None when it came from the cache) and its JSON."""
        if len(request.text) > MAX_TEXT_LENGTH:
            raise Invalid("query too long", [Problem("q", f"at most {MAX_TEXT_LENGTH} characters")])
        limit = request.limit if request.limit is not None else self.page_size
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise Invalid("bad limit", [Problem("limit", f"must be 1 to {MAX_PAGE_SIZE}")])
        shown = facet_problems(request.facets)
        if shown:
            raise Invalid("unknown facets", shown)
        facets = requested_facets(request.facets)
        filters = resolve_filters(request.filters, self.vocabularies)
        self.follow_index()
        text = " ".join(request.text.split())
        # Answers are kept by the index's generation, which every write and switch changes.
        selection = tuple((name, tuple(sorted(values))) for name, values in filters.items())
        counted_key = (self.index.generation(), text, selection, facets)
        page_key = (counted_key, request.sort, request.cursor, limit)
        # While the index lags behind the store, the store's summaries may change under an
        # unchanged generation: those pages are not kept.
        keep_page = self._behind_since is None
        kept = self._pages.get(page_key) if keep_page else None
        if kept is not None:
            return None, kept
        result = self.index.search(
            SearchQuery(
                text=text,
                filters=filters,
                sort=request.sort,
                cursor=request.cursor,
                limit=limit,
                facets=facets,
            )
        )
        views = self._views.get(counted_key)
        if views is None:
            views = facet_views(result.facets, filters, self.vocabularies)
            self._views.put(counted_key, views)
        versions = self.store.current_versions([hit.id for hit in result.hits])
        hits = [
            self._summary(hit.id, versions[hit.id], hit.score)
            for hit in result.hits
            if hit.id in versions  # an index entry the store no longer has: reindex drift
        ]
        page = SearchPage(
            total=result.total,
            hits=hits,
            facets=views,
            next_cursor=result.next_cursor,
            sort=request.sort,
        )
        encoded = _PAGE_ENCODER.encode(page)
        if keep_page:
            self._pages.put(page_key, encoded)
        return page, encoded

    def _summary(self, key: str, version: EntryVersion, score: float) -> EntrySummary:
        spec = version.spec
        return EntrySummary(
            id=key,
            name=spec.name,
            title=spec.title,
            summary=spec.summary,
            version=version.version,
            kind=executable_kind(spec, self.vocabularies),
            licence=spec.licence,
            gpu=spec.needs.gpu,
            subjects=self._concepts(SUBJECTS, spec.subjects),
            functions=self._concepts(FUNCTIONS, spec.functions),
            authors=[author.name for author in spec.authors],
            updated_at=version.updated_at,
            score=score,
        )

    # ------------------------------------------------------------------------ index
    def index_document(self, key: str, version: EntryVersion) -> IndexDocument:
        """The search document of an entry's current version (vocabulary terms + ancestors)."""
        spec = version.spec
        kind = executable_kind(spec, self.vocabularies)
        return IndexDocument(
            id=key,
            name=spec.name,
            title=spec.title,
            summary=spec.summary,
            description=spec.description,
            keywords=tuple(spec.keywords),
            authors=tuple(author.name for author in spec.authors),
            kind=kind,
            subjects=self._closure(SUBJECTS, spec.subjects),
            functions=self._closure(FUNCTIONS, spec.functions),
            messengers=self._closure(MESSENGERS, spec.messengers),
            licence=spec.licence,
            gpu=spec.needs.gpu,
            platforms=tuple(self._runnable_on(kind, version)),
            version=version.version,
            updated=version.updated_at,
        )

    def _closure(self, vocabulary: str, terms: Sequence[str]) -> tuple[str, ...]:
        try:
            return tuple(sorted(with_ancestors(self.vocabularies.get(vocabulary), terms)))
        except UnknownVocabulary:
            return tuple(terms)

    def _index_entries(self, ids: Sequence[str], *, stored_since: datetime) -> bool:
        self.follow_index()
        try:
            versions = self.store.current_versions(ids)
            self.index.upsert(self.index_document(key, v) for key, v in versions.items())
        except Exception as error:  # noqa: BLE001 - stored already: never fail the publish
            log.warning("search index not updated for %d entries: %s", len(ids), error)
            self._mark_behind(stored_since)
            return False
        return True

    def follow_index(self) -> None:
        """Bring the index up to date before using it: cheap when there is nothing to do.

        Switches to a generation another process has rebuilt (then re-applies what was stored
        while that rebuild ran), and retries a catch-up left pending by a failed index update.
        """
        try:
            started = self.index.follow()
        except Exception as error:  # noqa: BLE001 - the index in use still answers
            log.warning("search index: cannot look for a newer generation: %s", error)
            started = None
        if started is not None:
            self._mark_behind(started, retry_now=True)
        self._catch_up()

    def _mark_behind(self, since: datetime, *, retry_now: bool = False) -> None:
        with self._state:
            behind = self._behind_since
            self._behind_since = since if behind is None else min(behind, since)
            self._behind_marks += 1
            if retry_now:
                self._next_attempt = 0.0

    def _catch_up(self) -> None:
        """Re-apply the store's changes since the index fell behind (one thread at a time)."""
        with self._state:
            since, marks = self._behind_since, self._behind_marks
            if since is None or time.monotonic() < self._next_attempt:
                return
            self._next_attempt = time.monotonic() + self.index_retry_seconds
        if not self._catching_up.acquire(blocking=False):
            return  # another thread is at it
        try:
            changes = self.changes_since(since)
            self.index.upsert(changes.documents)
            self.index.delete(changes.removed)
        except Exception as error:  # noqa: BLE001 - tried again later; searches still answer
            log.warning("search index still behind the store since %s: %s", since, error)
            return
        finally:
            self._catching_up.release()
        with self._state:
            if self._behind_marks == marks:  # nothing fell behind while this ran
                self._behind_since = None
        log.info(
            "search index caught up: %d changed and %d withdrawn entries since %s",
            len(changes.documents),
            len(changes.removed),
            since,
        )

    def changes_since(self, since: datetime) -> IndexChanges:
        """What the index needs of the store's changes since `since` (minus the margin)."""
        earliest = datetime.min.replace(tzinfo=UTC) + CATCH_UP_MARGIN
        start = since - CATCH_UP_MARGIN if since > earliest else None
        documents: list[IndexDocument] = []
        removed: list[str] = []
        after: tuple[datetime, str] | None = None
        while True:
            page = self.store.changed_entries(
                after=after, since=start, until=None, limit=CATCH_UP_PAGE, with_versions=True
            )
            for changed in page:
                if changed.withdrawn or changed.version is None:
                    removed.append(changed.id)
                else:
                    documents.append(self.index_document(changed.id, changed.version))
            if len(page) < CATCH_UP_PAGE:
                return IndexChanges(documents=documents, removed=removed)
            after = (page[-1].updated_at, page[-1].id)

    def reindex(self) -> int:
        """Rebuild the whole search index from the store; returns how many entries it holds.

        Safe while a server uses the same index: the new index is built beside the old one and
        swapped in; what is stored while it is built is applied too (here before or right after
        the swap, and by the server when it follows the swap). Also refreshes the "runnable on"
        facet, which depends on the broker's platforms.
        """
        started = self.clock.now()
        return self.index.rebuild(
            (self.index_document(key, version) for key, version in self.store.iter_current()),
            started=started,
            changes=self.changes_since,
        )

    def ensure_index(self) -> int | None:
        """Rebuild the index when it does not hold what the store holds (a new or lost index).

        Returns:
            The number of documents indexed, or None when nothing had to be done.
        """
        self.follow_index()
        if self.index.count() == self.store.count():
            return None
        return self.reindex()

    # ------------------------------------------------------------------------ hand-off
    def hand_off(
        self, entry_id: str, overrides: HandOff, base_url: str, *, requester: str | None = None
    ) -> OfferAnswer:
        """Ask the broker for offers to run an entry: its executable, needs and the overrides.

        `requester` (who asks) becomes the offer set's owner at the broker.

        Raises:
            NotFound: no such entry or version.
            Conflict: the entry is withdrawn.
            Invalid: an override is wrong (the field is named).
        """
        detail = self.get(entry_id, overrides.version)
        if detail.withdrawn:
            raise Conflict(f"entry {entry_id!r} is withdrawn; it cannot be run")
        request = handoff.execution_request(
            detail.spec, overrides, name=f"{detail.name}-{detail.version}"
        )
        return self.broker.request_offers(request, base_url, requester=requester)
