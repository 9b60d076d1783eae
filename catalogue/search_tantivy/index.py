"""`TantivySearchIndex`: the `SearchIndex` port over tantivy, and its index directory.

On disk, `path` holds `CURRENT` and one folder per generation (`v<schema>-<random>`).
`CURRENT` names the live generation and, after a rebuild, the instant the rebuild started
reading the store; it is replaced atomically (`os.replace`), the file-system counterpart of
OpenSearch's alias move. `rebuild` fills a fresh generation and only then points `CURRENT` at
it, so a failed rebuild leaves the old index serving.

Several processes may use one index directory (the server, and `voexec reindex` beside it):

- tantivy lets one `IndexWriter` per generation exist at a time; a rebuild writes only into its
  own new generation, so it never needs the writer another process holds;
- each process holds a shared `flock` on `.voexec-in-use` inside every generation it has open;
  a generation is deleted only by whoever can lock it exclusively (nobody uses it any more) and
  only when `CURRENT` does not name it;
- `follow()` notices (one `stat` of `CURRENT`) that another process has swapped in a new
  generation, switches to it, and returns when that rebuild started, so that the caller re-applies
  the store's changes since then (entries published while the rebuild ran).

Writes take a lock, commit, and reload the searcher, so the next search sees them; searches
run concurrently on the searcher of the last commit. A write that fails is rolled back (or its
writer dropped) and reported as `Unavailable`, never as tantivy's own error.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import tantivy
from tantivy import Query

from catalogue.facets import (
    active_filters,
    check_query,
    decode_cursor,
    encode_cursor,
    requested_facets,
)
from catalogue.ports import ChangesSince, IndexDocument, SearchHit, SearchQuery, SearchResult
from catalogue.search_tantivy.pages import keyed_page, ranked_page
from catalogue.search_tantivy.queries import (
    Counted,
    FacetCounts,
    conjunction,
    count_facets,
    filter_queries,
    recalled_counts,
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

COUNT_CACHE_SIZE: Final = 1024
"""Filter sets whose facet counts are kept: a search with two facets selected uses three (one
counting the five others, two counting one facet each), so about as many searches' counts as
the 256 whole answers kept before, in about as much memory."""
COUNT_WORKERS: Final = 4
"""Threads counting facets while searches find their pages."""
POINTER: Final = "CURRENT"
"""The file naming the live generation (first line) and when its rebuild started (second)."""
META: Final = "meta.json"
"""tantivy's list of an index's segments, rewritten by every commit and merge."""
IN_USE: Final = ".voexec-in-use"
"""Lock file inside each generation: shared by its users, exclusive for whoever deletes it."""
UNKNOWN_START: Final = datetime.min.replace(tzinfo=UTC)
"""What `follow` returns for a generation whose rebuild start was not recorded: everything."""
NEW_GENERATION_ATTEMPTS: Final = 3
"""A new folder can be swept by another process before its lock is taken: try again."""


class CountCache:
    """Facet counts by (index generation, text, filter set), the least recently used forgotten.

    Paging through results, the browse page everyone opens, and a search narrowed one facet at
    a time ask for counts counted before; counting every facet over 1M entries costs tens of
    milliseconds, a lookup nothing. Keys carry the generation, which every write bumps, so
    counts are never stale.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, Counted] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Counted | None:
        """The counts stored under `key`, if still kept."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def add(self, key: Hashable, counted: Counted) -> None:
        """Keep `counted` under `key`, beside what is kept there already."""
        with self._lock:
            kept = self._entries.pop(key, None)
            if kept is not None:
                hits = counted.hits if counted.hits is not None else kept.hits
                counted = Counted({**kept.buckets, **counted.buckets}, hits)
            self._entries[key] = counted
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class TextCounts:
    """A `CountMemory`: the cache's counts for one generation and text."""

    def __init__(self, cache: CountCache, prefix: tuple[Hashable, ...]) -> None:
        self._cache = cache
        self._prefix = prefix

    def recall(self, filters: Mapping[str, tuple[str, ...]]) -> Counted | None:
        """What was counted under `filters` for this text and generation, if kept."""
        return self._cache.get(self._key(filters))

    def keep(self, filters: Mapping[str, tuple[str, ...]], counted: Counted) -> None:
        """Keep what was counted under `filters` for this text and generation."""
        self._cache.add(self._key(filters), counted)

    def _key(self, filters: Mapping[str, tuple[str, ...]]) -> Hashable:
        return (*self._prefix, tuple(sorted((f, tuple(sorted(v))) for f, v in filters.items())))


class Generation:
    """One generation this process has open: its tantivy index, folder and in-use lock."""

    def __init__(self, index: tantivy.Index, directory: Path | None, lock: int | None) -> None:
        self.index = index
        self.directory = directory
        self._lock = lock
        self.loaded: tuple[int, ...] = self.commit_stamp()
        """`commit_stamp()` when the searcher was last reloaded."""

    def commit_stamp(self) -> tuple[int, ...]:
        """Identity of the generation's `meta.json`, which every commit and merge rewrites.

        A commit by another process (a harvest beside the server) changes it too, which this
        process's own write counter cannot see. () in memory, or while the file is being replaced.
        """
        if self.directory is None:
            return ()
        try:
            return identity(os.stat(self.directory / META))
        except FileNotFoundError:
            return ()

    @property
    def name(self) -> str:
        """The folder name (what `CURRENT` holds), or "" in memory."""
        return self.directory.name if self.directory else ""

    def release(self) -> None:
        """Let go of the in-use lock: another process may now delete the folder."""
        if self._lock is not None:
            lock, self._lock = self._lock, None
            os.close(lock)  # closing the descriptor drops its flock

    def discard(self) -> None:
        """Delete a generation that never served (a failed rebuild)."""
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.release()


def hold(directory: Path) -> int:
    """Take the shared in-use lock of a generation folder; returns the descriptor.

    Raises:
        FileNotFoundError: the folder is gone (another process swept it).
    """
    lock = os.open(directory / IN_USE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_SH)  # waits only while a sweeper deletes the folder
        if os.fstat(lock).st_nlink == 0:
            raise FileNotFoundError(f"{directory} was deleted")
    except BaseException:
        os.close(lock)
        raise
    return lock


def sweep(root: Path, keep: set[str]) -> None:
    """Delete the generation folders under `root` that nobody uses, except those in `keep`."""
    for folder in root.glob("v*-*"):
        if folder.name in keep or not folder.is_dir():
            continue
        try:
            lock = os.open(folder / IN_USE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue  # swept by another process meanwhile
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)  # another process serves or builds it
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)  # an old one, a crashed rebuild, a schema
        finally:
            os.close(lock)


class Pointer:
    """What `CURRENT` said when read: the generation, the rebuild's start, the file's identity."""

    def __init__(self, name: str, started: datetime | None, identity: tuple[int, ...]) -> None:
        self.name = name
        self.started = started
        self.identity = identity


def read_pointer(root: Path) -> Pointer | None:
    """`CURRENT` under `root`, or None when there is none."""
    try:
        with (root / POINTER).open(encoding="utf-8") as file:
            stat = os.fstat(file.fileno())
            lines = file.read().split()
    except FileNotFoundError:
        return None
    started = None
    if len(lines) > 1:
        try:
            started = datetime.fromisoformat(lines[1])
        except ValueError:
            log.warning("search index %s: unreadable rebuild start %r", root, lines[1])
    return Pointer(lines[0] if lines else "", started, identity(stat))


def identity(stat: os.stat_result) -> tuple[int, ...]:
    """What changes when `CURRENT` is replaced (a new inode) or rewritten."""
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def write_pointer(root: Path, name: str, started: datetime | None) -> tuple[int, ...]:
    """Point `CURRENT` at generation `name`, atomically; returns the new file's identity."""
    pending = root / f"{POINTER}.{uuid.uuid4().hex[:8]}.tmp"  # unique: processes may race
    lines = [name] + ([started.isoformat()] if started else [])
    pending.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stat = pending.stat()
    os.replace(pending, root / POINTER)
    return identity(stat)


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
        self._seen: tuple[int, ...] = ()
        """Identity of the `CURRENT` file this process last acted on."""
        self._live = self._open_current()

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

    def rebuild(
        self,
        documents: Iterable[IndexDocument],
        *,
        started: datetime | None = None,
        changes: ChangesSince | None = None,
    ) -> int:
        """Index `documents` into a fresh generation, then swap it in; returns how many it holds.

        With `started` and `changes`, the store's changes since `started` are applied to the
        new generation before `CURRENT` points at it, and `started` is recorded there for the
        other processes' `follow()`. Searches keep using the old generation until the swap;
        this process's writes wait for the rebuild, and no other process's writer is needed. If
        reading `documents` or indexing fails, the new generation is deleted and the old one
        keeps serving.
        """
        with self._lock:
            fresh = self._new_generation()
            try:
                writer = fresh.index.writer(self._heap, self._threads)
                seen: set[str] = set()
                for doc in documents:
                    if doc.id in seen:
                        writer.delete_documents_by_term("id", doc.id)
                    seen.add(doc.id)
                    writer.add_document(to_tantivy(doc))
                if changes is not None and started is not None:
                    caught = changes(started)
                    self._replace(writer, caught.documents)
                    for entry_id in caught.removed:
                        writer.delete_documents_by_term("id", entry_id)
                writer.commit()
                writer.wait_merging_threads()
                fresh.index.reload()
            except BaseException:
                fresh.discard()
                raise
            self._switch_to(fresh)
            if self._root is not None:
                self._seen = write_pointer(self._root, fresh.name, started)
            self.needs_rebuild = False
            held = int(fresh.index.searcher().num_docs)
        self._sweep()
        return held

    def follow(self) -> datetime | None:
        """Switch to the generation another process swapped in, if any (one `stat` if none).

        Returns:
            When that generation's rebuild started reading the store (`UNKNOWN_START` when it
            did not say): changes stored since may be missing from it, and the caller applies
            them again. None when this process already uses the live generation.
        """
        if not self._pointer_moved():
            return None
        with self._lock:
            pointer = self._adopt_pointer()
        if pointer is None:
            return None
        log.info("search index: switched to generation %s", pointer.name)
        self._sweep()
        return pointer.started or UNKNOWN_START

    def count(self) -> int:
        """How many documents the index holds."""
        return int(self._live.index.searcher().num_docs)

    def generation(self) -> tuple[str, int, tuple[int, ...]]:
        """Changes with every write and switch of this process and every commit of another.

        One `stat` of the live generation's `meta.json`; when it changed behind this process's
        back, the searcher is reloaded first, so answers keyed by the value are never older than
        it. (tantivy would reload on its own, but only after a delay.)
        """
        live = self._live
        counter = self._generation
        stamp = live.commit_stamp()
        if stamp != live.loaded:
            try:
                live.index.reload()
            except ValueError as error:  # the reader keeps its last state; try again next time
                log.warning("search index not reloaded: %s", error)
            else:
                live.loaded = stamp
        return live.name, counter, stamp

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
        facets = requested_facets(query.facets)
        generation = self.generation()  # before the searcher: a key never outlives its data
        searcher = self._live.index.searcher()
        text = text_query(searcher, query.text)
        matching = text.matching if text is not None else None
        memory = TextCounts(self._counts, (generation, query.text))
        # Everything kept: no counting. Otherwise tantivy releases the GIL while it counts: the
        # facets are counted on a worker thread while this one finds the page.
        counted = recalled_counts(filters, facets, memory)
        counting = None
        if counted is None:
            counting = self._count_in_background(searcher, matching, filters, facets, memory)
        if text is not None and query.sort == "relevance":
            # Not narrowed by `matching` as well: at 1M entries that made the page dearer.
            ranked = conjunction([*filter_queries(filters), text.scored])
            window = ranked_page(searcher, ranked, cursor, query.limit)
        else:
            sort = KEYED_SORTS[query.sort]
            base = conjunction(filter_queries(filters) + ([matching] if matching else []))
            window = keyed_page(searcher, base, sort, cursor, query.limit)
        if counted is None:
            if counting is not None:
                counted = counting.result()
            else:
                counted = count_facets(searcher, matching, filters, facets, memory)
        counts, total = counted
        hits = [SearchHit(doc_id, score) for score, doc_id in window.hits]
        next_cursor = None
        if window.more and window.last is not None:
            next_cursor = encode_cursor(query, window.last, window.hint)
        return SearchResult(total=total, hits=hits, facets=counts, next_cursor=next_cursor)

    def _count_in_background(
        self,
        searcher: tantivy.Searcher,
        text: Query | None,
        filters: dict[str, tuple[str, ...]],
        facets: tuple[str, ...],
        memory: TextCounts,
    ) -> Future[FacetCounts] | None:
        try:
            return self._workers.submit(count_facets, searcher, text, filters, facets, memory)
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
                self._abandon(writer)  # never let a later commit publish half of this write
                if isinstance(error, ValueError | OSError):
                    message = f"the search index could not be written: {error}"
                    raise Unavailable(message) from error
                raise
            try:
                self._live.index.reload()
            except ValueError as error:  # committed: the reader catches up on its own
                log.warning("search index committed but not reloaded: %s", error)
            else:
                self._live.loaded = self._live.commit_stamp()
            self._generation += 1

    def _abandon(self, writer: tantivy.IndexWriter) -> None:
        """Undo a failed write; a writer that cannot even roll back is dropped (a new one next)."""
        try:
            writer.rollback()
        except (ValueError, OSError) as error:
            log.warning("search index writer dropped after a failed rollback: %s", error)
            self._writer = None

    @staticmethod
    def _replace(writer: tantivy.IndexWriter, documents: Iterable[IndexDocument]) -> None:
        for doc in documents:
            # A delete applies to documents added before it, so delete-then-add replaces.
            writer.delete_documents_by_term("id", doc.id)
            writer.add_document(to_tantivy(doc))

    def _writer_for_current(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self._live.index.writer(self._heap, self._threads)
            except ValueError as error:
                raise Unavailable(f"the search index is locked or unusable: {error}") from error
        return self._writer

    def _close_writer(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.wait_merging_threads()
            except (ValueError, OSError) as error:  # its folder may be gone: nothing to keep
                log.warning("search index writer closed with an error: %s", error)

    def _switch_to(self, fresh: Generation) -> None:
        """Serve `fresh` from now on (lock held); the old generation's writer and lock go."""
        self._close_writer()
        old, self._live = self._live, fresh
        self._generation += 1
        old.release()

    def _pointer_moved(self) -> bool:
        if self._root is None:
            return False
        try:
            return identity(os.stat(self._root / POINTER)) != self._seen
        except FileNotFoundError:
            return False

    def _adopt_pointer(self) -> Pointer | None:
        """Switch to the generation `CURRENT` names when it is another (lock held).

        Returns:
            The pointer switched to, or None when this process stays where it is.
        """
        assert self._root is not None
        pointer = read_pointer(self._root)
        if pointer is None or pointer.identity == self._seen:
            return None  # another thread has just switched
        self._seen = pointer.identity
        if pointer.name == self._live.name:
            return None
        try:
            fresh = self._open_generation(self._root / pointer.name)
        except (OSError, ValueError) as error:
            log.warning("search index %s cannot be opened (%s)", pointer.name, error)
            return None
        self._switch_to(fresh)
        return pointer

    def _sweep(self) -> None:
        if self._root is None:
            return
        pointer = read_pointer(self._root)
        sweep(self._root, {self._live.name} | ({pointer.name} if pointer else set()))

    def _make_index(self, directory: Path | None) -> tantivy.Index:
        index = tantivy.Index(SCHEMA, path=str(directory) if directory else None, reuse=True)
        for name, analyser in ANALYZERS.items():
            index.register_tokenizer(name, analyser)
        # Writes reload explicitly (visible at once); "commit" also picks up background merges.
        index.config_reader(reload_policy="commit")
        return index

    def _new_generation(self) -> Generation:
        if self._root is None:
            return Generation(self._make_index(None), None, None)
        self._root.mkdir(parents=True, exist_ok=True)
        for attempt in range(NEW_GENERATION_ATTEMPTS):
            directory = self._root / f"v{SCHEMA_VERSION}-{uuid.uuid4().hex[:12]}"
            directory.mkdir()
            try:
                return self._open_generation(directory)
            except FileNotFoundError:
                if attempt + 1 == NEW_GENERATION_ATTEMPTS:
                    raise Unavailable(f"cannot create a search index in {self._root}") from None
            except (ValueError, OSError) as error:
                shutil.rmtree(directory, ignore_errors=True)
                raise Unavailable(
                    f"cannot create a search index in {directory}: {error}"
                ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_generation(self, directory: Path) -> Generation:
        """Lock and open one generation folder (FileNotFoundError: it has gone)."""
        lock = hold(directory)
        try:
            return Generation(self._make_index(directory), directory, lock)
        except BaseException:
            os.close(lock)
            raise

    def _open_current(self) -> Generation:
        if self._root is None:
            self.needs_rebuild = True
            return self._new_generation()
        self._root.mkdir(parents=True, exist_ok=True)
        pointer = read_pointer(self._root)
        opened: Generation | None = None
        if pointer and pointer.name.startswith(f"v{SCHEMA_VERSION}-"):
            try:
                opened = self._open_generation(self._root / pointer.name)
                self._seen = pointer.identity
            except FileNotFoundError:
                log.warning("search index %s is missing; starting empty", pointer.name)
            except ValueError as error:
                log.warning("search index %s is unusable (%s); starting empty", pointer.name, error)
        if opened is None:
            opened = self._new_generation()
            self.needs_rebuild = True
            self._seen = write_pointer(self._root, opened.name, None)
        sweep(self._root, {opened.name})
        return opened
