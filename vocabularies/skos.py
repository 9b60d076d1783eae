"""Reading vocabularies from RDF (RDF/XML and Turtle): the only module that imports rdflib.

Handles the three IVOA flavours, each with its own predicates:

| flavour      | concepts     | label          | definition      | broader                     |
|--------------|--------------|----------------|-----------------|-----------------------------|
| SKOS         | skos:Concept | skos:prefLabel | skos:definition | skos:broader, skos:narrower |
| RDF Class    | rdfs:Class   | rdfs:label     | rdfs:comment    | rdfs:subClassOf             |
| RDF Property | rdf:Property | rdfs:label     | rdfs:comment    | rdfs:subPropertyOf          |

and, in every flavour, `ivoasem:deprecated`, `ivoasem:useInstead`, `ivoasem:preliminary`,
`skos:altLabel` and `skos:exactMatch`. The scheme itself is the `skos:ConceptScheme` or
`owl:Ontology` subject (`dc:title`, `dc:description`, `ivoasem:vocflavour`). `hasTopConcept` is
deliberately ignored: roots are computed by the model.

Parsing the full UAT with rdflib takes most of a second, so the registry prefers desise and
caches what it reads from RDF as desise. No other I/O: callers pass bytes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final, Literal

from rdflib import RDF, RDFS, SKOS, Graph, Namespace, URIRef
from rdflib import Literal as RdfLiteral
from rdflib.term import Node

from vocabularies.model import BadVocabularyData, Concept, Vocabulary, clean_text

RdfFormat = Literal["xml", "turtle"]

MEDIA_TYPES: Final[dict[str, RdfFormat]] = {
    "application/rdf+xml": "xml",
    "text/turtle": "turtle",
    "application/x-turtle": "turtle",
}
"""RDF media types this module reads, with rdflib's name for the parser."""

SUFFIXES: Final[dict[str, RdfFormat]] = {".rdf": "xml", ".xml": "xml", ".ttl": "turtle"}
"""File suffixes this module reads."""

IVOASEM: Final = Namespace("http://www.ivoa.net/rdf/ivoasem#")
DC: Final = Namespace("http://purl.org/dc/terms/")
OWL_ONTOLOGY: Final = URIRef("http://www.w3.org/2002/07/owl#Ontology")

_CONCEPT_TYPES: Final[dict[URIRef, str]] = {
    SKOS.Concept: "SKOS",
    RDFS.Class: "RDF Class",
    RDF.Property: "RDF Property",
}
_SCHEME_TYPES: Final = {SKOS.ConceptScheme, OWL_ONTOLOGY}
_LABELS: Final = {SKOS.prefLabel, RDFS.label}
_DEFINITIONS: Final = {SKOS.definition, RDFS.comment}
_BROADER: Final = {SKOS.broader, RDFS.subClassOf, RDFS.subPropertyOf}
_PREFERRED_LANGUAGES: Final = (None, "en")


class _Facts:
    """What the triples say about one subject, gathered in a single pass over the graph."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[URIRef, list[Node]] = defaultdict(list)

    def text(self, predicates: set[URIRef]) -> str:
        """The best literal among `predicates`: untagged or English first."""
        literals = [
            value
            for predicate in predicates
            for value in self.values.get(predicate, ())
            if isinstance(value, RdfLiteral)
        ]
        for language in _PREFERRED_LANGUAGES:
            for literal in literals:
                if literal.language == language:
                    return str(literal)
        return str(literals[0]) if literals else ""

    def texts(self, predicate: URIRef) -> tuple[str, ...]:
        return tuple(str(v) for v in self.values.get(predicate, ()) if isinstance(v, RdfLiteral))

    def uris(self, predicates: set[URIRef]) -> list[str]:
        return [
            str(value)
            for predicate in predicates
            for value in self.values.get(predicate, ())
            if isinstance(value, URIRef)
        ]

    def has(self, predicate: URIRef) -> bool:
        return predicate in self.values


def parse_rdf(data: bytes, name: str, rdf_format: RdfFormat, source: str = "rdf") -> Vocabulary:
    """Read a vocabulary from RDF/XML or Turtle.

    Args:
        data: the document's bytes.
        name: the name the registry knows the vocabulary by.
        rdf_format: `"xml"` for RDF/XML, `"turtle"` for Turtle.
        source: where the bytes came from, for error messages and as the base URI.

    Returns:
        The vocabulary with every concept of the scheme.

    Raises:
        BadVocabularyData: the bytes do not parse, or hold no concept.
    """
    graph = Graph()
    try:
        graph.parse(data=data, format=rdf_format, publicID=source)
    # rdflib's parsers raise unrelated exception types (SAX, BadSyntax, ValueError...); at
    # this boundary they all mean the same thing to the caller.
    except Exception as error:
        raise BadVocabularyData(source, f"not valid {rdf_format} RDF ({error})") from error

    facts: dict[Node, _Facts] = defaultdict(_Facts)
    for subject, predicate, value in graph:
        facts[subject].values[predicate].append(value)  # type: ignore[index]

    concept_uris: dict[str, str] = {}  # URI -> flavour of the type that made it a concept
    scheme: Node | None = None
    for subject, subject_facts in facts.items():
        if not isinstance(subject, URIRef):
            continue
        for kind in subject_facts.values.get(RDF.type, ()):
            flavour = _CONCEPT_TYPES.get(URIRef(str(kind)))
            if flavour is not None:
                concept_uris[str(subject)] = flavour
            elif kind in _SCHEME_TYPES and scheme is None:
                scheme = subject
    if not concept_uris:
        raise BadVocabularyData(source, "no skos:Concept, rdfs:Class or rdf:Property in it")

    scheme_facts = facts[scheme] if scheme is not None else _Facts()
    base = str(scheme).rstrip("#") if scheme is not None else _common_base(concept_uris)
    term_of = {uri: _term_from_uri(uri, base) for uri in concept_uris}

    def terms(uris: list[str]) -> tuple[str, ...]:
        return tuple(term_of[uri] for uri in uris if uri in term_of)

    concepts: dict[str, Concept] = {}
    for uri, term in term_of.items():
        about = facts[URIRef(uri)]
        replacements = terms(about.uris({IVOASEM.useInstead}))
        concepts[term] = Concept(
            uri=uri,
            term=term,
            label=about.text(_LABELS).strip() or term,
            alt_labels=about.texts(SKOS.altLabel),
            definition=clean_text(about.text(_DEFINITIONS)),
            broader=terms(about.uris(_BROADER)),
            narrower=terms(about.uris({SKOS.narrower})),
            deprecated=about.has(IVOASEM.deprecated),
            use_instead=replacements[0] if replacements else None,
            exact_match=tuple(about.uris({SKOS.exactMatch})),
            preliminary=about.has(IVOASEM.preliminary),
        )
    flavours = set(concept_uris.values())
    declared_flavour = scheme_facts.text({IVOASEM.vocflavour})
    return Vocabulary(
        name=name,
        uri=base,
        title=scheme_facts.text({DC.title, RDFS.label}).strip() or name,
        description=clean_text(scheme_facts.text({DC.description})),
        concepts=concepts,
        flavour=declared_flavour or (flavours.pop() if len(flavours) == 1 else "SKOS"),
    )


def _term_from_uri(uri: str, base: str) -> str:
    if uri.startswith(base + "#"):
        return uri[len(base) + 1 :]
    if "#" in uri:
        return uri.rpartition("#")[2]
    return uri.rstrip("/").rpartition("/")[2]


def _common_base(uris: dict[str, str]) -> str:
    """The vocabulary URI when the file declares no scheme: the part before the '#'."""
    bases = {uri.partition("#")[0] for uri in uris if "#" in uri}
    return bases.pop() if len(bases) == 1 else ""
