"""The embedded search index: tantivy, in-process (the default `SearchIndex` adapter).

Owns the tantivy schema, the query built for a `SearchQuery`, facet counting with tantivy
aggregations, cursor pages, and the index directory (one generation at a time, swapped on
rebuild). It is the only module that imports `tantivy`. The engine-neutral rules (checks,
multi-select count plans, cursor tokens, sort keys, typo distances) live in `catalogue.facets`,
which the OpenSearch adapter shares, so both backends answer alike.

On disk, `path` holds `CURRENT` (the name of the live generation) and one directory per
generation. `rebuild` fills a fresh generation and only then points `CURRENT` at it, so a failed
rebuild leaves the old index serving. One process owns an index directory (tantivy's writer lock);
many processes sharing one index is what the OpenSearch adapter is for.

Must not import: the broker, web frameworks, SQL.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import tantivy
from tantivy import Occur, Order, Query

from catalogue.facets import (
    MAX_QUERY_TERMS,
    Cursor,
    active_filters,
    check_query,
    count_plans,
    decode_cursor,
    encode_cursor,
    facet_counts,
    name_sort_value,
    normalise_name,
    required_terms,
    typo_distance,
    updated_micros,
)
from catalogue.ports import FACETS, IndexDocument, SearchHit, SearchQuery, SearchResult
from core.errors import Unavailable

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
"""Bump when the schema changes: an index of another version is not reused (rebuild it)."""

# Boosts of the fields a query term is looked up in (the best field counts, plus
# FIELD_TIE_BREAKER of the others), like warehouse's `multi_match` boosts.
NAME_BOOST: Final = 8.0
TITLE_BOOST: Final = 4.0
KEYWORDS_BOOST: Final = 3.0
TOPICS_BOOST: Final = 2.0
SUMMARY_BOOST: Final = 2.0
AUTHORS_BOOST: Final = 1.0
DESCRIPTION_BOOST: Final = 1.0
FIELD_TIE_BREAKER: Final = 0.3
TYPO_BOOST: Final = 0.5
"""Per misspelt-term match (one edit matches the 1- and 2-edit clauses, so scores twice this)."""
PREFIX_BOOST: Final = 0.5
"""The last term as a prefix (`sext` finds `sextractor` while the user is typing)."""
PREFIX_MIN_LENGTH: Final = 3
PHRASE_BOOST: Final = 2.0
"""The query's terms in order in the name or title."""
EXACT_NAME_SCORE: Final = 100_000.0
"""Added when the whole query is an entry's name: above any text score of MAX_QUERY_TERMS
terms, so the entry called `sextractor` ranks first for "SExtractor" however often others
mention it (PyPI's exact-name boost, pypi/warehouse#10718)."""

NEAR_NAME_BOOST: Final = 3.0
"""When the whole query is a name misspelt within `typo_distance`: enough to lift that entry
above others matching the same misspelling, not above entries matching the words exactly."""

FACET_BUCKETS: Final = 10_000
"""Values counted per facet: all of them for any realistic vocabulary, so counts roll up."""
NOT_SCORED: Final = 0.0
"""`SearchHit.score` under the name and newest sorts."""
MATCH_ALL_SCORE: Final = 1.0
"""`SearchHit.score` under relevance with no text: every hit is equally relevant."""

_WORDS: Final = "voexec_words"
_STEMMED: Final = "voexec_stemmed"
_KEY_SEPARATOR: Final = "\x1f"
_NEWEST_MAX: Final = 10**18 - 1
"""Above the microseconds of any datetime, so `_NEWEST_MAX - µs` sorts newest first."""

_TEXT_FIELDS: Final = (
    ("name", _WORDS, NAME_BOOST),
    ("title", _STEMMED, TITLE_BOOST),
    ("keywords", _WORDS, KEYWORDS_BOOST),
    ("topics", _STEMMED, TOPICS_BOOST),
    ("summary", _STEMMED, SUMMARY_BOOST),
    ("authors", _WORDS, AUTHORS_BOOST),
    ("description", _STEMMED, DESCRIPTION_BOOST),
)


def _analyzer(stemmed: bool) -> tantivy.TextAnalyzer:
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
    )
    if stemmed:
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, fast=True, tokenizer_name="raw")
    for field, tokenizer, _ in _TEXT_FIELDS:
        builder.add_text_field(field, tokenizer_name=tokenizer)
    builder.add_text_field("name_exact", tokenizer_name="raw", index_option="basic")
    # Misspelt terms are looked up here: the short fields, unstemmed, without frequencies.
    builder.add_text_field("spell", tokenizer_name=_WORDS, index_option="basic")
    for facet in FACETS:
        builder.add_text_field(facet, fast=True, tokenizer_name="raw", index_option="basic")
    for sort in _KEYED_SORTS.values():
        builder.add_text_field(sort.key_field, fast=True, tokenizer_name="raw")
        builder.add_unsigned_field(sort.coarse_field, fast=True)
    return builder.build()


# ----------------------------------------------------------------------- keyed sorts
def _prefix_number(key: str) -> int:
    """The first 8 bytes of `key` as a number: never decreases as `key` increases."""
    return int.from_bytes(key.encode()[:8].ljust(8, b"\0"), "big")


@dataclass(frozen=True, slots=True)
class _KeyedSort:
    """A sort on a unique string key (ends with the id), paged with a coarse number filter.

    tantivy cannot filter "key > K" on strings, so a page after K filters on `coarse >=
    coarse(K)` (a cheap numeric range) and skips the few hits of K's coarse group up to K.
    """

    key_field: str
    coarse_field: str
    to_key: Callable[[Any, str], str]
    """(cursor value, id) -> key."""
    value_of: Callable[[str], Any]
    """The part of a key before the id -> cursor value."""
    coarse: Callable[[str], int]
    score: float

    def split(self, key: str) -> tuple[Any, str]:
        value, _, doc_id = key.partition(_KEY_SEPARATOR)
        return (self.value_of(value), doc_id) if doc_id else (self.value_of(""), value)


_KEYED_SORTS: Final = {
    "name": _KeyedSort(
        "name_key",
        "name_coarse",
        lambda value, doc_id: f"{value}{_KEY_SEPARATOR}{doc_id}",
        str,
        _prefix_number,
        NOT_SCORED,
    ),
    "newest": _KeyedSort(
        "newest_key",
        "newest_coarse",
        lambda micros, doc_id: f"{_NEWEST_MAX - micros:018d}{_KEY_SEPARATOR}{doc_id}",
        lambda digits: _NEWEST_MAX - int(digits),
        lambda key: int(key[:18]),
        NOT_SCORED,
    ),
    # Relevance without text: every hit scores the same, so the order is the id's.
    "relevance": _KeyedSort(
        "id_key",
        "id_coarse",
        lambda _score, doc_id: doc_id,
        lambda _: MATCH_ALL_SCORE,
        _prefix_number,
        MATCH_ALL_SCORE,
    ),
}
_SCHEMA: Final = _schema()


def _sort_keys(doc: IndexDocument) -> dict[str, str]:
    values = {
        "name": name_sort_value(doc.name),
        "newest": updated_micros(doc.updated),
        "relevance": MATCH_ALL_SCORE,
    }
    return {sort: spec.to_key(values[sort], doc.id) for sort, spec in _KEYED_SORTS.items()}


def _term_words(term: str) -> str:
    """The readable tail of a vocabulary term (`uat:galaxy-evolution` -> `galaxy-evolution`)."""
    return term.rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def _to_tantivy(doc: IndexDocument) -> tantivy.Document:
    out = tantivy.Document()
    texts: dict[str, Iterable[str]] = {
        "id": (doc.id,),
        "name": (doc.name,),
        "name_exact": (normalise_name(doc.name),),
        "title": (doc.title,),
        "keywords": doc.keywords,
        "topics": [_term_words(term) for term in (*doc.subjects, *doc.functions, *doc.messengers)],
        "summary": (doc.summary,),
        "authors": doc.authors,
        "description": (doc.description,),
    }
    texts["spell"] = [
        text
        for field in ("name", "title", "keywords", "topics", "summary", "authors")
        for text in texts[field]
    ]
    for facet in FACETS:
        texts[facet] = dict.fromkeys(doc.facet_values(facet))  # a value counts once per entry
    for field, values in texts.items():
        for value in values:
            if value:
                out.add_text(field, value)
    for sort, key in _sort_keys(doc).items():
        spec = _KEYED_SORTS[sort]
        out.add_text(spec.key_field, key)
        out.add_unsigned(spec.coarse_field, spec.coarse(key))
    return out


# ----------------------------------------------------------------------- query building
def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _filter_string(filters: Mapping[str, tuple[str, ...]]) -> str:
    """Filters in tantivy's query language, for filter aggregations (`*` when there are none)."""
    clauses = [
        f"{facet}:IN [{' '.join(_quoted(value) for value in values)}]"
        for facet, values in filters.items()
    ]
    return " AND ".join(clauses) or "*"


def _filter_queries(filters: Mapping[str, tuple[str, ...]]) -> list[Query]:
    """OR within a facet (a term set), AND across facets; filters never change scores."""
    return [
        Query.const_score_query(Query.term_set_query(_SCHEMA, facet, list(values)), 0.0)
        for facet, values in filters.items()
    ]


def _conjunction(queries: list[Query]) -> Query:
    if not queries:
        return Query.all_query()
    if len(queries) == 1:
        return queries[0]
    return Query.boolean_query([(Occur.Must, query) for query in queries])


@dataclass(frozen=True, slots=True)
class _Window:
    """A contiguous run of ranked hits, as ids with their scores, plus where it sits."""

    hits: list[tuple[float, str]]
    """(score, id) of each hit of the page."""
    last: tuple[Any, str] | None
    """The last hit's cursor key: `(value, id)` as `facets.Cursor` describes it."""
    hint: int
    """Where to find `last` again (see `_ranked` and `_keyed`)."""
    more: bool
    """Whether hits follow the page."""


class TantivySearchIndex:
    """`SearchIndex` over tantivy: on disk under `path`, or in memory when `path` is None.

    Writes are serialised by a lock and visible to the next search; searches run concurrently
    on the searcher of the last commit.
    """

    def __init__(
        self, path: Path | None, *, writer_heap_bytes: int = 64_000_000, writer_threads: int = 1
    ) -> None:
        """Open (or create) the index.

        Args:
            path: Index directory, created when missing; None keeps the index in memory.
            writer_heap_bytes: Indexing memory per writer thread (tantivy needs at least 15 MB).
            writer_threads: Indexing threads.
        """
        self._root = path
        self._heap = writer_heap_bytes
        self._threads = writer_threads
        self._words = _analyzer(stemmed=False)
        self._stemmed = _analyzer(stemmed=True)
        self._lock = threading.Lock()
        self._writer: tantivy.IndexWriter | None = None
        self.needs_rebuild = False
        """True when the index was created empty on opening (new, or of another schema)."""
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
                    writer.add_document(_to_tantivy(doc))
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
        """Finish background merges and release the writer (and its directory lock)."""
        with self._lock:
            self._close_writer()

    # ------------------------------------------------------------------ search
    def search(self, query: SearchQuery) -> SearchResult:
        """Run a faceted query; see `SearchIndex.search`.

        Raises:
            Invalid: For an unknown facet, a bad cursor, limit, sort or over-long text.
        """
        check_query(query)
        cursor = decode_cursor(query)
        filters = active_filters(query.filters)
        searcher = self._index.searcher()
        text_query = self._text_query(query.text)
        facets, total = self._facet_counts(searcher, text_query, filters)
        base = _conjunction([q for q in (text_query,) if q is not None] + _filter_queries(filters))
        if text_query is not None and query.sort == "relevance":
            window = self._ranked(searcher, base, cursor, query.limit)
        else:
            window = self._keyed(searcher, base, _KEYED_SORTS[query.sort], cursor, query.limit)
        hits = [SearchHit(doc_id, score) for score, doc_id in window.hits]
        next_cursor = None
        if window.more and window.last is not None:
            next_cursor = encode_cursor(query, window.last, window.hint)
        return SearchResult(total=total, hits=hits, facets=facets, next_cursor=next_cursor)

    def _text_query(self, text: str) -> Query | None:
        """Every term looked up in the text fields, misspelt or as a prefix; None for no terms."""
        words = self._words.analyze(text)[:MAX_QUERY_TERMS]
        stems = self._stemmed.analyze(text)[:MAX_QUERY_TERMS]
        if not words:
            return None
        terms = []
        for position, (word, stem) in enumerate(zip(words, stems, strict=True)):
            in_fields = [
                Query.boost_query(
                    Query.term_query(_SCHEMA, field, stem if analyzer == _STEMMED else word), boost
                )
                for field, analyzer, boost in _TEXT_FIELDS
            ]
            ways = [Query.disjunction_max_query(in_fields, tie_breaker=FIELD_TIE_BREAKER)]
            for distance in range(1, typo_distance(word) + 1):
                fuzzy = Query.fuzzy_term_query(_SCHEMA, "spell", word, distance=distance)
                ways.append(Query.boost_query(fuzzy, TYPO_BOOST))
            if position == len(words) - 1 and len(word) >= PREFIX_MIN_LENGTH:
                prefix = Query.fuzzy_term_query(_SCHEMA, "spell", word, distance=0, prefix=True)
                ways.append(Query.boost_query(prefix, PREFIX_BOOST))
            terms.append((Occur.Should, Query.boolean_query([(Occur.Should, w) for w in ways])))
        matched = Query.boolean_query(terms, minimum_number_should_match=required_terms(len(terms)))
        name = normalise_name(text)
        exact = Query.term_query(_SCHEMA, "name_exact", name)
        clauses = [matched, Query.const_score_query(exact, EXACT_NAME_SCORE)]
        if typo_distance(name):
            near = Query.fuzzy_term_query(_SCHEMA, "name_exact", name, typo_distance(name))
            clauses.append(Query.boost_query(near, NEAR_NAME_BOOST))
        if len(words) > 1:
            for field, tokens in (("name", words), ("title", stems)):
                phrase = Query.phrase_query(_SCHEMA, field, list(tokens), slop=1)
                clauses.append(Query.boost_query(phrase, PHRASE_BOOST))
        return Query.boolean_query([(Occur.Should, clause) for clause in clauses])

    def _facet_counts(
        self,
        searcher: tantivy.Searcher,
        text_query: Query | None,
        filters: dict[str, tuple[str, ...]],
    ) -> tuple[dict[str, dict[str, int]], int]:
        """Counts of every facet (multi-select) and the total, in one aggregation request.

        The text query runs once; each count plan is a filter aggregation over its hits.
        """
        aggregations: dict[str, Any] = {"total": {"filter": _filter_string(filters)}}
        plans = count_plans(filters)
        for number, plan in enumerate(plans):
            terms = {f: {"terms": {"field": f, "size": FACET_BUCKETS}} for f in plan.facets}
            aggregations[f"plan{number}"] = {
                "filter": _filter_string(plan.filters),
                "aggs": terms,
            }
        answer = searcher.aggregate(text_query or Query.all_query(), aggregations)
        facets: dict[str, dict[str, int]] = {}
        for number, plan in enumerate(plans):
            for facet in plan.facets:
                buckets = answer[f"plan{number}"][facet]["buckets"]
                counts = {bucket["key"]: int(bucket["doc_count"]) for bucket in buckets}
                facets[facet] = facet_counts(counts, filters.get(facet, ()))
        return {facet: facets[facet] for facet in FACETS}, int(answer["total"]["doc_count"])

    def _ranked(
        self, searcher: tantivy.Searcher, query: Query, cursor: Cursor | None, limit: int
    ) -> _Window:
        """A page by score descending, ties by id ascending, after the cursor's (score, id).

        tantivy ranks ties in index order, so the ids of a page's tie groups are read and
        sorted here; a window whose last tie group may continue past it is widened.
        """
        after_score = float(cursor.value) if cursor else math.inf
        after_id = cursor.id if cursor else ""
        start = max(0, cursor.hint - 1) if cursor else 0
        size = limit + 2
        while True:
            ranked = searcher.search(query, size, count=False, offset=start).hits
            if start > 0 and (not ranked or ranked[0][0] <= after_score):
                # The cursor's tie group may begin before the window (the index changed).
                start, size = 0, start + size
                continue
            complete = len(ranked) < size
            groups: list[tuple[float, list[Any]]] = []
            for score, address in ranked:
                if groups and groups[-1][0] == score:
                    groups[-1][1].append(address)
                else:
                    groups.append((score, [address]))
            page: list[tuple[float, str]] = []
            position = start  # hits ranked before the first hit of the page
            for number, (score, addresses) in enumerate(groups):
                if score > after_score:
                    position += len(addresses)
                    continue
                if not complete and number == len(groups) - 1:
                    break  # this tie group may go on past the window
                ids = sorted(str(searcher.doc(a).get_first("id")) for a in addresses)
                first = bisect.bisect_right(ids, after_id) if score == after_score else 0
                position += first
                page += [(score, doc_id) for doc_id in ids[first:]]
                if len(page) > limit:
                    break
            if len(page) > limit or complete:
                shown = page[:limit]
                last = shown[-1] if shown else None
                return _Window(shown, last, position + len(shown), len(page) > limit)
            size *= 2

    def _keyed(
        self,
        searcher: tantivy.Searcher,
        query: Query,
        sort: _KeyedSort,
        cursor: Cursor | None,
        limit: int,
    ) -> _Window:
        """A page ordered by a unique string key, after the cursor's key."""
        after = sort.to_key(cursor.value, cursor.id) if cursor else None
        if after is not None:
            coarse = Query.range_query(
                _SCHEMA,
                sort.coarse_field,
                tantivy.FieldType.Unsigned,
                lower_bound=sort.coarse(after),
            )
            query = _conjunction([query, coarse])
        size = limit + 1 + (cursor.hint if cursor else 0)
        while True:
            found = searcher.search(
                query, size, count=False, order_by_field=sort.key_field, order=Order.Asc
            )
            keys: list[str] = [key for key, _ in found.hits]
            first = bisect.bisect_right(keys, after) if after is not None else 0
            if len(keys) < size or len(keys) > first + limit:
                break
            size *= 2
        page = keys[first : first + limit]
        hint = 0
        if page:
            group = sort.coarse(page[-1])
            hint = sum(1 for key in keys[: first + len(page)] if sort.coarse(key) == group)
        hits = [(sort.score, sort.split(key)[1]) for key in page]
        last = sort.split(page[-1]) if page else None
        return _Window(hits, last, hint, len(keys) > first + limit)

    # ------------------------------------------------------------------ storage
    def _write(self, change: Callable[[tantivy.IndexWriter], object]) -> None:
        with self._lock:
            writer = self._writer_for_current()
            try:
                change(writer)
                writer.commit()
            except (ValueError, OSError) as error:
                writer.rollback()
                raise Unavailable(f"the search index could not be written: {error}") from error
            self._index.reload()

    @staticmethod
    def _replace(writer: tantivy.IndexWriter, documents: Iterable[IndexDocument]) -> None:
        for doc in documents:
            # A delete applies to documents added before it, so delete-then-add replaces.
            writer.delete_documents_by_term("id", doc.id)
            writer.add_document(_to_tantivy(doc))

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
        index = tantivy.Index(_SCHEMA, path=str(directory) if directory else None, reuse=True)
        index.register_tokenizer(_WORDS, self._words)
        index.register_tokenizer(_STEMMED, self._stemmed)
        index.config_reader(reload_policy="manual")
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
