"""Pure closure functions over a vocabulary's hierarchy, and facet trees built from counts.

Concepts form a DAG, not a tree: in the UAT 341 concepts have several broader concepts. Every
function here honours that: a concept's ancestors are the union over all its parents, a
multi-parent concept appears under each parent in `tree` and `rollup`, and `path_to_root` picks
one shortest path.

How facets use this (the catalogue's side of the contract):

1. at indexing, an entry's concepts are stored as `with_ancestors(vocab, terms)`, so a search
   for a broad concept finds everything beneath it and each entry counts once per concept even
   when it reaches that concept by several paths;
2. the search index answers counts per term over those stored sets;
3. `rollup(vocab, counts, selected)` turns the counts into the display tree.

Pure: no I/O, no clock, no globals; imports only msgspec and `vocabularies.model`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

import msgspec

from vocabularies.model import UnknownConcept, Vocabulary


class TreeNode(msgspec.Struct):
    """A concept in a depth-limited browsing tree."""

    term: str
    label: str
    descendants: int
    """How many distinct concepts lie beneath it (all levels, not only those shown)."""
    children: list[TreeNode] = []
    """Narrower concepts, by label; empty below the requested depth even if `descendants > 0`."""


class FacetNode(msgspec.Struct):
    """A concept in a facet tree, with the number of entries at or beneath it."""

    term: str
    label: str
    count: int
    children: list[FacetNode]
    selected: bool = False
    """The search currently filters on this concept."""


def ancestors(vocab: Vocabulary, term: str) -> frozenset[str]:
    """All broader concepts of `term`, transitively, over every parent (`term` excluded).

    Raises:
        UnknownConcept: `term` is not in the vocabulary.
    """
    _require(vocab, term)
    return vocab.ancestor_sets[term]


def descendants(vocab: Vocabulary, term: str) -> frozenset[str]:
    """All narrower concepts of `term`, transitively (`term` excluded).

    Raises:
        UnknownConcept: `term` is not in the vocabulary.
    """
    _require(vocab, term)
    found: set[str] = set()
    frontier = list(vocab.concepts[term].narrower)
    while frontier:
        current = frontier.pop()
        if current not in found and current != term:
            found.add(current)
            frontier.extend(vocab.concepts[current].narrower)
    return frozenset(found)


def roots(vocab: Vocabulary) -> list[str]:
    """The top level: non-deprecated concepts without a broader concept, by label.

    Computed from the hierarchy, never from the file's `hasTopConcept` (wrong for the UAT).
    """
    return list(vocab.root_terms)


def path_to_root(vocab: Vocabulary, term: str) -> list[str]:
    """One shortest chain of broader concepts from a top-level concept down to `term`.

    Among equally short chains, parents are tried in label order, so the answer is stable.

    Returns:
        Terms, the top-level concept first and `term` last (`[term]` for a top-level concept).

    Raises:
        UnknownConcept: `term` is not in the vocabulary.
    """
    _require(vocab, term)
    child_of: dict[str, str] = {}
    queue = deque([term])
    while queue:
        current = queue.popleft()
        parents = vocab.concepts[current].broader
        if not parents:
            path = [current]
            while path[-1] != term:
                path.append(child_of[path[-1]])
            return path
        for parent in parents:
            if parent not in child_of and parent != term:
                child_of[parent] = current
                queue.append(parent)
    # Only bad data (a cycle with no way out) gets here; the concept is then its own top.
    return [term]


def tree(vocab: Vocabulary, root: str | None = None, depth: int = 1) -> list[TreeNode]:
    """A browsing tree: the top level (or `root`) with `depth` levels of narrower concepts.

    Args:
        vocab: the vocabulary.
        root: the concept to start from; `None` starts from every top-level concept.
        depth: how many levels below the starting nodes to include (0: the nodes alone).

    Returns:
        The starting nodes (`[root]`, or the roots by label), children nested by label.

    Raises:
        UnknownConcept: `root` is not in the vocabulary.
    """
    if root is not None:
        _require(vocab, root)
    start = [root] if root is not None else list(vocab.root_terms)
    return [_tree_node(vocab, term, max(depth, 0)) for term in start]


def _tree_node(vocab: Vocabulary, term: str, depth: int) -> TreeNode:
    concept = vocab.concepts[term]
    children = (
        [_tree_node(vocab, child, depth - 1) for child in concept.narrower] if depth > 0 else []
    )
    return TreeNode(term, concept.label, vocab.descendant_counts[term], children)


def with_ancestors(vocab: Vocabulary, terms: Iterable[str]) -> frozenset[str]:
    """The terms plus all their ancestors: what the search index stores for one entry.

    Terms the vocabulary does not know are kept as they are (free keywords), so nothing an
    entry says is lost; they simply have no ancestors.
    """
    closed: set[str] = set()
    for term in terms:
        closed.add(term)
        closed.update(vocab.ancestor_sets.get(term, ()))
    return frozenset(closed)


def rollup(
    vocab: Vocabulary,
    counts: Mapping[str, int],
    selected: Iterable[str] = (),
    *,
    max_depth: int | None = None,
) -> list[FacetNode]:
    """The facet tree for display, from counts over entries indexed with `with_ancestors`.

    Because each entry was indexed with all its ancestors, the count of a broad concept already
    is the number of distinct entries beneath it; nothing is summed here. The tree holds the
    concepts with a positive count, the selected ones, and the ancestors of the selected ones
    (so that a selected concept with no hits can still be seen and cleared). A multi-parent
    concept appears under each parent that is shown.

    Args:
        vocab: the vocabulary.
        counts: entries per term; unknown terms (free keywords) are ignored.
        selected: terms the search currently filters on.
        max_depth: levels to show below the top (None: all).

    Returns:
        Top-level nodes, each level sorted by count (highest first), then by label.
    """
    chosen = {term for term in selected if term in vocab.concepts}
    shown = {term for term, count in counts.items() if count > 0 and term in vocab.concepts}
    for term in chosen:
        shown.add(term)
        shown.update(vocab.ancestor_sets[term])
    limit = max_depth if max_depth is not None else len(vocab.concepts)

    def node(term: str, level: int, on_path: frozenset[str]) -> FacetNode:
        concept = vocab.concepts[term]
        children = []
        if level < limit:
            below = on_path | {term}
            children = _by_count(
                [
                    node(child, level + 1, below)
                    for child in concept.narrower
                    if child in shown and child not in below
                ]
            )
        return FacetNode(term, concept.label, counts.get(term, 0), children, term in chosen)

    # The top holds every shown concept without a broader one: the roots, and also orphans
    # such as deprecated concepts that entries still carry, which would otherwise vanish.
    top = [term for term in shown if not vocab.concepts[term].broader]
    return _by_count([node(term, 0, frozenset()) for term in top])


def _by_count(nodes: list[FacetNode]) -> list[FacetNode]:
    return sorted(nodes, key=lambda n: (-n.count, n.label.casefold(), n.term))


def _require(vocab: Vocabulary, term: str) -> None:
    if term not in vocab.concepts:
        raise UnknownConcept(vocab.name, term)
