"""Our own vocabularies in vocabularies/data: well-formed, linked to the broker, navigable."""

import pytest

from vocabularies import expand
from vocabularies.resolve import resolve
from vocabularies.sources import builtin_files, read_file

BROKER_KINDS = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/"
EXPECTED_KIND_URIS = {
    "docker-container": BROKER_KINDS + "docker-container.yaml",
    "singularity-container": BROKER_KINDS + "singularity-container.yaml",
    "jupyter-notebook": BROKER_KINDS + "jupyter-notebook.yaml",
    "python-program": "https://voexec.org/broker/kinds/executable/python-program.yaml",
}


@pytest.fixture(scope="module")
def ours():
    return {path.stem: read_file(path, path.stem) for path in builtin_files()}


def test_our_three_vocabularies_ship_with_the_code(ours):
    assert set(ours) == {"executable-kind", "software-function", "accelerator-class"}


@pytest.mark.parametrize("name", ["executable-kind", "software-function", "accelerator-class"])
def test_each_is_a_described_scheme_of_defined_concepts_under_our_uri(ours, name):
    vocab = ours[name]
    assert vocab.uri == f"https://voexec.org/rdf/{name}"
    assert vocab.title != name
    assert vocab.description
    for term, c in vocab.concepts.items():
        assert c.uri == f"{vocab.uri}#{term}"
        assert c.definition, term
        assert c.label, term
        assert expand.path_to_root(vocab, term)[0] in expand.roots(vocab)


def test_executable_kinds_carry_the_broker_kind_uris(ours):
    kinds = ours["executable-kind"]
    found = {t: c.exact_match for t, c in kinds.concepts.items() if c.exact_match}
    assert {t: uris[0] for t, uris in found.items()} == EXPECTED_KIND_URIS
    for term, uri in EXPECTED_KIND_URIS.items():
        assert resolve(kinds, uri).term == term


def test_software_functions_form_a_real_polyhierarchy(ours):
    functions = ours["software-function"]
    assert len(functions.concepts) >= 40
    assert len(expand.roots(functions)) >= 6
    assert any(len(c.broader) > 1 for c in functions.concepts.values())
    assert max(len(expand.path_to_root(functions, t)) for t in functions.concepts) >= 3
    assert sum(1 for c in functions.concepts.values() if c.alt_labels) >= 30


@pytest.mark.parametrize(
    ("written", "term"),
    [
        ("source finding", "source-extraction"),
        ("Selfcal", "self-calibration"),
        ("frequency inversion", "spectral-inversion"),
        ("Visualization", "visualisation"),
        ("RFI mitigation", "rfi-flagging"),
        ("Faraday rotation measure synthesis", "rm-synthesis"),
    ],
)
def test_software_functions_resolve_from_common_names(ours, written, term):
    assert resolve(ours["software-function"], written).term == term


def test_accelerator_vendors_are_gpus_and_resolve_from_vendor_names(ours):
    accelerators = ours["accelerator-class"]
    gpus = expand.descendants(accelerators, "gpu")
    assert {"nvidia-gpu", "amd-gpu", "intel-gpu"} <= gpus
    assert {"fpga", "npu"} <= set(expand.roots(accelerators))
    assert resolve(accelerators, "nvidia").term == "nvidia-gpu"
    assert resolve(accelerators, "CUDA").term == "nvidia-gpu"
