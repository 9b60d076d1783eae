"""The tantivy schema of the catalogue index, its analysers, and the sort keys it stores.

Text fields are analysed by our own analysers (registered on every opened index, since tantivy
does not persist them); facet fields are raw-tokenised fast fields, multi-valued where the
entry has several values; each keyed sort stores a unique string key plus a coarse number that
pages can filter on (see `KeyedSort`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import tantivy

from catalogue.facets import name_sort_value, normalise_name, updated_micros
from catalogue.ports import FACETS, IndexDocument

SCHEMA_VERSION: Final = 1
"""Bump when the schema changes: an index of another version is not reused (rebuild it)."""

WORDS: Final = "voexec_words"
"""Analyser of names, keywords, authors: words, lower case, accents folded."""
STEMMED: Final = "voexec_stemmed"
"""Analyser of prose (title, summary, description, topics): WORDS + English stemming."""

TEXT_FIELDS: Final = (
    ("name", WORDS),
    ("title", STEMMED),
    ("keywords", WORDS),
    ("topics", STEMMED),
    ("summary", STEMMED),
    ("authors", WORDS),
    ("description", STEMMED),
)
"""Fields a query term is looked up in, with their analysers."""
SPELL_FIELD: Final = "spell"
"""Misspelt terms are looked up here: the short fields, unstemmed, without frequencies."""
SPELL_SOURCES: Final = ("name", "title", "keywords", "topics", "summary", "authors")
EXACT_NAME_FIELD: Final = "name_exact"
"""The whole name, normalised (`facets.normalise_name`), as one term."""

NOT_SCORED: Final = 0.0
"""`SearchHit.score` under the name and newest sorts."""
MATCH_ALL_SCORE: Final = 1.0
"""`SearchHit.score` under relevance with no text: every hit is equally relevant."""

KEY_SEPARATOR: Final = "\x1f"
"""Between a key's sort value and its id; below every character a sort value may hold."""
_NEWEST_MAX: Final = 10**18 - 1
"""Above the microseconds of any datetime, so `_NEWEST_MAX - µs` sorts newest first."""


def analyzer(stemmed: bool) -> tantivy.TextAnalyzer:
    """The WORDS (or STEMMED) analyser, for indexing and for analysing query text alike."""
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
    )
    if stemmed:
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


ANALYZERS: Final = {WORDS: analyzer(stemmed=False), STEMMED: analyzer(stemmed=True)}
"""Registered on every opened index and used on query text, so both analyse alike."""


# ----------------------------------------------------------------------- keyed sorts
def _prefix_number(key: str) -> int:
    """The first 8 bytes of `key` as a number: never decreases as `key` increases."""
    return int.from_bytes(key.encode()[:8].ljust(8, b"\0"), "big")


@dataclass(frozen=True, slots=True)
class KeyedSort:
    """A sort on a unique string key (sort value, then id), paged with a coarse number filter.

    tantivy cannot filter "key > K" on strings, so the page after K filters on `coarse >=
    coarse(K)` (a cheap numeric range) and skips the few hits of K's coarse group up to K.
    """

    key_field: str
    coarse_field: str
    to_key: Callable[[Any, str], str]
    """(cursor value, id) -> key."""
    value_of: Callable[[str], Any]
    """The part of a key before the id -> cursor value."""
    coarse: Callable[[str], int]
    """Key -> coarse number (never decreasing as the key increases)."""
    score: float
    """What `SearchHit.score` says under this sort."""

    def split(self, key: str) -> tuple[Any, str]:
        """Key -> (cursor value, id)."""
        value, _, doc_id = key.partition(KEY_SEPARATOR)
        return (self.value_of(value), doc_id) if doc_id else (self.value_of(""), value)


KEYED_SORTS: Final = {
    "name": KeyedSort(
        "name_key",
        "name_coarse",
        lambda value, doc_id: f"{value}{KEY_SEPARATOR}{doc_id}",
        str,
        _prefix_number,
        NOT_SCORED,
    ),
    "newest": KeyedSort(
        "newest_key",
        "newest_coarse",
        lambda micros, doc_id: f"{_NEWEST_MAX - micros:018d}{KEY_SEPARATOR}{doc_id}",
        lambda digits: _NEWEST_MAX - int(digits),
        lambda key: int(key[:18]),
        NOT_SCORED,
    ),
    # Relevance without text: every hit scores the same, so the order is the id's.
    "relevance": KeyedSort(
        "id_key",
        "id_coarse",
        lambda _score, doc_id: doc_id,
        lambda _: MATCH_ALL_SCORE,
        _prefix_number,
        MATCH_ALL_SCORE,
    ),
}
"""The sorts paged by key: name, newest, and relevance when there is no text."""


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, fast=True, tokenizer_name="raw")
    for field, analyser in TEXT_FIELDS:
        builder.add_text_field(field, tokenizer_name=analyser)
    builder.add_text_field(EXACT_NAME_FIELD, tokenizer_name="raw", index_option="basic")
    builder.add_text_field(SPELL_FIELD, tokenizer_name=WORDS, index_option="basic")
    for facet in FACETS:
        builder.add_text_field(facet, fast=True, tokenizer_name="raw", index_option="basic")
    for sort in KEYED_SORTS.values():
        builder.add_text_field(sort.key_field, fast=True, tokenizer_name="raw")
        builder.add_unsigned_field(sort.coarse_field, fast=True)
    return builder.build()


SCHEMA: Final = _schema()


# ------------------------------------------------------------------------- documents
def _term_words(term: str) -> str:
    """The readable tail of a vocabulary term (`uat:galaxy-evolution` -> `galaxy-evolution`)."""
    return term.rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def to_tantivy(doc: IndexDocument) -> tantivy.Document:
    """The tantivy document of one catalogue entry."""
    out = tantivy.Document()
    texts: dict[str, Iterable[str]] = {
        "id": (doc.id,),
        "name": (doc.name,),
        EXACT_NAME_FIELD: (normalise_name(doc.name),),
        "title": (doc.title,),
        "keywords": doc.keywords,
        "topics": [_term_words(term) for term in (*doc.subjects, *doc.functions, *doc.messengers)],
        "summary": (doc.summary,),
        "authors": doc.authors,
        "description": (doc.description,),
    }
    texts[SPELL_FIELD] = [text for field in SPELL_SOURCES for text in texts[field]]
    for facet in FACETS:
        texts[facet] = dict.fromkeys(doc.facet_values(facet))  # a value counts once per entry
    for field, values in texts.items():
        for value in values:
            if value:
                out.add_text(field, value)
    values = {
        "name": name_sort_value(doc.name),
        "newest": updated_micros(doc.updated),
        "relevance": MATCH_ALL_SCORE,
    }
    for sort, spec in KEYED_SORTS.items():
        key = spec.to_key(values[sort], doc.id)
        out.add_text(spec.key_field, key)
        out.add_unsigned(spec.coarse_field, spec.coarse(key))
    return out
