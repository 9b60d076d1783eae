"""Reading and writing IVOA desise JSON, checked against the real IVOA files."""

import json

import pytest

from core.errors import Invalid
from tests.unit.vocabularies.conftest import concept, make_vocabulary
from vocabularies.desise import decode_desise, encode_desise
from vocabularies.model import BadVocabularyData


def test_the_full_uat_loads_with_every_term_of_the_file(uat, uat_raw):
    assert len(uat.concepts) >= 2400
    assert set(uat.concepts) == set(uat_raw["terms"])
    assert uat.uri == uat_raw["uri"]
    assert uat.flavour == "SKOS"


def test_deprecation_is_the_presence_of_the_key_and_use_instead_is_kept(uat, uat_raw):
    deprecated = {term for term, entry in uat_raw["terms"].items() if "deprecated" in entry}
    replaced = {
        term: entry["useInstead"]
        for term, entry in uat_raw["terms"].items()
        if "useInstead" in entry
    }
    assert deprecated
    assert replaced
    assert {t for t, c in uat.concepts.items() if c.deprecated} == deprecated
    assert {t: c.use_instead for t, c in uat.concepts.items() if c.use_instead} == replaced


def test_labels_definitions_and_hierarchy_come_from_the_file(uat, uat_raw):
    for term, entry in uat_raw["terms"].items():
        loaded = uat.concepts[term]
        assert loaded.label == entry["label"]
        assert set(loaded.broader) == set(entry["wider"])
        assert set(loaded.narrower) == set(entry["narrower"])
        assert loaded.uri == f"{uat_raw['uri']}#{term}"
    assert uat.title == uat_raw["title"]  # voexec's extra key, kept by the snapshot


def test_without_a_title_the_registry_name_stands_in(uat_raw):
    # What ivoa.net serves carries no title or description.
    bare = {key: value for key, value in uat_raw.items() if key not in {"title", "description"}}
    vocab = decode_desise(json.dumps(bare).encode(), "uat")
    assert (vocab.title, vocab.description) == ("uat", "")


@pytest.mark.shared  # the full IVOA set is not shipped
def test_every_ivoa_desise_file_loads(shared_vocabularies):
    for path in sorted(shared_vocabularies.glob("*.desise")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        vocab = decode_desise(path.read_bytes(), path.stem, str(path))
        assert set(vocab.concepts) == set(raw["terms"]), path.name
        assert vocab.flavour == raw["flavour"]


def test_round_trip_keeps_everything_including_voexec_extras(uat):
    toy = make_vocabulary(
        concept("a", alt_labels=("Alias",), exact_match=("http://x.org/1",), preliminary=True),
        concept("b", "a", deprecated=True, use_instead="a", definition="Old."),
    )
    for vocab in (uat, toy):
        assert decode_desise(encode_desise(vocab), vocab.name) == vocab


def test_written_desise_reads_like_ivoa_desise():
    toy = make_vocabulary(concept("a"), concept("b", "a", deprecated=True, use_instead="a"))
    written = json.loads(encode_desise(toy))
    assert written["terms"]["a"] == {
        "label": "A",
        "description": "",
        "wider": [],
        "narrower": ["b"],
    }
    assert written["terms"]["b"]["deprecated"] == ""
    assert written["terms"]["b"]["useInstead"] == "a"
    assert written["title"] == "Toy"


@pytest.mark.parametrize(
    "data", [b"not json", b"[]", b'{"terms": {}}', b'{"uri": "x", "terms": {"a": {"wider": 3}}}']
)
def test_malformed_documents_are_a_structured_error_naming_the_source(data):
    with pytest.raises(BadVocabularyData) as raised:
        decode_desise(data, "x", source="http://example.org/x")
    assert isinstance(raised.value, Invalid)
    assert raised.value.problems[0].field == "http://example.org/x"
    assert "not desise JSON" in raised.value.message
