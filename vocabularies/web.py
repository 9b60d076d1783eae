"""HTTP routes for browsing vocabularies: a Litestar `Router` mounted at `/vocabularies`.

- `GET /vocabularies`: the loaded vocabularies with the copy of each in use (version, and the
  shipped snapshot's date or when the cached copy was fetched), and those that could not be
  loaded and why;
- `GET /vocabularies/{name}?depth=&root=`: one vocabulary with its computed top level (or the
  branch under `root`) as a tree;
- `GET /vocabularies/{name}/concepts/{term}`: a concept with broader, narrower and a path to
  the top;
- `GET /vocabularies/{name}/suggest?q=&limit=`: autocomplete on labels;
- `GET /vocabularies/{name}/resolve?text=`: what a record's subject string resolves to.

Handlers only translate: the registry comes in as the dependency `vocabularies`, the work is
done by `expand` and `resolve`, and errors are `core.errors` classes that `voexec/problems.py`
turns into problem details (an unknown vocabulary or concept is a 404 naming it).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from vocabularies import expand
from vocabularies.expand import TreeNode
from vocabularies.model import Concept, UnknownConcept, Vocabulary
from vocabularies.registry import Origin, OriginKind, VocabularyRegistry
from vocabularies.resolve import Resolution, Suggestion, resolve, suggest

Registry = NamedDependency[VocabularyRegistry]
"""The registry, injected by name as `vocabularies` (see `voexec/wire_vocabularies.py`)."""

MAX_DEPTH = 10
"""Deepest tree served at once (the UAT is 10 levels deep)."""


class OriginView(msgspec.Struct, frozen=True):
    """Which copy of a vocabulary is in use, and where it came from."""

    kind: OriginKind
    summary: str
    """In words: `snapshot of 2026-03-19 shipped with voexec`, `cached copy fetched ... from
    ...`, `our own, shipped with voexec`."""
    version: str | None
    """The vocabulary's version (a date), where known."""
    snapshot_date: date | None
    """For `snapshot`: when the shipped snapshot was taken."""
    fetched_at: datetime | None
    """For `cache` and `network`: when the copy was fetched."""
    url: str | None
    """For `cache` and `network`: where it was fetched from."""
    licence: str | None
    """For `snapshot`: the data's licence (SPDX identifier)."""

    @classmethod
    def of(cls, origin: Origin) -> OriginView:
        """The public view of an `Origin` (never the server's file paths)."""
        return cls(
            kind=origin.kind,
            summary=origin.describe() if origin.kind != "path" else "read from a local folder",
            version=origin.version or None,
            snapshot_date=origin.snapshot_date,
            fetched_at=origin.fetched_at,
            url=origin.url or None,
            licence=origin.licence or None,
        )


class VocabularySummary(msgspec.Struct, frozen=True):
    """A vocabulary as listed."""

    name: str
    uri: str
    title: str
    description: str
    flavour: str
    concepts: int
    """How many concepts it has (deprecated ones included)."""
    source: OriginKind
    """Where it was loaded from: `builtin` (ours), `path`, `cache`, `network` or `snapshot`."""
    origin: OriginView
    """Which copy it is: version, snapshot date or fetch time, source."""


class VocabularyList(msgspec.Struct, frozen=True):
    """All loaded vocabularies, and what could not be loaded."""

    vocabularies: list[VocabularySummary]
    problems: list[str]


class VocabularyDetail(msgspec.Struct, frozen=True):
    """A vocabulary with its top level (computed), or one branch of it, as a tree."""

    name: str
    uri: str
    title: str
    description: str
    flavour: str
    concepts: int
    source: OriginKind
    origin: OriginView
    roots: list[TreeNode]


class ConceptRef(msgspec.Struct, frozen=True):
    """A concept named from another one."""

    term: str
    label: str
    uri: str


class ConceptDetail(msgspec.Struct, frozen=True):
    """One concept and its place in the hierarchy."""

    vocabulary: str
    term: str
    uri: str
    label: str
    alt_labels: list[str]
    definition: str
    broader: list[ConceptRef]
    narrower: list[ConceptRef]
    path_to_root: list[ConceptRef]
    """One shortest chain from a top-level concept down to this one (itself last)."""
    descendants: int
    deprecated: bool
    use_instead: ConceptRef | None
    exact_match: list[str]
    preliminary: bool


def _ref(vocab: Vocabulary, term: str) -> ConceptRef:
    concept = vocab.concepts[term]
    return ConceptRef(concept.term, concept.label, concept.uri)


def _concept_detail(vocab: Vocabulary, concept: Concept) -> ConceptDetail:
    return ConceptDetail(
        vocabulary=vocab.name,
        term=concept.term,
        uri=concept.uri,
        label=concept.label,
        alt_labels=list(concept.alt_labels),
        definition=concept.definition,
        broader=[_ref(vocab, t) for t in concept.broader],
        narrower=[_ref(vocab, t) for t in concept.narrower],
        path_to_root=[_ref(vocab, t) for t in expand.path_to_root(vocab, concept.term)],
        descendants=vocab.descendant_counts[concept.term],
        deprecated=concept.deprecated,
        use_instead=_ref(vocab, concept.use_instead) if concept.use_instead else None,
        exact_match=list(concept.exact_match),
        preliminary=concept.preliminary,
    )


@get("/", sync_to_thread=False)
def list_vocabularies(vocabularies: Registry) -> VocabularyList:
    """The loaded vocabularies, and the configured ones that could not be loaded."""
    summaries = [
        VocabularySummary(
            name=vocab.name,
            uri=vocab.uri,
            title=vocab.title,
            description=vocab.description,
            flavour=vocab.flavour,
            concepts=len(vocab.concepts),
            source=vocabularies.origin(vocab.name).kind,
            origin=OriginView.of(vocabularies.origin(vocab.name)),
        )
        for vocab in vocabularies
    ]
    return VocabularyList(summaries, list(vocabularies.problems))


@get("/{name:str}", sync_to_thread=False)
def show_vocabulary(
    vocabularies: Registry,
    name: FromPath[str],
    depth: Annotated[
        int, QueryParameter(ge=0, le=MAX_DEPTH, description="levels below the top level")
    ] = 1,
    root: Annotated[
        str | None,
        QueryParameter(
            max_length=200, description="start from this concept instead (to expand a branch)"
        ),
    ] = None,
) -> VocabularyDetail:
    """One vocabulary and its top-level concepts (or the branch under `root`), `depth` deep."""
    vocab = vocabularies.get(name)
    return VocabularyDetail(
        name=vocab.name,
        uri=vocab.uri,
        title=vocab.title,
        description=vocab.description,
        flavour=vocab.flavour,
        concepts=len(vocab.concepts),
        source=vocabularies.origin(vocab.name).kind,
        origin=OriginView.of(vocabularies.origin(vocab.name)),
        roots=expand.tree(vocab, root=root, depth=depth),
    )


@get("/{name:str}/concepts/{term:str}", sync_to_thread=False)
def show_concept(vocabularies: Registry, name: FromPath[str], term: FromPath[str]) -> ConceptDetail:
    """One concept by its short term; a 404 for anything else suggests what was meant."""
    vocab = vocabularies.get(name)
    concept = vocab.concepts.get(term)
    if concept is None:
        resolution = resolve(vocab, term)
        meant = (resolution.term,) if resolution.term else resolution.suggestions
        raise UnknownConcept(vocab.name, term, meant)
    return _concept_detail(vocab, concept)


@get("/{name:str}/suggest", sync_to_thread=False)
def suggest_concepts(
    vocabularies: Registry,
    name: FromPath[str],
    q: Annotated[
        str, QueryParameter(min_length=1, max_length=200, description="text typed so far")
    ],
    limit: Annotated[int, QueryParameter(ge=1, le=50)] = 10,
) -> list[Suggestion]:
    """Autocomplete: concepts whose labels start with, or have words starting with, `q`."""
    return suggest(vocabularies.get(name), q, limit)


@get("/{name:str}/resolve", sync_to_thread=False)
def resolve_text(
    vocabularies: Registry,
    name: FromPath[str],
    text: Annotated[
        str, QueryParameter(min_length=1, max_length=500, description="URI, term or label")
    ],
) -> Resolution:
    """What a subject string resolves to, as harvest would see it (deprecations included)."""
    return resolve(vocabularies.get(name), text)


def router() -> Router:
    """The `/vocabularies` routes; they need the dependency `vocabularies`."""
    return Router(
        path="/vocabularies",
        route_handlers=[
            list_vocabularies,
            show_vocabulary,
            show_concept,
            suggest_concepts,
            resolve_text,
        ],
        tags=["vocabularies"],
    )
