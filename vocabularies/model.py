"""The concept-scheme model: `Concept`, `Vocabulary`, and the errors about them.

A `Vocabulary` is an immutable value. Whoever builds one (the desise and SKOS loaders, a test,
the catalogue's fixtures) gives only what the source says; `__post_init__` then establishes the
invariants every other module relies on:

- `broader` and `narrower` are two views of one DAG: a link stated in either direction appears
  in both (the IVOA UAT states only `broader`), both are ordered by label whatever order the
  source had (rdflib's is arbitrary), links to unknown terms and self-links are dropped, and a
  `use_instead` that names an unknown term is dropped;
- `roots` are computed (non-deprecated concepts without a broader concept), never taken from
  the file's `hasTopConcept`, which for the UAT is a hand-kept list that is wrong;
- indexes for the closure functions and term resolution (ancestor sets, descendant counts,
  URIs and normalised labels) are built once, so lookups cost a dictionary access.

Pure: imports only msgspec and `core.errors`; no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Collection
from typing import Final

import msgspec
from msgspec.structs import force_setattr

from core.errors import Invalid, NotFound, Problem

_NOT_ALPHANUMERIC: Final = re.compile(r"[^0-9a-z]+")
_DEPRECATED_PREFIX: Final = "deprecated "
_NO_DEFINITION: Final = frozenset({"N/D", "n/d"})
_PARAGRAPH_BREAK: Final = re.compile(r"\n\s*\n")


def normalise_label(text: str) -> str:
    """Fold a label or term for matching: case, accents and punctuation do not count.

    `"Strömgren photometry"`, `"stromgren-photometry"` and `" STROMGREN  photometry. "` all
    become `"stromgren photometry"`.

    Args:
        text: a label, alternative label, short term or user input.

    Returns:
        Lower-case ASCII words separated by single spaces.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    without_accents = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NOT_ALPHANUMERIC.sub(" ", without_accents).strip()


def clean_text(text: str) -> str:
    """A definition or description as prose: IVOA's "N/D" placeholder means none.

    Hard line breaks inside a paragraph (Turtle and RDF sources wrap long literals) become
    spaces; blank lines between paragraphs are kept as one blank line.
    """
    paragraphs = (" ".join(block.split()) for block in _PARAGRAPH_BREAK.split(text))
    cleaned = "\n\n".join(p for p in paragraphs if p)
    return "" if cleaned in _NO_DEFINITION else cleaned


class Concept(msgspec.Struct, frozen=True):
    """One concept of a vocabulary (a SKOS concept, an RDF class or an RDF property)."""

    uri: str
    """Full URI, e.g. `http://www.ivoa.net/rdf/uat#astronomy-software`."""
    term: str
    """Short term: the URI's fragment, e.g. `astronomy-software`."""
    label: str
    """Preferred label."""
    alt_labels: tuple[str, ...] = ()
    """Alternative labels (synonyms, abbreviations)."""
    definition: str = ""
    broader: tuple[str, ...] = ()
    """Terms of the directly broader concepts (several for a polyhierarchy)."""
    narrower: tuple[str, ...] = ()
    """Terms of the directly narrower concepts (derived from `broader` where missing)."""
    deprecated: bool = False
    use_instead: str | None = None
    """Term of the replacement of a deprecated concept, when the vocabulary names one."""
    exact_match: tuple[str, ...] = ()
    """URIs of the same concept elsewhere (`skos:exactMatch`): upstream UAT ids, kind URIs."""
    preliminary: bool = False
    """The vocabulary marks the concept as not yet stable (`ivoasem:preliminary`)."""


class Vocabulary(msgspec.Struct, frozen=True):
    """A concept scheme: its concepts by term, their hierarchy and lookup indexes.

    Build it with the first five fields (plus `flavour`); the remaining fields are derived in
    `__post_init__` and are overwritten if given. Treat every field as read-only.
    """

    name: str
    """Short name the registry knows it by, e.g. `uat` or `datalink/core`."""
    uri: str
    title: str
    description: str
    concepts: dict[str, Concept]
    """Concepts by term."""
    flavour: str = "SKOS"
    """IVOA vocabulary flavour: `SKOS`, `RDF Class` or `RDF Property`."""

    # ------------------------------------------------------------ derived, never given
    root_terms: tuple[str, ...] = ()
    """Non-deprecated concepts without a broader concept, by label."""
    ancestor_sets: dict[str, frozenset[str]] = {}
    """Every concept's transitive broader concepts (itself excluded)."""
    descendant_counts: dict[str, int] = {}
    """How many distinct concepts lie beneath each concept."""
    uri_index: dict[str, str] = {}
    """Concept URIs and `exact_match` URIs to terms."""
    label_index: dict[str, tuple[str, ...]] = {}
    """Normalised labels, alternative labels and terms to the terms that carry them."""
    folded_labels: dict[str, str] = {}
    """Each concept's preferred label, normalised (see `normalise_label`), by term."""

    def __post_init__(self) -> None:
        concepts = _consistent_concepts(self.concepts)
        ancestors = {term: _climb(concepts, term) for term in concepts}
        descendant_counts = dict.fromkeys(concepts, 0)
        for found in ancestors.values():
            for ancestor in found:
                descendant_counts[ancestor] += 1
        roots = sorted(
            (c for c in concepts.values() if not c.broader and not c.deprecated),
            key=lambda c: (c.label.casefold(), c.term),
        )
        force_setattr(self, "concepts", concepts)
        force_setattr(self, "root_terms", tuple(c.term for c in roots))
        force_setattr(self, "ancestor_sets", ancestors)
        force_setattr(self, "descendant_counts", descendant_counts)
        force_setattr(self, "uri_index", _uri_index(concepts.values()))
        force_setattr(self, "label_index", _label_index(concepts.values()))
        force_setattr(
            self, "folded_labels", {t: normalise_label(c.label) for t, c in concepts.items()}
        )

    def concept(self, term: str) -> Concept:
        """The concept with this exact term.

        Raises:
            UnknownConcept: the vocabulary has no such term.
        """
        try:
            return self.concepts[term]
        except KeyError:
            raise UnknownConcept(self.name, term) from None

    def label_of(self, term: str) -> str:
        """The preferred label of `term`, or `term` itself when the vocabulary lacks it."""
        concept = self.concepts.get(term)
        return concept.label if concept else term


# ---------------------------------------------------------------------------- errors
class UnknownVocabulary(NotFound):
    """No vocabulary of that name is loaded."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no vocabulary named {name!r}; known: {', '.join(known) or 'none'}")
        self.name = name
        self.known = known


class UnknownConcept(NotFound):
    """The vocabulary has no concept with that term."""

    def __init__(self, vocabulary: str, term: str, suggestions: tuple[str, ...] = ()) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"vocabulary {vocabulary!r} has no concept {term!r}{hint}")
        self.vocabulary = vocabulary
        self.term = term
        self.suggestions = suggestions


class BadVocabularyData(Invalid):
    """A vocabulary file or answer could not be read as the format it claims to be."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(
            f"cannot read vocabulary from {source}: {reason}", [Problem(source, reason)]
        )
        self.source = source
        self.reason = reason


# ---------------------------------------------------------------------------- derivation
def _consistent_concepts(given: dict[str, Concept]) -> dict[str, Concept]:
    """Concepts keyed by their own term, with symmetric, known-only hierarchy links."""
    by_term = {concept.term: concept for concept in given.values()}
    parents: dict[str, list[str]] = {term: [] for term in by_term}
    for concept in by_term.values():
        for parent in concept.broader:
            _link(parents, by_term, child=concept.term, parent=parent)
        for child in concept.narrower:
            _link(parents, by_term, child=child, parent=concept.term)
    children: dict[str, list[str]] = defaultdict(list)
    for child, its_parents in parents.items():
        for parent in its_parents:
            children[parent].append(child)

    def by_label(term: str) -> tuple[str, str]:
        return (by_term[term].label.casefold(), term)

    consistent: dict[str, Concept] = {}
    for term, concept in by_term.items():
        broader = tuple(sorted(parents[term], key=by_label))
        narrower = tuple(sorted(children.get(term, ()), key=by_label))
        use_instead = concept.use_instead if concept.use_instead in by_term else None
        unchanged = (broader, narrower, use_instead) == (
            concept.broader,
            concept.narrower,
            concept.use_instead,
        )
        consistent[term] = (
            concept
            if unchanged
            else msgspec.structs.replace(
                concept, broader=broader, narrower=narrower, use_instead=use_instead
            )
        )
    return consistent


def _link(
    parents: dict[str, list[str]], by_term: dict[str, Concept], *, child: str, parent: str
) -> None:
    # A link to a term the file never defines cannot be navigated; dropping it keeps every
    # closure function total instead of failing on half the hierarchy.
    if child == parent or child not in by_term or parent not in by_term:
        return
    if parent not in parents[child]:
        parents[child].append(parent)


def _climb(concepts: dict[str, Concept], term: str) -> frozenset[str]:
    """All transitive broader terms of `term`; tolerant of cycles in bad data."""
    seen: set[str] = set()
    frontier = list(concepts[term].broader)
    while frontier:
        current = frontier.pop()
        if current in seen or current == term:
            continue
        seen.add(current)
        frontier.extend(concepts[current].broader)
    return frozenset(seen)


def _uri_index(concepts: Collection[Concept]) -> dict[str, str]:
    index: dict[str, str] = {}
    items = list(concepts)
    # Exact matches first, so that a concept's own URI wins if two concepts share a match.
    for concept in items:
        for uri in concept.exact_match:
            index.setdefault(uri, concept.term)
    for concept in items:
        index[concept.uri] = concept.term
    return index


def _label_index(concepts: Collection[Concept]) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = defaultdict(list)
    for concept in concepts:
        keys = [concept.label, concept.term, *concept.alt_labels]
        for key in keys:
            folded = normalise_label(key)
            if folded and concept.term not in index[folded]:
                index[folded].append(concept.term)
        # IVOA renderings keep replaced UAT concepts as "Deprecated: <old label>"; index the
        # old label too, so that what packagers wrote years ago still finds its replacement.
        folded_label = normalise_label(concept.label)
        if concept.deprecated and folded_label.startswith(_DEPRECATED_PREFIX):
            old = folded_label.removeprefix(_DEPRECATED_PREFIX)
            if concept.term not in index[old]:
                index[old].append(concept.term)
    return {key: tuple(terms) for key, terms in index.items()}
