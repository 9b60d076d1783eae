"""One contract for every `SearchIndex` adapter: the behaviour the catalogue relies on.

The `search_index` (empty, per test) and `catalogue_index` (filled with `CATALOGUE`, per module)
fixtures are parametrised over the adapters, like litestar's `store` fixture; an adapter that
needs a server carries its mark (`opensearch`) and is skipped, or failed in CI, without it.
Expected results come from a plain-Python oracle over the same documents (`matching`,
`expected_order`), never from the adapter under test.
"""

from __future__ import annotations

import random
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalogue.facets import (
    MAX_CURSOR_HINT,
    decode_cursor,
    encode_cursor,
    name_sort_value,
    order_key,
    updated_micros,
)
from catalogue.ports import (
    FACETS,
    IndexChanges,
    IndexDocument,
    SearchIndex,
    SearchQuery,
    SearchResult,
)
from catalogue.search_opensearch import OpenSearchIndex
from catalogue.search_tantivy import TantivySearchIndex
from core.errors import Invalid, Unavailable
from core.settings import OpenSearchSearch
from tests.integration.conftest import delete_opensearch_indices, opensearch_server_url

# ----------------------------------------------------------------- realistic documents
SUBJECT_BROADER = {
    "galaxies": None,
    "dwarf-galaxies": "galaxies",
    "spiral-galaxies": "galaxies",
    "barred-spiral-galaxies": "spiral-galaxies",
    "stellar-astronomy": None,
    "variable-stars": "stellar-astronomy",
    "cepheid-variable-stars": "variable-stars",
    "radio-astronomy": None,
    "radio-interferometry": "radio-astronomy",
    "cosmology": None,
    "cosmic-microwave-background-radiation": "cosmology",
}
FUNCTION_BROADER = {
    "image-analysis": None,
    "source-extraction": "image-analysis",
    "photometry": "image-analysis",
    "data-reduction": None,
    "calibration": "data-reduction",
    "cube-manipulation": "data-reduction",
    "spectral-analysis": None,
    "spectral-fitting": "spectral-analysis",
    "classification": None,
}
TOOLS = [
    ("psfex", "PSF Extractor", "Models the point spread function from SExtractor catalogues"),
    ("swarp", "SWarp image resampler", "Resamples and co-adds FITS images"),
    ("scamp", "SCAMP astrometric calibration", "Computes astrometric solutions"),
    ("wsclean", "WSClean imager", "Fast wide-field interferometric imaging"),
    ("casa-imager", "CASA tclean imager", "Radio interferometric imaging with tclean"),
    ("cubeviz", "Cube visualisation notebook", "Explore spectral cubes interactively"),
    ("spectral-cube", "Spectral cube tools", "Read, slice and reproject spectral cubes"),
    ("pyspeckit", "Python spectroscopic toolkit", "Fit Gaussian lines to spectra"),
    ("photutils", "Photometry utilities", "Aperture and PSF photometry of sources"),
    ("galfit", "GALFIT galaxy profile fitting", "Fits Sersic profiles to galaxy images"),
    ("morpheus", "Morpheus deep learning classifier", "Pixel-level galaxy morphology on GPUs"),
    ("astronet", "AstroNet transit classifier", "Neural network for light curve classification"),
    ("healpy-maps", "HEALPix map tools", "Spherical harmonic analysis of sky maps"),
    ("camb-notebook", "CAMB power spectra notebook", "Cosmic microwave background spectra"),
    ("varstar", "Variable star period finder", "Lomb-Scargle periods of Cepheid light curves"),
]
KINDS = ("docker-container", "singularity-container", "jupyter-notebook", "python-program")
LICENCES = ("MIT", "GPL-3.0-only", "BSD-3-Clause", "Apache-2.0", "")
PLATFORMS = ("local", "cluster-a", "gpu-farm")
MESSENGERS = ("optical", "infrared", "radio", "x-ray", "millimeter")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def with_ancestors(terms: tuple[str, ...], broader: Mapping[str, str | None]) -> tuple[str, ...]:
    """The terms and all their broader terms, each once (what the catalogue indexes)."""
    expanded: dict[str, None] = {}
    for term in terms:
        current: str | None = term
        while current is not None:
            expanded[current] = None
            current = broader[current]
    return tuple(expanded)


def make_catalogue(seed: int = 5) -> tuple[list[IndexDocument], dict[str, tuple[str, ...]]]:
    """About forty entries, and each entry's subjects as tagged (before expansion)."""
    rng = random.Random(seed)
    documents = [
        IndexDocument(
            id="gitlab.example.org/astromatic/sextractor",
            name="sextractor",
            title="Source Extractor",
            summary="Builds catalogues of objects from astronomical images",
            kind="docker-container",
            subjects=with_ancestors(("galaxies",), SUBJECT_BROADER),
            functions=with_ancestors(("source-extraction",), FUNCTION_BROADER),
            messengers=("optical",),
            licence="GPL-3.0-only",
            platforms=("local", "cluster-a"),
            updated=T0,
        )
    ]
    tagged: dict[str, tuple[str, ...]] = {documents[0].id: ("galaxies",)}
    for number in range(40):
        name, title, summary = TOOLS[number % len(TOOLS)]
        if number >= len(TOOLS):
            name = f"{name}-{rng.choice(['fork', 'gpu', 'lite', 'ng'])}"
        subjects = tuple(rng.sample(sorted(SUBJECT_BROADER), rng.randint(0, 2)))
        functions = tuple(rng.sample(sorted(FUNCTION_BROADER), rng.randint(1, 2)))
        description = " ".join(
            rng.choice(["Works with sextractor catalogues.", "Runs on GPUs.", "Reads FITS."])
            for _ in range(rng.randint(1, 4))
        )
        doc_id = f"gitlab.example.org/group{number % 3}/{name}-{number:02d}"
        documents.append(
            IndexDocument(
                id=doc_id,
                name=name,
                title=title,
                summary=summary,
                description=description,
                keywords=tuple(rng.sample(["imaging", "fits", "catalogue", "gpu", "spectra"], 2)),
                authors=(rng.choice(["E. Bertin", "A. Ginsburg", "C. Peng", "R. Hausen"]),),
                kind=rng.choice(KINDS),
                subjects=with_ancestors(subjects, SUBJECT_BROADER),
                functions=with_ancestors(functions, FUNCTION_BROADER),
                messengers=tuple(rng.sample(MESSENGERS, rng.randint(0, 2))),
                licence=rng.choice(LICENCES),
                gpu=rng.choice(("required", "optional", "none")),
                platforms=tuple(rng.sample(PLATFORMS, rng.randint(0, 3))),
                # Few distinct times, so the newest sort has ties to break by id.
                updated=T0 + timedelta(days=rng.randint(0, 5)),
            )
        )
        tagged[doc_id] = subjects
    return documents, tagged


CATALOGUE, TAGGED_SUBJECTS = make_catalogue()
BY_ID = {doc.id: doc for doc in CATALOGUE}
SEXTRACTOR = CATALOGUE[0].id


# --------------------------------------------------------------------------- oracle
def matching(filters: Mapping[str, tuple[str, ...]]) -> set[str]:
    """Ids of the documents a filter selection matches: OR within a facet, AND across."""
    return {
        doc.id
        for doc in CATALOGUE
        if all(
            set(values) & set(doc.facet_values(facet))
            for facet, values in filters.items()
            if values
        )
    }


def expected_order(sort: str, ids: set[str]) -> list[str]:
    """Ids in the order of a name or newest sort."""

    def key(doc_id: str) -> tuple[object, str]:
        doc = BY_ID[doc_id]
        value = name_sort_value(doc.name) if sort == "name" else updated_micros(doc.updated)
        return order_key(sort, (value, doc_id))  # type: ignore[arg-type]

    return sorted(ids, key=key)


def walk(index: SearchIndex, query: SearchQuery) -> tuple[list[str], list[SearchResult]]:
    """Follow `next_cursor` to the end (from `query.cursor`); the ids of every page, in order."""
    ids: list[str] = []
    pages = []
    cursor = query.cursor
    for _ in range(1000):
        page = index.search(msgspec.structs.replace(query, cursor=cursor))
        pages.append(page)
        ids += [hit.id for hit in page.hits]
        cursor = page.next_cursor
        if cursor is None:
            return ids, pages
    raise AssertionError("the cursor never ended")


# ------------------------------------------------------------------------- fixtures
ADAPTERS = [
    pytest.param("tantivy", id="tantivy"),
    pytest.param("opensearch", id="opensearch", marks=pytest.mark.opensearch),
]


def open_index(adapter: str, directory: Path) -> Iterator[SearchIndex]:
    """An empty index of one adapter; closed (and on OpenSearch deleted) afterwards."""
    if adapter == "tantivy":
        tantivy = TantivySearchIndex(directory / "search")
        yield tantivy
        tantivy.close()
        return
    url = opensearch_server_url()
    # A unique alias per index: tests may share the cluster with a developer's own indices.
    alias = f"voexec-test-{uuid.uuid4().hex[:10]}"
    opensearch = OpenSearchIndex(OpenSearchSearch(url=url), alias=alias)
    try:
        yield opensearch
    finally:
        opensearch.close()
        delete_opensearch_indices(url, f"{alias}*")


@pytest.fixture(params=ADAPTERS)
def search_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchIndex]:
    yield from open_index(request.param, tmp_path)


@pytest.fixture(scope="module", params=ADAPTERS)
def catalogue_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SearchIndex]:
    for index in open_index(request.param, tmp_path_factory.mktemp("catalogue")):
        # Two writes, so the index has more than one segment, as a harvested one would.
        index.upsert(CATALOGUE[:20])
        index.upsert(CATALOGUE[20:])
        yield index


# --------------------------------------------------------------------------- ranking
@pytest.mark.parametrize("text", ["sextractor", "SExtractor", " sextractor "])
def test_exact_name_ranks_first(catalogue_index: SearchIndex, text: str) -> None:
    mentions = {
        doc.id: f"{doc.title} {doc.summary} {doc.description}".lower().count("sextractor")
        for doc in CATALOGUE
    }
    assert max(mentions.values()) > mentions[SEXTRACTOR]  # others mention it more
    result = catalogue_index.search(SearchQuery(text=text))
    assert result.hits[0].id == SEXTRACTOR
    assert result.total > 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sextractr", SEXTRACTOR),  # one edit
        ("sextarctor", SEXTRACTOR),  # one transposition
        ("sxetractro", SEXTRACTOR),  # two edits
        ("wscleen", "gitlab.example.org/group0/wsclean-03"),  # one edit
    ],
)
def test_misspelt_name_is_found_first(
    catalogue_index: SearchIndex, text: str, expected: str
) -> None:
    assert expected in BY_ID
    result = catalogue_index.search(SearchQuery(text=text))
    assert result.hits
    assert result.hits[0].id == expected


def test_empty_text_matches_everything(catalogue_index: SearchIndex) -> None:
    result = catalogue_index.search(SearchQuery(limit=100))
    assert result.total == len(CATALOGUE) == catalogue_index.count()
    assert {hit.id for hit in result.hits} == set(BY_ID)


def test_words_anywhere_match_and_unrelated_words_do_not(catalogue_index: SearchIndex) -> None:
    found = catalogue_index.search(SearchQuery(text="Gaussian lines", limit=100))
    assert {hit.id for hit in found.hits} >= {
        d.id for d in CATALOGUE if d.name.startswith("pyspeckit")
    }
    assert catalogue_index.search(SearchQuery(text="zzqxv")).total == 0


def test_relevance_is_deterministic(catalogue_index: SearchIndex) -> None:
    query = SearchQuery(text="galaxy images", limit=50)
    assert catalogue_index.search(query) == catalogue_index.search(query)


# ------------------------------------------------------------------- filters, facets
def test_broad_subject_finds_entries_tagged_with_narrower_ones(
    catalogue_index: SearchIndex,
) -> None:
    narrower = {"galaxies", "dwarf-galaxies", "spiral-galaxies", "barred-spiral-galaxies"}
    expected = {doc_id for doc_id, tags in TAGGED_SUBJECTS.items() if set(tags) & narrower}
    assert any("barred-spiral-galaxies" in TAGGED_SUBJECTS[i] for i in expected)
    result = catalogue_index.search(SearchQuery(filters={"subject": ("galaxies",)}, limit=100))
    assert {hit.id for hit in result.hits} == expected
    assert result.total == len(expected)


SELECTIONS = [
    {},
    {"kind": ("docker-container",)},
    {"kind": ("docker-container", "jupyter-notebook"), "gpu": ("none",)},
    {"subject": ("galaxies",), "function": ("image-analysis",), "platform": ("gpu-farm",)},
    {"licence": ("MIT", "no-such-licence")},
]


@pytest.mark.parametrize("filters", SELECTIONS)
@pytest.mark.parametrize("text", ["", "galaxy", "imaging"])
def test_facet_counts_equal_the_hits_they_select(
    catalogue_index: SearchIndex, filters: dict[str, tuple[str, ...]], text: str
) -> None:
    result = catalogue_index.search(SearchQuery(text=text, filters=filters))
    assert set(result.facets) == set(FACETS)
    for facet, counts in result.facets.items():
        for value, count in counts.items():
            selection = {**filters, facet: (value,)}
            assert catalogue_index.search(SearchQuery(text=text, filters=selection)).total == count


@pytest.mark.parametrize("filters", SELECTIONS)
def test_facet_counts_match_the_oracle(
    catalogue_index: SearchIndex, filters: dict[str, tuple[str, ...]]
) -> None:
    result = catalogue_index.search(SearchQuery(filters=filters))
    assert result.total == len(matching(filters))
    for facet in FACETS:
        others = matching({name: v for name, v in filters.items() if name != facet})
        expected: dict[str, int] = {}
        for doc_id in others:
            for value in BY_ID[doc_id].facet_values(facet):
                expected[value] = expected.get(value, 0) + 1
        shown = {value: count for value, count in result.facets[facet].items() if count}
        assert shown == expected, facet


@pytest.mark.parametrize("filters", SELECTIONS)
@pytest.mark.parametrize("asked", [("subject",), ("kind", "licence"), ("messenger", "gpu"), ()])
@pytest.mark.parametrize("text", ["galaxy", ""])
def test_only_the_facets_asked_for_are_counted_and_alike(
    catalogue_index: SearchIndex,
    filters: dict[str, tuple[str, ...]],
    asked: tuple[str, ...],
    text: str,
) -> None:
    # Without text, the total comes from the count of the facets that apply every selection,
    # or from a search of its own when every facet asked for is selected (or none is asked).
    every = catalogue_index.search(SearchQuery(text=text, filters=filters))
    some = catalogue_index.search(SearchQuery(text=text, filters=filters, facets=asked))
    assert list(some.facets) == [facet for facet in FACETS if facet in asked]
    assert some.facets == {facet: every.facets[facet] for facet in asked}
    assert (some.total, some.hits) == (every.total, every.hits)


def test_an_unknown_facet_to_count_is_invalid_and_named(catalogue_index: SearchIndex) -> None:
    with pytest.raises(Invalid) as caught:
        catalogue_index.search(SearchQuery(facets=("kind", "licences")))
    (problem,) = caught.value.problems
    assert problem.field == "facets"
    assert "licence" in problem.suggestions


def test_the_generation_changes_with_every_write(search_index: SearchIndex) -> None:
    seen = [search_index.generation()]
    if isinstance(search_index, TantivySearchIndex):  # OpenSearch's also moves every second
        assert search_index.generation() == seen[0]
    search_index.upsert(CATALOGUE[:3])
    seen.append(search_index.generation())
    search_index.delete([CATALOGUE[0].id])
    seen.append(search_index.generation())
    search_index.rebuild(iter(CATALOGUE[3:5]))
    seen.append(search_index.generation())
    assert len(set(seen)) == len(seen)


def test_multi_select_counts_ignore_their_own_facet(catalogue_index: SearchIndex) -> None:
    unfiltered = catalogue_index.search(SearchQuery())
    one_kind = catalogue_index.search(SearchQuery(filters={"kind": ("docker-container",)}))
    assert one_kind.facets["kind"] == unfiltered.facets["kind"]  # others stay selectable
    assert one_kind.facets["gpu"] != unfiltered.facets["gpu"]  # other facets narrow
    both = catalogue_index.search(
        SearchQuery(filters={"kind": ("docker-container", "python-program")})
    )
    kind_counts = unfiltered.facets["kind"]
    assert both.total == kind_counts["docker-container"] + kind_counts["python-program"]


def test_selected_value_without_hits_is_still_listed(catalogue_index: SearchIndex) -> None:
    result = catalogue_index.search(SearchQuery(filters={"licence": ("no-such-licence",)}))
    assert result.total == 0
    assert result.facets["licence"]["no-such-licence"] == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    filters=st.dictionaries(
        st.sampled_from(["kind", "gpu", "platform", "messenger", "subject"]),
        st.lists(
            st.sampled_from(
                [*KINDS, "required", "none", *PLATFORMS, *MESSENGERS, *SUBJECT_BROADER]
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
        max_size=3,
    )
)
def test_filters_or_within_a_facet_and_across_facets(
    catalogue_index: SearchIndex, filters: dict[str, tuple[str, ...]]
) -> None:
    ids, _ = walk(catalogue_index, SearchQuery(filters=filters, sort="name", limit=100))
    assert set(ids) == matching(filters)


# --------------------------------------------------------------------- sort, cursors
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.integers(1, 9),
    sort=st.sampled_from(["relevance", "name", "newest"]),
    text=st.sampled_from(["", "galaxy", "sext", "imaging catalogue", "spectra"]),
    filters=st.sampled_from(SELECTIONS[:3]),
)
def test_cursors_walk_all_results_exactly_once(
    catalogue_index: SearchIndex,
    limit: int,
    sort: str,
    text: str,
    filters: dict[str, tuple[str, ...]],
) -> None:
    query = SearchQuery(text=text, filters=filters, sort=sort, limit=limit)  # type: ignore[arg-type]
    ids, pages = walk(catalogue_index, query)
    whole = catalogue_index.search(SearchQuery(text=text, filters=filters, sort=sort, limit=100))  # type: ignore[arg-type]
    assert len(ids) == len(set(ids)) == whole.total
    assert ids == [hit.id for hit in whole.hits]
    assert all(len(page.hits) == limit for page in pages[:-1])
    assert all(page.total == whole.total for page in pages)
    if sort == "relevance":
        keys = [(-hit.score, hit.id) for page in pages for hit in page.hits]
        assert keys == sorted(keys)  # score descending, ties by id
    else:
        assert ids == expected_order(sort, set(ids))


def test_name_walk_stays_exact_while_entries_are_added(search_index: SearchIndex) -> None:
    search_index.upsert(CATALOGUE[:30])
    query = SearchQuery(sort="name", limit=4)
    waiting = list(CATALOGUE[30:])
    page = search_index.search(query)
    seen = [hit.id for hit in page.hits]
    while page.next_cursor is not None:
        if waiting:  # a new entry before each next page, some sorting before the cursor
            search_index.upsert([waiting.pop()])
        page = search_index.search(msgspec.structs.replace(query, cursor=page.next_cursor))
        seen += [hit.id for hit in page.hits]
    assert len(seen) == len(set(seen))
    assert set(seen) >= {doc.id for doc in CATALOGUE[:30]}
    assert seen == expected_order("name", set(seen))


def test_relevance_walk_survives_deletions(search_index: SearchIndex) -> None:
    search_index.upsert(CATALOGUE)
    query = SearchQuery(text="galaxy images", limit=3)
    first = search_index.search(query)
    second = search_index.search(msgspec.structs.replace(query, cursor=first.next_cursor))
    shown = [hit.id for hit in first.hits + second.hits]
    search_index.delete(shown)
    rest, _ = walk(search_index, msgspec.structs.replace(query, cursor=second.next_cursor))
    # search_after: exactly the hits now ranked after the last one shown, in order.
    last = second.hits[-1]
    now = search_index.search(msgspec.structs.replace(query, limit=100))
    assert rest == [h.id for h in now.hits if (-h.score, h.id) > (-last.score, last.id)]
    assert not set(rest) & set(shown)


@pytest.mark.parametrize(
    ("text", "sort"), [("galaxy", "relevance"), ("", "relevance"), ("", "name"), ("fits", "newest")]
)
@pytest.mark.parametrize("hint", [0, 1, 7, MAX_CURSOR_HINT])
def test_a_cursor_hint_is_never_trusted(
    catalogue_index: SearchIndex, text: str, sort: str, hint: int
) -> None:
    query = SearchQuery(text=text, sort=sort, limit=3)  # type: ignore[arg-type]
    first = catalogue_index.search(query)
    genuine = catalogue_index.search(msgspec.structs.replace(query, cursor=first.next_cursor))
    assert first.next_cursor is not None
    real = decode_cursor(msgspec.structs.replace(query, cursor=first.next_cursor))
    assert real is not None
    forged = encode_cursor(query, (real.value, real.id), hint)
    assert (
        catalogue_index.search(msgspec.structs.replace(query, cursor=forged)).hits == genuine.hits
    )


def test_newest_first(catalogue_index: SearchIndex) -> None:
    result = catalogue_index.search(SearchQuery(sort="newest", limit=100))
    times = [BY_ID[hit.id].updated for hit in result.hits]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize(
    "cursor",
    ["garbage!", "", "eyJub3QiOiJhIGN1cnNvciJ9", "W1siYSJdXQ", "x" * 5000, "WzEsIm5hbWUiXQ"],
)
def test_bad_cursor_is_invalid(catalogue_index: SearchIndex, cursor: str) -> None:
    if cursor == "":  # an empty cursor means the first page
        assert catalogue_index.search(SearchQuery(cursor=cursor)).total == len(CATALOGUE)
        return
    with pytest.raises(Invalid) as caught:
        catalogue_index.search(SearchQuery(cursor=cursor))
    assert [problem.field for problem in caught.value.problems] == ["cursor"]


def test_cursor_of_another_search_is_invalid(catalogue_index: SearchIndex) -> None:
    first = catalogue_index.search(SearchQuery(text="galaxy", sort="name", limit=2))
    assert first.next_cursor is not None
    for other in (
        SearchQuery(text="galaxy", sort="newest", cursor=first.next_cursor),
        SearchQuery(text="imaging", sort="name", cursor=first.next_cursor),
        SearchQuery(
            text="galaxy", sort="name", filters={"gpu": ("none",)}, cursor=first.next_cursor
        ),
    ):
        with pytest.raises(Invalid) as caught:
            catalogue_index.search(other)
        assert caught.value.problems[0].field == "cursor"


def test_unknown_facet_is_invalid_and_named(catalogue_index: SearchIndex) -> None:
    with pytest.raises(Invalid) as caught:
        catalogue_index.search(SearchQuery(filters={"subjects": ("galaxies",), "kind": ("x",)}))
    (problem,) = caught.value.problems
    assert problem.field == "filters.subjects"
    assert "subject" in problem.suggestions


# --------------------------------------------------------------------------- writes
def test_upsert_replaces_by_id(search_index: SearchIndex) -> None:
    original = CATALOGUE[1]
    search_index.upsert([original, CATALOGUE[2]])
    changed = msgspec.structs.replace(
        original, title="Quasar redshift estimator", kind="python-program"
    )
    search_index.upsert([changed])
    assert search_index.count() == 2
    assert [hit.id for hit in search_index.search(SearchQuery(text="quasar")).hits] == [original.id]
    kinds = search_index.search(SearchQuery()).facets["kind"]
    assert kinds.get("python-program", 0) == 1 + (CATALOGUE[2].kind == "python-program")


def test_upsert_of_the_same_id_twice_keeps_the_last(search_index: SearchIndex) -> None:
    first = CATALOGUE[3]
    second = msgspec.structs.replace(first, title="Renamed quasar tool")
    search_index.upsert([first, second])
    assert search_index.count() == 1
    assert search_index.search(SearchQuery(text="quasar")).total == 1


def test_writes_show_in_the_very_next_search(search_index: SearchIndex) -> None:
    query = SearchQuery(filters={"function": ("source-extraction",)})
    search_index.upsert(CATALOGUE[1:6])
    before = search_index.search(query)
    search_index.upsert([CATALOGUE[0]])  # the sextractor entry does source extraction
    after = search_index.search(query)
    assert after.total == before.total + 1
    assert after.facets["kind"] != before.facets["kind"]
    search_index.delete([CATALOGUE[0].id])
    assert search_index.search(query) == before


def test_delete_removes_and_ignores_unknown_ids(search_index: SearchIndex) -> None:
    search_index.upsert(CATALOGUE[:5])
    search_index.delete([CATALOGUE[0].id, "no-such-id"])
    assert search_index.count() == 4
    result = search_index.search(SearchQuery(text="sextractor", limit=100))
    assert SEXTRACTOR not in {hit.id for hit in result.hits}


def test_rebuild_replaces_everything(search_index: SearchIndex) -> None:
    search_index.upsert(CATALOGUE[:10])
    assert search_index.rebuild(iter(CATALOGUE[10:15])) == 5
    assert search_index.count() == 5
    ids = {hit.id for hit in search_index.search(SearchQuery(limit=100)).hits}
    assert ids == {doc.id for doc in CATALOGUE[10:15]}
    search_index.upsert([CATALOGUE[0]])  # still writable after the swap
    assert search_index.count() == 6


def test_failed_rebuild_leaves_the_old_index_serving(search_index: SearchIndex) -> None:
    search_index.upsert(CATALOGUE[:10])

    def broken() -> Iterator[IndexDocument]:
        yield from CATALOGUE[10:20]
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        search_index.rebuild(broken())
    assert search_index.count() == 10
    assert search_index.search(SearchQuery(text="sextractor")).hits[0].id == SEXTRACTOR


def test_rebuild_applies_the_changes_stored_while_it_ran(search_index: SearchIndex) -> None:
    started = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    asked: list[datetime] = []

    def changes(since: datetime) -> IndexChanges:
        asked.append(since)
        return IndexChanges(documents=[CATALOGUE[7]], removed=[CATALOGUE[0].id])

    held = search_index.rebuild(iter(CATALOGUE[:5]), started=started, changes=changes)
    assert asked == [started]
    expected = {doc.id for doc in CATALOGUE[1:5]} | {CATALOGUE[7].id}
    assert held == len(expected) == search_index.count()
    assert {hit.id for hit in search_index.search(SearchQuery(limit=100)).hits} == expected
    assert search_index.follow() is None  # this process made the rebuild: nothing to follow


def test_empty_index_answers_with_empty_facets(search_index: SearchIndex) -> None:
    result = search_index.search(SearchQuery(text="anything", filters={"kind": ("x",)}))
    assert result.total == 0
    assert result.hits == []
    assert result.next_cursor is None
    assert result.facets["kind"] == {"x": 0}


# ----------------------------------------------------------------- tantivy specifics
def test_tantivy_index_survives_reopening(tmp_path: Path) -> None:
    index = TantivySearchIndex(tmp_path / "search")
    assert index.needs_rebuild
    index.rebuild(CATALOGUE[:7])
    index.upsert(CATALOGUE[7:9])
    index.close()
    reopened = TantivySearchIndex(tmp_path / "search")
    assert not reopened.needs_rebuild
    assert reopened.count() == 9
    assert len([p for p in (tmp_path / "search").iterdir() if p.is_dir()]) == 1
    reopened.close()


def test_tantivy_index_stays_usable_after_close() -> None:
    index = TantivySearchIndex(None)
    index.upsert(CATALOGUE[:3])
    index.close()
    assert index.search(SearchQuery(text="sextractor")).hits[0].id == SEXTRACTOR
    index.upsert(CATALOGUE[3:5])
    assert index.search(SearchQuery()).total == 5
    index.close()


def test_tantivy_index_of_another_schema_starts_empty(tmp_path: Path) -> None:
    root = tmp_path / "search"
    (root / "v0-old").mkdir(parents=True)
    (root / "CURRENT").write_text("v0-old\n")
    index = TantivySearchIndex(root)
    assert index.needs_rebuild
    assert index.count() == 0
    assert not (root / "v0-old").exists()
    index.close()


def test_tantivy_searches_run_while_writing() -> None:
    index = TantivySearchIndex(None)
    index.upsert(CATALOGUE[:5])
    totals: list[int] = []
    errors: list[BaseException] = []

    def search_repeatedly() -> None:
        try:
            for _ in range(30):
                totals.append(index.search(SearchQuery(text="imaging")).total)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    readers = [threading.Thread(target=search_repeatedly) for _ in range(3)]
    for reader in readers:
        reader.start()
    for doc in CATALOGUE[5:]:
        index.upsert([doc])
    for reader in readers:
        reader.join()
    assert errors == []
    assert index.count() == len(CATALOGUE)
    index.close()


def test_tantivy_rebuild_by_another_process_is_followed(tmp_path: Path) -> None:
    """`voexec reindex` beside a serving process: no shared writer, a switch, no lost folder."""
    root = tmp_path / "search"
    server = TantivySearchIndex(root)
    server.upsert(CATALOGUE[:10])  # the server now holds the writer of its generation
    reindex = TantivySearchIndex(root)
    assert reindex.count() == 10
    assert server.follow() is None
    started = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    assert reindex.rebuild(iter(CATALOGUE[10:15]), started=started) == 5
    reindex.close()
    assert server.search(SearchQuery()).total == 10  # still the old generation, still answering
    server.upsert([CATALOGUE[15]])  # and still writable until it follows
    assert server.follow() == started
    assert server.follow() is None
    assert server.count() == 5
    server.upsert([CATALOGUE[0]])  # the writer of the new generation is free for the server
    assert server.search(SearchQuery(text="sextractor")).hits[0].id == SEXTRACTOR
    generations = [p.name for p in root.iterdir() if p.is_dir()]
    assert generations == [(root / "CURRENT").read_text().split()[0]]  # the old one is deleted
    server.close()
    reopened = TantivySearchIndex(root)
    assert reopened.count() == 6
    reopened.close()


def test_tantivy_sees_another_process_commit_at_once_counts_included(tmp_path: Path) -> None:
    """A harvest beside the server writes the same generation: no stale cached counts."""
    root = tmp_path / "search"
    server = TantivySearchIndex(root)
    server.rebuild(iter(CATALOGUE[1:10]))
    query = SearchQuery(text="sextractor")
    before = server.search(query)  # its counts are now kept
    generation = server.generation()
    harvest = TantivySearchIndex(root)
    harvest.upsert([CATALOGUE[0]])
    harvest.close()
    assert server.generation() != generation
    after = server.search(query)
    assert after.hits[0].id == SEXTRACTOR
    assert after.total == before.total + 1
    assert after.facets["kind"] != before.facets["kind"]
    server.close()


def test_tantivy_keeps_a_generation_another_process_still_uses(tmp_path: Path) -> None:
    root = tmp_path / "search"
    server = TantivySearchIndex(root)
    server.upsert(CATALOGUE[:3])
    used = (root / "CURRENT").read_text().split()[0]
    first = TantivySearchIndex(root)
    first.rebuild(iter(CATALOGUE[3:5]))
    second = TantivySearchIndex(root)  # opening sweeps unused generations, not the server's
    second.rebuild(iter(CATALOGUE[5:9]))
    assert (root / used).is_dir()
    assert server.search(SearchQuery()).total == 3
    assert server.follow() is not None
    assert server.count() == 4
    for index in (first, second, server):
        index.close()
    assert not (root / used).exists()


def test_tantivy_write_into_a_vanished_folder_is_unavailable_then_recovers(
    tmp_path: Path,
) -> None:
    root = tmp_path / "search"
    index = TantivySearchIndex(root)
    index.upsert(CATALOGUE[:3])
    shutil.rmtree(root / (root / "CURRENT").read_text().split()[0])  # what a careless tool does
    with pytest.raises(Unavailable):
        index.upsert(CATALOGUE[3:4])
    with pytest.raises(Unavailable):
        index.upsert(CATALOGUE[3:4])  # its writer was dropped: still a clear error, not tantivy's
    other = TantivySearchIndex(root)
    other.rebuild(iter(CATALOGUE[:4]), started=datetime(2026, 5, 4, tzinfo=UTC))
    other.close()
    assert index.follow() is not None
    index.upsert(CATALOGUE[4:5])
    assert index.count() == 5
    index.close()


def test_tantivy_narrowing_one_facet_at_a_time_reuses_the_counts_it_had(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counts kept by filter set answer the next, narrower search, and answer it right."""
    from catalogue.search_tantivy import queries

    counted_plans: list[dict[str, tuple[str, ...]]] = []
    count = queries._count

    def recording(searcher, text, plans, filters):  # type: ignore[no-untyped-def]
        counted_plans.extend(plan.filters for plan in plans)
        return count(searcher, text, plans, filters)

    monkeypatch.setattr(queries, "_count", recording)
    kept = TantivySearchIndex(None)
    fresh = TantivySearchIndex(None, count_cache_size=0)
    for index in (kept, fresh):
        index.upsert(CATALOGUE)
    steps = [
        {},
        {"kind": ("docker-container",)},
        {"kind": ("docker-container",), "licence": ("MIT", "GPL-3.0-only")},
        {"licence": ("MIT", "GPL-3.0-only")},
    ]
    for text in ("", "spectral"):
        for filters in steps:  # drill down, then widen: the same answers as without memory
            query = SearchQuery(text=text, filters=filters)
            assert kept.search(query) == fresh.search(query)
        counted_plans.clear()
        kept.search(SearchQuery(text=text, filters={"kind": ("docker-container",)}))
        assert counted_plans == []  # asked before: every count is kept
    counted_plans.clear()
    kept.search(SearchQuery(text="imaging", filters={"kind": ("docker-container",)}))
    first = list(counted_plans)
    counted_plans.clear()
    narrowed = {"kind": ("docker-container",), "licence": ("MIT",)}
    kept.search(SearchQuery(text="imaging", filters=narrowed))
    assert {"kind": ("docker-container",)} in first
    assert {"kind": ("docker-container",)} not in counted_plans  # `licence` counted from memory
    assert {"licence": ("MIT",)} in counted_plans
    assert narrowed in counted_plans
    kept.upsert([CATALOGUE[0]])  # a write: nothing kept applies any more
    counted_plans.clear()
    kept.search(SearchQuery(text="imaging", filters=narrowed))
    assert {"kind": ("docker-container",)} in counted_plans
    kept.close()
    fresh.close()
