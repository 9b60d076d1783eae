"""Finding concepts from what people write: term resolution for harvest, autocomplete for search.

`resolve` turns one subject string from a record (a URI, a short term or a label, in any case
and punctuation) into a concept, mapping deprecated terms to their replacement with a warning
and answering unknown strings with the closest suggestions. `suggest` ranks concepts whose
labels start with, or have words starting with, what a user is typing.

Pure: no I/O; imports difflib, msgspec and `vocabularies.model`.
"""

from __future__ import annotations

import difflib
from typing import Final, Literal

import msgspec

from vocabularies.model import Concept, Vocabulary, normalise_label

MatchedBy = Literal["uri", "term", "label"]
SUGGESTIONS: Final = 5
_SIMILARITY_CUTOFF: Final = 0.6


class Resolution(msgspec.Struct, frozen=True):
    """The outcome of resolving one string against a vocabulary.

    `term` is None when nothing usable was found; `warning` then says why and `suggestions`
    lists the closest terms. A deprecated term with a replacement resolves to the replacement,
    with a warning naming both.
    """

    term: str | None
    uri: str | None
    warning: str | None = None
    suggestions: tuple[str, ...] = ()
    matched_by: MatchedBy | None = None
    """How the input was recognised (before any deprecation mapping)."""


class Suggestion(msgspec.Struct, frozen=True):
    """One autocomplete answer."""

    term: str
    label: str
    uri: str
    matched: str
    """The label or alternative label that matched what was typed."""


def resolve(vocab: Vocabulary, text: str) -> Resolution:
    """Resolve a URI, short term or label to a concept of `vocab`.

    Tried in order: a concept URI (or an `exactMatch` URI such as the upstream UAT's numeric
    ones), the exact short term, then labels, alternative labels and terms compared without
    case, accents or punctuation (`"Astronomy Software"`, `"astronomy_software"`).

    Args:
        vocab: the vocabulary.
        text: what the record says.

    Returns:
        The resolution; never raises for unknown input.
    """
    wanted = text.strip()
    if not wanted:
        return Resolution(None, None, warning=f"an empty string is not a {vocab.name} term")
    found = _find(vocab, wanted)
    if found is None:
        return Resolution(
            None,
            None,
            warning=f"{wanted!r} is not a term of the {vocab.name} vocabulary",
            suggestions=closest(vocab, _fragment(wanted)),
        )
    concept, matched_by = found
    if not concept.deprecated:
        return Resolution(concept.term, concept.uri, matched_by=matched_by)
    replacement = _replacement(vocab, concept)
    if replacement is None:
        return Resolution(
            None,
            None,
            warning=(
                f"{vocab.name} term {concept.term!r} ({concept.label}) is deprecated and has no"
                " replacement"
            ),
            suggestions=closest(vocab, concept.label),
            matched_by=matched_by,
        )
    return Resolution(
        replacement.term,
        replacement.uri,
        warning=(
            f"{vocab.name} term {concept.term!r} ({concept.label}) is deprecated; use"
            f" {replacement.term!r} ({replacement.label}) instead"
        ),
        matched_by=matched_by,
    )


def closest(vocab: Vocabulary, text: str, limit: int = SUGGESTIONS) -> tuple[str, ...]:
    """The non-deprecated terms most like `text`: shared words first, then similar spellings.

    Args:
        vocab: the vocabulary.
        text: a misspelt or unknown term or label.
        limit: most suggestions returned.

    Returns:
        Up to `limit` distinct terms, best first.
    """
    wanted = normalise_label(text)
    if not wanted:
        return ()
    usable = {
        key: terms
        for key, terms in vocab.label_index.items()
        if any(not vocab.concepts[t].deprecated for t in terms)
    }
    # Whole words are stronger evidence than similar spelling, and spelling similarity alone
    # misses "software" -> "astronomy-software"; so word matches come first.
    ranked = [s.term for s in suggest(vocab, wanted, limit=limit)]
    for key in difflib.get_close_matches(wanted, usable, n=limit * 2, cutoff=_SIMILARITY_CUTOFF):
        ranked.extend(t for t in usable[key] if not vocab.concepts[t].deprecated)
    return tuple(dict.fromkeys(ranked))[:limit]


def suggest(vocab: Vocabulary, query: str, limit: int = 10) -> list[Suggestion]:
    """Autocomplete: concepts whose labels match what is being typed, best first.

    Ranking, highest first: the label equals the query; the label starts with it; every query
    word starts a word of the label; the same two for an alternative label; the short term
    starts with it. Ties go to the shorter label, then alphabetical order. Deprecated concepts
    are never suggested.

    Args:
        vocab: the vocabulary.
        query: the text typed so far (case, accents and punctuation do not matter).
        limit: most suggestions returned.

    Returns:
        Up to `limit` suggestions.
    """
    wanted = normalise_label(query)
    if not wanted or limit < 1:
        return []
    words = wanted.split()
    scored: list[tuple[tuple[int, int, str], Suggestion]] = []
    for concept in vocab.concepts.values():
        if concept.deprecated:
            continue
        match = _best_match(concept, vocab.folded_labels[concept.term], wanted, words)
        if match is not None:
            rank, matched = match
            suggestion = Suggestion(concept.term, concept.label, concept.uri, matched)
            scored.append(((rank, len(concept.label), concept.label.casefold()), suggestion))
    scored.sort(key=lambda item: item[0])
    return [suggestion for _, suggestion in scored[:limit]]


def _best_match(
    concept: Concept, label: str, wanted: str, words: list[str]
) -> tuple[int, str] | None:
    if label == wanted:
        return 0, concept.label
    if label.startswith(wanted):
        return 1, concept.label
    if _words_start(label, words):
        return 2, concept.label
    for alternative in concept.alt_labels:
        folded = normalise_label(alternative)
        if folded.startswith(wanted) or _words_start(folded, words):
            return 3, alternative
    if concept.term.casefold().startswith(wanted):
        return 4, concept.label
    return None


def _words_start(label: str, words: list[str]) -> bool:
    label_words = label.split()
    return all(any(w.startswith(word) for w in label_words) for word in words)


def _find(vocab: Vocabulary, wanted: str) -> tuple[Concept, MatchedBy] | None:
    if wanted in vocab.uri_index:
        return vocab.concepts[vocab.uri_index[wanted]], "uri"
    if "://" in wanted:
        # Same vocabulary written differently (https, a trailing '/', '/term' for '#term').
        if _same_vocabulary(vocab.uri, wanted) and _fragment(wanted) in vocab.concepts:
            return vocab.concepts[_fragment(wanted)], "uri"
        return None
    if wanted in vocab.concepts:
        return vocab.concepts[wanted], "term"
    key = normalise_label(wanted)
    candidates = [vocab.concepts[t] for t in vocab.label_index.get(key, ())]
    if not candidates:
        return None
    # Prefer a current concept, then one whose preferred label (not an alias) matched.
    candidates.sort(key=lambda c: (c.deprecated, normalise_label(c.label) != key, c.term))
    best = candidates[0]
    return best, ("term" if normalise_label(best.term) == key else "label")


def _replacement(vocab: Vocabulary, concept: Concept) -> Concept | None:
    """Follow `use_instead` to a current concept (chains and cycles included)."""
    seen = {concept.term}
    current = concept
    while current.use_instead is not None and current.use_instead not in seen:
        current = vocab.concepts[current.use_instead]
        if not current.deprecated:
            return current
        seen.add(current.term)
    return None


def _fragment(text: str) -> str:
    if "://" not in text:
        return text
    if "#" in text:
        return text.rpartition("#")[2]
    return text.rstrip("/").rpartition("/")[2]


def _same_vocabulary(vocabulary_uri: str, uri: str) -> bool:
    def bare(value: str) -> str:
        return value.partition("://")[2].rstrip("/#")

    head = uri.rpartition("#")[0] if "#" in uri else uri.rstrip("/").rpartition("/")[0]
    return bool(vocabulary_uri) and bare(head) == bare(vocabulary_uri)
