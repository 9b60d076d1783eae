"""From an entry's document to an ExecutionRequest the broker accepts (pure hand-off builder)."""

from __future__ import annotations

import msgspec
import pytest

from broker.model import ExecutionRequest, codec
from catalogue.handoff import ACCELERATED_COMPUTE, SIMPLE_COMPUTE, execution_request
from catalogue.model import ExecutableSpec, HandOff
from core.errors import Invalid
from tests.catalogue_support import executable


def spec(**changes) -> ExecutableSpec:
    return msgspec.convert(executable(**changes), ExecutableSpec)


def decoded(request: dict) -> ExecutionRequest:
    result = codec.convert(request, ExecutionRequest)
    assert result.unknown_kinds == ()
    return result.value


def test_declared_needs_become_the_requested_minimum():
    request = execution_request(spec(), HandOff(), name="cube-finder-1.0.0")
    assert request["compute"]["kind"] == SIMPLE_COMPUTE
    assert request["compute"]["cores"] == {"min": 2}
    assert request["compute"]["memory"] == {"min": 4}
    assert request["schedule"] == {"requested": {"duration": "PT1H"}}
    assert request["executable"]["meta"] == {"name": "cube-finder-1.0.0"}
    decoded(request)


def test_a_required_gpu_asks_for_the_accelerated_compute_kind():
    needs = {"cores": 8, "memory": 32, "gpus": {"count": 2, "memory": 24, "vendor": "nvidia"}}
    request = execution_request(spec(needs=needs), HandOff(), name="x")
    compute = request["compute"]
    assert compute["kind"] == ACCELERATED_COMPUTE
    assert compute["accelerators"] == {
        "count": {"min": 2},
        "vendor": "nvidia",
        "memory": {"min": 24},
    }
    assert decoded(request).compute.accelerators.count.min == 2


def test_an_optional_gpu_is_not_asked_for_unless_the_researcher_does():
    optional = spec(needs={"gpus": {"count": 1, "optional": True}})
    assert execution_request(optional, HandOff(), name="x")["compute"]["kind"] == SIMPLE_COMPUTE
    wanted = execution_request(optional, HandOff(gpus=1), name="x")["compute"]
    assert wanted["kind"] == ACCELERATED_COMPUTE


def test_overrides_win_and_data_is_mounted_read_only():
    overrides = HandOff(
        start="2026-09-01T10:00Z",
        duration="PT90M",
        cores=16,
        memory=64,
        data=["https://data.example.org/cube.fits", "s3://survey/dr1/cube.fits", "ivo://org.x/y?z"],
    )
    request = execution_request(spec(), overrides, name="x")
    assert request["schedule"]["requested"] == {
        "start": "2026-09-01T10:00:00Z/PT0S",
        "duration": "PT1H30M",
    }
    assert request["compute"]["cores"] == {"min": 16}
    kinds = [item["kind"].rsplit("/", 1)[-1] for item in request["data"]]
    assert kinds == [
        "simple-data-resource.yaml",
        "S3-data-resource.yaml",
        "ivoa-data-resource.yaml",
    ]
    assert request["data"][1]["bucket"] == "survey"
    assert [v["resource"] for v in request["compute"]["volumes"]] == [
        "input-1",
        "input-2",
        "input-3",
    ]
    assert {v["mode"] for v in request["compute"]["volumes"]} == {"READONLY"}
    request = decoded(request)
    assert len(request.data) == 3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (HandOff(start="2026-09-01T10:00"), "start"),  # no time zone
        (HandOff(start="2026-09-01T12:00Z/2026-09-01T10:00Z"), "start"),
        (HandOff(duration="P1M"), "duration"),
        (HandOff(data=["file:///etc/passwd"]), "data[0]"),
    ],
)
def test_bad_overrides_name_their_field(overrides, field):
    with pytest.raises(Invalid) as caught:
        execution_request(spec(), overrides, name="x")
    assert [p.field for p in caught.value.problems] == [field]


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (
            "s3+https://s3.example.net/survey/runs/42/",
            {
                "kind": "https://voexec.org/broker/kinds/storage/s3-results-storage.yaml",
                "endpoint": "https://s3.example.net",
                "bucket": "survey",
                "prefix": "runs/42/",
            },
        ),
        (
            "https://store.example.org/upload/run-42",
            {
                "kind": "https://voexec.org/broker/kinds/storage/http-results-storage.yaml",
                "location": "https://store.example.org/upload/run-42",
            },
        ),
        (
            "/srv/results/run-42",
            {
                "kind": "https://voexec.org/broker/kinds/storage/file-results-storage.yaml",
                "path": "/srv/results/run-42",
            },
        ),
        (
            "file:///srv/results/run-42",
            {
                "kind": "https://voexec.org/broker/kinds/storage/file-results-storage.yaml",
                "path": "/srv/results/run-42",
            },
        ),
    ],
)
def test_the_results_destination_becomes_a_results_storage_kind_the_broker_reads(results, expected):
    request = execution_request(spec(), HandOff(results=results), name="x")
    (storage,) = request["storage"]
    assert {k: v for k, v in storage.items() if k != "meta"} == expected
    (decoded_storage,) = decoded(request).storage
    assert decoded_storage.__struct_config__.tag == expected["kind"]


@pytest.mark.parametrize("results", ["ftp://x.example/y", "relative/folder", "s3+https://host/"])
def test_a_results_destination_that_cannot_be_read_is_a_problem_naming_the_field(results):
    with pytest.raises(Invalid) as raised:
        execution_request(spec(), HandOff(results=results), name="x")
    assert [p.field for p in raised.value.problems] == ["results"]
