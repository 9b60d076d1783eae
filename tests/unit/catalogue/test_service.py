"""CatalogueService over the real store (SQLite), index (tantivy, in memory) and broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from catalogue.model import HandOff, Provenance, SearchRequest
from catalogue.search_tantivy import TantivySearchIndex
from catalogue.service import CatalogueService
from catalogue.store_sql import SqlCatalogueStore
from core.clock import ManualClock
from core.db import make_engine
from core.errors import Conflict, Invalid, NotFound
from tests.catalogue_support import app_settings, executable, registry
from voexec import wire_broker, wire_catalogue
from voexec.wire_catalogue import InProcessBroker
from voexec.wiring import Services

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
API = Provenance(source="api")


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory):
    return registry(tmp_path_factory.mktemp("vocabularies"))


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def catalogue(tmp_path, vocabularies, clock):
    """The catalogue as the app wires it (store, index, broker), with the vocabularies shared."""
    services = Services(settings=app_settings(tmp_path), clock=clock)
    services.provide("vocabularies", vocabularies)
    wire_broker.build(services)
    wire_catalogue.build(services)
    yield services.components["catalogue"]
    services.stop()


def names(catalogue: CatalogueService, **filters) -> list[str]:
    query = {key: tuple(value) for key, value in filters.items()}
    page = catalogue.search(SearchRequest(filters=query, sort="name"))
    return [hit.name for hit in page.hits]


# ------------------------------------------------------------------------ publishing
def test_publishing_twice_is_unchanged_and_costs_no_write(catalogue, clock):
    first = catalogue.publish(executable(), API)
    clock.advance(timedelta(hours=1))
    again = catalogue.publish(executable(), API)
    assert [e.status for e in first.entries] == ["new"]
    assert [e.status for e in again.entries] == ["unchanged"]
    assert again.entries[0].id == first.entries[0].id
    assert catalogue.get(first.entries[0].id).updated_at == T0


def test_a_new_version_is_an_update_and_both_are_listed(catalogue):
    catalogue.publish(executable(version="1.0.0"), API)
    report = catalogue.publish(executable(version="1.1.0", summary="Faster."), API)
    assert [(e.version, e.status) for e in report.entries] == [("1.1.0", "updated")]
    detail = catalogue.get(report.entries[0].id)
    assert detail.version == "1.1.0"
    assert [v.version for v in detail.versions] == ["1.1.0", "1.0.0"]
    assert catalogue.get(report.entries[0].id, "1.0.0").spec.summary != "Faster."


def test_harvested_default_branch_is_latest_and_tags_are_versions(catalogue):
    origin = {"source": "gitlab", "repository": "https://gitlab.example.org/radio/finder"}
    tag = Provenance(**origin, path="ivoa-executable.yaml", ref="v1.0.0", ref_kind="tag")
    branch = Provenance(
        **origin, path="ivoa-executable.yaml", ref="main", ref_kind="default-branch"
    )
    from_tag = catalogue.publish(executable(), tag).entries[0]
    from_branch = catalogue.publish(executable(summary="Work in progress."), branch).entries[0]
    assert from_tag.id == from_branch.id
    assert (from_tag.version, from_branch.version) == ("v1.0.0", "latest")
    detail = catalogue.get(from_tag.id)
    assert detail.current_version == "latest"
    assert detail.provenance.ref == "main"
    assert catalogue.entry_ids("gitlab") == [from_tag.id]


def test_a_document_with_problems_stores_nothing(catalogue):
    report = catalogue.publish(
        {"executables": [executable(name="good"), executable(name="bad", licence="nope")]}, API
    )
    assert not report.ok
    assert [p.field for p in report.problems] == ["executables[1].licence"]
    assert catalogue.search(SearchRequest()).total == 0


def test_a_batch_reports_each_document_in_order_and_withdraws_at_once(catalogue, clock):
    def from_record(number: int) -> Provenance:
        return Provenance(source="oai", repository=f"ivo://registry.test/r{number}")

    first = catalogue.publish_all(
        [(executable(name=f"tool-{n}"), from_record(n)) for n in range(3)]
    )
    assert [[e.status for e in r.entries] for r in first] == [["new"], ["new"], ["new"]]
    generation = catalogue.index.generation()
    clock.advance(timedelta(hours=1))
    again = catalogue.publish_all(
        [
            (executable(name="tool-0"), from_record(0)),
            (executable(name="tool-1", licence="nope"), from_record(1)),
            (executable(name="tool-2", title="Tool two, renamed"), from_record(2)),
        ]
    )
    assert [e.status for e in again[0].entries] == ["unchanged"]
    assert [p.field for p in again[1].problems] == ["licence"]
    assert again[1].entries == []
    assert [e.status for e in again[2].entries] == ["updated"]
    assert catalogue.index.generation() != generation  # the update was indexed
    ids = catalogue.entry_ids_by_repository(
        "oai", ["ivo://registry.test/r0", "ivo://registry.test/r1", "ivo://registry.test/gone"]
    )
    assert {record: len(keys) for record, keys in ids.items()} == {
        "ivo://registry.test/r0": 1,
        "ivo://registry.test/r1": 1,  # the refused document left the stored version alone
        "ivo://registry.test/gone": 0,
    }
    gone = [*ids["ivo://registry.test/r0"], *ids["ivo://registry.test/r1"], "no-such-entry"]
    assert catalogue.withdraw_all(gone) == gone[:2]
    assert names(catalogue) == ["tool-2"]
    assert catalogue.get(gone[0]).withdrawn is True
    assert catalogue.withdraw_all([]) == []


def test_what_each_record_published_is_told_with_its_commit_withdrawn_or_not(catalogue, clock):
    def from_record(number: int, commit: str) -> Provenance:
        return Provenance(source="oai", repository=f"ivo://registry.test/r{number}", commit=commit)

    catalogue.publish_all(
        [
            (executable(name="tool-0"), from_record(0, "a" * 64)),
            (
                {"executables": [executable(name="tool-1"), executable(name="tool-1b")]},
                from_record(1, "b" * 64),
            ),
        ]
    )
    clock.advance(timedelta(hours=1))
    [renamed] = catalogue.publish(
        executable(name="tool-0", title="Tool zero, renamed"), from_record(0, "c" * 64)
    ).entries
    [one, one_b] = catalogue.entry_ids("oai", "ivo://registry.test/r1")
    catalogue.withdraw(one_b)
    published = catalogue.published_by_repository(
        "oai", ["ivo://registry.test/r0", "ivo://registry.test/r1", "ivo://registry.test/gone"]
    )
    assert published == {
        # the current version's commit: the one that changed it
        "ivo://registry.test/r0": [(renamed.id, renamed.version, "c" * 64, False)],
        "ivo://registry.test/r1": [
            (one, published["ivo://registry.test/r1"][0][1], "b" * 64, False),
            (one_b, published["ivo://registry.test/r1"][1][1], "b" * 64, True),  # withdrawn
        ],
        "ivo://registry.test/gone": [],
    }
    assert catalogue.published_by_repository("other", ["ivo://registry.test/r0"]) == {
        "ivo://registry.test/r0": []
    }


def test_withdraw_hides_from_search_and_publishing_restores(catalogue):
    entry = catalogue.publish(executable(), API).entries[0]
    catalogue.withdraw(entry.id)
    assert catalogue.search(SearchRequest(text="cube-finder")).total == 0
    assert catalogue.get(entry.id).withdrawn is True
    with pytest.raises(NotFound):
        catalogue.withdraw("no-such-entry")
    assert catalogue.publish(executable(), API).entries[0].status == "updated"
    assert catalogue.search(SearchRequest(text="cube-finder")).total == 1


def test_unknown_entry_or_version(catalogue):
    entry = catalogue.publish(executable(), API).entries[0]
    with pytest.raises(NotFound):
        catalogue.get("nothing-here")
    with pytest.raises(NotFound, match=r"1\.0\.0"):
        catalogue.get(entry.id, "9.9.9")


# ------------------------------------------------------------------------ search and index
def test_a_broad_subject_finds_entries_tagged_with_narrower_ones(catalogue):
    catalogue.publish(executable(name="imager", subjects=["radio-interferometry"]), API)
    catalogue.publish(executable(name="photometer", subjects=["photometry"]), API)
    assert names(catalogue, subject=["interferometry"]) == ["imager"]
    assert names(catalogue, subject=["Interferometry", "Photometry"]) == ["imager", "photometer"]
    page = catalogue.search(SearchRequest(filters={"subject": ("interferometry",)}))
    tree = next(f for f in page.facets if f.name == "subject")
    assert tree.hierarchical
    flat = {}

    def walk(buckets):
        for bucket in buckets:
            flat[bucket.value] = bucket
            walk(bucket.children)

    walk(tree.buckets)
    assert flat["interferometry"].selected
    assert flat["radio-interferometry"].count == 1


def test_unknown_facet_values_are_invalid_with_suggestions(catalogue):
    with pytest.raises(Invalid) as caught:
        catalogue.search(SearchRequest(filters={"subject": ("radio astronmy",), "colour": ("x",)}))
    problems = {p.field: p for p in caught.value.problems}
    assert "radio-astronomy" in problems["subject"].suggestions
    assert "colour" in problems


def test_only_the_facets_asked_for_are_shown_and_unknown_ones_are_named(catalogue):
    catalogue.publish(executable(name="imager", subjects=["radio-interferometry"]), API)
    page = catalogue.search(SearchRequest(facets=("licence", "subject")))
    assert [facet.name for facet in page.facets] == ["subject", "licence"]
    assert catalogue.search(SearchRequest(facets=())).facets == []
    with pytest.raises(Invalid) as caught:
        catalogue.search(SearchRequest(facets=("subjects",)))
    (problem,) = caught.value.problems
    assert (problem.field, problem.suggestions[0]) == ("facets", "subject")


def test_repeated_searches_never_answer_from_before_a_write(catalogue):
    catalogue.publish(executable(name="imager", subjects=["radio-interferometry"]), API)
    request = SearchRequest(text="cubes", filters={"subject": ("interferometry",)})
    first = catalogue.search(request)
    assert catalogue.search(request) == first  # kept: the same answer
    catalogue.publish(executable(name="finder", subjects=["radio-interferometry"]), API)
    after = catalogue.search(request)
    assert (first.total, after.total) == (1, 2)
    kind = next(f for f in after.facets if f.name == "kind")
    assert kind.buckets[0].count == 2
    catalogue.withdraw(after.hits[0].id)
    assert catalogue.search(request).total == 1


def test_a_kept_answer_is_the_json_of_the_page_it_was_made_from(catalogue):
    catalogue.publish(executable(name="imager", subjects=["radio-interferometry"]), API)
    request = SearchRequest(text="imager", filters={"subject": ("interferometry",)})
    made = catalogue.search(request)  # made, then kept as JSON
    sent = catalogue.search_json(request)  # the kept JSON, as the API sends it
    assert msgspec.json.decode(sent) == msgspec.to_builtins(made)
    assert catalogue.search(request) == made  # decoded from the kept JSON
    assert made.hits[0].name == "imager"
    assert made.hits[0].updated_at == T0


def test_runnable_on_follows_kind_and_needs(catalogue):
    gpu = executable(name="gpu-net", needs={"cores": 4, "memory": 8, "gpus": {"memory": 40}})
    notebook = executable(
        name="teaching-notebook",
        executable={"kind": "jupyter-notebook", "location": "https://example.org/a.ipynb"},
    )
    huge = executable(name="huge-sim", needs={"cores": 200, "memory": 900})
    for document in (gpu, notebook, huge):
        catalogue.publish(document, API)
    assert names(catalogue, platform=["alpha"]) == ["gpu-net"]
    assert names(catalogue, platform=["beta"]) == ["teaching-notebook"]
    assert names(catalogue, gpu=["required"]) == ["gpu-net"]
    huge_id = catalogue.search(SearchRequest(text="huge-sim")).hits[0].id
    assert catalogue.get(huge_id).platforms == []


def test_reindex_rebuilds_the_index_from_the_store(catalogue):
    for name in ("one", "two", "three"):
        catalogue.publish(executable(name=name), API)
    catalogue.index.rebuild([])
    assert catalogue.search(SearchRequest()).total == 0
    assert catalogue.ensure_index() == 3
    assert catalogue.ensure_index() is None  # nothing to do when index and store agree
    assert sorted(names(catalogue)) == ["one", "three", "two"]


# ------------------------------------------------------------------------ hand-off
def test_hand_off_asks_the_broker_with_the_entrys_needs(catalogue, clock):
    document = executable(name="gpu-net", needs={"cores": 4, "memory": 7.5, "gpus": {"count": 1}})
    entry = catalogue.publish(document, API).entries[0]
    start = (clock.now() + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%MZ")
    answer = catalogue.hand_off(
        entry.id,
        HandOff(start=f"{start}/PT2H", duration="PT30M", data=["https://data.example.org/a.fits"]),
        "http://voexec.example.org",
    )
    assert answer.location.startswith("http://voexec.example.org/broker/offersets/")
    assert answer.offer_set["result"] == "YES"
    offer = answer.offer_set["offers"][0]
    assert offer["compute"]["cores"]["min"] >= 4
    assert offer["compute"]["memory"]["min"] >= 8  # 7.5 GiB rounded up to whole GiB
    assert offer["compute"]["accelerators"]["count"]["min"] >= 1
    assert offer["data"][0]["location"] == "https://data.example.org/a.fits"


def test_hand_off_overrides_are_checked_by_field(catalogue):
    entry = catalogue.publish(executable(), API).entries[0]
    with pytest.raises(Invalid) as caught:
        catalogue.hand_off(
            entry.id, HandOff(start="tomorrow", duration="2h", data=["c:/x"]), "http://x"
        )
    assert {p.field for p in caught.value.problems} == {"start", "duration", "data[0]"}


def test_a_withdrawn_entry_cannot_be_handed_off(catalogue):
    entry = catalogue.publish(executable(), API).entries[0]
    catalogue.withdraw(entry.id)
    with pytest.raises(Conflict):
        catalogue.hand_off(entry.id, HandOff(), "http://x")


def test_settings_choose_the_search_backend(tmp_path, vocabularies):
    from catalogue.search_opensearch import OpenSearchIndex
    from core.settings import settings_from_mapping
    from voexec.wire_catalogue import search_index, vocabulary_synonyms

    embedded = search_index(settings_from_mapping({"data_dir": str(tmp_path)}), vocabularies)
    assert isinstance(embedded, TantivySearchIndex)
    embedded.close()
    assert (tmp_path / "search").is_dir()
    cluster = settings_from_mapping({"search": {"backend": "opensearch", "index": "cat-test"}})
    index = search_index(cluster, vocabularies)  # builds the client only: no request is made
    assert isinstance(index, OpenSearchIndex)
    assert index.alias == "cat-test"
    functions = vocabularies.get("software-function")
    named = next(c for c in functions.concepts.values() if c.alt_labels and not c.deprecated)
    rule = next(
        r for r in vocabulary_synonyms(vocabularies) if r.startswith(f"{named.label.lower()},")
    )
    assert set(rule.split(", ")) >= {named.label.lower(), named.alt_labels[0].lower()}


def test_without_the_uat_publishing_is_unavailable_but_the_demo_still_loads(
    tmp_path, vocabularies, clock
):
    from core.errors import Unavailable
    from vocabularies.registry import VocabularyRegistry
    from voexec.wire_catalogue import load_demo

    offline = VocabularyRegistry(
        {n: vocabularies.get(n) for n in vocabularies.names() if n != "uat"}
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'offline.db'}")
    store = SqlCatalogueStore(engine)
    store.migrate()
    catalogue = CatalogueService(
        store, TantivySearchIndex(None), offline, InProcessBroker(None, []), clock
    )
    with pytest.raises(Unavailable, match="uat"):
        catalogue.publish(executable(), API)
    assert catalogue.publish(executable(subjects=[]), API).ok  # no subject, nothing to check
    reports = load_demo(catalogue)
    assert all(report.ok for report in reports)
    assert any("not checked" in w.reason for r in reports for w in r.warnings)
    assert catalogue.search(SearchRequest(filters={"subject": ("radio-astronomy",)})).total > 0
    engine.dispose()


# ------------------------------------------------------------------------ index failures
class FailingWrites:
    """A search index whose writes fail while `failing` is set (a full disk, a cluster away)."""

    def __init__(self, index: TantivySearchIndex) -> None:
        self.index = index
        self.failing = True

    def __getattr__(self, name: str):
        return getattr(self.index, name)

    def upsert(self, documents) -> None:
        if self.failing:
            raise ValueError("No space left on device")  # what tantivy raises, not ours
        self.index.upsert(documents)

    def delete(self, ids) -> None:
        if self.failing:
            raise OSError("No space left on device")
        self.index.delete(ids)


def test_a_failed_index_update_is_a_warning_and_is_caught_up_later(tmp_path, vocabularies, clock):
    engine = make_engine(f"sqlite:///{tmp_path / 'catalogue.db'}")
    store = SqlCatalogueStore(engine)
    store.migrate()
    index = FailingWrites(TantivySearchIndex(None))
    catalogue = CatalogueService(
        store, index, vocabularies, InProcessBroker(None, []), clock, index_retry_seconds=0
    )
    report = catalogue.publish(executable(name="stored-anyway"), API)
    assert report.ok
    assert [e.status for e in report.entries] == ["new"]
    assert [w.field for w in report.warnings] == ["(index)"]
    assert catalogue.get(report.entries[0].id).name == "stored-anyway"
    assert catalogue.search(SearchRequest(text="stored-anyway")).total == 0  # still failing
    index.failing = False
    assert names(catalogue) == ["stored-anyway"]  # the search caught the index up first
    again = catalogue.publish(executable(name="later"), API)
    assert again.warnings == []
    assert sorted(names(catalogue)) == ["later", "stored-anyway"]
    engine.dispose()


def test_a_failed_withdrawal_leaves_search_once_the_index_answers(tmp_path, vocabularies, clock):
    engine = make_engine(f"sqlite:///{tmp_path / 'catalogue.db'}")
    store = SqlCatalogueStore(engine)
    store.migrate()
    index = FailingWrites(TantivySearchIndex(None))
    index.failing = False
    catalogue = CatalogueService(
        store, index, vocabularies, InProcessBroker(None, []), clock, index_retry_seconds=0
    )
    entry = catalogue.publish(executable(name="going"), API).entries[0]
    catalogue.publish(executable(name="staying"), API)
    index.failing = True
    assert catalogue.withdraw(entry.id).withdrawn
    assert catalogue.search(SearchRequest()).total == 2  # the index still counts it
    index.failing = False
    page = catalogue.search(SearchRequest())
    assert (page.total, [hit.name for hit in page.hits]) == (1, ["staying"])
    engine.dispose()
