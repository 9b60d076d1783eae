"""Decoding and encoding whole documents: every kind, both media types, round trips."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from broker import model
from broker.model import codec
from broker.model.codec import Media
from core.errors import Invalid
from core.time import Duration, Interval

K = model.KINDS
ROOT = Path(__file__).resolve().parents[3]

COSTS = [
    {
        "kind": K + "costs/simple-minmax-float-cost.yaml",
        "type": "urn:ivoa:calycopis:cost:monetary",
        "max": 2.5,
    },
    {"kind": K + "costs/abstract-cost-item.yaml", "type": "urn:ivoa:calycopis:cost:carbon"},
]
METRICS = [
    {
        "kind": K + "metrics/simple-minmax-float-metric.yaml",
        "type": "urn:ivoa:calycopis:metric:io-throughput",
        "min": 100.0,
    },
    {"kind": K + "metrics/abstract-metric-item.yaml", "description": "anything"},
]

EXECUTABLES: list[dict[str, Any]] = [
    {
        "kind": K + "executable/docker-container.yaml",
        "meta": {"name": "job", "description": "a container"},
        "image": {
            "locations": ["ghcr.io/example/job:1.0"],
            "digest": "sha256:" + "0" * 64,
            "platform": {"architecture": "arm64", "os": "linux"},
        },
        "privileged": False,
        "command": ["--verbose", "input.fits"],
        "entrypoint": "/bin/run",
        "environment": {"MODE": "fast", "DEBUG": "yes"},
        "network": {
            "ports": [
                {"access": True, "internal": {"port": 8888}, "protocol": "HTTP", "path": "/lab"}
            ]
        },
        "costs": COSTS,
        "metrics": METRICS,
    },
    {"kind": K + "executable/singularity-container.yaml", "location": "https://x.org/a.sif"},
    {"kind": K + "executable/jupyter-notebook.yaml", "location": "https://x.org/a.ipynb"},
    {
        "kind": model.PYTHON_PROGRAM_KIND,
        "location": "https://github.com/example/prog.git",
        "requirements": ["numpy>=2", "astropy"],
        "entry_point": "prog.main:run",
        "python_version": "3.11",
    },
    {
        "kind": model.PYTHON_PROGRAM_KIND,
        "location": "https://x.org/prog.py",
        "requirements": "https://x.org/requirements.txt",
    },
]

VOLUMES = [
    {
        "kind": K + "volume/simple-volume-mount.yaml",
        "path": "/in",
        "mode": "READONLY",
        "resource": "input",
    },
    {
        "kind": K + "volume/simple-volume-mount.yaml",
        "path": "/scratch",
        "mode": "READWRITE",
        "resource": "scratch",
    },
]

COMPUTES: list[dict[str, Any]] = [
    {
        "kind": K + "compute/simple-compute-resource.yaml",
        "meta": {"name": "cpu"},
        "cores": {"min": 2, "max": 8},
        "memory": {"min": 4, "max": 16},
        "volumes": VOLUMES,
    },
    {
        "kind": model.ACCELERATED_COMPUTE_KIND,
        "cores": {"min": 8},
        "memory": {"min": 32},
        "accelerators": {
            "count": {"min": 1, "max": 2},
            "vendor": "nvidia",
            "models": ["A100", "H100"],
            "memory": {"min": 40.0},
            "compute_capability": {"min": 8.0},
        },
    },
]

IVOA_BLOCK = {
    "ivoid": "ivo://example.org/survey?obs-1",
    "obscore": {
        "obs_id": "obs-1",
        "obs_collection": "survey",
        "obs_publisher_did": "ivo://example.org/survey?obs-1",
        "obs_creator_did": "ivo://example.org/creator?1",
        "dataproduct_type": "image",
        "calib_level": 2,
        "access_url": "https://x.org/obs-1.fits",
        "access_format": "image/fits",
    },
    "datalink": {
        "ID": "ivo://example.org/survey?obs-1",
        "access_url": "https://x.org/obs-1.fits",
        "service_def": "cutout",
        "error_message": "",
        "description": "the image",
        "semantics": "#this",
        "content_type": "image/fits",
        "content_length": 1024,
        "content_qualifier": "image",
        "local_semantics": "science",
        "link_auth": "false",
        "link_authorized": "true",
    },
}

DATA: list[dict[str, Any]] = [
    {
        "kind": K + "data/simple-data-resource.yaml",
        "meta": {"name": "input"},
        "location": "https://x.org/f.fits",
        "storage": "scratch",
    },
    {
        "kind": K + "data/S3-data-resource.yaml",
        "endpoint": "https://s3.x.org",
        "template": "{bucket}",
        "bucket": "b",
        "object": "o",
    },
    {
        "kind": K + "data/rucio-data-resource.yaml",
        "rucio": {
            "endpoint": "https://rucio.x.org",
            "scope": "s",
            "object": "o",
            "type": "DATASET",
        },
    },
    {"kind": K + "data/ivoa-data-resource.yaml", "ivoa": IVOA_BLOCK},
    {
        "kind": K + "data/skao-data-resource.yaml",
        "ivoa": IVOA_BLOCK,
        "skao": {
            "namespace": "testing",
            "objectname": "zi-obs-1.fits",
            "objecttype": "FILE",
            "datasize": 123456,
            "checksum": {"type": "adler32", "value": "0a1b2c3d"},
            "replicas": [{"rsename": "SPSRC_STORM", "dataurl": "davs://x.org/zi-obs-1.fits"}],
        },
    },
]

STORAGE = [
    {
        "kind": K + "storage/simple-storage-resource.yaml",
        "meta": {"name": "scratch"},
        "size": {"min": 10, "max": 100},
        "data": ["input"],
    }
]

STARTS = [
    "2026-09-01T10:00:00Z/2026-09-01T12:00:00Z",
    "2026-09-01T10:00:00Z/PT2H",
    "PT2H/2026-09-01T12:00:00Z",
    "2026-09-01T10:00:00Z",
]


def every_request_shape() -> list[dict[str, Any]]:
    """Requests that together use every kind and every field of the schema."""
    requests = []
    for index, executable in enumerate(EXECUTABLES):
        requests.append(
            {
                "executable": executable,
                "compute": COMPUTES[index % len(COMPUTES)],
                "storage": STORAGE,
                "data": DATA,
                "schedule": {
                    "requested": {"start": STARTS[index % len(STARTS)], "duration": "PT1H30M"}
                },
                "costs": COSTS,
                "metrics": METRICS,
            }
        )
    requests.append({})  # everything is optional on the wire
    return requests


SHAPES = every_request_shape()


@pytest.mark.parametrize("document", SHAPES, ids=[f"shape{i}" for i in range(len(SHAPES))])
def test_every_request_shape_decodes_and_survives_json_yaml_round_trips(document):
    decoded = codec.decode_request(json.dumps(document).encode(), Media.JSON)
    assert decoded.unknown_kinds == ()
    as_yaml = codec.encode(decoded.value, Media.YAML)
    again = codec.decode_request(as_yaml, Media.YAML)
    assert again.value == decoded.value
    assert codec.decode_request(codec.encode(again.value, Media.JSON), Media.JSON).value == (
        decoded.value
    )


def test_decoding_keeps_every_field_the_client_sent():
    document = SHAPES[0]
    decoded = codec.decode_request(json.dumps(document).encode(), Media.JSON).value
    written = codec.to_builtins(decoded)
    # `privileged: false` is the default, so it is left out like every other default
    assert written["executable"] == {
        key: value for key, value in document["executable"].items() if key != "privileged"
    }
    assert written["data"] == DATA
    assert written["storage"] == STORAGE
    assert written["compute"] == COMPUTES[0]
    assert written["schedule"]["requested"] == {
        "start": "2026-09-01T10:00:00Z/PT2H",
        "duration": "PT1H30M",
    }


def test_decoded_values_have_the_model_types():
    decoded = codec.decode_request(json.dumps(SHAPES[1]).encode(), Media.JSON).value
    assert isinstance(decoded.executable, model.SingularityContainer)
    assert isinstance(decoded.compute, model.AcceleratedComputeResource)
    assert [type(d).__name__ for d in decoded.data] == [
        "SimpleDataResource",
        "S3DataResource",
        "RucioDataResource",
        "IvoaDataResource",
        "SkaoDataResource",
    ]
    assert decoded.schedule is not None
    assert decoded.schedule.requested is not None
    requested = decoded.schedule.requested
    assert requested.duration == timedelta(minutes=90)
    assert isinstance(requested.duration, Duration)
    assert requested.start == Interval.parse("2026-09-01T10:00:00Z/PT2H")


@pytest.mark.parametrize("name", ["docker", "notebook", "gpu", "legacy"])
def test_the_documented_examples_decode(name):
    body = (ROOT / "docs" / "examples" / f"request-{name}.yaml").read_bytes()
    decoded = codec.decode_request(body, Media.YAML)
    assert decoded.unknown_kinds == ()
    assert decoded.value.executable is not None


def test_the_json_example_is_the_yaml_example():
    examples = ROOT / "docs" / "examples"
    from_yaml = codec.decode_request((examples / "request-docker.yaml").read_bytes(), Media.YAML)
    from_json = codec.decode_request((examples / "request-docker.json").read_bytes(), Media.JSON)
    assert from_json.value == from_yaml.value


def test_encoding_leaves_out_nulls_and_empty_lists_and_writes_iso_times():
    noon = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
    session = model.ScheduledExecutionSession(
        meta=model.ComponentMetadata(name="s", created=noon),
        phase=model.SessionPhase.OFFERED,
        expires=datetime(2026, 9, 1, 12, 5, 30, tzinfo=UTC),
        schedule=model.ScheduledExecutionSchedule(
            available=model.LifecycleStartDurationInterval(
                start=Interval.at(noon), duration=Duration(hours=4)
            )
        ),
    )
    written = codec.to_builtins(session)
    assert written == {
        "kind": K + "session/scheduled-execution-session.yaml",
        "meta": {"name": "s", "created": "2026-09-01T12:00:00Z"},
        "phase": "OFFERED",
        "expires": "2026-09-01T12:05:30Z",
        "schedule": {"available": {"start": "2026-09-01T12:00:00Z/PT0S", "duration": "PT4H"}},
    }


def test_plain_timedeltas_and_offset_datetimes_are_written_in_the_newest_form_too():
    offset = datetime.fromisoformat("2026-09-01T12:00:00+02:00")
    item = model.LifecycleStartDurationInstant(
        start=offset,
        duration=timedelta(hours=2),  # type: ignore[arg-type]
    )
    assert codec.to_builtins(item) == {"start": "2026-09-01T10:00:00Z", "duration": "PT2H"}


def test_yaml_answers_have_no_document_marker_and_keep_yes_and_no_as_strings():
    offerset = model.OfferSetResponse(result="NO")
    text = codec.encode(offerset, Media.YAML).decode()
    assert not text.startswith("---")
    assert yaml.safe_load(text)["result"] == "NO"  # quoted, so even YAML 1.1 readers see a string
    assert codec.decode_document(text.encode(), Media.YAML, model.OfferSetResponse).value == (
        offerset
    )


def test_yaml_is_read_with_yaml_1_2_scalars():
    body = b"""
executable:
  kind: uri:docker-container-1.0
  image: {locations: [x]}
  environment: {ENABLED: yes, LEVEL: NO, WHEN: 2026-09-01}
"""
    executable = codec.decode_request(body, Media.YAML).value.executable
    assert isinstance(executable, model.DockerContainer)
    assert executable.environment == {"ENABLED": "yes", "LEVEL": "NO", "WHEN": "2026-09-01"}


def test_yaml_reads_json_bodies_too():
    body = json.dumps(SHAPES[0]).encode()
    assert codec.decode_request(body, Media.YAML).value == (
        codec.decode_request(body, Media.JSON).value
    )


def test_modest_yaml_anchors_are_allowed():
    body = b"""
compute:
  kind: uri:simple-compute-resource-1.0
  cores: &two {min: 2, max: 2}
  memory: *two
"""
    compute = codec.decode_request(body, Media.YAML).value.compute
    assert compute is not None
    assert compute.memory == model.SimpleComputeMemory(min=2, max=2)


@pytest.mark.parametrize(
    ("accept", "content_type", "expected"),
    [
        (None, None, Media.YAML),
        ("*/*", None, Media.YAML),
        ("*/*", "application/x-www-form-urlencoded", Media.YAML),
        ("application/json", None, Media.JSON),
        ("application/yaml", "application/json", Media.YAML),
        ("text/yaml", None, Media.YAML),
        ("application/x-yaml", None, Media.YAML),
        (None, "application/json", Media.JSON),
        ("*/*", "application/json; charset=utf-8", Media.JSON),
        ("text/html", "text/yaml", Media.YAML),
        ("application/json, application/yaml", None, Media.YAML),
        ("application/json;q=0.9, application/yaml;q=0.5", None, Media.JSON),
        ("application/json;q=0, application/yaml", None, Media.YAML),
        ("application/problem+json", None, Media.JSON),
    ],
)
def test_answers_are_negotiated_yaml_unless_the_client_says_json(accept, content_type, expected):
    assert codec.negotiate(accept, content_type) is expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, Media.YAML),
        ("", Media.YAML),
        ("application/x-www-form-urlencoded", Media.YAML),
        ("text/plain", Media.YAML),
        ("application/json", Media.JSON),
        ("application/json; charset=utf-8", Media.JSON),
        ("application/vnd.ivoa+json", Media.JSON),
        ("application/yaml", Media.YAML),
        ("text/yaml", Media.YAML),
        ("application/x-yaml", Media.YAML),
        ("TEXT/YAML", Media.YAML),
    ],
)
def test_bodies_are_read_by_their_declared_type(content_type, expected):
    assert codec.media_for_body(content_type) is expected


def test_a_body_of_another_declared_type_is_unsupported():
    with pytest.raises(codec.UnsupportedMediaType) as raised:
        codec.media_for_body("application/xml")
    assert raised.value.problems[0].field == "Content-Type"
    assert "application/yaml" in raised.value.problems[0].reason


def test_offer_sets_and_sessions_from_other_brokers_decode():
    session = {
        "kind": "https://www.purl.org/ivoa.net/EB/schema/v1.0/types/session/simple-execution-session-1.0",
        "meta": {"uuid": "0b2f7c1e-8f6e-4e7a-9d3c-2f8a1f0c9e11"},
        "phase": "OFFERED",
        "compute": {
            "kind": K + "computer/simple-compute-resource.yaml",
            "cores": {"min": 4, "max": 4},
        },
    }
    offerset = {
        "kind": "https://www.purl.org/ivoa.net/EB/schema/v1.0/types/offerset/execution-offerset-1.0",
        "result": "YES",
        "offers": [session],
    }
    decoded = codec.decode_document(
        json.dumps(offerset).encode(), Media.JSON, model.OfferSetResponse
    )
    offer = decoded.value.offers[0]
    assert isinstance(offer, model.SimpleExecutionSession)
    assert isinstance(offer.compute, model.SimpleComputeResource)
    single = codec.decode_session(json.dumps(session).encode(), Media.JSON).value
    assert single == offer
    assert msgspec.structs.asdict(single)["phase"] is model.SessionPhase.OFFERED


# ------------------------------------------------------------------------- the talks' forms
HISTORIC = ROOT / "tests" / "data" / "historic"
NOTEBOOK = K + "executable/jupyter-notebook.yaml"
DOCKER = K + "executable/docker-container.yaml"
COMPUTE = K + "compute/simple-compute-resource.yaml"


def _historic(name: str) -> dict[str, Any]:
    decoded = codec.decode_request((HISTORIC / name).read_bytes(), Media.YAML)
    assert decoded.unknown_kinds == ()
    written: dict[str, Any] = codec.to_builtins(decoded.value)
    return written


def test_the_2023_request_wrapper_and_spec_block_read_as_a_notebook_location():
    assert _historic("2023-11-planner-request.yaml") == {
        "executable": {"kind": NOTEBOOK, "location": "https://example.org/notebooks/example.ipynb"}
    }


def test_the_2024_prototype_reads_resources_executing_and_bare_minimums():
    assert _historic("2024-08-prototype-notebook.yaml") == {
        "executable": {
            "kind": NOTEBOOK,
            "location": "http://github.com/example/notebooks/example.ipynb",
        },
        "compute": {"kind": COMPUTE, "cores": {"min": 4}, "memory": {"min": 8}},
        "schedule": {"requested": {"start": "2024-08-29T10:00:00Z/PT1H", "duration": "PT4H"}},
    }


def test_the_2024_prototype_names_become_meta_names_and_volumes_get_their_one_kind():
    written = _historic("2024-08-prototype-data.yaml")
    assert written["compute"]["meta"] == {"name": "Compute 001"}
    assert written["compute"]["volumes"] == [
        {
            "kind": K + "volume/simple-volume-mount.yaml",
            "meta": {"name": "Volume 001"},
            "path": "/my-data",
            "resource": "Resource 001",
        }
    ]
    assert written["data"] == [
        {
            "kind": K + "data/simple-data-resource.yaml",
            "meta": {"name": "Resource 001"},
            "location": "http://data.example.org/downloads/data-001",
        }
    ]


def test_the_packagers_repository_image_tag_and_digest_are_one_image_location_and_digest():
    assert _historic("2024-12-packager-docker.yaml") == {
        "executable": {
            "kind": DOCKER,
            "meta": {"name": "Newton Rahpson tool"},
            "image": {
                "locations": ["example.org/ivoa/analytics/Newton-Rahpson-example:2024.12.02"],
                "digest": "sha256:ac1b5e0c2d7f4a9b8e6c3d2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4ffc70",
            },
        }
    }


def test_the_developers_requirements_map_is_an_interpreter_constraint_and_packages():
    assert _historic("2024-12-developer-python.yaml") == {
        "executable": {
            "kind": model.PYTHON_PROGRAM_KIND,
            "requirements": ["numpy>2.1.1"],
            "python_version": ">3.10",
        }
    }


@pytest.mark.parametrize(
    ("requirements", "packages", "python"),
    [
        ({"astropy": "6.1", "scipy": None, "numpy": "*"}, ["astropy==6.1", "scipy", "numpy"], None),
        ({"Python": ">=3.10,<3.13", "numpy": ">=2"}, ["numpy>=2"], ">=3.10,<3.13"),
        ({"pandas": "[performance]>=2"}, ["pandas [performance]>=2"], None),
    ],
)
def test_requirement_maps_become_specifiers(requirements, packages, python):
    document = {"executable": {"type": "uri:python-program", "location": "https://x.org/p.py"}}
    document["executable"]["requirements"] = requirements
    program = codec.decode_request(json.dumps(document).encode(), Media.JSON).value.executable
    assert isinstance(program, model.PythonProgram)
    assert program.requirements == packages
    assert program.python_version == python


def test_a_python_constraint_that_is_not_one_is_refused_naming_the_field():
    body = b"executable: {type: uri:python-program, requirements: {python: newest}}\n"
    with pytest.raises(Invalid) as raised:
        codec.decode_request(body, Media.YAML)
    assert raised.value.problems[0].field == "$.executable.python_version"


def test_the_2025_request_reads_file_blocks_and_requested_minimums():
    assert _historic("2025-02-request-notebook.yaml") == {
        "executable": {
            "kind": NOTEBOOK,
            "meta": {"name": "Experiment two"},
            "location": "https://example.org/notebooks/example.ipynb",
        },
        "compute": {"kind": COMPUTE, "cores": {"min": 4}, "memory": {"min": 16}},
    }


def test_the_2025_response_shape_reads_requested_in_a_request_and_offered_in_an_offer():
    """`requested` and `offered` side by side: a request asks the first, an offer holds the
    second (the newest form's offered compute has min = max = what is offered)."""
    assert _historic("2025-02-response-notebook.yaml")["compute"] == {
        "kind": COMPUTE,
        "cores": {"min": 4},
        "memory": {"min": 16},
    }
    document = yaml.safe_load((HISTORIC / "2025-02-response-notebook.yaml").read_text())
    session = {
        "kind": K + "session/simple-execution-session.yaml",
        "phase": "OFFERED",
        "compute": document["resources"]["compute"][0],
    }
    offer = codec.decode_session(json.dumps(session).encode(), Media.JSON).value
    assert isinstance(offer.compute, model.SimpleComputeResource)
    assert offer.compute.cores == model.SimpleComputeCores(min=8)
    assert offer.compute.memory == model.SimpleComputeMemory(min=32)


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        (">3.10", "3.11.7", True),
        (">3.10", "3.10.0", False),
        (">3.10", "3.9.18", False),
        ("3.11", "3.11.7", True),
        ("3.11", "3.12.0", False),
        (">=3.10,<3.13", "3.12.1", True),
        (">=3.10,<3.13", "3.13.0", False),
        ("~=3.10", "3.12.0", True),
        ("~=3.10", "4.0.0", False),
        ("~=3.10.2", "3.11.0", False),
        ("!=3.11.*", "3.11.2", False),
        ("==3.11", "3.11.0", True),
        ("==3.11", "3.11.4", False),
        ("==3.11.*", "3.11.4", True),
        (">3.10", "3.12.0rc1", True),
    ],
)
def test_python_constraints_are_pep_440_on_release_numbers(constraint, version, allowed):
    assert model.python_version_allows(constraint, version) is allowed


@pytest.mark.parametrize(
    ("older", "newest"),
    [
        ("PENDING", "WAITING"),
        ("SETUP", "PREPARING"),
        ("READY", "AVAILABLE"),
        ("TEARDOWN", "RELEASING"),
    ],
)
def test_older_phase_names_in_sessions_from_other_brokers_read_as_the_newest(older, newest):
    session = {
        "kind": K + "session/scheduled-execution-session.yaml",
        "phase": older,
        "executable": {
            "type": "uri:jupyter-notebook-1.0",
            "notebook": "https://x.org/a.ipynb",
            "phase": older,
        },
    }
    decoded = codec.decode_session(json.dumps(session).encode(), Media.JSON).value
    assert decoded.phase is model.SessionPhase(newest)
    assert decoded.executable is not None
    assert decoded.executable.phase is model.LifecyclePhase(newest)
    assert codec.to_builtins(decoded)["phase"] == newest
