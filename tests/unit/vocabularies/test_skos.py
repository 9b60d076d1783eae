"""Reading RDF/XML and Turtle with rdflib: the same vocabularies as desise, every flavour."""

import re

import pytest

from vocabularies.desise import decode_desise
from vocabularies.model import BadVocabularyData
from vocabularies.skos import parse_rdf


@pytest.fixture(scope="module")
def uat_from_rdf(shared_vocabularies):
    path = shared_vocabularies / "uat.rdf"
    return parse_rdf(path.read_bytes(), "uat", "xml", path.as_uri())


def _essence(vocab):
    return {
        term: (c.label, c.broader, c.narrower, c.deprecated, c.use_instead)
        for term, c in vocab.concepts.items()
    }


@pytest.mark.shared  # the RDF serialisations are not shipped
def test_uat_rdf_and_uat_desise_are_the_same_vocabulary(uat_from_rdf, uat):
    assert _essence(uat_from_rdf) == _essence(uat)
    assert uat_from_rdf.root_terms == uat.root_terms
    assert uat_from_rdf.uri == uat.uri


@pytest.mark.shared  # the RDF serialisations are not shipped
def test_rdf_gives_what_desise_lacks(uat_from_rdf):
    assert uat_from_rdf.title.startswith("Unified Astronomy Thesaurus")
    assert uat_from_rdf.description
    matched = [c for c in uat_from_rdf.concepts.values() if c.exact_match]
    assert len(matched) == len(uat_from_rdf.concepts)
    assert all(
        m.startswith("http://astrothesaurus.org/uat/") for c in matched for m in c.exact_match
    )


@pytest.mark.shared  # the RDF serialisations are not shipped
def test_has_top_concept_is_ignored_in_favour_of_computed_roots(uat_from_rdf, shared_vocabularies):
    text = (shared_vocabularies / "uat.rdf").read_text(encoding="utf-8")
    declared = set(re.findall(r'hasTopConcept rdf:resource="[^"]*#([^"]+)"', text))
    assert declared
    roots = set(uat_from_rdf.root_terms)
    assert all(not uat_from_rdf.concepts[t].broader for t in roots)
    # The file's list is hand-kept and wrong: it names concepts that have broader ones.
    wrongly_declared = {t for t in declared if uat_from_rdf.concepts[t].broader}
    assert wrongly_declared
    assert not wrongly_declared & roots


@pytest.mark.shared  # the RDF serialisations are not shipped
def test_every_ivoa_turtle_file_matches_its_desise_twin(shared_vocabularies):
    for path in sorted(shared_vocabularies.glob("*.ttl")):
        from_turtle = parse_rdf(path.read_bytes(), path.stem, "turtle", path.as_uri())
        from_desise = decode_desise(path.with_suffix(".desise").read_bytes(), path.stem)
        assert from_turtle.uri == from_desise.uri, path.name
        assert from_turtle.flavour == from_desise.flavour, path.name
        assert set(from_turtle.concepts) == set(from_desise.concepts), path.name
        # Desise of RDF Class vocabularies lists inferred (transitive) superclasses as direct
        # ones; the closure is what must agree.
        assert from_turtle.ancestor_sets == from_desise.ancestor_sets, path.name
        for term, c in from_turtle.concepts.items():
            twin = from_desise.concepts[term]
            assert (c.label, c.deprecated, c.use_instead) == (
                twin.label,
                twin.deprecated,
                twin.use_instead,
            )


@pytest.mark.shared  # the RDF serialisations are not shipped
def test_rdf_class_and_rdf_property_flavours_use_their_own_predicates(shared_vocabularies):
    messenger = parse_rdf((shared_vocabularies / "messenger.ttl").read_bytes(), "m", "turtle")
    assert messenger.flavour == "RDF Class"
    assert "UV" in messenger.concepts["EUV"].broader  # rdfs:subClassOf
    assert messenger.concepts["EUV"].definition  # rdfs:comment, stripped
    assert messenger.concepts["EUV"].definition == messenger.concepts["EUV"].definition.strip()
    datalink = parse_rdf((shared_vocabularies / "datalink-core.ttl").read_bytes(), "d", "turtle")
    assert datalink.flavour == "RDF Property"
    assert any(c.broader for c in datalink.concepts.values())  # rdfs:subPropertyOf


TURTLE = b"""
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix dc: <http://purl.org/dc/terms/> .
@prefix ivoasem: <http://www.ivoa.net/rdf/ivoasem#> .
<https://example.org/v> a skos:ConceptScheme ; dc:title "Toy"@en .
<https://example.org/v#a> a skos:Concept ; skos:prefLabel "Eins"@de, "One"@en ;
    skos:altLabel "Uno" ; skos:narrower <https://example.org/v#b> .
<https://example.org/v#b> a skos:Concept ; skos:prefLabel "Two" ;
    skos:broader <http://elsewhere.org/x#outside> .
<https://example.org/v#c> a skos:Concept ; skos:prefLabel "Three" ;
    ivoasem:deprecated "" ; ivoasem:useInstead <https://example.org/v#b> ;
    ivoasem:preliminary "" .
"""


def test_turtle_details_language_alt_labels_narrower_only_and_outside_links():
    vocab = parse_rdf(TURTLE, "toy", "turtle")
    assert vocab.uri == "https://example.org/v"
    assert vocab.title == "Toy"
    a, b, c = (vocab.concepts[t] for t in "abc")
    assert a.label == "One"
    assert a.alt_labels == ("Uno",)
    assert b.broader == ("a",)  # derived from skos:narrower; the outside link is dropped
    assert c.deprecated
    assert c.use_instead == "b"
    assert c.preliminary
    assert vocab.root_terms == ("a",)


@pytest.mark.parametrize(
    ("data", "rdf_format", "reason"),
    [
        (b"<rdf:RDF", "xml", "not valid xml RDF"),
        (b"this is not turtle", "turtle", "not valid turtle RDF"),
        (b"<https://x.org/a> <https://x.org/b> <https://x.org/c> .", "turtle", "no skos:Concept"),
    ],
)
def test_unreadable_rdf_is_a_structured_error(data, rdf_format, reason):
    with pytest.raises(BadVocabularyData) as raised:
        parse_rdf(data, "x", rdf_format, "https://example.org/x")
    assert reason in raised.value.message
    assert raised.value.source == "https://example.org/x"
