"""The OpenSearch search adapter against a real cluster.

What only a cluster shows: the alias moves while searches keep answering, a failed rebuild
leaves no half-built index behind, bulk writes and refreshes (a write is visible to the next
search, from any process), synonyms and accent folding in the analysers, and failures turned
into `Unavailable`. Then parity: over the search contract suite's catalogue, OpenSearch and
tantivy give the same totals, facet counts, orders and first hits where the engines agree
(the contract suite itself runs over both adapters through its fixture).

Documents and the plain-Python oracle come from `tests.contract.test_search_index`.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from opensearchpy.exceptions import AuthorizationException, TransportError

from catalogue.facets import name_sort_value
from catalogue.opensearch_queries import synonym_rules
from catalogue.ports import FACETS, IndexDocument, SearchQuery
from catalogue.search_opensearch import OpenSearchIndex
from catalogue.search_tantivy import TantivySearchIndex
from core.errors import Unavailable
from core.settings import OpenSearchSearch
from tests.contract.test_search_index import (
    BY_ID,
    CATALOGUE,
    SELECTIONS,
    SEXTRACTOR,
    expected_order,
    matching,
    walk,
)
from tests.integration.conftest import delete_opensearch_indices

GALAXY_QUERY = SearchQuery(text="galaxy", filters={"gpu": ("none", "optional")})


def index_names(url: str, pattern: str) -> list[str]:
    """Names of the indices matching `pattern`, as the cluster lists them."""
    answer = httpx.get(f"{url}/_cat/indices/{pattern}", params={"h": "index", "format": "json"})
    answer.raise_for_status()
    return sorted(row["index"] for row in answer.json())


@pytest.fixture
def alias(opensearch_index_prefix: str) -> str:
    return f"{opensearch_index_prefix}-catalogue"


@pytest.fixture
def index(opensearch_url: str, alias: str) -> Iterator[OpenSearchIndex]:
    search_index = OpenSearchIndex(OpenSearchSearch(url=opensearch_url), alias=alias)
    yield search_index
    search_index.close()


# ------------------------------------------------------------------------- rebuilds
def test_rebuild_moves_the_alias_while_searches_keep_answering(
    index: OpenSearchIndex, opensearch_url: str, alias: str
) -> None:
    index.upsert(CATALOGUE[:20])
    (first_index,) = index.indices()
    old_total = index.search(GALAXY_QUERY).total
    totals: list[int] = []
    errors: list[BaseException] = []
    loading = threading.Event()
    stop = threading.Event()
    searched_while_loading = threading.Event()

    def search_until_stopped() -> None:
        try:
            while not stop.is_set():
                totals.append(index.search(GALAXY_QUERY).total)
                if loading.is_set():
                    searched_while_loading.set()
        except BaseException as error:  # noqa: BLE001 - reported by the assertions below
            errors.append(error)
            searched_while_loading.set()

    def documents() -> Iterator[IndexDocument]:
        yield from CATALOGUE[:25]
        loading.set()  # half loaded: the new index exists, the alias has not moved
        assert searched_while_loading.wait(timeout=30)
        yield from CATALOGUE[25:]

    reader = threading.Thread(target=search_until_stopped)
    reader.start()
    try:
        assert index.rebuild(documents()) == len(CATALOGUE)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    after = index.search(GALAXY_QUERY).total
    assert set(totals) <= {old_total, after}
    assert old_total in totals  # answered from the old index during the load
    assert index.count() == len(CATALOGUE)
    (serving,) = index.indices()
    assert serving != first_index
    assert re.fullmatch(rf"{re.escape(alias)}-\d{{20}}", serving)
    assert index_names(opensearch_url, f"{alias}*") == [serving]  # the old index is deleted


def test_a_rebuilt_index_serves_from_one_segment(
    index: OpenSearchIndex, opensearch_url: str, alias: str
) -> None:
    def segments(name: str) -> int:
        answer = httpx.get(f"{opensearch_url}/_cat/segments/{name}", params={"format": "json"})
        answer.raise_for_status()
        return len(answer.json())

    def in_two_segments() -> Iterator[IndexDocument]:
        for number in range(1_200):
            if number == 700:  # the first bulk request is in: write it out as a segment
                (loading,) = index_names(opensearch_url, f"{alias}-*")
                httpx.post(f"{opensearch_url}/{loading}/_flush").raise_for_status()
                assert segments(loading) == 1
            yield msgspec.structs.replace(CATALOGUE[number % len(CATALOGUE)], id=f"e-{number}")

    assert index.rebuild(in_two_segments()) == 1_200
    (serving,) = index.indices()
    assert segments(serving) == 1
    assert index.search(SearchQuery(text="galaxy")).total > 0


def test_failed_rebuild_deletes_the_half_built_index(
    index: OpenSearchIndex, opensearch_url: str, alias: str
) -> None:
    index.upsert(CATALOGUE[:10])
    before = index_names(opensearch_url, f"{alias}*")

    def broken() -> Iterator[IndexDocument]:
        yield from CATALOGUE[10:30]
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError, match="the store went away"):
        index.rebuild(broken())
    assert index_names(opensearch_url, f"{alias}*") == before == index.indices()
    assert index.count() == 10
    assert index.search(SearchQuery(text="sextractor")).hits[0].id == SEXTRACTOR


def test_rebuild_refused_by_the_cluster_is_unavailable_and_cleaned_up(
    index: OpenSearchIndex, opensearch_url: str, alias: str
) -> None:
    index.upsert(CATALOGUE[:5])
    before = index_names(opensearch_url, f"{alias}*")
    # Lucene refuses a term over 32766 bytes: a document the cluster cannot take.
    immense = msgspec.structs.replace(CATALOGUE[7], licence="x" * 40_000)
    with pytest.raises(Unavailable, match="refused 1 document") as caught:
        index.rebuild([*CATALOGUE[5:10], immense])
    assert "immense" in caught.value.message
    assert index_names(opensearch_url, f"{alias}*") == before
    assert index.count() == 5


# ------------------------------------------------------------------- writes, refresh
def test_writes_are_visible_to_the_next_search_from_another_process(
    index: OpenSearchIndex, opensearch_url: str, alias: str
) -> None:
    other = OpenSearchIndex(OpenSearchSearch(url=opensearch_url), alias=alias)
    try:
        index.upsert(CATALOGUE[:3])
        assert other.count() == 3
        renamed = msgspec.structs.replace(CATALOGUE[1], title="Quasar redshift estimator")
        index.upsert([renamed])
        assert [hit.id for hit in other.search(SearchQuery(text="quasar")).hits] == [renamed.id]
        other.delete([CATALOGUE[0].id, "no-such-id"])
        assert SEXTRACTOR not in {hit.id for hit in index.search(SearchQuery(limit=10)).hits}
        assert index.count() == 2
    finally:
        other.close()


def test_a_write_after_the_index_was_deleted_makes_it_again(
    index: OpenSearchIndex, opensearch_url: str, alias: str, caplog: pytest.LogCaptureFixture
) -> None:
    index.upsert(CATALOGUE[:5])
    delete_opensearch_indices(opensearch_url, f"{alias}*")  # an operator's mistake
    assert index.count() == 0
    assert index.search(SearchQuery(text="sextractor")).total == 0
    index.upsert(CATALOGUE[5:8])
    assert "has gone" in caplog.text
    assert index.count() == 3
    assert len(index.indices()) == 1


def test_bulk_upsert_of_many_entries_in_several_requests(index: OpenSearchIndex) -> None:
    copies = [
        msgspec.structs.replace(CATALOGUE[number % len(CATALOGUE)], id=f"bulk-{number:04d}")
        for number in range(1_250)  # three bulk requests of BULK_CHUNK
    ]
    index.upsert(copies)
    assert index.count() == len(copies)
    result = index.search(SearchQuery(filters={"kind": ("docker-container",)}))
    assert result.total == sum(doc.kind == "docker-container" for doc in copies)
    ids, _ = walk(index, SearchQuery(sort="name", limit=100, filters={"gpu": ("required",)}))
    required = [d for d in copies if d.gpu == "required"]
    assert ids == [d.id for d in sorted(required, key=lambda d: (name_sort_value(d.name), d.id))]


def test_first_writers_in_two_processes_share_one_index(opensearch_url: str, alias: str) -> None:
    writers = [OpenSearchIndex(OpenSearchSearch(url=opensearch_url), alias=alias) for _ in "ab"]
    assert writers[0].count() == 0  # nothing exists before the first write
    assert writers[0].search(SearchQuery(filters={"kind": ("x",)})).facets["kind"] == {"x": 0}
    threads = [
        threading.Thread(target=writer.upsert, args=(CATALOGUE[n::2],))
        for n, writer in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(writers[1].indices()) == 1
    assert writers[1].count() == len(CATALOGUE)
    for writer in writers:
        writer.close()


# ------------------------------------------------------------------------- analysis
def test_vocabulary_synonyms_expand_the_query(opensearch_url: str, alias: str) -> None:
    settings = OpenSearchSearch(url=opensearch_url)
    plain = OpenSearchIndex(settings, alias=f"{alias}-plain")
    labels = [("Cosmic microwave background", "CMBR"), ("Periodogram, Lomb-Scargle", "LSP")]
    with_synonyms = OpenSearchIndex(settings, alias=alias, synonyms=synonym_rules(labels))
    try:
        plain.upsert(CATALOGUE)
        with_synonyms.upsert(CATALOGUE)
        expected = {
            d.id
            for d in CATALOGUE
            if "cosmic microwave background" in f"{d.title} {d.summary} {d.description}".lower()
            or "cosmic-microwave-background-radiation" in d.subjects
        }
        assert expected
        assert plain.search(SearchQuery(text="cmbr")).total == 0
        found = with_synonyms.search(SearchQuery(text="cmbr", limit=100))
        assert {hit.id for hit in found.hits} == expected
    finally:
        plain.close()
        with_synonyms.close()


def test_accents_and_case_are_folded(index: OpenSearchIndex) -> None:
    french = IndexDocument(
        id="reduc",
        name="réduc",
        title="Réduction des données spectrales",
        summary="Étalonnage en longueur d'onde",
        kind="python-program",
        updated=CATALOGUE[0].updated,
    )
    index.upsert([french, *CATALOGUE[:5]])
    for text in ("reduction", "RÉDUCTION", "donnees", "etalonnage", "reduc"):
        assert [hit.id for hit in index.search(SearchQuery(text=text)).hits][:1] == ["reduc"], text


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("healpix", {"healpix"}),  # known: as typed only, not the entry one letter away
        ("healpax", {"healpax"}),
        ("healpex", {"healpix", "healpax"}),  # unknown: both within one edit
        ("ealpix", {"healpix", "healpax"}),  # a misspelt first letter is found too (2 edits)
    ],
)
def test_a_known_word_is_matched_as_typed_and_an_unknown_one_misspelt_as_in_tantivy(
    index: OpenSearchIndex, text: str, found: set[str]
) -> None:
    def entry(name: str) -> IndexDocument:
        return msgspec.structs.replace(
            CATALOGUE[0], id=name, name=f"tool-{name}", keywords=(name,), title="A tool"
        )

    entries = [entry("healpix"), entry("healpax"), *CATALOGUE[1:6]]
    index.upsert(entries)
    tantivy = TantivySearchIndex(None)
    tantivy.upsert(entries)
    try:
        query = SearchQuery(text=text)
        assert {hit.id for hit in index.search(query).hits} == found
        assert {hit.id for hit in tantivy.search(query).hits} == found
    finally:
        tantivy.close()


def test_words_are_looked_up_once_a_generation_and_again_after_a_write(
    index: OpenSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    def entry(name: str) -> IndexDocument:
        return msgspec.structs.replace(
            CATALOGUE[0], id=name, name=f"tool-{name}", keywords=(name,), title="A tool"
        )

    asked: list[Any] = []
    lookup = index._client.mtermvectors

    def counted(**kwargs: Any) -> Any:
        asked.append(kwargs["body"])
        return lookup(**kwargs)

    monkeypatch.setattr(index._client, "mtermvectors", counted)
    # The refresh interval's part of the generation held still: only writes move it.
    monkeypatch.setattr(index, "generation", lambda: (index._writes, 0))
    index.upsert([entry("healpix"), *CATALOGUE[1:6]])
    query = SearchQuery(text="healpex")
    for _ in range(3):
        assert {hit.id for hit in index.search(query).hits} == {"healpix"}  # misspelt
    assert len(asked) == 1
    index.upsert([entry("healpex")])
    assert {hit.id for hit in index.search(query).hits} == {"healpex"}  # known now: as typed
    assert len(asked) == 2


def test_a_refused_term_lookup_looks_every_word_up_misspelt(
    index: OpenSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    def entry(name: str) -> IndexDocument:
        return msgspec.structs.replace(
            CATALOGUE[0], id=name, name=f"tool-{name}", keywords=(name,), title="A tool"
        )

    asked: list[str] = []

    def busy(**_: Any) -> Any:
        asked.append("busy")
        raise TransportError(503, "unavailable", {"error": {"reason": "busy"}})

    def refused(**_: Any) -> Any:
        asked.append("refused")
        reason = "no permissions for [indices:data/read/mtv]"
        raise AuthorizationException(403, "security_exception", {"error": {"reason": reason}})

    index.upsert([entry("healpix"), entry("healpax"), *CATALOGUE[1:6]])
    for failing in (busy, refused):  # a failing lookup never fails the search
        monkeypatch.setattr(index._client, "mtermvectors", failing)
        found = index.search(SearchQuery(text="healpix"))
        assert {hit.id for hit in found.hits} == {"healpix", "healpax"}  # as before the lookup
        assert found.hits[0].id == "healpix"
    index.upsert([entry("healpox")])  # a new generation: the refusal is not asked again
    index.search(SearchQuery(text="healpix"))
    assert asked == ["busy", "refused"]


# ------------------------------------------------------------------------- failures
def test_an_unreachable_cluster_is_unavailable_and_names_it_without_secrets() -> None:
    settings = OpenSearchSearch(url="http://voexec:s3cret@127.0.0.1:9")  # nothing listens
    down = OpenSearchIndex(settings, alias="voexec-catalogue", timeout=2)
    calls: dict[str, Callable[[], object]] = {
        "search": lambda: down.search(SearchQuery(text="galaxy")),
        "count": down.count,
        "upsert": lambda: down.upsert(CATALOGUE[:1]),
        "delete": lambda: down.delete(["x"]),
        "rebuild": lambda: down.rebuild(CATALOGUE[:1]),
    }
    for name, call in calls.items():
        with pytest.raises(Unavailable) as caught:
            call()
        assert "http://127.0.0.1:9" in caught.value.message, name
        assert "s3cret" not in caught.value.message, name
    down.close()


# ------------------------------------------------------------------ parity with tantivy
@pytest.fixture(scope="module")
def twins(opensearch_url: str) -> Iterator[tuple[OpenSearchIndex, TantivySearchIndex]]:
    """Both adapters over the contract suite's catalogue, written the same way."""
    alias = f"voexec-test-{uuid.uuid4().hex[:10]}-twins"
    opensearch = OpenSearchIndex(OpenSearchSearch(url=opensearch_url), alias=alias)
    tantivy = TantivySearchIndex(None)
    for index in (opensearch, tantivy):
        index.upsert(CATALOGUE[:20])
        index.upsert(CATALOGUE[20:])
    try:
        yield opensearch, tantivy
    finally:
        opensearch.close()
        tantivy.close()
        delete_opensearch_indices(opensearch_url, f"{alias}*")


@pytest.mark.parametrize("filters", SELECTIONS)
@pytest.mark.parametrize("sort", ["name", "newest", "relevance"])
def test_filters_give_the_same_hits_order_and_counts_as_tantivy(
    twins: tuple[OpenSearchIndex, TantivySearchIndex],
    filters: dict[str, tuple[str, ...]],
    sort: str,
) -> None:
    opensearch, tantivy = twins
    query = SearchQuery(filters=filters, sort=sort, limit=7)  # type: ignore[arg-type]
    ids, pages = walk(opensearch, query)
    assert ids == walk(tantivy, query)[0]
    assert set(ids) == matching(filters)
    if sort != "relevance":
        assert ids == expected_order(sort, set(ids))
    assert pages[0].facets == tantivy.search(query).facets
    assert list(pages[0].facets) == list(FACETS)


@pytest.mark.parametrize("text", ["galaxy", "Gaussian lines", "light curve", "E. Bertin", "fits"])
@pytest.mark.parametrize("filters", SELECTIONS)
def test_words_find_the_same_entries_as_tantivy(
    twins: tuple[OpenSearchIndex, TantivySearchIndex],
    text: str,
    filters: dict[str, tuple[str, ...]],
) -> None:
    opensearch, tantivy = twins
    query = SearchQuery(text=text, filters=filters, limit=100)
    found, expected = opensearch.search(query), tantivy.search(query)
    assert found.total == expected.total
    assert {hit.id for hit in found.hits} == {hit.id for hit in expected.hits}
    assert found.facets == expected.facets


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("sextractor", "sextractor"),
        ("SExtractor", "sextractor"),
        ("sextractr", "sextractor"),
        ("sxetractro", "sextractor"),
        ("wscleen", "wsclean"),
        ("PSFex", "psfex"),
    ],
)
def test_the_same_entry_comes_first_for_a_name_or_a_misspelt_one(
    twins: tuple[OpenSearchIndex, TantivySearchIndex], text: str, name: str
) -> None:
    opensearch, tantivy = twins
    first = opensearch.search(SearchQuery(text=text)).hits[0].id
    assert BY_ID[first].name == name
    assert first == tantivy.search(SearchQuery(text=text)).hits[0].id
