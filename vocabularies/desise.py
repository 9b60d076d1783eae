"""The IVOA "desise" JSON format (Vocabularies in the VO 2.0, sect. 3.2): read and write.

Desise is what `http://www.ivoa.net/rdf/<name>` answers for `Accept: application/x-desise+json`
and what pyvo and DaCHS read: `{"uri", "flavour", "terms": {term: {label, description, wider,
narrower, deprecated?, useInstead?, preliminary?}}}`. Deprecation is marked by the *presence*
of the `deprecated` key (its value is an empty string in IVOA files).

When voexec caches a vocabulary that it received as RDF, it writes desise so that later loads
need no RDF parser; it then adds `title`, `description` (top level), `altLabels` and
`exactMatch` (per term). Other desise readers ignore these keys.

Imports msgspec only; no I/O (callers pass bytes).
"""

from __future__ import annotations

from typing import Any

import msgspec

from vocabularies.model import BadVocabularyData, Concept, Vocabulary, clean_text

MEDIA_TYPE = "application/x-desise+json"


class _Term(msgspec.Struct):
    # Optional keys default to UNSET so that writing omits them, as IVOA's own files do.
    label: str = ""
    description: str = ""
    wider: list[str] = []
    narrower: list[str] = []
    # Any, because only the key's presence matters; a null or false value is read as "not".
    deprecated: Any = msgspec.UNSET
    useInstead: str | msgspec.UnsetType | None = msgspec.UNSET  # noqa: N815  (format's spelling)
    preliminary: Any = msgspec.UNSET
    altLabels: list[str] | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    exactMatch: list[str] | msgspec.UnsetType = msgspec.UNSET  # noqa: N815


class _Document(msgspec.Struct):
    uri: str
    terms: dict[str, _Term]
    flavour: str = "SKOS"
    title: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET


_decoder = msgspec.json.Decoder(_Document)
_encoder = msgspec.json.Encoder()


def _flag(value: Any) -> bool:
    return value is not msgspec.UNSET and value is not None and value is not False


def decode_desise(data: bytes, name: str, source: str = "desise") -> Vocabulary:
    """Read a desise document.

    Args:
        data: the JSON bytes.
        name: the name the registry knows the vocabulary by (desise does not carry one).
        source: where the bytes came from, for error messages (a path or URL).

    Returns:
        The vocabulary; its title is `name` unless the document carries voexec's `title`.

    Raises:
        BadVocabularyData: the bytes are not a desise document.
    """
    try:
        document = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise BadVocabularyData(source, f"not desise JSON ({error})") from error
    base = document.uri.rstrip("#")
    concepts = {
        term: Concept(
            uri=f"{base}#{term}",
            term=term,
            label=entry.label.strip() or term,
            alt_labels=tuple(entry.altLabels or ()),
            definition=clean_text(entry.description),
            broader=tuple(entry.wider),
            narrower=tuple(entry.narrower),
            deprecated=_flag(entry.deprecated),
            use_instead=entry.useInstead or None,
            exact_match=tuple(entry.exactMatch or ()),
            preliminary=_flag(entry.preliminary),
        )
        for term, entry in document.terms.items()
    }
    return Vocabulary(
        name=name,
        uri=base,
        title=(document.title or "").strip() or name,
        description=clean_text(document.description or ""),
        concepts=concepts,
        flavour=document.flavour,
    )


def encode_desise(vocabulary: Vocabulary) -> bytes:
    """Write a vocabulary as desise, with voexec's extra keys where they carry something.

    `decode_desise(encode_desise(v), v.name)` gives back an equal vocabulary.
    """
    terms = {
        concept.term: _Term(
            label=concept.label,
            description=concept.definition,
            wider=list(concept.broader),
            narrower=list(concept.narrower),
            deprecated="" if concept.deprecated else msgspec.UNSET,
            useInstead=concept.use_instead or msgspec.UNSET,
            preliminary="" if concept.preliminary else msgspec.UNSET,
            altLabels=list(concept.alt_labels) or msgspec.UNSET,
            exactMatch=list(concept.exact_match) or msgspec.UNSET,
        )
        for concept in vocabulary.concepts.values()
    }
    document = _Document(
        uri=vocabulary.uri,
        terms=terms,
        flavour=vocabulary.flavour,
        title=vocabulary.title or msgspec.UNSET,
        description=vocabulary.description or msgspec.UNSET,
    )
    return _encoder.encode(document)
