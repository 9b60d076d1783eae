"""Term resolution for harvest and autocomplete for search, on the UAT and on toy data."""

import unicodedata

import pytest

from tests.unit.vocabularies.conftest import concept, make_vocabulary
from vocabularies.resolve import closest, resolve, suggest


@pytest.fixture(scope="module")
def replaced(uat):
    """A deprecated UAT concept with a current replacement."""
    return next(
        c
        for c in uat.concepts.values()
        if c.deprecated and c.use_instead and not uat.concepts[c.use_instead].deprecated
    )


@pytest.fixture(scope="module")
def software(uat):
    return uat.concepts["astronomy-software"]


@pytest.mark.parametrize(
    ("text", "matched_by"),
    [
        ("http://www.ivoa.net/rdf/uat#astronomy-software", "uri"),
        ("https://www.ivoa.net/rdf/uat#astronomy-software", "uri"),
        ("astronomy-software", "term"),
        ("  Astronomy_Software ", "term"),
        ("Astronomy software", "term"),
        ("ASTRONOMY SOFTWARE.", "term"),
    ],
)
def test_uris_terms_and_labels_resolve_whatever_the_case_and_punctuation(
    uat, software, text, matched_by
):
    resolution = resolve(uat, text)
    assert (resolution.term, resolution.uri) == (software.term, software.uri)
    assert resolution.warning is None
    assert resolution.matched_by == matched_by


def test_accented_labels_resolve_without_their_accents(uat):
    accented = next(c for c in uat.concepts.values() if not c.deprecated and not c.label.isascii())
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKD", accented.label) if not unicodedata.combining(ch)
    )
    assert plain.isascii()
    assert resolve(uat, accented.label).term == accented.term
    assert resolve(uat, plain.upper()).term == accented.term


def test_deprecated_terms_resolve_to_their_replacement_with_a_warning_naming_both(uat, replaced):
    new = uat.concepts[replaced.use_instead]
    for text in (replaced.term, replaced.uri, replaced.label):
        resolution = resolve(uat, text)
        assert (resolution.term, resolution.uri) == (new.term, new.uri)
        assert replaced.term in resolution.warning
        assert new.term in resolution.warning
        assert "deprecated" in resolution.warning


def test_old_labels_behind_the_deprecated_prefix_still_find_the_replacement(uat):
    old = next(
        c
        for c in uat.concepts.values()
        if c.deprecated and c.use_instead and c.label.startswith("Deprecated: ")
    )
    written_long_ago = old.label.removeprefix("Deprecated: ")
    if resolve(uat, written_long_ago).term != old.use_instead:
        # The old label may now belong to a current concept, which then rightly wins.
        assert not uat.concepts[resolve(uat, written_long_ago).term].deprecated
    else:
        assert "deprecated" in resolve(uat, written_long_ago).warning


def test_deprecated_terms_without_replacement_are_unresolved_with_a_warning(uat):
    withdrawn = next(c for c in uat.concepts.values() if c.deprecated and not c.use_instead)
    resolution = resolve(uat, withdrawn.term)
    assert resolution.term is None
    assert "no replacement" in resolution.warning
    assert all(not uat.concepts[t].deprecated for t in resolution.suggestions)


def test_replacement_chains_are_followed_and_cycles_do_not_hang():
    vocab = make_vocabulary(
        concept("new"),
        concept("old", deprecated=True, use_instead="older"),
        concept("older", deprecated=True, use_instead="new"),
        concept("loop-a", deprecated=True, use_instead="loop-b"),
        concept("loop-b", deprecated=True, use_instead="loop-a"),
    )
    assert resolve(vocab, "old").term == "new"
    assert resolve(vocab, "loop-a").term is None


def test_a_misspelt_label_gets_the_intended_term_among_its_suggestions(uat):
    for intended in ("galaxy-clusters", "astronomy-software", "x-ray-binary-stars"):
        label = uat.concepts[intended].label
        typo = label[:3] + label[4] + label[3] + label[5:]  # swap two letters
        resolution = resolve(uat, typo)
        assert resolution.term is None
        assert typo in resolution.warning
        assert intended in resolution.suggestions
        assert 0 < len(resolution.suggestions) <= 5


def test_nonsense_and_empty_input_get_no_term(uat):
    assert resolve(uat, "qqqqqqqqqqqq").term is None
    empty = resolve(uat, "   ")
    assert empty.term is None
    assert empty.warning


def test_a_uri_of_another_vocabulary_is_not_resolved_by_its_fragment(uat):
    assert resolve(uat, "http://www.ivoa.net/rdf/messenger#astronomy-software").term is None


def test_exact_match_uris_resolve():
    vocab = make_vocabulary(concept("docker", exact_match=("https://kinds.example/docker.yaml",)))
    assert resolve(vocab, "https://kinds.example/docker.yaml").term == "docker"


def test_closest_prefers_shared_words_over_similar_spelling(uat):
    vocab = make_vocabulary(
        concept("softball", label="Softwear"),
        concept("astronomy-software", label="Astronomy software"),
    )
    assert closest(vocab, "software") == ("astronomy-software", "softball")
    assert all("software" in uat.concepts[t].label.lower() for t in closest(uat, "software"))


# ---------------------------------------------------------------------------- autocomplete
def test_suggest_ranks_exact_then_prefix_then_word_prefix():
    vocab = make_vocabulary(
        concept("radio-astronomy", label="Radio astronomy"),
        concept("radio", label="Radio"),
        concept("solar-radio", label="Solar radio emission"),
        concept("radiometry", label="Radiometry"),
        concept("other", label="Optical", alt_labels=("Radio-quiet optical",)),
        concept("old-radio", label="Radio telescopes (old)", deprecated=True),
    )
    assert [s.term for s in suggest(vocab, "radio")] == [
        "radio",
        "radiometry",
        "radio-astronomy",
        "solar-radio",
        "other",
    ]
    assert suggest(vocab, "radio")[-1].matched == "Radio-quiet optical"
    assert [s.term for s in suggest(vocab, "rad", limit=2)] == ["radio", "radiometry"]
    assert [s.term for s in suggest(vocab, "sol rad")] == ["solar-radio"]


def test_suggest_on_the_uat_finds_multi_word_prefixes(uat):
    found = suggest(uat, "x-ray bin")
    assert found
    assert found[0].term == "x-ray-binary-stars"
    assert all("binary" in s.label.lower() for s in found)
    assert len(suggest(uat, "s", limit=7)) == 7
    assert all(not uat.concepts[s.term].deprecated for s in suggest(uat, "deprecated", limit=50))


def test_suggest_with_nothing_typed_suggests_nothing(uat):
    assert suggest(uat, " - ") == []
    assert suggest(uat, "galaxy", limit=0) == []
