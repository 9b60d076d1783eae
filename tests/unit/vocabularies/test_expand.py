"""Closure functions and facet trees, on the full UAT and on small hierarchies."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.vocabularies.conftest import concept, make_vocabulary
from vocabularies import expand
from vocabularies.expand import FacetNode
from vocabularies.model import UnknownConcept

# ---------------------------------------------------------------------------- the full UAT


def test_computed_roots_are_the_uat_concepts_without_broader_ones(uat, uat_raw):
    top_level = {
        term
        for term, entry in uat_raw["terms"].items()
        if not entry["wider"] and "deprecated" not in entry
    }
    assert set(expand.roots(uat)) == top_level
    assert len(top_level) > 5


def test_every_uat_concept_reaches_a_root_through_broader_links(uat):
    roots = set(expand.roots(uat))
    for term, c in uat.concepts.items():
        path = expand.path_to_root(uat, term)
        assert path[-1] == term
        if c.deprecated and not c.broader:
            continue  # withdrawn concepts stand alone; they are resolved, not browsed
        assert path[0] in roots, term
        for parent, child in itertools.pairwise(path):
            assert parent in uat.concepts[child].broader


def test_ancestors_and_descendants_are_inverse_over_the_uat(uat):
    below = {term: expand.descendants(uat, term) for term in uat.concepts}
    for term in uat.concepts:
        for ancestor in expand.ancestors(uat, term):
            assert term in below[ancestor]
    assert sum(len(found) for found in below.values()) == sum(
        len(expand.ancestors(uat, t)) for t in uat.concepts
    )


def test_a_multi_parent_uat_concept_appears_under_each_parent(uat):
    term, c = next((t, c) for t, c in uat.concepts.items() if len(c.broader) > 1)
    for parent in c.broader:
        (node,) = expand.tree(uat, root=parent, depth=1)
        assert term in [child.term for child in node.children]
    # ...and its ancestors are the union over all its parents.
    for parent in c.broader:
        assert {parent} | expand.ancestors(uat, parent) <= expand.ancestors(uat, term)


def test_rollup_over_the_uat_shows_a_multi_parent_entry_under_each_parent(uat):
    term, c = next((t, c) for t, c in uat.concepts.items() if len(c.broader) > 1)
    counts: dict[str, int] = {}
    for indexed in expand.with_ancestors(uat, [term]):
        counts[indexed] = counts.get(indexed, 0) + 1
    found = _paths_to(expand.rollup(uat, counts), term)
    assert {path[-2] for path in found} == set(c.broader)
    assert all(node_count == 1 for path in found for node_count in _counts_on(path, counts))


def _paths_to(nodes: list[FacetNode], term: str, above: tuple[str, ...] = ()) -> list[tuple]:
    paths = []
    for node in nodes:
        here = (*above, node.term)
        if node.term == term:
            paths.append(here)
        paths.extend(_paths_to(node.children, term, here))
    return paths


def _counts_on(path: tuple[str, ...], counts: dict[str, int]) -> list[int]:
    return [counts[t] for t in path]


# ---------------------------------------------------------------------------- small hierarchies
@pytest.fixture
def diamond():
    """top -> (left, right) -> both; top -> long1 -> long2 -> deep; right -> deep."""
    return make_vocabulary(
        concept("top"),
        concept("left", "top"),
        concept("right", "top"),
        concept("both", "left", "right"),
        concept("long1", "top"),
        concept("long2", "long1"),
        concept("deep", "long2", "right"),
        concept("other-root", label="Zz other root"),
    )


def test_path_to_root_is_a_shortest_path(diamond):
    assert expand.path_to_root(diamond, "deep") == ["top", "right", "deep"]
    assert expand.path_to_root(diamond, "both") == ["top", "left", "both"]  # label order
    assert expand.path_to_root(diamond, "top") == ["top"]


def test_tree_depth_limits_the_levels_but_counts_all_descendants(diamond):
    (top, other) = expand.tree(diamond, depth=0)
    assert (top.term, other.term) == ("top", "other-root")
    assert top.children == []
    assert top.descendants == 6
    (top,) = expand.tree(diamond, root="top", depth=2)
    assert [c.term for c in top.children] == ["left", "long1", "right"]
    right = top.children[2]
    assert [c.term for c in right.children] == ["both", "deep"]
    assert all(grandchild.children == [] for grandchild in right.children)


def test_unknown_terms_are_not_found_errors(diamond):
    for call in (expand.ancestors, expand.descendants, expand.path_to_root):
        with pytest.raises(UnknownConcept):
            call(diamond, "nope")
    with pytest.raises(UnknownConcept):
        expand.tree(diamond, root="nope")


def test_with_ancestors_adds_every_ancestor_and_keeps_free_keywords(diamond):
    assert expand.with_ancestors(diamond, ["both", "free text"]) == {
        "both",
        "left",
        "right",
        "top",
        "free text",
    }


def _counts(vocab, entries):
    counts: dict[str, int] = {}
    for terms in entries:
        for term in expand.with_ancestors(vocab, terms):
            counts[term] = counts.get(term, 0) + 1
    return counts


def test_rollup_orders_by_count_then_label_and_repeats_multi_parent_concepts(diamond):
    counts = _counts(diamond, [["both"], ["both"], ["left"], ["long2"], ["right"]])
    (top,) = expand.rollup(diamond, counts)
    assert (top.term, top.count) == ("top", 5)
    assert [(n.term, n.count) for n in top.children] == [("left", 3), ("right", 3), ("long1", 1)]
    left, right, _ = top.children
    assert [(n.term, n.count) for n in left.children] == [("both", 2)]
    assert [(n.term, n.count) for n in right.children] == [("both", 2)]
    assert not any(n.selected for n in top.children)


def test_rollup_shows_a_selected_concept_without_hits_and_the_way_to_it(diamond):
    counts = _counts(diamond, [["left"]])
    (top,) = expand.rollup(diamond, counts, selected=["deep"])
    terms = {n.term: n for n in top.children}
    assert set(terms) == {"left", "right", "long1"}
    (deep,) = terms["right"].children
    assert (deep.term, deep.count, deep.selected) == ("deep", 0, True)


def test_rollup_limits_depth_and_ignores_unknown_terms(diamond):
    counts = _counts(diamond, [["both"], ["free keyword"]])
    (top,) = expand.rollup(diamond, counts, max_depth=1)
    assert [n.term for n in top.children] == ["left", "right"]
    assert all(n.children == [] for n in top.children)


def test_rollup_keeps_orphans_such_as_deprecated_concepts_with_hits():
    vocab = make_vocabulary(concept("a"), concept("old", deprecated=True))
    nodes = expand.rollup(vocab, {"a": 1, "old": 2})
    assert [(n.term, n.count) for n in nodes] == [("old", 2), ("a", 1)]


# ---------------------------------------------------------------------------- properties
@st.composite
def dags(draw):
    """Random DAGs: each concept may have broader concepts among the earlier ones."""
    size = draw(st.integers(1, 12))
    concepts = []
    for index in range(size):
        parents = draw(st.sets(st.integers(0, index - 1), max_size=3)) if index else set()
        concepts.append(concept(f"c{index}", *(f"c{p}" for p in sorted(parents))))
    return make_vocabulary(*concepts)


@given(dags(), st.data())
def test_closure_properties_hold_on_any_dag(vocab, data):
    terms = data.draw(st.lists(st.sampled_from(sorted(vocab.concepts)), max_size=4))
    closed = expand.with_ancestors(vocab, terms)
    for term in closed:
        assert set(vocab.concepts[term].broader) <= closed
    for term in vocab.concepts:
        path = expand.path_to_root(vocab, term)
        assert path[0] in expand.roots(vocab)
        assert len(path) - 1 <= len(expand.ancestors(vocab, term))
        assert set(path[:-1]) <= expand.ancestors(vocab, term)


@given(dags(), st.data())
def test_rollup_shows_exactly_the_concepts_with_hits(vocab, data):
    entries = data.draw(st.lists(st.lists(st.sampled_from(sorted(vocab.concepts)), max_size=3)))
    counts = _counts(vocab, entries)
    shown: set[str] = set()

    def walk(nodes, parent_count):
        for node in nodes:
            assert node.count == counts[node.term] > 0
            assert node.count <= parent_count
            shown.add(node.term)
            walk(node.children, node.count)

    walk(expand.rollup(vocab, counts), max(counts.values(), default=0))
    assert shown == set(counts)
