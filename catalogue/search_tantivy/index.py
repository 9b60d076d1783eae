"""`TantivySearchIndex`: the `SearchIndex` port over tantivy, and its index directory.

On disk, `path` holds `CURRENT` (the name of the live generation) and one directory per
generation. `rebuild` fills a fresh generation and only then points `CURRENT` at it, so a failed
rebuild leaves the old index serving. One process owns an index directory (tantivy's writer
lock); many processes sharing one index is what the OpenSearch adapter is for.

Writes take a lock, commit, and reload the searcher, so the next search sees them; searches
run concurrently on the searcher of the last commit.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

import tantivy
from tantivy import Query

from catalogue.facets import active_filters, check_query, decode_cursor, encode_cursor
from catalogue.ports import IndexDocument, SearchHit, SearchQuery, SearchResult
from catalogue.search_tantivy.pages import keyed_page, ranked_page
from catalogue.search_tantivy.queries import (
    FacetCounts,
    conjunction,
    count_facets,
    filter_queries,
    text_query,
)
from catalogue.search_tantivy.schema import (
    ANALYZERS,
    KEYED_SORTS,
    SCHEMA,
    SCHEMA_VERSION,
    to_tantivy,
)
from core.errors import Unavailable

log = logging.getLogger(__name__)

COUNT_CACHE_SIZE: Final = 256
"""Facet count results kept for repeated queries and later pages."""
COUNT_WORKERS: Final = 4
"""Threads counting facets while searches find their pages."""


class CountCache:
    """The latest facet counts and totals by (index generation, text, filters).

    Paging through results, and the browse page everyone opens, ask for the same counts again;
    counting every facet over 100k entries costs ~10 ms, a lookup nothing. Keys carry the
    generation, which every write bumps, so counts are never stale.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, FacetCounts] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> FacetCounts | None:
        """The counts stored under `key`, if still kept."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, counts: FacetCounts) -> None:
        """Keep `counts` under `key`, forgetting the least recently used beyond the size."""
        with self._lock:
            self._entries[key] = counts
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class TantivySearchIndex:
    """`SearchIndex` over tantivy: on disk under `path`, or in memory when `path` is None.

    Writes are serialised by a lock and visible to the next search; searches run concurrently
    on the searcher of the last commit.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        writer_heap_bytes: int = 64_000_000,
        writer_threads: int = 1,
        count_cache_size: int = COUNT_CACHE_SIZE,
    ) -> None:
        """Open (or create) the index.

        Args:
            path: Index directory, created when missing; None keeps the index in memory.
            writer_heap_bytes: Indexing memory per writer thread (tantivy needs at least 15 MB).
            writer_threads: Indexing threads.
            count_cache_size: Facet count results kept for repeated queries (0: none).
        """
        self._root = path
        self._heap = writer_heap_bytes
        self._threads = writer_threads
        self._lock = threading.Lock()
        self._writer: tantivy.IndexWriter | None = None
        self.needs_rebuild = False
        """True when the index was created empty on opening (new, or of another schema)."""
        self._generation = 0
        """Bumped after every write, once the write is visible to searches."""
        self._counts = CountCache(count_cache_size)
        self._workers = ThreadPoolExecutor(COUNT_WORKERS, thread_name_prefix="search-counts")
        self._index, self._directory = self._open_current()

    # ------------------------------------------------------------------ writes
    def upsert(self, documents: Iterable[IndexDocument]) -> None:
        """Add or replace documents by id (the last of duplicate ids wins)."""
        latest = {doc.id: doc for doc in documents}
        if latest:
            self._write(lambda writer: self._replace(writer, latest.values()))

    def delete(self, ids: Iterable[str]) -> None:
        """Remove documents by id; unknown ids are ignored."""
        unique = list(dict.fromkeys(ids))
        if unique:
            self._write(lambda writer: [writer.delete_documents_by_term("id", i) for i in unique])

    def rebuild(self, documents: Iterable[IndexDocument]) -> int:
        """Index `documents` into a fresh generation, then swap it in; returns how many.

        Searches keep using the old generation until the swap; writes wait for the rebuild. If
        reading `documents` or indexing fails, the new generation is deleted and the old one
        keeps serving.
        """
        with self._lock:
            index, directory = self._new_generation()
            try:
                writer = index.writer(self._heap, self._threads)
                seen: set[str] = set()
                for doc in documents:
                    if doc.id in seen:
                        writer.delete_documents_by_term("id", doc.id)
                    seen.add(doc.id)
                    writer.add_document(to_tantivy(doc))
                writer.commit()
                writer.wait_merging_threads()
                index.reload()
            except BaseException:
                if directory is not None:
                    shutil.rmtree(directory, ignore_errors=True)
                raise
            self._close_writer()
            old = self._directory
            self._index, self._directory = index, directory
            self._generation += 1
            if directory is not None:
                self._point_current_at(directory)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            self.needs_rebuild = False
            return len(seen)

    def count(self) -> int:
        """How many documents the index holds."""
        return int(self._index.searcher().num_docs)

    def close(self) -> None:
        """Finish background merges, release the writer (and its directory lock) and workers.

        The index stays usable: a later write opens a writer again, searches count facets in
        the caller's thread.
        """
        with self._lock:
            self._close_writer()
        self._workers.shutdown(wait=True)

    # ------------------------------------------------------------------ search
    def search(self, query: SearchQuery) -> SearchResult:
        """Run a faceted query; see `SearchIndex.search`.

        Raises:
            Invalid: For an unknown facet, a bad cursor, limit, sort or over-long text.
        """
        check_query(query)
        cursor = decode_cursor(query)
        filters = active_filters(query.filters)
        generation = self._generation
        searcher = self._index.searcher()
        text = text_query(searcher, query.text)
        counts_key = (
            generation,
            query.text,
            tuple((f, tuple(sorted(v))) for f, v in filters.items()),
        )
        counted = self._counts.get(counts_key)
        # tantivy releases the GIL while it searches: count the facets on a worker thread while
        # this one finds the page (the two cost about the same).
        counting = None if counted else self._count_in_background(searcher, text, filters)
        base = conjunction([q for q in (text,) if q is not None] + filter_queries(filters))
        if text is not None and query.sort == "relevance":
            window = ranked_page(searcher, base, cursor, query.limit)
        else:
            window = keyed_page(searcher, base, KEYED_SORTS[query.sort], cursor, query.limit)
        if counted is None:
            counted = counting.result() if counting else count_facets(searcher, text, filters)
            self._counts.put(counts_key, counted)
        facets, total = counted
        hits = [SearchHit(doc_id, score) for score, doc_id in window.hits]
        next_cursor = None
        if window.more and window.last is not None:
            next_cursor = encode_cursor(query, window.last, window.hint)
        return SearchResult(total=total, hits=hits, facets=facets, next_cursor=next_cursor)

    def _count_in_background(
        self, searcher: tantivy.Searcher, text: Query | None, filters: dict[str, tuple[str, ...]]
    ) -> Future[FacetCounts] | None:
        try:
            return self._workers.submit(count_facets, searcher, text, filters)
        except RuntimeError:  # closed: the caller counts in its own thread
            return None

    # ------------------------------------------------------------------ storage
    def _write(self, change: Callable[[tantivy.IndexWriter], object]) -> None:
        with self._lock:
            writer = self._writer_for_current()
            try:
                change(writer)
                writer.commit()
            except BaseException as error:
                writer.rollback()  # never let a later commit publish half of this write
                if isinstance(error, ValueError | OSError):
                    message = f"the search index could not be written: {error}"
                    raise Unavailable(message) from error
                raise
            self._index.reload()
            self._generation += 1

    @staticmethod
    def _replace(writer: tantivy.IndexWriter, documents: Iterable[IndexDocument]) -> None:
        for doc in documents:
            # A delete applies to documents added before it, so delete-then-add replaces.
            writer.delete_documents_by_term("id", doc.id)
            writer.add_document(to_tantivy(doc))

    def _writer_for_current(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self._index.writer(self._heap, self._threads)
            except ValueError as error:
                raise Unavailable(f"the search index is locked or unusable: {error}") from error
        return self._writer

    def _close_writer(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.wait_merging_threads()

    def _make_index(self, directory: Path | None) -> tantivy.Index:
        index = tantivy.Index(SCHEMA, path=str(directory) if directory else None, reuse=True)
        for name, analyser in ANALYZERS.items():
            index.register_tokenizer(name, analyser)
        # Writes reload explicitly (visible at once); "commit" also picks up background merges.
        index.config_reader(reload_policy="commit")
        return index

    def _new_generation(self) -> tuple[tantivy.Index, Path | None]:
        if self._root is None:
            return self._make_index(None), None
        directory = self._root / f"v{SCHEMA_VERSION}-{uuid.uuid4().hex[:12]}"
        directory.mkdir(parents=True)
        try:
            return self._make_index(directory), directory
        except (ValueError, OSError) as error:
            shutil.rmtree(directory, ignore_errors=True)
            raise Unavailable(f"cannot create a search index in {directory}: {error}") from error

    def _open_current(self) -> tuple[tantivy.Index, Path | None]:
        if self._root is None:
            self.needs_rebuild = True
            return self._new_generation()
        self._root.mkdir(parents=True, exist_ok=True)
        pointer = self._root / "CURRENT"
        name = pointer.read_text(encoding="utf-8").strip() if pointer.exists() else ""
        directory = self._root / name if name else None
        opened: tuple[tantivy.Index, Path | None] | None = None
        if directory and name.startswith(f"v{SCHEMA_VERSION}-") and directory.is_dir():
            try:
                opened = self._make_index(directory), directory
            except ValueError as error:
                log.warning("search index %s is unusable (%s); starting empty", directory, error)
        if opened is None:
            opened = self._new_generation()
            self.needs_rebuild = True
            assert opened[1] is not None
            self._point_current_at(opened[1])
        for stale in self._root.glob("v*-*"):
            if stale != opened[1] and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)  # a crashed rebuild or an old schema
        return opened

    def _point_current_at(self, directory: Path) -> None:
        assert self._root is not None
        pending = self._root / "CURRENT.tmp"
        pending.write_text(directory.name + "\n", encoding="utf-8")
        os.replace(pending, self._root / "CURRENT")
