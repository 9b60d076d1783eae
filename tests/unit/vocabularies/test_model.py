"""The model's invariants: a consistent two-way hierarchy and lookup indexes from any input."""

import msgspec
import pytest

from core.errors import NotFound
from tests.unit.vocabularies.conftest import concept, make_vocabulary
from vocabularies.model import Concept, UnknownConcept, Vocabulary, clean_text, normalise_label


def test_narrower_is_derived_from_broader_and_broader_from_narrower():
    vocab = make_vocabulary(
        concept("stars"),
        concept("giant-stars", "stars"),
        Concept(uri="u:dwarfs", term="dwarfs", label="Dwarfs", narrower=("white-dwarfs",)),
        concept("white-dwarfs"),
    )
    assert vocab.concepts["stars"].narrower == ("giant-stars",)
    assert vocab.concepts["white-dwarfs"].broader == ("dwarfs",)
    assert vocab.concepts["dwarfs"].narrower == ("white-dwarfs",)


def test_links_to_unknown_terms_self_links_and_unknown_replacements_are_dropped():
    vocab = make_vocabulary(
        concept("a", "missing", "a"),
        concept("b", "a", deprecated=True, use_instead="nowhere"),
    )
    assert vocab.concepts["a"].broader == ()
    assert vocab.concepts["a"].narrower == ("b",)
    assert vocab.concepts["b"].use_instead is None


def test_hierarchy_links_are_ordered_by_label_whatever_the_source_order():
    one = make_vocabulary(
        concept("zeta", label="Alpha"),
        concept("alpha", label="Zeta"),
        concept("x", "alpha", "zeta"),
    )
    other = make_vocabulary(
        concept("x", "zeta", "alpha"),
        concept("alpha", label="Zeta"),
        concept("zeta", label="Alpha"),
    )
    assert one.concepts["x"].broader == other.concepts["x"].broader == ("zeta", "alpha")


def test_roots_are_the_current_concepts_without_broader_ones():
    vocab = make_vocabulary(
        concept("b-root", label="B"),
        concept("a-root", label="A"),
        concept("child", "a-root"),
        concept("old", deprecated=True),
    )
    assert vocab.root_terms == ("a-root", "b-root")


def test_indexes_cover_uris_exact_matches_labels_alt_labels_and_terms():
    vocab = make_vocabulary(
        concept(
            "photometry",
            label="Photométrie",
            alt_labels=("Flux measurement",),
            exact_match=("http://example.org/other/42",),
        )
    )
    assert vocab.uri_index["https://example.org/toy#photometry"] == "photometry"
    assert vocab.uri_index["http://example.org/other/42"] == "photometry"
    for key in ("photometrie", "flux measurement", "photometry"):
        assert vocab.label_index[key] == ("photometry",)


def test_descendant_counts_count_each_concept_once_despite_several_paths():
    vocab = make_vocabulary(
        concept("top"),
        concept("left", "top"),
        concept("right", "top"),
        concept("both", "left", "right"),
    )
    assert vocab.descendant_counts == {"top": 3, "left": 1, "right": 1, "both": 0}
    assert vocab.ancestor_sets["both"] == {"left", "right", "top"}


def test_a_cycle_in_bad_data_does_not_hang_the_closure():
    vocab = make_vocabulary(concept("a", "b"), concept("b", "a"))
    assert vocab.ancestor_sets == {"a": {"b"}, "b": {"a"}}


def test_vocabularies_are_frozen_values():
    vocab = make_vocabulary(concept("a"))
    with pytest.raises(AttributeError):
        vocab.name = "other"  # type: ignore[misc]
    assert make_vocabulary(concept("a")) == vocab


def test_decoding_rebuilds_the_derived_fields():
    vocab = make_vocabulary(concept("a"), concept("b", "a"))
    again = msgspec.json.decode(msgspec.json.encode(vocab), type=Vocabulary)
    assert again == vocab


def test_unknown_concept_is_a_not_found_naming_vocabulary_and_term():
    vocab = make_vocabulary(concept("a"))
    with pytest.raises(UnknownConcept) as raised:
        vocab.concept("zzz")
    assert isinstance(raised.value, NotFound)
    assert "'toy'" in raised.value.message
    assert "'zzz'" in raised.value.message
    assert vocab.label_of("zzz") == "zzz"
    assert vocab.label_of("a") == "A"


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Strömgren photometry", "stromgren photometry"),
        ("stromgren-photometry", "stromgren photometry"),
        ("  STROMGREN   photometry. ", "stromgren photometry"),
        ("Hubble's law", "hubble s law"),
        ("X-ray", "x ray"),
        ("", ""),
    ],
)
def test_normalise_label_ignores_case_accents_and_punctuation(text, folded):
    assert normalise_label(text) == folded


def test_clean_text_drops_the_ivoa_placeholder_and_keeps_paragraphs_not_line_breaks():
    assert clean_text("  N/D ") == ""
    assert clean_text("  A definition.\n") == "A definition."
    assert clean_text("One long\n  sentence.\n\n  Second\tparagraph.") == (
        "One long sentence.\n\nSecond paragraph."
    )
