"""Older dialects of the schema decode to the same Structs as the newest form."""

import json

import pytest

from broker import model
from broker.model import codec
from broker.model.codec import Media
from broker.model.kinds import KIND_ALIASES, canonical_kind, tags_of
from core.errors import Invalid

K = model.KINDS
OLD = "https://www.purl.org/ivoa.net/EB/schema/"
DOCKER = K + "executable/docker-container.yaml"
COMPUTE = K + "compute/simple-compute-resource.yaml"

NEWEST = {
    "executable": {"kind": DOCKER, "image": {"locations": ["ghcr.io/example/job:1.0"]}},
    "compute": {"kind": COMPUTE, "cores": {"min": 2}, "memory": {"min": 4}},
    "data": [{"kind": K + "data/simple-data-resource.yaml", "location": "https://x.org/f"}],
    "schedule": {"requested": {"start": "2026-09-01T10:00:00Z/PT2H", "duration": "PT1H"}},
}


def _decode(document: dict) -> model.ExecutionRequest:
    decoded = codec.decode_request(json.dumps(document).encode(), Media.JSON)
    assert decoded.unknown_kinds == ()
    return decoded.value


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (OLD + "v1.0/types/executable/docker-container-1.0", DOCKER),
        (OLD + "types/executable/docker-container-1.0", DOCKER),
        (OLD + "types/executables/docker-container-1.0", DOCKER),
        ("uri:docker-container-1.0", DOCKER),
        ("https://www.purl.org/ivoa.net/executable-types/oci-container", DOCKER),
        (
            OLD + "v1.0/types/executable/jupyter-notebook-1.0",
            K + "executable/jupyter-notebook.yaml",
        ),
        ("uri:singular-container-1.0", K + "executable/singularity-container.yaml"),
        ("uri:python-program-1.0", model.PYTHON_PROGRAM_KIND),
        (K + "computer/simple-compute-resource.yaml", COMPUTE),
        (OLD + "v1.0/types/computer/simple-compute-resource-1.0", COMPUTE),
        (OLD + "v1.0/types/compute/simple-compute-resource-1.0", COMPUTE),
        (OLD + "types/computer/simple-compute-resource-1.0", COMPUTE),
        (OLD + "types/resources/compute/simple-compute-resource-1.0", COMPUTE),
        ("uri:generic-compute", COMPUTE),
        (OLD + "v1.0/types/volume/simple-volume-mount-1.0", K + "volume/simple-volume-mount.yaml"),
        (
            OLD + "types/resources/storage/simple-storage-resource-1.0",
            K + "storage/simple-storage-resource.yaml",
        ),
        (OLD + "types/resources/data/Rucio-data-resource-1.0", K + "data/rucio-data-resource.yaml"),
        (OLD + "v1.0/types/data/S3-data-resource-1.0", K + "data/S3-data-resource.yaml"),
        (OLD + "v1.0/types/data/skao-data-resource-1.0", K + "data/skao-data-resource.yaml"),
        (
            OLD + "v1.0/types/session/scheduled-execution-session-1.0",
            K + "session/scheduled-execution-session.yaml",
        ),
        (OLD + "v1.0/types/offerset/execution-offerset-1.0", model.OFFERSET_KIND),
    ],
)
def test_the_alias_table_maps_older_names_to_the_newest_uri(old, new):
    assert KIND_ALIASES[old] == new
    assert canonical_kind(old) == new


def test_every_alias_leads_to_a_kind_we_decode_and_newest_names_map_to_themselves():
    known = {
        kind
        for union in (
            model.AnyExecutable,
            model.AnyCompute,
            model.AnyVolume,
            model.AnyStorage,
            model.AnyData,
            model.AnySession,
        )
        for kind in tags_of(union)
    } | {model.OFFERSET_KIND}
    assert set(KIND_ALIASES.values()) <= known
    assert all(canonical_kind(kind) == kind for kind in known)


def test_type_as_discriminator_and_short_names_decode_to_the_newest_structs():
    legacy = {
        "executable": {
            "type": "uri:docker-container-1.0",
            "image": {"locations": ["ghcr.io/example/job:1.0"]},
        },
        "compute": {
            "type": OLD + "types/computer/simple-compute-resource-1.0",
            "cores": {"min": 2},
            "memory": {"min": 4},
        },
        "data": [
            {
                "type": OLD + "types/resources/data/simple-data-resource-1.0",
                "location": "https://x.org/f",
            }
        ],
        "schedule": NEWEST["schedule"],
    }
    assert _decode(legacy) == _decode(NEWEST)


def test_one_item_lists_of_older_schemas_decode_to_the_single_values():
    legacy = dict(NEWEST)
    legacy["compute"] = [NEWEST["compute"]]
    legacy["schedule"] = {"requested": {"start": ["2026-09-01T10:00:00Z/PT2H"], "duration": "PT1H"}}
    assert _decode(legacy) == _decode(NEWEST)


def test_the_newest_form_is_what_is_written_back():
    legacy = {"executable": {"type": "uri:docker-container-1.0", "image": {"locations": ["x"]}}}
    written = codec.to_builtins(_decode(legacy))
    assert written == {"executable": {"kind": DOCKER, "image": {"locations": ["x"]}}}


def test_type_stays_a_field_where_the_kind_has_one():
    # Cost items have a `type` of their own (what is counted): it is never read as the kind.
    document = {"costs": [{"type": "urn:ivoa:calycopis:cost:monetary", "max": 1.0}]}
    with pytest.raises(Invalid) as raised:
        _decode(document)
    assert raised.value.problems[0].field == "$.costs[0].kind"


@pytest.mark.parametrize(
    "body",
    [
        b"kind: uri:enum-value-update\npath: phase\nvalue: ACCEPTED\n",
        b"update:\n  type: uri:enum-value-update\n  path: phase\n  value: ACCEPTED\n",
        b"update: {kind: uri:enum-value-update, path: phase, value: ACCEPTED}\n",
        b"type: uri:enum-value-update\npath: phase\nvalue: ACCEPTED\n",
    ],
)
def test_updates_decode_bare_or_in_the_older_update_wrapper(body):
    assert codec.decode_update(body, Media.YAML) == model.EnumValueUpdate(
        path="phase", value="ACCEPTED"
    )


def test_more_than_one_compute_resource_is_refused_naming_the_field():
    legacy = dict(NEWEST)
    legacy["compute"] = [NEWEST["compute"], NEWEST["compute"]]
    with pytest.raises(Invalid) as raised:
        _decode(legacy)
    assert raised.value.problems[0].field == "$.compute"
    assert "one compute resource" in raised.value.problems[0].reason
