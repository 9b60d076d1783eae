"""The OpenSearch `SearchIndex` adapter: one catalogue index shared by many voexec processes.

Owns the cluster client (built in `make_client` only), the alias the catalogue is served from,
bulk writes, the zero-downtime rebuild, and the translation of every client failure into
`core.errors.Unavailable` (so the API answers 503 with a reason, never 500). It is the only
module that imports `opensearchpy`; the mapping and the query DSL are pure data built by
`catalogue.opensearch_queries`.

Searches and writes go through the alias (`OpenSearchSearch.index`). `rebuild` follows
warehouse's `search/tasks.py`: create `<alias>-<timestamp>`, bulk-load it with refreshes and
replicas off, restore them, refresh, move the alias to it in one atomic request, then delete the
index the alias left. If anything fails before the move, the half-built index is deleted and the
alias never left the old one: searches answer throughout.

The same documents and queries give the same totals, facet counts, filter semantics, sort
orders and cursor walks as the tantivy adapter, and the exact name first. Relevance scores are
Lucene's BM25, not tantivy's, so text hits after the first may come in another order.

Across processes: upserts that another process makes while this one rebuilds go to the old
index; given `changes`, `rebuild` re-applies the store's changes since it started through the
alias right after the move, so none is lost (writes after the move reach the new index anyway).
Within one process, writes wait for a rebuild to finish. Every process writes through the alias,
so none has anything to switch: `follow` is a no-op.

Must not import: the broker, web frameworks, SQL, tantivy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import (
    AuthorizationException,
    NotFoundError,
    OpenSearchException,
    RequestError,
    TransportError,
)
from opensearchpy.exceptions import (
    ConnectionError as ClusterUnreachable,
)
from opensearchpy.helpers import BulkIndexError

from catalogue.facets import check_query, decode_cursor
from catalogue.opensearch_queries import (
    FILTER_PATH,
    SERVING_SETTINGS,
    check_alias,
    delete_action,
    empty_result,
    index_action,
    index_body,
    known_words,
    known_words_request,
    query_words,
    read_result,
    to_dsl,
)
from catalogue.ports import ChangesSince, IndexDocument, SearchQuery, SearchResult
from core.errors import Unavailable
from core.settings import OpenSearchSearch

log = logging.getLogger(__name__)

REQUEST_TIMEOUT: Final = 30.0
"""Seconds one request may take (a bulk chunk, a search) before the cluster counts as down."""
CONNECT_RETRIES: Final = 2
"""Retries of a request whose connection failed, before `Unavailable`."""
BULK_CHUNK: Final = 500
"""Documents per bulk request."""
BULK_CHUNK_BYTES: Final = 10 * 2**20
BULK_RETRIES: Final = 3
"""Retries (with back-off) of documents the cluster rejected as too busy (429)."""
MERGE_TIMEOUT: Final = 3600.0
"""Seconds the force merge at the end of a rebuild may take (minutes for a million entries)."""
SWAP_ATTEMPTS: Final = 3
"""Alias moves retried when another process moved the alias at the same moment."""
KNOWN_WORDS_KEPT: Final = 10_000
"""Words whose presence in the index (`_known_words`) one process remembers per generation."""
GENERATION_SECONDS: Final = 1.0
"""The serving index's refresh interval (`SERVING_SETTINGS`): how long `generation` holds."""
INITIAL_SUFFIX: Final = "initial"
"""Name suffix of the empty index made when the alias does not exist yet. A fixed name, so two
processes starting together make one index, not two behind one alias."""


def make_client(settings: OpenSearchSearch, *, timeout: float = REQUEST_TIMEOUT) -> OpenSearch:
    """The one place an OpenSearch client is built from settings."""
    auth = (settings.username, settings.password or "") if settings.username else None
    return OpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        ssl_show_warn=settings.verify_certs,
        timeout=timeout,
        max_retries=CONNECT_RETRIES,
        retry_on_timeout=False,
    )


def _without_credentials(url: str) -> str:
    """`url` fit for messages and logs: any `user:password@` removed."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _error_reason(error: TransportError) -> str:
    """The cluster's own reason for an error answer (`index_not_found_exception`, ...)."""
    info = error.info if isinstance(error.info, dict) else {}
    cause = info.get("error", {})
    if isinstance(cause, dict):
        return f"{cause.get('type', error.error)}: {cause.get('reason', '')}".rstrip(": ")
    return str(error.error)


def _first_bulk_error(errors: Sequence[Any]) -> str:
    """The reason of the first failed item of a bulk answer (`{"index": {"error": ...}}`)."""
    for item in errors:
        for outcome in item.values() if isinstance(item, dict) else ():
            cause = outcome.get("error") if isinstance(outcome, dict) else None
            if isinstance(cause, dict):
                return f"{cause.get('type')}: {cause.get('reason')}"
            if cause:
                return str(cause)
    return "no reason given"


class OpenSearchIndex:
    """`SearchIndex` over an OpenSearch cluster, served from an alias.

    The constructor does no I/O. The alias (and an empty index behind it) is created by the
    first write; until then searches find nothing and `count` is 0, so the catalogue's start-up
    check rebuilds it from the store.
    """

    def __init__(
        self,
        settings: OpenSearchSearch,
        *,
        alias: str | None = None,
        synonyms: Sequence[str] = (),
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        """Prepare the adapter.

        Args:
            settings: The cluster URL, credentials and (unless `alias` is given) the alias.
            alias: Alias to serve from instead of `settings.index` (tests use a unique one).
            synonyms: Solr-format synonym rules, one per item (`"cmb, cosmic microwave
                background"`), typically built by the caller from vocabulary labels and
                alternative labels. They apply to indices created from now on: a rebuild
                picks up new ones.
            timeout: Seconds one request may take.

        Raises:
            ConfigError: when the alias is not a valid OpenSearch name.
        """
        self.alias = check_alias(alias or settings.index)
        self._synonyms = tuple(synonyms)
        self._where = _without_credentials(settings.url)
        self._client = make_client(settings, timeout=timeout)
        self._lock = threading.Lock()
        self._alias_ready = False
        self._writes = 0
        """Bumped after every write and rebuild of this process (see `generation`)."""
        self._known: tuple[object, dict[str, bool]] = (None, {})
        """The generation and, within it, whether the index holds each word looked up."""
        self._lookup_refused = False

    # ------------------------------------------------------------------ writes
    def upsert(self, documents: Iterable[IndexDocument]) -> None:
        """Add or replace documents by id (the last of duplicate ids wins); visible at once."""
        latest = {doc.id: doc for doc in documents}
        if not latest:
            return
        self._write(
            "index documents", lambda: (index_action(self.alias, d) for d in latest.values())
        )

    def delete(self, ids: Iterable[str]) -> None:
        """Remove documents by id; unknown ids are ignored; gone from the next search."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return
        self._write(
            "delete documents",
            lambda: (delete_action(self.alias, entry_id) for entry_id in unique),
            ignore_status=(404,),  # not there: nothing to delete
        )

    def rebuild(
        self,
        documents: Iterable[IndexDocument],
        *,
        started: datetime | None = None,
        changes: ChangesSince | None = None,
    ) -> int:
        """Load `documents` into a new index and move the alias to it; returns how many it holds.

        Searches keep answering from the old index until the alias moves. If the cluster fails
        (`Unavailable`) or `documents` raises (re-raised as it is), the new index is deleted and
        the alias stays where it was. Then `changes(started)`, when given, is written through
        the alias: what other processes stored while this one read `documents`.
        """
        held = self._rebuild(documents)
        if changes is None or started is None:
            return len(held)
        caught = changes(started)
        self.upsert(caught.documents)
        self.delete(caught.removed)
        return len((held | {doc.id for doc in caught.documents}) - set(caught.removed))

    def follow(self) -> datetime | None:
        """Nothing to follow: every process searches and writes through the alias."""
        return None

    def generation(self) -> tuple[int, int]:
        """This process's writes, and the current refresh interval's number.

        Another process's writes become searchable at the cluster's next refresh (every
        `GENERATION_SECONDS`), which this process cannot see: answers keyed by the value last
        one interval at most, so they are never older than the cluster's own delay doubled.
        """
        return self._writes, int(time.monotonic() // GENERATION_SECONDS)

    def _rebuild(self, documents: Iterable[IndexDocument]) -> set[str]:
        with self._lock:
            name = f"{self.alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
            with self._answering(f"create the index {name}"):
                self._client.indices.create(
                    index=name, body=index_body(self._synonyms, loading=True)
                )
            seen: set[str] = set()

            def actions() -> Iterator[dict[str, Any]]:
                for doc in documents:
                    seen.add(doc.id)
                    yield index_action(name, doc)

            try:
                with self._answering(f"load the new index {name}"):
                    self._bulk(actions(), refresh=False)
                self._merge(name)
                with self._answering(f"load the new index {name}"):
                    self._client.indices.put_settings(index=name, body=SERVING_SETTINGS)
                    self._client.indices.refresh(index=name)
                with self._answering(f"move the alias {self.alias} to {name}"):
                    replaced = self._move_alias(name)
            except BaseException:
                # A move that timed out on our side may still have happened: never delete the
                # index the alias serves.
                if not self._serves(name):
                    self._delete_indices([name], why="the rebuild failed")
                raise
            self._alias_ready = True
            self._writes += 1
            self._delete_indices(replaced, why="the rebuild replaced it")
            log.info("search index %s rebuilt as %s: %d entries", self.alias, name, len(seen))
            return seen

    def _merge(self, name: str) -> None:
        """Merge the freshly loaded index `name` into one segment, before it serves.

        A bulk load leaves a dozen segments; every query then looks each word up, and runs its
        misspelling automata, once per segment. One segment made the faceted query's `took`
        about a quarter shorter at 100,000 entries (docs/benchmarks.md). Best effort: the
        index serves as well, only slower, when the merge fails or outlasts `MERGE_TIMEOUT`
        (the cluster then goes on merging by itself).
        """
        began = time.monotonic()
        try:
            self._client.indices.forcemerge(
                index=name, max_num_segments=1, request_timeout=MERGE_TIMEOUT
            )
        except OpenSearchException as error:
            log.warning("could not merge the new search index %s: %s", name, error)
            return
        log.info("search index %s merged in %.1f s", name, time.monotonic() - began)

    # ------------------------------------------------------------------ reads
    def search(self, query: SearchQuery) -> SearchResult:
        """Run a faceted query; see `SearchIndex.search`.

        Raises:
            Invalid: for an unknown facet, a bad cursor, limit, sort or over-long text.
            Unavailable: when the cluster does not answer or refuses the query.
        """
        check_query(query)  # refuses a bad query before any request
        decode_cursor(query)
        words = query_words(query.text)
        try:
            with self._answering("search", missing_ok=True):
                known = self._known_words(words) if words else frozenset()
                # The shard request cache keeps the counts of a query the cluster has already
                # answered until the next refresh that changes the index; without the flag it
                # would only keep answers without hits.
                response = self._client.search(
                    index=self.alias,
                    body=to_dsl(query, known),
                    filter_path=FILTER_PATH,
                    request_cache=True,
                )
        except _IndexMissing:
            return empty_result(query)
        return read_result(query, response)

    def _known_words(self, words: list[str]) -> frozenset[str]:
        """Those of `words` the index holds, asked in one `_mtermvectors` request.

        Lets the search skip the misspelling lookup of a word the index knows, as the tantivy
        adapter does: that lookup (a Levenshtein automaton over every word of `SPELL`) was the
        costliest part of a text query, and a term lookup costs well under a millisecond. The
        answers are kept for the rest of the generation (`generation`: this process's writes
        and the refresh interval), so words searched for again within it cost no request.
        """
        generation = self.generation()  # before the request: an answer never outlives its data
        kept_generation, kept = self._known
        if kept_generation != generation or len(kept) >= KNOWN_WORDS_KEPT:
            kept = {}
            self._known = (generation, kept)
        missing = [word for word in dict.fromkeys(words) if word not in kept]
        if missing and not self._lookup_refused:
            params, body = known_words_request(missing)
            try:
                answer = self._client.mtermvectors(index=self.alias, body=body, params=params)
            except AuthorizationException as error:
                # A user without the term-vector read action: from then on every word is looked
                # up misspelt as well, which finds more, never less (said once in the log).
                log.warning("search index %s: no term lookup (%s)", self.alias, error)
                self._lookup_refused = True
            except TransportError as error:
                # The lookup only saves work: a busy or failing cluster answers the search
                # without it (the words asked again next time).
                log.info("search index %s: term lookup skipped (%s)", self.alias, error)
            else:
                found = known_words(missing, answer)
                kept.update((word, word in found) for word in missing)
        return frozenset(word for word in words if kept.get(word))

    def count(self) -> int:
        """How many documents the alias serves (0 before the first write)."""
        try:
            with self._answering("count documents", missing_ok=True):
                answer = self._client.count(index=self.alias)
        except _IndexMissing:
            return 0
        return int(answer["count"])

    def indices(self) -> list[str]:
        """Names of the indices behind the alias: one, or none before the first write."""
        with self._answering(f"read the alias {self.alias}"):
            return self._alias_holders()

    def close(self) -> None:
        """Release the client's connections."""
        self._client.close()

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _answering(self, action: str, *, missing_ok: bool = False) -> Iterator[None]:
        """Turn client failures into `Unavailable` saying what failed and where.

        With `missing_ok`, a missing alias raises `_IndexMissing` instead, for the readers that
        answer "nothing yet".
        """
        try:
            yield
        except ClusterUnreachable as error:
            raise Unavailable(
                f"the search cluster at {self._where} does not answer (could not {action}): "
                f"{error.__class__.__name__}"
            ) from error
        except NotFoundError as error:
            if missing_ok and _error_reason(error).startswith("index_not_found_exception"):
                raise _IndexMissing(self.alias) from error
            raise self._refused(action, error) from error
        except TransportError as error:
            raise self._refused(action, error) from error
        except BulkIndexError as error:
            raise Unavailable(
                f"the search cluster at {self._where} refused {len(error.errors)} document(s) "
                f"(could not {action}): {_first_bulk_error(error.errors)}"
            ) from error
        except OpenSearchException as error:
            raise Unavailable(
                f"the search cluster at {self._where} failed (could not {action}): {error}"
            ) from error

    def _refused(self, action: str, error: TransportError) -> Unavailable:
        return Unavailable(
            f"the search cluster at {self._where} could not {action}: "
            f"HTTP {error.status_code} {_error_reason(error)}"
        )

    def _bulk(self, actions: Iterable[dict[str, Any]], **options: Any) -> None:
        helpers.bulk(
            self._client,
            actions,
            chunk_size=BULK_CHUNK,
            max_chunk_bytes=BULK_CHUNK_BYTES,
            max_retries=BULK_RETRIES,
            **options,
        )

    def _write(
        self, action: str, actions: Callable[[], Iterable[dict[str, Any]]], **options: Any
    ) -> None:
        """Bulk-write through the alias and refresh, so the next search sees the change.

        If the alias has gone since this process last saw it (an operator deleted the index),
        it is made again and the write retried once; `reindex` then restores the rest.
        """
        with self._lock:
            try:
                for attempt in range(2):
                    self._ensure_alias()
                    try:
                        with self._answering(action):
                            self._bulk(actions(), refresh=True, require_alias=True, **options)
                    except Unavailable as error:
                        self._alias_ready = False
                        if isinstance(error.__cause__, ClusterUnreachable):
                            raise
                        with self._answering(f"read the alias {self.alias}"):
                            gone = not self._client.indices.exists_alias(name=self.alias)
                        if attempt == 0 and gone:
                            log.warning("search alias %s has gone; making it again", self.alias)
                            continue
                        raise
                    return
            finally:
                self._writes += 1  # even a failed bulk may have written part of its documents

    def _ensure_alias(self) -> None:
        """Create the alias with an empty index behind it, unless it exists (lock held)."""
        if self._alias_ready:
            return
        with self._answering(f"create the alias {self.alias}"):
            if not self._client.indices.exists_alias(name=self.alias):
                name = f"{self.alias}-{INITIAL_SUFFIX}"
                try:
                    self._client.indices.create(
                        index=name, body={**index_body(self._synonyms), "aliases": {self.alias: {}}}
                    )
                except RequestError as error:
                    # Another process made it first: use it (adding an alias is idempotent).
                    if not _error_reason(error).startswith("resource_already_exists_exception"):
                        raise
                    if not self._client.indices.exists_alias(name=self.alias):
                        self._client.indices.put_alias(index=name, name=self.alias)
        self._alias_ready = True

    def _alias_holders(self) -> list[str]:
        try:
            return sorted(self._client.indices.get_alias(name=self.alias))
        except NotFoundError:
            return []

    def _serves(self, name: str) -> bool:
        """Whether the alias points at `name` (False when the cluster cannot say)."""
        try:
            return name in self._alias_holders()
        except OpenSearchException:
            return False

    def _move_alias(self, name: str) -> list[str]:
        """Point the alias at `name` alone, atomically; returns the indices it left."""
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            holders = self._alias_holders()
            moves = [{"remove": {"index": old, "alias": self.alias}} for old in holders]
            moves.append({"add": {"index": name, "alias": self.alias}})
            try:
                self._client.indices.update_aliases(body={"actions": moves})
            except NotFoundError:
                # Another process moved the alias (or deleted an index) since we read it.
                if attempt == SWAP_ATTEMPTS:
                    raise
                continue
            return holders
        raise AssertionError("unreachable")  # pragma: no cover

    def _delete_indices(self, names: Sequence[str], *, why: str) -> None:
        """Delete indices, logging (not raising) a failure: they serve nothing any more."""
        if not names:
            return
        try:
            self._client.indices.delete(index=",".join(names), ignore_unavailable=True)
        except OpenSearchException as error:
            log.warning("could not delete search indices %s (%s): %s", names, why, error)


class _IndexMissing(Exception):
    """The alias does not exist yet (nothing was ever written)."""
