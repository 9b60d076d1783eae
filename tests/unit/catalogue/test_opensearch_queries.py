"""The OpenSearch mapping and query builder, as data: no server involved.

What a real cluster does with these bodies is tested in tests/integration/test_search_opensearch.py
and by the search contract suite; here, the promises the DSL itself must keep: the exact-name
clause, typo tolerance, multi-select counts, sort orders with an id tiebreak, cursors that
round-trip to `search_after`, and a mapping that accepts every document it is given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from catalogue.facets import (
    MAX_QUERY_TERMS,
    name_sort_value,
    normalise_name,
    required_terms,
    updated_micros,
)
from catalogue.opensearch_queries import (
    COUNTS_AGGREGATION,
    ENGLISH_SYNONYMS_ANALYZER,
    EXACT_NAME_SCORE,
    ID,
    MATCH_FIELDS,
    MAX_ID_BYTES,
    NAME_EXACT,
    NAME_SORT,
    NOT_SCORED,
    SPELL,
    SPELL_SOURCES,
    SYNONYM_FILTER,
    UPDATED_MICROS,
    check_alias,
    delete_action,
    document_key,
    empty_result,
    index_action,
    index_body,
    known_words,
    known_words_request,
    query_words,
    read_result,
    synonym_rules,
    to_dsl,
    to_source,
)
from catalogue.ports import FACETS, IndexDocument, SearchQuery, SortOrder
from core.errors import ConfigError, Invalid

DOC = IndexDocument(
    id="sextractor-0123456789",
    name="Source_Extractor",
    title="Source Extractor",
    summary="Builds catalogues of objects from astronomical images",
    keywords=("photometry", "catalogue"),
    authors=("E. Bertin",),
    kind="docker-container",
    subjects=("spiral-galaxies", "galaxies"),
    functions=("http://example.org/software-function#source-extraction", "image-analysis"),
    messengers=("optical",),
    licence="GPL-3.0-only",
    gpu="optional",
    platforms=("local", "cluster-a"),
    version="2.28",
    updated=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
)


def walk_clauses(node: Any) -> list[dict[str, Any]]:
    """Every dict nested anywhere in a DSL body (depth first)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += walk_clauses(value)
    elif isinstance(node, list):
        for value in node:
            found += walk_clauses(value)
    return found


def selections_of(clause: dict[str, Any]) -> dict[str, set[str]]:
    """Facet -> values a filter clause built by the adapter selects."""
    if "match_all" in clause:
        return {}
    return {
        facet: set(values)
        for terms in clause["bool"]["filter"]
        for facet, values in terms["terms"].items()
    }


def response(sort_values: list[list[Any]], total: int, aggregations: Any = None) -> dict[str, Any]:
    return {
        "hits": {
            "total": {"value": total, "relation": "eq"},
            "hits": [{"_score": None, "sort": values} for values in sort_values],
        },
        "aggregations": aggregations or {},
    }


# --------------------------------------------------------------------------- text
def test_the_whole_text_as_a_normalised_name_gets_the_exact_name_boost() -> None:
    body = to_dsl(SearchQuery(text="  Source-Extractor "))
    exact = [c["constant_score"] for c in walk_clauses(body["query"]) if "constant_score" in c]
    assert exact == [
        {"filter": {"term": {NAME_EXACT: "source-extractor"}}, "boost": EXACT_NAME_SCORE}
    ]
    assert to_source(DOC)[NAME_EXACT] == normalise_name("  Source-Extractor ")
    assert exact[0] in [c.get("constant_score") for c in body["query"]["bool"]["should"]]


def test_every_word_is_matched_as_typed_over_the_boosted_fields_or_misspelt() -> None:
    body = to_dsl(SearchQuery(text="galaxy morphology classifier"))
    clauses = walk_clauses(body)
    words = ["galaxy", "morphology", "classifier"]
    as_typed = [c["multi_match"] for c in clauses if "multi_match" in c]
    assert [m["query"] for m in as_typed] == words
    for match in as_typed:
        assert match["fields"] == list(MATCH_FIELDS)
        assert "name^8" in match["fields"]
        assert "fuzziness" not in match
    misspelt = [c["match"][SPELL] for c in clauses if SPELL in c.get("match", {})]
    assert [m["query"] for m in misspelt] == words
    assert {m["fuzziness"] for m in misspelt} == {"AUTO"}
    required = [c for c in clauses if "minimum_should_match" in c.get("bool", {})]
    assert any(c["bool"]["minimum_should_match"] == required_terms(3) for c in required)


def test_a_word_the_index_knows_is_matched_only_as_typed_or_as_a_prefix() -> None:
    body = to_dsl(SearchQuery(text="galaxy morphology classifier"), known={"galaxy", "classifier"})
    clauses = walk_clauses(body)
    as_typed = [c["multi_match"]["query"] for c in clauses if "multi_match" in c]
    assert as_typed == ["galaxy", "morphology", "classifier"]
    misspelt = [c["match"][SPELL]["query"] for c in clauses if SPELL in c.get("match", {})]
    assert misspelt == ["morphology"]
    prefixes = [c["match_bool_prefix"][SPELL]["query"] for c in clauses if "match_bool_prefix" in c]
    assert prefixes == ["classifier"]  # the word being typed may still go on
    required = [c for c in clauses if "minimum_should_match" in c.get("bool", {})]
    assert any(c["bool"]["minimum_should_match"] == required_terms(3) for c in required)


def test_the_whole_text_is_looked_up_as_a_misspelt_name_even_when_every_word_is_known() -> None:
    near = [
        c["fuzzy"][NAME_EXACT]
        for c in walk_clauses(to_dsl(SearchQuery(text="sextractr"), known={"sextractr"}))
        if "fuzzy" in c
    ]
    assert [n["value"] for n in near] == ["sextractr"]


def test_known_words_are_asked_one_artificial_document_each_in_the_spell_field() -> None:
    params, body = known_words_request(["Galaxy", "galxy"])
    assert body == {"docs": [{"doc": {SPELL: "Galaxy"}}, {"doc": {SPELL: "galxy"}}]}
    assert params["fields"] == SPELL
    assert params["term_statistics"] == "true"


def test_a_word_is_known_when_its_one_term_has_entries() -> None:
    def doc(terms: dict[str, Any]) -> dict[str, Any]:
        return {"found": True, "term_vectors": {SPELL: {"terms": terms}}}

    answer = {
        "docs": [
            doc({"galaxy": {"doc_freq": 12, "ttf": 12, "term_freq": 1}}),
            doc({"galxy": {"term_freq": 1}}),  # no entry has it: no statistics
            doc({"a": {"doc_freq": 3, "term_freq": 1}, "b": {"doc_freq": 3, "term_freq": 1}}),
            doc({}),
        ]
    }
    words = ["Galaxy", "galxy", "a-b", "--", "missing"]
    assert known_words(words, answer) == {"Galaxy"}
    assert known_words(words, {}) == frozenset()


def test_misspellings_are_looked_up_in_the_unstemmed_words_of_the_short_fields() -> None:
    fields = index_body()["mappings"]["properties"]
    analyzers = index_body()["settings"]["analysis"]["analyzer"]
    copied = {name for name, field in fields.items() if field.get("copy_to") == SPELL}
    assert copied == set(SPELL_SOURCES)
    assert "description" not in copied  # long prose would match misspellings by chance
    assert not any("stemmer" in f for f in analyzers[fields[SPELL]["analyzer"]]["filter"])


def test_the_last_word_may_be_a_prefix_being_typed() -> None:
    prefixes = [
        c["match_bool_prefix"][SPELL]["query"]
        for c in walk_clauses(to_dsl(SearchQuery(text="source ext")))
        if "match_bool_prefix" in c
    ]
    assert prefixes == ["ext"]


@pytest.mark.parametrize("text", ["", "   ", "-- ?! __"])
def test_text_without_words_matches_everything(text: str) -> None:
    assert to_dsl(SearchQuery(text=text))["query"] == {"match_all": {}}


def test_query_words_split_like_the_embedded_index() -> None:
    assert query_words("SExtractor_v2, wide-field!") == ["SExtractor", "v2", "wide", "field"]
    assert query_words("x" * 40 + " short") == ["short"]
    assert len(query_words(" ".join(f"w{n}" for n in range(50)))) == MAX_QUERY_TERMS


# ------------------------------------------------------------------ filters, facets
FILTERS = {"kind": ("docker-container", "jupyter-notebook"), "gpu": ("none",), "licence": ("",)}


def test_selections_narrow_the_hits_only_through_post_filter() -> None:
    body = to_dsl(SearchQuery(text="galaxy", filters=FILTERS))
    assert selections_of(body["post_filter"]) == {
        "kind": {"docker-container", "jupyter-notebook"},  # OR within a facet
        "gpu": {"none"},  # AND across facets
    }
    assert not any("terms" in clause for clause in walk_clauses(body["query"]))


def test_each_facet_is_counted_under_every_selection_but_its_own() -> None:
    body = to_dsl(SearchQuery(filters=FILTERS))
    counted_under: dict[str, dict[str, set[str]]] = {}
    for name, aggregation in body["aggs"].items():
        assert name.startswith(COUNTS_AGGREGATION)
        for facet, terms in aggregation["aggs"].items():
            assert terms["terms"]["field"] == facet
            counted_under[facet] = selections_of(aggregation["filter"])
    assert set(counted_under) == set(FACETS)
    selected = selections_of(body["post_filter"])
    for facet in FACETS:
        expected = {name: values for name, values in selected.items() if name != facet}
        assert counted_under[facet] == expected, facet


def test_without_text_only_the_entries_some_count_needs_are_visited() -> None:
    body = to_dsl(SearchQuery(filters=FILTERS))
    narrowed = body["query"]["constant_score"]
    assert narrowed["boost"] == 1.0  # as match_all scores, so cursors and order are alike
    union = [selections_of(clause) for clause in narrowed["filter"]["bool"]["should"]]
    counted = [selections_of(aggregation["filter"]) for aggregation in body["aggs"].values()]
    assert union == counted
    assert narrowed["filter"]["bool"]["minimum_should_match"] == 1
    only_total = to_dsl(SearchQuery(filters=FILTERS, facets=()))["query"]["constant_score"]
    assert [selections_of(c) for c in only_total["filter"]["bool"]["should"]] == [
        selections_of(body["post_filter"])
    ]


@pytest.mark.parametrize(
    "filters", [{}, {"kind": ("docker-container",)}, {"kind": ("docker-container",), "gpu": ()}]
)
def test_without_text_a_count_over_everything_visits_everything(
    filters: dict[str, tuple[str, ...]],
) -> None:
    assert to_dsl(SearchQuery(filters=filters))["query"] == {"match_all": {}}


def test_no_selection_means_no_post_filter_and_unfiltered_counts() -> None:
    body = to_dsl(SearchQuery(filters={"kind": ()}))
    assert "post_filter" not in body
    (aggregation,) = body["aggs"].values()
    assert aggregation["filter"] == {"match_all": {}}
    assert set(aggregation["aggs"]) == set(FACETS)


def test_facet_counts_keep_a_selected_value_without_hits() -> None:
    query = SearchQuery(filters={"licence": ("no-such-licence",)})
    body = to_dsl(query)
    aggregations: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        name: {facet: {"buckets": []} for facet in aggregation["aggs"]}
        for name, aggregation in body["aggs"].items()
    }
    licence_group = next(n for n, a in body["aggs"].items() if "licence" in a["aggs"])
    aggregations[licence_group]["licence"]["buckets"] = [
        {"key": "MIT", "doc_count": 2},
        {"key": "BSD-3-Clause", "doc_count": 5},
    ]
    result = read_result(query, response([], 0, aggregations))
    assert result.total == 0
    assert result.facets["licence"] == {"BSD-3-Clause": 5, "MIT": 2, "no-such-licence": 0}
    assert list(result.facets) == list(FACETS)


# ------------------------------------------------------------------- sort, cursors
@pytest.mark.parametrize(
    ("sort", "first"),
    [
        ("relevance", {"_score": "desc"}),
        ("name", {NAME_SORT: "asc"}),
        ("newest", {UPDATED_MICROS: "desc"}),
    ],
)
def test_every_sort_breaks_ties_by_id(sort: SortOrder, first: dict[str, str]) -> None:
    body = to_dsl(SearchQuery(text="galaxy", sort=sort))
    assert body["sort"] == [first, {ID: "asc"}]
    assert body["track_total_hits"] is True


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("relevance", [[12.5, "b"], [12.5, "c"], [3.25, "a"]]),
        ("name", [["psfex", "x"], ["swarp", "y"], ["wsclean", "z"]]),
        ("newest", [[updated_micros(DOC.updated), "p"], [5, "q"], [4, "r"]]),
    ],
)
def test_a_cursor_resumes_after_the_last_hit_shown(
    sort: SortOrder, values: list[list[Any]]
) -> None:
    query = SearchQuery(text="galaxy", filters={"gpu": ("none",)}, sort=sort, limit=2)
    assert to_dsl(query)["size"] == 3  # one more than shown, to know a next page exists
    page = read_result(query, response(values, 10))
    assert [hit.id for hit in page.hits] == [values[0][1], values[1][1]]
    if sort == "relevance":
        assert [hit.score for hit in page.hits] == [values[0][0], values[1][0]]
    else:
        assert {hit.score for hit in page.hits} == {NOT_SCORED}
    assert page.next_cursor is not None
    assert page.next_cursor.isascii()
    assert "=" not in page.next_cursor
    follow = SearchQuery(
        text="galaxy",
        filters={"gpu": ("none",)},
        sort=sort,
        limit=2,
        cursor=page.next_cursor,
    )
    assert to_dsl(follow)["search_after"] == values[1]


def test_the_last_page_has_no_cursor() -> None:
    query = SearchQuery(sort="name", limit=2)
    assert read_result(query, response([["a", "1"], ["b", "2"]], 2)).next_cursor is None


@pytest.mark.parametrize("cursor", ["garbage!", "eyJub3QiOiJhIGN1cnNvciJ9", "x" * 5000])
def test_a_bad_cursor_is_invalid_and_named(cursor: str) -> None:
    with pytest.raises(Invalid) as caught:
        to_dsl(SearchQuery(cursor=cursor))
    assert [p.field for p in caught.value.problems] == ["cursor"]


def test_a_cursor_of_another_sort_is_invalid() -> None:
    query = SearchQuery(sort="name", limit=1)
    cursor = read_result(query, response([["a", "1"], ["b", "2"]], 2)).next_cursor
    with pytest.raises(Invalid) as caught:
        to_dsl(SearchQuery(sort="newest", limit=1, cursor=cursor))
    assert caught.value.problems[0].field == "cursor"


def test_an_unknown_facet_is_invalid_even_without_an_index() -> None:
    with pytest.raises(Invalid) as caught:
        empty_result(SearchQuery(filters={"subjects": ("galaxies",)}))
    assert caught.value.problems[0].field == "filters.subjects"
    assert empty_result(SearchQuery(filters={"kind": ("x",)})).facets["kind"] == {"x": 0}


# ---------------------------------------------------------------- mapping, documents
def test_synonyms_are_expanded_at_search_time_only() -> None:
    body = index_body(
        ["cmb, cosmic microwave background", "  ", "sed => spectral energy distribution"]
    )
    analysis = body["settings"]["analysis"]
    assert analysis["filter"][SYNONYM_FILTER]["type"] == "synonym_graph"
    assert analysis["filter"][SYNONYM_FILTER]["synonyms"] == [
        "cmb, cosmic microwave background",
        "sed => spectral energy distribution",
    ]
    for name, analyzer in analysis["analyzer"].items():
        assert "asciifolding" in analyzer["filter"], name
    fields = body["mappings"]["properties"]
    for name in ("title", "summary", "description", "topics"):
        assert fields[name]["search_analyzer"] == ENGLISH_SYNONYMS_ANALYZER
        index_filters = analysis["analyzer"][fields[name]["analyzer"]]["filter"]
        assert SYNONYM_FILTER not in index_filters  # synonym graphs cannot be indexed


def test_synonym_rules_come_from_label_groups_and_never_split_a_label() -> None:
    rules = synonym_rules(
        [
            ("Cosmic microwave background", "CMB", "CMB"),
            ("Galaxies, spiral", "Spiral  galaxies"),
            ("alone",),
            ("", "   "),
        ]
    )
    assert rules == ["Cosmic microwave background, CMB", "Galaxies\\, spiral, Spiral galaxies"]


def test_every_document_field_is_mapped_and_facets_are_keywords() -> None:
    fields = index_body()["mappings"]["properties"]
    assert index_body()["mappings"]["dynamic"] == "strict"
    assert set(to_source(DOC)) <= set(fields)
    for facet in FACETS:
        assert fields[facet]["type"] == "keyword"
    assert fields[NAME_EXACT]["type"] == "keyword"
    assert "normalizer" in fields[NAME_EXACT]


def test_a_document_keeps_ancestors_and_precomputes_its_keys() -> None:
    source = to_source(DOC)
    assert source["subject"] == ["spiral-galaxies", "galaxies"]
    assert source["gpu"] == ["optional"]
    assert source[NAME_EXACT] == "source-extractor"
    assert source[NAME_SORT] == name_sort_value(DOC.name)
    assert source[UPDATED_MICROS] == updated_micros(DOC.updated)
    assert "source-extraction" in source["topics"]  # the readable tail of a concept URI
    empty_licence = to_source(
        IndexDocument(id="a", name="a", title="A", kind="k", updated=DOC.updated)
    )
    assert empty_licence["licence"] == []


def test_long_ids_are_stored_under_a_stable_digest() -> None:
    long_id = "https://gitlab.example.org/" + "deep/" * 200 + "ivoa-executable.yaml"
    key = document_key(long_id)
    assert len(key.encode()) <= MAX_ID_BYTES
    assert key == document_key(long_id) != document_key(long_id + "x")
    assert document_key("short-id") == "short-id"
    doc = IndexDocument(id=long_id, name="n", title="T", kind="k", updated=DOC.updated)
    assert index_action("i", doc)["_id"] == delete_action("i", long_id)["_id"] == key
    assert index_action("i", doc)["_source"][ID] == long_id  # hits report the real id


@pytest.mark.parametrize("alias", ["", "Catalogue", "voexec catalogue", "-catalogue", "a/b", "a*"])
def test_an_alias_opensearch_would_refuse_is_a_config_error(alias: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_alias(alias)
    assert "search.index" in str(caught.value)


def test_a_usual_alias_is_accepted() -> None:
    assert check_alias("voexec-catalogue") == "voexec-catalogue"
