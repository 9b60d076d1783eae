"""A `SearchQuery` as tantivy queries, and its facet counts as tantivy aggregations.

Relevance, like warehouse's `search/queries.py`: every query term is looked up in the text
fields (the best field counts, plus FIELD_TIE_BREAKER of the others), or within
`typo_distance` edits when the index does not know it, or as a prefix when it is the last
term; most terms must match (`required_terms`). On top: the whole query as an entry's exact
name (ranked first, whatever else matches), as a misspelt name, and as a phrase.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from math import comb
from typing import Any, Final, NamedTuple, Protocol

import tantivy
from tantivy import Occur, Query

from catalogue.facets import (
    MAX_QUERY_TERMS,
    CountPlan,
    count_plans,
    facet_counts,
    near_name_distance,
    normalise_name,
    required_terms,
    typo_distance,
)
from catalogue.ports import FACETS
from catalogue.search_tantivy.schema import (
    ANALYZERS,
    EXACT_NAME_FIELD,
    SCHEMA,
    SPELL_FIELD,
    STEMMED,
    TEXT_FIELDS,
    WORDS,
)

FIELD_BOOSTS: Final = {
    "name": 8.0,
    "title": 4.0,
    "keywords": 3.0,
    "topics": 2.0,
    "summary": 2.0,
    "authors": 1.0,
    "description": 1.0,
}
FIELD_TIE_BREAKER: Final = 0.3
TYPO_BOOST: Final = 0.5
"""Per misspelt-term match (one edit matches the 1- and 2-edit clauses, so scores twice this)."""
PREFIX_BOOST: Final = 0.5
"""The last term as a prefix (`sext` finds `sextractor` while the user is typing)."""
PREFIX_MIN_LENGTH: Final = 3
PHRASE_BOOST: Final = 2.0
"""The query's terms in order (one word apart at most) in the name or title."""
NEAR_NAME_BOOST: Final = 3.0
"""The whole query is a name misspelt within `near_name_distance`: enough to lift that entry above
others matching the same misspelling, not above entries matching the words exactly."""
EXACT_NAME_SCORE: Final = 100_000.0
"""Added when the whole query is an entry's name: above any text score of MAX_QUERY_TERMS
terms, so the entry called `sextractor` ranks first for "SExtractor" however often others
mention it (PyPI's exact-name boost, pypi/warehouse#10718)."""
MAX_INTERSECTIONS: Final = 8
"""`at_least` asks a union of at most this many intersections (up to 7 terms, all but one)."""
FACET_BUCKETS: Final = 10_000
"""Values counted per facet: all of them for any realistic vocabulary, so counts roll up."""

TOTAL: Final = "total"
"""The aggregation that counts the hits (never a facet's name)."""
FacetCounts = tuple[dict[str, dict[str, int]], int]
"""Facet -> value -> count, and the total."""


class TextQuery(NamedTuple):
    """The free text as tantivy queries: one ranks the hits, the other finds the same ones."""

    scored: Query
    """What the hits score: every term in each text field (boosted), typos, prefix, phrase, name."""
    matching: Query
    """The same hits, unscored and cheaper: a term is in any text field (a plain union, no
    boosts or best-field pick), and "most terms" a union of intersections (`at_least`). Facet
    counts and the pages in a keyed order run on it."""


def text_query(searcher: tantivy.Searcher, text: str) -> TextQuery | None:
    """The free text as queries; None when it holds no terms (match everything).

    A term the index does not know is looked up within `typo_distance` edits; a known one only
    as typed, which keeps common words cheap and their results free of near-misses.
    """
    words = ANALYZERS[WORDS].analyze(text)[:MAX_QUERY_TERMS]
    stems = ANALYZERS[STEMMED].analyze(text)[:MAX_QUERY_TERMS]
    if not words:
        return None
    scored_terms = []
    matching_terms = []
    for position, (word, stem) in enumerate(zip(words, stems, strict=True)):
        in_fields = [
            Query.boost_query(
                Query.term_query(SCHEMA, field, stem if analyser == STEMMED else word),
                FIELD_BOOSTS[field],
            )
            for field, analyser in TEXT_FIELDS
        ]
        in_any_field = [
            Query.term_query(SCHEMA, field, stem if analyser == STEMMED else word)
            for field, analyser in TEXT_FIELDS
        ]
        ways = [Query.disjunction_max_query(in_fields, tie_breaker=FIELD_TIE_BREAKER)]
        known = searcher.doc_freq(SPELL_FIELD, word) > 0
        for distance in range(1, 1 if known else typo_distance(word) + 1):
            fuzzy = Query.fuzzy_term_query(SCHEMA, SPELL_FIELD, word, distance=distance)
            ways.append(Query.boost_query(fuzzy, TYPO_BOOST))
        if position == len(words) - 1 and len(word) >= PREFIX_MIN_LENGTH:
            prefix = Query.fuzzy_term_query(SCHEMA, SPELL_FIELD, word, distance=0, prefix=True)
            ways.append(Query.boost_query(prefix, PREFIX_BOOST))
        scored_terms.append(_any(ways))
        matching_terms.append(_any(in_any_field + ways[1:]))
    required = required_terms(len(words))
    name = normalise_name(text)
    exact = Query.term_query(SCHEMA, EXACT_NAME_FIELD, name)
    near = []
    if distance := near_name_distance(name):
        fuzzy_name = Query.fuzzy_term_query(SCHEMA, EXACT_NAME_FIELD, name, distance)
        near.append(Query.boost_query(fuzzy_name, NEAR_NAME_BOOST))
    scored = [
        at_least(scored_terms, required, scored=True),
        Query.const_score_query(exact, EXACT_NAME_SCORE),
        *near,
    ]
    if len(words) > 1:
        for field, tokens in (("name", words), ("title", stems)):
            phrase = Query.phrase_query(SCHEMA, field, list(tokens), slop=1)
            scored.append(Query.boost_query(phrase, PHRASE_BOOST))
    # A phrase's terms are all in its field, so its hits already match every term: `matching`
    # needs the terms and the name only.
    matching = [
        at_least(matching_terms, required),
        exact,
        *near,
    ]
    return TextQuery(_any(scored), Query.const_score_query(_any(matching), 0.0))


def at_least(queries: list[Query], required: int, *, scored: bool = False) -> Query:
    """Hits of at least `required` of `queries`; `scored`: each scores the sum of those it matches.

    tantivy's `minimum_number_should_match` walks every clause's hits through a heap, about
    twice the cost of the equivalent union of intersections, which skip through posting lists:
    so, when scores do not matter, "2 of a, b, c" is asked as (a and b) or (a and c) or (b and
    c) while that takes few intersections (a hit in several would score several times).
    """
    if required >= len(queries):
        return _all(queries)
    if scored or comb(len(queries), required) > MAX_INTERSECTIONS:
        clauses = [(Occur.Should, query) for query in queries]
        return Query.boolean_query(clauses, minimum_number_should_match=required)
    return _any([_all(list(chosen)) for chosen in combinations(queries, required)])


def _all(queries: list[Query]) -> Query:
    """Hits of every one of `queries`, scoring the sum of their scores."""
    return Query.boolean_query([(Occur.Must, query) for query in queries])


def _any(queries: list[Query]) -> Query:
    """Hits of any of `queries`, scoring the sum of those they match."""
    return Query.boolean_query([(Occur.Should, query) for query in queries])


def filter_queries(filters: Mapping[str, tuple[str, ...]]) -> list[Query]:
    """OR within a facet, AND across facets; filters never change scores.

    A facet's values are a union of term queries, not a term set: a term set reads all its
    postings into a bit set first, where terms let an intersection skip to the next candidate
    (half the cost of a page at the median).
    """
    return [
        Query.const_score_query(
            _any([Query.term_query(SCHEMA, facet, value) for value in values]), 0.0
        )
        for facet, values in filters.items()
    ]


def conjunction(queries: list[Query]) -> Query:
    """All of `queries` (everything when there are none)."""
    if not queries:
        return Query.all_query()
    if len(queries) == 1:
        return queries[0]
    return Query.boolean_query([(Occur.Must, query) for query in queries])


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_string(filters: Mapping[str, tuple[str, ...]]) -> str:
    """Filters in tantivy's query language, for filter aggregations (`*` when there are none).

    Written as ORs of single terms: tantivy's `IN [...]` set costs ~3 ms per aggregation at
    100k entries, single terms ~0.2 ms.
    """
    clauses = [
        "(" + " OR ".join(f"{facet}:{_quoted(value)}" for value in values) + ")"
        for facet, values in filters.items()
    ]
    return " AND ".join(clauses) or "*"


def _terms(plan: CountPlan) -> dict[str, Any]:
    """A terms aggregation per facet of the plan, named after the facet."""
    return {facet: {"terms": {"field": facet, "size": FACET_BUCKETS}} for facet in plan.facets}


class Counted(NamedTuple):
    """What counting one filter set found."""

    buckets: dict[str, dict[str, int]]
    """Facet -> value -> entries, as tantivy counted them (no selected values added)."""
    hits: int | None
    """How many entries the text and the filter set leave (None when it was not counted)."""


class CountMemory(Protocol):
    """Counts kept from earlier searches with the same text, by filter set."""

    def recall(self, filters: Mapping[str, tuple[str, ...]]) -> Counted | None:
        """What was counted under `filters`, if kept."""

    def keep(self, filters: Mapping[str, tuple[str, ...]], counted: Counted) -> None:
        """Keep what was counted under `filters` (added to what is kept already)."""


def count_facets(
    searcher: tantivy.Searcher,
    text: Query | None,
    filters: dict[str, tuple[str, ...]],
    facets: tuple[str, ...] = FACETS,
    memory: CountMemory | None = None,
) -> FacetCounts:
    """Counts of `facets` (multi-select: a facet ignores its own selection) and the total.

    Each count plan (`facets.count_plans`) is a filter set; a plan whose counts `memory` kept
    is not counted again. Narrowing a search one facet at a time thus reuses the previous
    search's counts: with `kind` then `licence` selected, `licence` is counted under the `kind`
    selection, which the search with only `kind` selected counted already.
    """
    plans = _plans(filters, facets)
    found = [_recalled(memory, plan, plan.filters == filters) for plan in plans]
    missing = [n for n, counted in enumerate(found) if counted is None]
    if missing:
        fresh = _count(searcher, text, [plans[n] for n in missing], filters)
        for number, counted in zip(missing, fresh, strict=True):
            found[number] = counted
            if memory is not None:
                memory.keep(plans[number].filters, counted)
    return _assembled(plans, found, filters, facets)


def recalled_counts(
    filters: dict[str, tuple[str, ...]], facets: tuple[str, ...], memory: CountMemory
) -> FacetCounts | None:
    """`count_facets`'s answer when `memory` kept every count it needs, else None."""
    plans = _plans(filters, facets)
    found = [_recalled(memory, plan, plan.filters == filters) for plan in plans]
    return None if None in found else _assembled(plans, found, filters, facets)


def _plans(filters: dict[str, tuple[str, ...]], facets: tuple[str, ...]) -> list[CountPlan]:
    """The count plans of `facets`, and one applying every filter (it gives the total)."""
    plans = count_plans(filters, facets)
    if not any(plan.filters == filters for plan in plans):
        plans.append(CountPlan((), dict(filters)))
    return plans


def _assembled(
    plans: list[CountPlan],
    found: list[Counted | None],
    filters: dict[str, tuple[str, ...]],
    facets: tuple[str, ...],
) -> FacetCounts:
    counts: dict[str, dict[str, int]] = {}
    total = 0
    for plan, counted in zip(plans, found, strict=True):
        assert counted is not None
        for facet in plan.facets:
            counts[facet] = facet_counts(counted.buckets[facet], filters.get(facet, ()))
        if plan.filters == filters and counted.hits is not None:
            total = counted.hits
    return {facet: counts[facet] for facet in facets}, total


def _recalled(memory: CountMemory | None, plan: CountPlan, needs_hits: bool) -> Counted | None:
    """What `memory` kept for the plan, when it covers the plan's facets (and hits if needed)."""
    kept = memory.recall(plan.filters) if memory is not None else None
    if kept is None or (needs_hits and kept.hits is None):
        return None
    return kept if all(facet in kept.buckets for facet in plan.facets) else None


def _count(
    searcher: tantivy.Searcher,
    text: Query | None,
    plans: list[CountPlan],
    filters: Mapping[str, tuple[str, ...]],
) -> list[Counted]:
    """Count each plan's facets, and the hits of the plan that applies every filter.

    With text, one aggregation request: the text query runs once, and each plan with filters is
    a filter aggregation over its hits (which also counts them); the plan without filters
    counts at the top level. Without text, one request per plan whose query is the plan's
    filters, so posting lists drive the count instead of a check of every entry.
    """
    if text is None:
        answers = []
        for plan in plans:
            query = conjunction(filter_queries(plan.filters))
            if not plan.facets:  # the total alone
                counted: Any = searcher.search(query, 1, count=True)
                answers.append(Counted({}, int(counted.count)))  # the stub lacks `count`
                continue
            asked = _terms(plan)
            if plan.filters == filters:
                asked[TOTAL] = {"filter": "*"}
            answer = searcher.aggregate(query, asked)
            hits = int(answer[TOTAL]["doc_count"]) if TOTAL in asked else None
            answers.append(Counted(_buckets(answer, plan), hits))
        return answers
    request: dict[str, Any] = {}
    for number, plan in enumerate(plans):
        if plan.filters:
            request[f"plan{number}"] = {
                "filter": filter_string(plan.filters),
                "aggs": _terms(plan),
            }
        else:
            request.update(_terms(plan))
            if not filters:  # the plan applies every filter: its hits are the total
                request[TOTAL] = {"filter": "*"}
    answer = searcher.aggregate(text, request)
    answers = []
    for number, plan in enumerate(plans):
        if plan.filters:
            answered = answer[f"plan{number}"]
            answers.append(Counted(_buckets(answered, plan), int(answered["doc_count"])))
        else:
            hits = int(answer[TOTAL]["doc_count"]) if TOTAL in request else None
            answers.append(Counted(_buckets(answer, plan), hits))
    return answers


def _buckets(answer: Mapping[str, Any], plan: CountPlan) -> dict[str, dict[str, int]]:
    return {
        facet: {bucket["key"]: int(bucket["doc_count"]) for bucket in answer[facet]["buckets"]}
        for facet in plan.facets
    }
