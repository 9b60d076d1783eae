"""The engine-neutral search rules: checks, multi-select count plans, cursors, names, keys."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalogue.facets import (
    MAX_PAGE_SIZE,
    MAX_TEXT_LENGTH,
    MAX_VALUES_PER_FACET,
    active_filters,
    check_query,
    count_plans,
    decode_cursor,
    encode_cursor,
    facet_counts,
    name_sort_value,
    near_name_distance,
    normalise_name,
    order_key,
    query_fingerprint,
    required_terms,
    typo_distance,
    updated_micros,
)
from catalogue.ports import FACETS, SearchQuery
from core.errors import Invalid

facet_names = st.sampled_from(FACETS)
selections = st.dictionaries(
    facet_names, st.lists(st.sampled_from("abcd"), min_size=1, max_size=3).map(tuple)
)


# --------------------------------------------------------------------------- checks
def problems_of(query: SearchQuery) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        check_query(query)
    return {problem.field: problem.reason for problem in caught.value.problems}


def test_a_good_query_passes() -> None:
    check_query(SearchQuery(text="galaxy", filters={"kind": ("docker-container",)}, limit=100))


def test_unknown_facet_is_named_with_suggestions() -> None:
    with pytest.raises(Invalid) as caught:
        check_query(SearchQuery(filters={"licenses": ("MIT",)}))
    (problem,) = caught.value.problems
    assert problem.field == "filters.licenses"
    assert "licenses" in problem.reason
    assert problem.suggestions == ("licence",)


def test_every_wrong_field_is_reported_at_once() -> None:
    query = SearchQuery(
        text="x" * (MAX_TEXT_LENGTH + 1),
        filters={
            "colour": ("red",),
            "kind": tuple(f"k{i}" for i in range(MAX_VALUES_PER_FACET + 1)),
        },
        sort="popular",  # type: ignore[arg-type]
        limit=0,
    )
    assert set(problems_of(query)) == {"text", "filters.colour", "filters.kind", "sort", "limit"}


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1, True])
def test_limit_out_of_range_is_invalid(limit: int) -> None:
    assert "limit" in problems_of(SearchQuery(limit=limit))


def test_a_bare_string_of_values_is_invalid() -> None:
    query = SearchQuery(filters={"kind": "docker-container"})  # type: ignore[dict-item]
    assert "filters.kind" in problems_of(query)


def test_active_filters_drop_empty_selections_and_repeats() -> None:
    filters = {"gpu": ("none", "", "none"), "kind": (), "subject": ("galaxies",)}
    assert active_filters(filters) == {"subject": ("galaxies",), "gpu": ("none",)}


# ------------------------------------------------------------------ count plans
@given(selections)
def test_each_facet_is_counted_once_under_every_filter_but_its_own(
    filters: dict[str, tuple[str, ...]],
) -> None:
    plans = count_plans(filters)
    counted = [facet for plan in plans for facet in plan.facets]
    assert sorted(counted) == sorted(FACETS)
    for plan in plans:
        for facet in plan.facets:
            assert plan.filters == {name: v for name, v in filters.items() if name != facet}


@given(selections)
def test_count_plans_are_one_per_selected_facet_plus_the_rest(
    filters: dict[str, tuple[str, ...]],
) -> None:
    unselected = len(FACETS) - len(filters)
    assert len(count_plans(filters)) == len(filters) + (1 if unselected else 0)


def test_facet_counts_order_and_keep_selected_values() -> None:
    counts = facet_counts({"b": 2, "a": 2, "c": 5, "gone": 0}, selected=("z", "a"))
    assert list(counts.items()) == [("c", 5), ("a", 2), ("b", 2), ("z", 0)]


# ------------------------------------------------------------------ matching rules
@pytest.mark.parametrize(
    ("term", "distance"), [("", 0), ("ab", 0), ("abc", 1), ("abcde", 1), ("abcdef", 2)]
)
def test_typo_distance_grows_with_the_term(term: str, distance: int) -> None:
    assert typo_distance(term) == distance


@pytest.mark.parametrize(
    ("text", "distance"),
    [
        ("sextractr", 2),
        ("Source Extractr", 2),
        ("ds-9", 1),
        ("spectrum wcs fitting", 0),  # three words: looked up word by word only
        ("montage_mosaic.engine", 0),
        ("x" * 65, 0),  # longer than any name
        ("ab", 0),
    ],
)
def test_only_short_texts_are_tried_as_misspelt_names(text: str, distance: int) -> None:
    assert near_name_distance(normalise_name(text)) == distance


@given(st.integers(1, 64))
def test_required_terms_keep_most_and_drop_at_most_a_quarter(count: int) -> None:
    required = required_terms(count)
    assert 1 <= required <= count
    if count <= 2:
        assert required == count
    else:
        assert 1 <= count - required <= max(1, count // 4)  # missing terms allowed


FULLWIDTH = "".join(chr(ord(char) + 0xFEE0) for char in "sextractor")


@pytest.mark.parametrize(
    "variant", ["SExtractor", "sextractor", " sextractor ", "SEXTRACTOR", FULLWIDTH]
)
def test_name_variants_normalise_alike(variant: str) -> None:
    assert normalise_name(variant) == "sextractor"


def test_separators_in_names_are_equivalent() -> None:
    forms = {"Source Extractor", "source_extractor", "source-extractor", "source.extractor"}
    assert {normalise_name(form) for form in forms} == {"source-extractor"}
    assert normalise_name("sourceextractor") != "source-extractor"


@given(st.text())
def test_name_sort_values_hold_no_control_characters(name: str) -> None:
    value = name_sort_value(name)
    assert all(ord(char) >= 0x20 for char in value)
    assert value == value.strip()


def test_name_sort_ignores_case_and_accents() -> None:
    assert name_sort_value("Éclair") == name_sort_value("eclair")
    assert name_sort_value("Zeta") > name_sort_value("alpha")


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_updated_micros_keeps_time_order(first: datetime, second: datetime) -> None:
    assert (first < second) == (updated_micros(first) < updated_micros(second))


def test_updated_micros_reads_any_timezone_and_naive_as_utc() -> None:
    moment = datetime(2025, 3, 1, 12, tzinfo=UTC)
    shifted = moment.astimezone(timezone(timedelta(hours=5)))
    assert updated_micros(shifted) == updated_micros(moment)
    assert updated_micros(moment.replace(tzinfo=None)) == updated_micros(moment)


def test_order_key_sorts_each_order_with_id_ties() -> None:
    hits = [(2.0, "b"), (3.0, "z"), (2.0, "a")]
    assert sorted(hits, key=lambda k: order_key("relevance", k)) == [
        (3.0, "z"),
        (2.0, "a"),
        (2.0, "b"),
    ]
    assert sorted(hits, key=lambda k: order_key("newest", k))[0] == (3.0, "z")
    names = [("beta", "2"), ("alpha", "9"), ("beta", "1")]
    assert sorted(names, key=lambda k: order_key("name", k)) == [
        ("alpha", "9"),
        ("beta", "1"),
        ("beta", "2"),
    ]


# ------------------------------------------------------------------------- cursors
query_texts = st.text(max_size=40)
sort_keys = st.one_of(
    st.tuples(st.just("relevance"), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("name"), st.text()),
    st.tuples(st.just("newest"), st.integers(0, 10**18)),
)


@given(query_texts, selections, sort_keys, st.text(min_size=1), st.integers(0, 10**6))
def test_cursors_round_trip_and_are_url_safe(
    text: str,
    filters: dict[str, tuple[str, ...]],
    sort_key: tuple[str, object],
    doc_id: str,
    hint: int,
) -> None:
    sort, value = sort_key
    query = SearchQuery(text=text, filters=filters, sort=sort)  # type: ignore[arg-type]
    token = encode_cursor(query, (value, doc_id), hint)  # type: ignore[arg-type]
    assert token.isascii()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    cursor = decode_cursor(msgspec.structs.replace(query, cursor=token))
    assert cursor is not None
    assert (cursor.value, cursor.id, cursor.hint) == (value, doc_id, hint)


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor(SearchQuery()) is None
    assert decode_cursor(SearchQuery(cursor="")) is None


def test_cursor_survives_reordered_filter_values() -> None:
    first = SearchQuery(filters={"kind": ("a", "b"), "gpu": ("none",)}, sort="name")
    token = encode_cursor(first, ("x", "id-1"))
    same = SearchQuery(filters={"gpu": ("none",), "kind": ("b", "a")}, sort="name", cursor=token)
    assert decode_cursor(same) is not None


def _token(payload: object) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(payload)).rstrip(b"=").decode()


NEWEST = SearchQuery(sort="newest")
FINGERPRINT = query_fingerprint(NEWEST)


def test_a_well_formed_token_decodes() -> None:
    """The control for the cases below: each differs from this token by one flaw."""
    cursor = decode_cursor(
        msgspec.structs.replace(NEWEST, cursor=_token([1, "newest", FINGERPRINT, 5, "id", 0]))
    )
    assert cursor is not None
    assert (cursor.value, cursor.id) == (5, "id")


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        "é",
        "a" * 5000,
        _token({"not": "a cursor"}),
        _token([1, "newest", FINGERPRINT]),
        _token([99, "newest", FINGERPRINT, 5, "id", 0]),
        _token([1, "newest", FINGERPRINT, "x", "id", 0]),
        _token([1, "newest", FINGERPRINT, 5, "id", -1]),
        _token([1, "newest", FINGERPRINT, 5, "id", 10**12]),
        _token([1, "newest", FINGERPRINT, True, "id", 0]),
        _token([1, "newest", "000000000000", 5, "id", 0]),
        _token([1, "name", FINGERPRINT, "x", "id", 0]),
    ],
)
def test_bad_cursors_are_invalid_and_name_the_cursor(token: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode_cursor(msgspec.structs.replace(NEWEST, cursor=token))
    assert [problem.field for problem in caught.value.problems] == ["cursor"]


@pytest.mark.parametrize(
    "other",
    [
        SearchQuery(text="galaxy", sort="newest"),
        SearchQuery(text="quasar", sort="name"),
        SearchQuery(text="galaxy", sort="name", filters={"gpu": ("none",)}),
    ],
)
def test_a_cursor_is_refused_by_another_search(other: SearchQuery) -> None:
    token = encode_cursor(SearchQuery(text="galaxy", sort="name"), ("x", "id-1"))
    with pytest.raises(Invalid) as caught:
        decode_cursor(msgspec.structs.replace(other, cursor=token))
    assert "different search" in caught.value.problems[0].reason
