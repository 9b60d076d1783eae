"""The publisher's file: what validates, and what each kind of mistake is reported as."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalogue.documents import locate
from catalogue.executables import DIGEST_REASON
from catalogue.model import publisher_file_schema
from catalogue.publisher import CheckedDocument, check_document
from tests.catalogue_support import (
    DEMO_FOLDER,
    DIGEST,
    DOCKER,
    EXAMPLES,
    ROOT,
    executable,
    registry,
)
from voexec.wire_catalogue import InProcessBroker

SCHEMA_FILE = ROOT / "docs" / "ivoa-executable.schema.json"


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory):
    return registry(tmp_path_factory.mktemp("vocabularies"))


@pytest.fixture
def check(vocabularies):
    gateway = InProcessBroker(None, [])

    def run(document) -> CheckedDocument:
        return check_document(
            document, vocabularies=vocabularies, validate_executable=gateway.validate_executable
        )

    return run


def fields(checked: CheckedDocument) -> dict[str, str]:
    return {problem.field: problem.reason for problem in checked.problems}


# ------------------------------------------------------------------------ valid documents
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_documented_examples_validate(check, path: Path):
    checked = check(path.read_text(encoding="utf-8"))
    assert checked.problems == []
    assert checked.executables


def test_demo_catalogue_has_25_or_more_valid_executables(check):
    paths = sorted(DEMO_FOLDER.glob("*.yaml"))
    names = []
    for path in paths:
        checked = check(path.read_text(encoding="utf-8"))
        assert checked.problems == [], path.name
        names.extend(item.spec.name for item in checked.executables)
    assert len(names) >= 25
    assert len(set(names)) == len(names)


def test_several_executables_are_checked_and_named_by_position(check):
    document = {"executables": [executable(name="one"), executable(name="two", licence="nope")]}
    checked = check(document)
    assert list(fields(checked)) == ["executables[1].licence"]
    assert checked.executables == []  # all or nothing


def test_values_are_normalised(check):
    checked = check(
        executable(
            licence="apache-2.0 or mit",
            subjects=["Radio interferometry", "http://www.ivoa.net/rdf/uat#radio-astronomy"],
            authors=[{"name": "J. Carberry", "orcid": "https://orcid.org/0000-0002-1825-0097"}],
            links={"doi": "https://doi.org/10.5281/zenodo.1234567"},
            needs={"duration": "PT90M", "gpus": {"vendor": "NVIDIA"}},
            keywords=["HI", "hi", " cubes "],
        )
    )
    spec = checked.executables[0].spec
    assert spec.licence == "Apache-2.0 OR MIT"
    assert spec.subjects == ["radio-interferometry", "radio-astronomy"]
    assert spec.authors[0].orcid == "0000-0002-1825-0097"
    assert spec.links.doi == "10.5281/zenodo.1234567"
    assert spec.needs.duration == "PT1H30M"
    assert spec.needs.gpus is not None
    assert spec.needs.gpus.vendor == "nvidia"
    assert spec.keywords == ["HI", "cubes"]


def test_a_kind_written_by_name_is_stored_as_its_uri(check):
    block = {"kind": "Docker container", "image": {"locations": ["r/x:1"], "digest": DIGEST}}
    checked = check(executable(executable=block))
    assert checked.executables[0].spec.executable["kind"] == DOCKER


# ------------------------------------------------------------------------ each broken file
def test_invalid_yaml_names_line_and_column(check):
    text = "name: cube-finder\ntitle: Cube finder\nsubjects: [radio-astronomy\nlicence: MIT\n"
    checked = check(text)
    assert [p.field for p in checked.problems] == ["(document)"]
    assert "line 4, column 8" in checked.problems[0].reason


def test_unknown_kind_is_named_with_the_known_kinds(check):
    checked = check(executable(executable={"kind": "https://example.org/kinds/wasm-module.yaml"}))
    problem = checked.problems[0]
    assert problem.field == "executable.kind"
    assert "unknown executable kind" in problem.reason
    assert "docker-container" in problem.suggestions


def test_unknown_subject_comes_with_suggestions(check):
    checked = check(executable(subjects=["radio-interferometry", "radio astronmy"]))
    problem = checked.problems[0]
    assert problem.field == "subjects[1]"
    assert "radio-astronomy" in problem.suggestions


def test_deprecated_subject_is_replaced_with_a_warning(check):
    checked = check(executable(subjects=["galaxy-components"]))
    assert checked.problems == []
    assert checked.executables[0].spec.subjects == ["galaxy-structure"]
    warning = checked.warnings[0]
    assert warning.field == "subjects[0]"
    assert "deprecated" in warning.reason
    assert warning.suggestions == ("galaxy-structure",)


def test_image_without_digest_is_refused_naming_the_field(check):
    block = {"kind": DOCKER, "image": {"locations": ["registry.example.org/x:latest"]}}
    checked = check({"executables": [executable(executable=block)]})
    assert fields(checked) == {"executables[0].executable.image.digest": DIGEST_REASON}


def test_broker_schema_problems_are_named_inside_the_block(check):
    block = {"kind": DOCKER, "image": {"locations": ["r/x:1"], "digest": DIGEST}, "gpu": True}
    checked = check(executable(executable=block))
    assert "executable.gpu" in fields(checked)


@pytest.mark.parametrize(
    ("licence", "expected"),
    [("Apache 2", "Apache-2.0"), ("gplv3", "GPL-3.0-only"), ("BSD-3-Clausse", "BSD-3-Clause")],
)
def test_bad_spdx_licence_suggests_the_likely_one(check, licence, expected):
    checked = check(executable(licence=licence))
    problem = checked.problems[0]
    assert problem.field == "licence"
    assert expected in problem.suggestions


def test_deprecated_spdx_id_is_accepted_with_its_replacement(check):
    checked = check(executable(licence="GPL-3.0"))
    assert checked.executables[0].spec.licence == "GPL-3.0-only"
    assert checked.warnings[0].field == "licence"


@pytest.mark.parametrize("duration", ["2 hours", "P1M", "PT0S", "-PT1H"])
def test_bad_duration_is_refused(check, duration):
    checked = check(executable(needs={"duration": duration}))
    assert list(fields(checked)) == ["needs.duration"]


def test_every_problem_of_a_file_is_reported_at_once(check):
    document = executable(
        name="Cube Finder",
        licence="gplv3",
        subjects=["no-such-concept"],
        needs={"cores": 0, "duration": "two hours"},
        executable={"kind": DOCKER, "image": {"locations": ["r/x:1"]}},
        homepage="https://example.org",
    )
    checked = check(document)
    assert set(fields(checked)) == {
        "name",
        "licence",
        "subjects[0]",
        "needs.cores",
        "needs.duration",
        "executable.image.digest",
        "homepage",
    }
    name = next(p for p in checked.problems if p.field == "name")
    assert name.suggestions == ("cube-finder",)


@pytest.mark.parametrize(("written", "read"), [("1.10", "1.1"), ("2.50", "2.5"), ("3", "3")])
def test_unquoted_version_gets_a_hint_quoting_it_as_written(check, written, read):
    text = yaml.safe_dump(executable()).replace("version: 1.0.0", f"version: {written}")
    reason = fields(check(text))["version"]
    assert f'(version: "{written}")' in reason
    assert f"reads it as the number {read}" in reason


def test_every_problem_is_listed_at_once_in_the_order_of_the_file(check):
    # A wrong type (needs.cores) stops msgspec at once; the other fields are still checked.
    text = """\
name: cube-finder
title: Cube source finder
summary: Finds sources.
version: 1.10
authors: [{name: A. Packager}]
licence: MITT
needs:
  cores: many
  gpus: {vendor: acme}
data:
  - description: cubes
    examples: [somewhere/cube.fits]
links:
  homepage: not a url
  doi: 10.1/x
executable:
  kind: docker-container
  image: {locations: [registry.example.org/x:1], digest: "sha256:abab"}
"""
    checked = check(text)
    assert [p.field for p in checked.problems] == [
        "version",
        "licence",
        "needs.cores",
        "needs.gpus.vendor",
        "data[0].examples[0]",
        "links.homepage",
        "links.doi",
        "executable.image.digest",
    ]


def test_problems_of_several_executables_follow_the_file(check):
    document = {
        "executables": [
            executable(name="one", licence="nope", needs={"cores": "x", "gpus": {"vendor": "z"}}),
            executable(name="two", title=""),
        ]
    }
    text = yaml.safe_dump(document, sort_keys=False)
    lines = [locate(text, p.field) for p in check(text).problems]
    assert lines == sorted(lines)
    assert set(fields(check(text))) >= {
        "executables[0].licence",
        "executables[0].needs.gpus.vendor",
        "executables[1].title",
    }


def test_unknown_field_suggests_the_known_one(check):
    document = executable()
    document["license"] = document.pop("licence")
    checked = check(document)
    suggestion = next(p for p in checked.problems if p.field == "license").suggestions
    assert "licence" in suggestion
    assert fields(checked)["licence"] == "is required"


def test_duplicate_names_in_one_file(check):
    checked = check({"executables": [executable(), executable()]})
    assert list(fields(checked)) == ["executables[1].name"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("name: &n cube\ntitle: *n\n", "aliases"),
        ("name: cube\nname: other\n", "appears twice"),
        ("", "is empty"),
        ("- just\n- a list\n", "must be a mapping"),
        ("a: " + "[" * 3000 + "]" * 3000, "nested"),
    ],
)
def test_hostile_or_empty_documents_are_refused_safely(check, text, reason):
    checked = check(text)
    assert checked.problems[0].field == "(document)"
    assert reason in checked.problems[0].reason


@pytest.mark.parametrize("depth", [14, 15])
def test_a_parsed_mapping_nested_too_deep_is_refused(check, depth):
    nested: dict = {"leaf": 1}
    for _ in range(depth):
        nested = {"below": [nested]}
    checked = check(executable(executable={"kind": "docker-container", "x": nested}))
    deep = [p for p in checked.problems if p.field == "(document)"]
    # the innermost mapping is 3 + 2 * depth deep; at most 32 (`MAX_DEPTH`) are read
    assert bool(deep) == (depth == 15)
    assert not checked.ok


def test_a_right_document_converts_as_msgspec_does_and_a_wrong_one_names_every_field(check):
    right = executable()
    assert check(right).ok
    wrong = executable(
        needs={"cores": "four", "gpus": {"count": 0, "vendr": "nvidia"}},
        authors=[{"name": "A", "orcid": 5}],
    )
    assert {"needs.cores", "needs.gpus.count", "needs.gpus.vendr", "authors[0].orcid"} <= set(
        fields(check(wrong))
    )


def test_orcid_check_digit_is_verified(check):
    checked = check(executable(authors=[{"name": "X", "orcid": "0000-0002-1825-0098"}]))
    assert "check digit" in fields(checked)["authors[0].orcid"]


def test_field_paths_locate_their_line():
    text = (ROOT / "docs/examples/ivoa-executable-several.yaml").read_text(encoding="utf-8")
    line = locate(text, "executables[1].licence")
    assert line is not None
    assert text.splitlines()[line - 1].strip() == "licence: CC-BY-4.0"


# ------------------------------------------------------------------------ the JSON Schema
def test_json_schema_in_docs_is_generated_from_the_model():
    generated = publisher_file_schema()
    if os.environ.get("VOEXEC_REGENERATE_GOLDEN"):
        SCHEMA_FILE.write_text(json.dumps(generated, indent=2, ensure_ascii=False) + "\n")
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == generated, (
        "docs/ivoa-executable.schema.json is out of date: run `make golden` "
        "(VOEXEC_REGENERATE_GOLDEN=1) and commit it"
    )


# ------------------------------------------------------------------------ never a crash
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = [
    "name",
    "version",
    "authors",
    "licence",
    "subjects",
    "needs",
    "data",
    "links",
    "executable",
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(_FIELDS), value=_json)
def test_any_value_in_any_field_gives_problems_not_exceptions(check, field, value):
    checked = check(executable(**{field: value}))
    assert all(isinstance(p.field, str) and p.reason for p in checked.problems)
    assert checked.ok == (checked.problems == [])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\" \n\t#1.")), max_size=80))
def test_any_text_gives_problems_not_exceptions(check, text):
    checked = check(text)
    assert checked.executables == [] or checked.ok


# ------------------------------------------------------------------ the talks' metadata forms
HISTORIC = ROOT / "tests" / "data" / "historic"
REPOSITORY = "https://gitlab.example.org/ivoa/analytics/Newton-Rahpson-example.git"


@pytest.fixture
def check_from(vocabularies):
    """The check as the catalogue service runs it: with the broker's rewriting to the newest
    form, and the repository the document is published from."""
    gateway = InProcessBroker(None, [])

    def run(document, repository: str | None = REPOSITORY) -> CheckedDocument:
        return check_document(
            document,
            vocabularies=vocabularies,
            validate_executable=gateway.validate_executable,
            normalise_executable=gateway.normalise_executable,
            repository=repository,
        )

    return run


def _historic_block(name: str) -> dict:
    block = yaml.safe_load((HISTORIC / name).read_text(encoding="utf-8"))["executable"]
    assert "kind" not in block  # the talks' form: `type`
    return block


def test_the_packagers_metadata_alone_lacks_only_catalogue_fields(check_from):
    checked = check_from((HISTORIC / "2024-12-packager-docker.yaml").read_text())
    assert sorted(fields(checked)) == ["authors", "licence", "summary", "title", "version"]


def test_the_developers_metadata_alone_lacks_only_catalogue_fields(check_from):
    checked = check_from((HISTORIC / "2024-12-developer-python.yaml").read_text())
    assert sorted(fields(checked)) == ["authors", "licence", "summary", "title", "version"]


def test_the_packagers_executable_is_stored_in_the_newest_form_named_after_the_repository(
    check_from,
):
    document = executable(executable=_historic_block("2024-12-packager-docker.yaml"))
    del document["name"]
    checked = check_from(document)
    assert checked.problems == []
    [item] = checked.executables
    assert item.spec.name == "newton-rahpson-example"
    assert item.spec.executable == {
        "kind": DOCKER,
        "meta": {"name": "Newton Rahpson tool"},
        "image": {
            "locations": ["example.org/ivoa/analytics/Newton-Rahpson-example:2024.12.02"],
            "digest": "sha256:ac1b5e0c2d7f4a9b8e6c3d2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4ffc70",
        },
    }


def test_the_developers_program_is_fetched_from_its_repository(check_from):
    document = executable(executable=_historic_block("2024-12-developer-python.yaml"))
    del document["name"]
    checked = check_from(document, repository="https://gitlab.example.org/dev/fit-lines")
    assert checked.problems == []
    [item] = checked.executables
    assert item.spec.name == "fit-lines"
    assert item.spec.executable == {
        "kind": "https://voexec.org/broker/kinds/executable/python-program.yaml",
        "location": "https://gitlab.example.org/dev/fit-lines",
        "requirements": ["numpy>2.1.1"],
        "python_version": ">3.10",
    }


def test_without_a_repository_a_nameless_executable_needs_its_name(check_from):
    document = executable(executable=_historic_block("2024-12-packager-docker.yaml"))
    del document["name"]
    checked = check_from(document, repository=None)
    assert fields(checked) == {"name": "is required"}


def test_a_mistake_in_an_older_form_is_reported_at_its_field_in_the_newest_form(check_from):
    block = _historic_block("2024-12-packager-docker.yaml")
    block["digest"] = "sha256:short"
    checked = check_from(executable(executable=block))
    assert list(fields(checked)) == ["executable.image.digest"]
