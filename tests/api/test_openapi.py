"""The OpenAPI document: the broker's part pinned by a golden file, and checked against the IVOA
schema (every kind URI present, every tagged union with its discriminator).

Regenerate the golden file after an intended change with `make golden`
(`VOEXEC_REGENERATE_GOLDEN=1 pytest tests/api/test_openapi.py`) and review the diff.
Only the `/broker` paths and the component schemas they reference are pinned, so routes added
by other packages do not disturb it. Description texts are compared with their whitespace
collapsed: how a docstring is indented is not part of the contract, and msgspec releases differ
in whether they strip that indentation.
"""

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from litestar import Litestar, get
from litestar.testing import TestClient

from broker.web_openapi import add_missing_discriminators
from core.settings import settings_from_mapping
from tests.conftest import shared_path
from voexec.app import create_app

GOLDEN = Path(__file__).parent / "golden" / "openapi.json"
REF = "#/components/schemas/"
KIND_URI = re.compile(
    r"https://www\.purl\.org/ivoa\.net/Calycopis-openapi/schema/v1\.0/kinds/[\w/.-]+\.yaml"
)


class _OpenApiYamlLoader(yaml.SafeLoader):
    """Safe loading, plus the `!!python/tuple` tag Litestar writes for tuple defaults."""


_OpenApiYamlLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple",
    lambda loader, node: loader.construct_sequence(node),  # type: ignore[arg-type]
)


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = settings_from_mapping(
        {"data_dir": str(tmp_path_factory.mktemp("var")), "vocabularies": {"offline": True}}
    )
    with TestClient(create_app(settings)) as client:
        as_json = client.get("/schema/openapi.json").json()
        as_yaml = yaml.load(client.get("/schema/openapi.yaml").text, Loader=_OpenApiYamlLoader)
    assert broker_part(as_yaml) == broker_part(as_json)
    return as_json


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF):
                yield value.removeprefix(REF)
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def broker_part(document: dict[str, Any]) -> dict[str, Any]:
    """The `/broker` paths and every component schema they reach."""
    paths = {path: item for path, item in document["paths"].items() if path.startswith("/broker/")}
    schemas = document["components"]["schemas"]
    reached: set[str] = set()
    pending = list(_refs(paths))
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending.extend(_refs(schemas[name]))
    return {"paths": paths, "components": {"schemas": {n: schemas[n] for n in sorted(reached)}}}


def with_descriptions_collapsed(node: Any) -> Any:
    """A copy of `node` whose `description` texts have every run of whitespace made one space."""
    if isinstance(node, dict):
        return {
            key: " ".join(value.split())
            if key == "description" and isinstance(value, str)
            else with_descriptions_collapsed(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [with_descriptions_collapsed(value) for value in node]
    return node


def test_collapsing_descriptions_keeps_every_other_difference():
    indented = {"description": "One.\n\n    Two  three.", "properties": {"description": {}}}
    flush = {"description": "One. Two three.", "properties": {"description": {}}}
    assert with_descriptions_collapsed(indented) == with_descriptions_collapsed(flush)
    # The words of a description, a field's name and any other value still count.
    reworded = {**flush, "description": "One. Two four."}
    assert with_descriptions_collapsed(reworded) != with_descriptions_collapsed(flush)
    renamed = {**flush, "properties": {"summary": {}}}
    assert with_descriptions_collapsed(renamed) != with_descriptions_collapsed(flush)
    spaced_value = [{"default": "a  b"}]
    assert with_descriptions_collapsed(spaced_value) != with_descriptions_collapsed(
        [{"default": "a b"}]
    )


def test_the_broker_part_of_the_document_matches_the_golden_file(document):
    part = with_descriptions_collapsed(
        json.loads(json.dumps(broker_part(document), sort_keys=True))
    )
    if os.environ.get("VOEXEC_REGENERATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(part, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert GOLDEN.exists(), "no golden file: run `make golden` and review it"
    golden = with_descriptions_collapsed(json.loads(GOLDEN.read_text(encoding="utf-8")))
    assert part == golden, (
        "the broker's OpenAPI changed: if intended, run `make golden` and review the diff"
    )


def test_every_broker_operation_is_documented(document):
    paths = document["paths"]
    expected = {
        ("/broker/requests", "post"): "ExecutionRequest",
        ("/broker/offersets", "post"): "ExecutionRequestOfferSets",
        ("/broker/offersets/{uuid}", "get"): "OfferSetSelect",
        ("/broker/sessions/{uuid}", "get"): "SessionSelect",
        ("/broker/sessions/{uuid}", "post"): "SessionUpdate",
        ("/broker/direct", "post"): "DirectExecution",
    }
    for (path, method), operation_id in expected.items():
        operation = paths[path][method]
        assert operation["operationId"] == operation_id
        if method == "post":
            content = operation["requestBody"]["content"]
            assert set(content) == {"application/json", "application/yaml"}
    created = paths["/broker/requests"]["post"]["responses"]["303"]
    assert created["headers"]["Location"]["required"] is True
    assert created["content"]["application/yaml"]["schema"] == {"$ref": REF + "OfferSetResponse"}
    conflict = paths["/broker/sessions/{uuid}"]["post"]["responses"]["409"]
    assert conflict["content"]["application/json"]["schema"] == {"$ref": REF + "ErrorResponse"}
    [uuid] = paths["/broker/offersets/{uuid}"]["get"]["parameters"]
    assert uuid["schema"]["format"] == "uuid"


def _shared_kinds() -> set[str]:
    kinds: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            mapping = (node.get("discriminator") or {}).get("mapping", {})
            kinds.update(mapping)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            kinds.update(KIND_URI.findall(node))

    for file in sorted(shared_path("spec", "openapi").rglob("*.yaml")):
        walk(yaml.safe_load(file.read_text(encoding="utf-8")))
    return kinds


def _discriminated(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        yield from (node.get("discriminator") or {}).get("mapping", {})
        for value in node.values():
            yield from _discriminated(value)
    elif isinstance(node, list):
        for value in node:
            yield from _discriminated(value)


@pytest.mark.shared
def test_every_kind_uri_of_the_shared_schema_is_a_discriminator_value_of_ours(document):
    kinds = _shared_kinds()
    assert len(kinds) >= 25
    ours = set(_discriminated(document))
    assert kinds <= ours, f"missing from our discriminator mappings: {sorted(kinds - ours)}"


def _tagged_unions(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    schemas = document["components"]["schemas"]

    def tagged(ref: str) -> bool:
        target = schemas.get(ref.removeprefix(REF), {})
        return any(
            "const" in prop or len(prop.get("enum", [])) == 1
            for prop in target.get("properties", {}).values()
        )

    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            for key in ("oneOf", "anyOf"):
                refs = [m.get("$ref") for m in node.get(key, []) if isinstance(m, dict)]
                if refs and all(r and tagged(r) for r in refs):
                    yield where, node
            for key, value in node.items():
                yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{where}[{index}]")

    yield from walk(document, "")


def test_every_tagged_union_in_the_document_has_a_discriminator_mapping(document):
    unions = list(_tagged_unions(document))
    assert len(unions) >= 10
    for where, union in unions:
        members = union.get("oneOf") or union.get("anyOf")
        assert "discriminator" in union, where
        mapping = union["discriminator"]["mapping"]
        assert sorted(mapping.values()) == sorted(m["$ref"] for m in members), where


def test_constraints_and_descriptions_reach_the_document(document):
    schemas = document["components"]["schemas"]
    cores = schemas["SimpleComputeCores"]["properties"]["min"]
    assert {"type": "integer", "minimum": 1, "maximum": 2**31 - 1} in cores["anyOf"]
    duration = schemas["RequestedScheduleItem"]["properties"]["duration"]["anyOf"][0]
    assert duration["format"] == "duration"
    assert "Years and months are refused" in duration["description"]
    # A Python program's location may be left out (a developer's metadata lives in its repo).
    assert schemas["PythonProgram"]["required"] == ["kind"]
    assert "location" in schemas["PythonProgram"]["properties"]
    assert "voexec extension" in schemas["AcceleratedComputeResource"]["description"]


class _Cat(msgspec.Struct, tag_field="species", tag="cat"):
    name: str


class _Dog(msgspec.Struct, tag_field="species", tag="dog"):
    name: str


@get("/pets", sync_to_thread=False)
def _pets() -> list[_Cat | _Dog]:
    return []


def test_unions_litestar_generates_for_other_routes_get_a_discriminator_too():
    app = Litestar(route_handlers=[_pets])
    add_missing_discriminators(app.openapi_schema)
    items = app.openapi_schema.to_schema()["paths"]["/pets"]["get"]["responses"]["200"]
    schema = items["content"]["application/json"]["schema"]["items"]
    assert schema["discriminator"] == {
        "propertyName": "species",
        "mapping": {"cat": REF + "_Cat", "dog": REF + "_Dog"},
    }
