"""Facet trees as the search answers them: the shape of `vocabularies.expand.rollup`, built fast."""

from __future__ import annotations

import random

import pytest

from catalogue.facet_views import Skeleton, facet_views
from catalogue.model import FacetBucket
from tests.catalogue_support import registry
from tests.unit.vocabularies.conftest import concept, make_vocabulary
from vocabularies import expand
from vocabularies.expand import FacetNode
from vocabularies.model import Vocabulary
from vocabularies.registry import VocabularyRegistry


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory: pytest.TempPathFactory) -> VocabularyRegistry:
    return registry(tmp_path_factory.mktemp("vocabularies"))


def as_buckets(nodes: list[FacetNode]) -> list[FacetBucket]:
    """The oracle: rollup's nodes in the catalogue's bucket shape."""
    return [
        FacetBucket(
            value=n.term,
            label=n.label,
            count=n.count,
            selected=n.selected,
            children=as_buckets(n.children),
        )
        for n in nodes
    ]


def counted(vocab: Vocabulary, entries: list[list[str]]) -> dict[str, int]:
    """Counts as the index gives them: each entry once per term and ancestor."""
    counts: dict[str, int] = {}
    for terms in entries:
        for term in expand.with_ancestors(vocab, terms):
            counts[term] = counts.get(term, 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(8))
def test_trees_are_rollups_of_the_uat(vocabularies: VocabularyRegistry, seed: int) -> None:
    uat = vocabularies.get("uat")
    rng = random.Random(seed)
    terms = sorted(uat.concepts)
    entries = [rng.sample(terms, rng.randint(1, 3)) for _ in range(rng.randint(0, 200))]
    counts = counted(uat, entries)
    counts["a free keyword"] = 3  # not a concept: never shown
    selected = rng.sample(terms, rng.randint(0, 3))
    assert Skeleton(uat).tree(counts, selected) == as_buckets(expand.rollup(uat, counts, selected))


def test_a_concept_under_two_parents_appears_under_both() -> None:
    diamond = make_vocabulary(
        concept("top"),
        concept("left", "top"),
        concept("right", "top"),
        concept("both", "left", "right"),
    )
    (top,) = Skeleton(diamond).tree(counted(diamond, [["both"], ["left"]]), ["both"])
    assert [(b.value, b.count) for b in top.children] == [("left", 2), ("right", 1)]
    assert [b.children[0].value for b in top.children] == ["both", "both"]
    assert top.children[1].children[0].selected


def test_a_cycle_in_bad_data_is_not_followed_round() -> None:
    looped = make_vocabulary(concept("root"), concept("a", "root", "b"), concept("b", "a"))
    skeleton = Skeleton(looped)
    counts = {"root": 2, "a": 2, "b": 1}
    assert skeleton.tree(counts, ["b"]) == as_buckets(expand.rollup(looped, counts, ["b"]))


def test_only_the_facets_counted_are_shown(vocabularies: VocabularyRegistry) -> None:
    counts = {"kind": {"docker-container": 3}, "subject": {"galaxies": 2}}
    shown = facet_views(counts, {"gpu": ("required",)}, vocabularies)
    assert [facet.name for facet in shown] == ["subject", "kind"]
    assert [b.value for b in shown[1].buckets] == ["docker-container"]
