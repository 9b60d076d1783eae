"""Facets as people see them: selections read from labels, counts turned into trees.

- `resolve_filters`: what a researcher selected (`subject=Galaxies`, a UAT URI, `kind=docker`)
  into the terms the index stores; unknown values are `Invalid` with suggestions.
- `facet_views`: the index's per-value counts into display facets: vocabulary facets (subject,
  function, messenger) as trees (the shape of `vocabularies.expand.rollup`, built from a
  per-vocabulary `Skeleton` worked out once), the others flat. Selected values always appear,
  even with no hits, so they can be seen and cleared.

Pure: no I/O; imports `vocabularies` and `catalogue.model` only.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Final

from catalogue.model import Facet, FacetBucket
from catalogue.ports import FACETS
from catalogue.spdx import check_licence
from core.errors import Invalid, Problem
from vocabularies.model import UnknownVocabulary, Vocabulary
from vocabularies.registry import VocabularyRegistry
from vocabularies.resolve import resolve

VOCABULARY_OF: Final = {
    "subject": "uat",
    "function": "software-function",
    "messenger": "messenger",
    "kind": "executable-kind",
}
HIERARCHICAL: Final = ("subject", "function", "messenger")
GPU_LABELS: Final = {"required": "GPU required", "optional": "GPU optional", "none": "No GPU"}
MAX_SELECTED: Final = 20


def _vocabulary(registry: VocabularyRegistry, facet: str) -> Vocabulary | None:
    name = VOCABULARY_OF.get(facet)
    if name is None:
        return None
    try:
        return registry.get(name)
    except UnknownVocabulary:
        return None


def resolve_filters(
    filters: Mapping[str, tuple[str, ...]], registry: VocabularyRegistry
) -> dict[str, tuple[str, ...]]:
    """Selections in the terms the index stores; every wrong value is reported at once.

    Raises:
        Invalid: unknown facet names, or values no vocabulary knows (with suggestions).
    """
    problems: list[Problem] = []
    resolved: dict[str, tuple[str, ...]] = {}
    for facet, values in filters.items():
        if facet not in FACETS:
            close = tuple(difflib.get_close_matches(facet, FACETS, n=2))
            problems.append(Problem(facet, "is not a facet", close or FACETS))
            continue
        if len(values) > MAX_SELECTED:
            problems.append(Problem(facet, f"at most {MAX_SELECTED} values"))
            continue
        terms: list[str] = []
        for value in values:
            term = _resolve_value(facet, value.strip(), registry, problems)
            if term is not None and term not in terms:
                terms.append(term)
        if terms:
            resolved[facet] = tuple(terms)
    if problems:
        raise Invalid("unknown facet values", problems)
    return resolved


def _resolve_value(
    facet: str, value: str, registry: VocabularyRegistry, problems: list[Problem]
) -> str | None:
    if facet == "gpu":
        if value.lower() in GPU_LABELS:
            return value.lower()
        problems.append(Problem(facet, f"{value!r} is not one of these", tuple(GPU_LABELS)))
        return None
    if facet == "licence":
        check = check_licence(value)
        return check.expression or value
    vocabulary = _vocabulary(registry, facet)
    if vocabulary is None:
        return value
    resolution = resolve(vocabulary, value)
    if resolution.term is None:
        problems.append(
            Problem(
                facet,
                f"{value!r} is not a term of the {vocabulary.name} vocabulary",
                tuple(resolution.suggestions),
            )
        )
    return resolution.term


def _label(facet: str, value: str, vocabulary: Vocabulary | None) -> str:
    if facet == "gpu":
        return GPU_LABELS.get(value, value)
    return vocabulary.label_of(value) if vocabulary is not None else value


class Skeleton:
    """What every facet tree of one vocabulary shares, worked out once.

    Labels, sort keys, narrower terms, ancestors, and whether the hierarchy is free of cycles:
    a search then only decides which concepts are shown and fills in their counts.
    """

    __slots__ = ("acyclic", "ancestors", "children", "labels", "order", "tops")

    def __init__(self, vocabulary: Vocabulary) -> None:
        concepts = vocabulary.concepts
        self.labels = {term: concept.label for term, concept in concepts.items()}
        self.order = {term: (concept.label.casefold(), term) for term, concept in concepts.items()}
        self.children = {term: concept.narrower for term, concept in concepts.items()}
        self.tops = frozenset(term for term, concept in concepts.items() if not concept.broader)
        self.ancestors = vocabulary.ancestor_sets
        # A cycle has a link down to a concept that is also above: ancestor sets leave the
        # concept itself out, so they cannot tell by themselves.
        self.acyclic = not any(
            child in self.ancestors.get(term, ())
            for term, below in self.children.items()
            for child in below
        )

    def tree(self, counts: Mapping[str, int], selected: Iterable[str]) -> list[FacetBucket]:
        """The facet tree: `vocabularies.expand.rollup`'s nodes, as buckets, in its order.

        The concepts with a positive count, the selected ones and their ancestors; a concept
        with several broader concepts under each of them; each level by count, label, term.
        Without cycles a concept's subtree is the same wherever it appears, so it is built once.
        """
        labels = self.labels
        chosen = {term for term in selected if term in labels}
        shown = {term for term, count in counts.items() if count > 0 and term in labels}
        for term in chosen:
            shown.add(term)
            shown.update(self.ancestors[term])
        built: dict[str, FacetBucket] = {}
        order, narrower, acyclic = self.order, self.children, self.acyclic

        def by_count(bucket: FacetBucket) -> tuple[int, tuple[str, str]]:
            return -bucket.count, order[bucket.value]

        def node(term: str, on_path: frozenset[str]) -> FacetBucket:
            if acyclic:
                found = built.get(term)
                if found is not None:
                    return found
                children = [node(child, on_path) for child in narrower[term] if child in shown]
            else:  # bad data: never follow a link back up the path
                below = on_path | {term}
                children = [
                    node(child, below)
                    for child in narrower[term]
                    if child in shown and child not in below
                ]
            if len(children) > 1:
                children.sort(key=by_count)
            bucket = FacetBucket(
                value=term,
                label=labels[term],
                count=counts.get(term, 0),
                selected=term in chosen,
                children=children,
            )
            if acyclic:
                built[term] = bucket
            return bucket

        # The top holds every shown concept without a broader one: the roots, and orphans such
        # as deprecated concepts that entries still carry.
        top = [node(term, frozenset()) for term in shown if term in self.tops]
        top.sort(key=by_count)
        return top


_SKELETONS: dict[int, tuple[Vocabulary, Skeleton]] = {}
MAX_SKELETONS: Final = 32
"""Vocabularies whose skeleton is kept (a registry reload brings new ones)."""


def skeleton(vocabulary: Vocabulary) -> Skeleton:
    """The vocabulary's `Skeleton`, made on first use and kept while the vocabulary lives."""
    kept = _SKELETONS.get(id(vocabulary))
    if kept is not None and kept[0] is vocabulary:
        return kept[1]
    made = Skeleton(vocabulary)
    if len(_SKELETONS) >= MAX_SKELETONS:
        _SKELETONS.clear()
    _SKELETONS[id(vocabulary)] = (vocabulary, made)  # holding it keeps its id from reuse
    return made


def facet_views(
    counts: Mapping[str, Mapping[str, int]],
    selected: Mapping[str, tuple[str, ...]],
    registry: VocabularyRegistry,
) -> list[Facet]:
    """The facets of `counts` in display order: trees for vocabularies, flat lists otherwise.

    Only the facets the search counted are shown (a page asks for those it displays).
    """
    facets: list[Facet] = []
    for facet in FACETS:
        if facet not in counts:
            continue
        values = counts[facet]
        chosen = selected.get(facet, ())
        vocabulary = _vocabulary(registry, facet)
        if facet in HIERARCHICAL and vocabulary is not None:
            tree = skeleton(vocabulary).tree(values, chosen)
            facets.append(Facet(name=facet, hierarchical=True, buckets=tree))
            continue
        shown = {value: count for value, count in values.items() if count > 0}
        for value in chosen:
            shown.setdefault(value, 0)
        buckets = [
            FacetBucket(
                value=value,
                label=_label(facet, value, vocabulary),
                count=count,
                selected=value in chosen,
            )
            for value, count in shown.items()
        ]
        buckets.sort(key=lambda b: (-b.count, b.label.casefold()))
        facets.append(Facet(name=facet, hierarchical=False, buckets=buckets))
    return facets
