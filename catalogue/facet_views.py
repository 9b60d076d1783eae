"""Facets as people see them: selections read from labels, counts turned into trees.

- `resolve_filters`: what a researcher selected (`subject=Galaxies`, a UAT URI, `kind=docker`)
  into the terms the index stores; unknown values are `Invalid` with suggestions.
- `facet_views`: the index's per-value counts into display facets: vocabulary facets (subject,
  function, messenger) as trees rolled up by `vocabularies.expand.rollup`, the others flat.
  Selected values always appear, even with no hits, so they can be seen and cleared.

Pure: no I/O; imports `vocabularies` and `catalogue.model` only.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Final

from catalogue.model import Facet, FacetBucket
from catalogue.ports import FACETS
from catalogue.spdx import check_licence
from core.errors import Invalid, Problem
from vocabularies.expand import FacetNode, rollup
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


def _bucket(node: FacetNode) -> FacetBucket:
    return FacetBucket(
        value=node.term,
        label=node.label,
        count=node.count,
        selected=node.selected,
        children=[_bucket(child) for child in node.children],
    )


def _label(facet: str, value: str, vocabulary: Vocabulary | None) -> str:
    if facet == "gpu":
        return GPU_LABELS.get(value, value)
    return vocabulary.label_of(value) if vocabulary is not None else value


def facet_views(
    counts: Mapping[str, Mapping[str, int]],
    selected: Mapping[str, tuple[str, ...]],
    registry: VocabularyRegistry,
) -> list[Facet]:
    """Every facet in display order, with counts: trees for vocabularies, flat lists otherwise."""
    facets: list[Facet] = []
    for facet in FACETS:
        values = counts.get(facet, {})
        chosen = selected.get(facet, ())
        vocabulary = _vocabulary(registry, facet)
        if facet in HIERARCHICAL and vocabulary is not None:
            tree = rollup(vocabulary, values, chosen)
            facets.append(Facet(name=facet, hierarchical=True, buckets=[_bucket(n) for n in tree]))
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
