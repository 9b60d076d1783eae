"""Malformed input: every problem names the JSON path and the reason; nothing crashes."""

import json

import pytest

from broker import model
from broker.model import codec
from broker.model.codec import MAX_DEPTH, BodyTooLarge, Media
from core.errors import Invalid

K = model.KINDS
COMPUTE = K + "compute/simple-compute-resource.yaml"


def _problem(body: bytes, media: Media = Media.YAML, **kwargs) -> tuple[str, str]:
    with pytest.raises(Invalid) as raised:
        codec.decode_request(body, media, **kwargs)
    [problem] = raised.value.problems
    return problem.field, problem.reason


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            b"compute: {kind: uri:generic-compute, cores: {min: 0}}",
            "$.compute.cores.min",
            "Expected int >= 1",
        ),
        (
            b"compute: {kind: uri:generic-compute, cores: {min: two}}",
            "$.compute.cores.min",
            "Expected int | null, got str",
        ),
        (
            b"compute: {kind: uri:generic-compute, cores: 4}",
            "$.compute.cores",
            "Expected object | null, got int",
        ),
        (b"compute: {kind: uri:generic-compute, core: 4}", "$.compute.core", "unknown field"),
        (b"compute: {cores: {min: 1}}", "$.compute.kind", "required field is missing"),
        (
            b"executable: {kind: uri:docker-container-1.0, image: {digest: 'not a digest'}}",
            "$.executable.image.digest",
            "Expected str matching regex",
        ),
        (
            b"executable: {kind: uri:docker-container-1.0, environment: {PORT: 8080}}",
            "$.executable.environment[...]",
            "Expected str, got int",
        ),
        (
            b"executable: {kind: uri:docker-container-1.0, network: {ports: [{protocol: tcp}]}}",
            "$.executable.network.ports[0].protocol",
            "Invalid enum value 'tcp'",
        ),
        (
            b"compute: {kind: uri:generic-compute,"
            b" volumes: [{kind: uri:simple-volume-mount, mode: RW}]}",
            "$.compute.volumes[0].mode",
            "Invalid enum value 'RW'",
        ),
        (
            b"schedule: {requested: {duration: P1M}}",
            "$.schedule.requested.duration",
            "no fixed length",
        ),
        (b"schedule: {requested: {duration: P1H}}", "$.schedule.requested.duration", "after 'T'"),
        (
            b"schedule: {requested: {duration: 3600}}",
            "$.schedule.requested.duration",
            "expected an ISO-8601 duration",
        ),
        (
            b"schedule: {requested: {start: tomorrow/PT1H}}",
            "$.schedule.requested.start",
            "not an ISO-8601 date-time",
        ),
        (
            b"schedule: {requested: {start: '2026-09-01T12:00:00Z/2026-09-01T10:00:00Z'}}",
            "$.schedule.requested.start",
            "before it starts",
        ),
        (
            b"schedule: {requested: {start: PT2H}}",
            "$.schedule.requested.start",
            "a duration, not an interval",
        ),
        (b"schedule: {wanted: {duration: PT1H}}", "$.schedule.wanted", "unknown field"),
        (b"extra: 1", "$.extra", "unknown field"),
        (b"[1, 2]", "$", "expected a mapping at the top level, got a list"),
        (b"just text", "$", "expected a mapping at the top level, got a string"),
        (b"   ", "$", "the body is empty"),
        (b"compute: {kind: [", "$", "invalid YAML"),
        (b"a: b\n- c", "$", "invalid YAML"),
    ],
)
def test_malformed_yaml_requests_name_the_field_and_the_reason(body, field, reason):
    got_field, got_reason = _problem(body)
    assert got_field == field
    assert reason in got_reason


def test_malformed_json_is_reported_as_json():
    field, reason = _problem(b'{"compute": ', Media.JSON)
    assert (field, reason.split(":")[0]) == ("$", "invalid JSON")


def test_error_paths_name_the_item_the_client_wrote_after_unknown_kinds_are_set_aside():
    document = {
        "data": [
            {"kind": K + "data/simple-data-resource.yaml", "location": "a"},
            {"kind": "uri:vospace-data", "location": "b"},
            {"kind": K + "data/simple-data-resource.yaml", "location": 3},
        ]
    }
    field, _ = _problem(json.dumps(document).encode(), Media.JSON)
    assert field == "$.data[2].location"


def test_unknown_kinds_are_set_aside_with_their_path_and_family():
    document = {
        "executable": {"kind": "uri:zeppelin-notebook-1.0", "notebook": "x"},
        "compute": {"kind": COMPUTE, "volumes": [{"kind": "uri:filesystem-mount", "path": "/x"}]},
        "data": [{"kind": K + "data/simple-data-resource.yaml"}, {"type": "uri:vospace-data"}],
        "costs": [{"kind": "https://example.org/costs/tokens.yaml"}],
    }
    decoded = codec.decode_request(json.dumps(document).encode(), Media.JSON)
    assert decoded.unknown_kinds == (
        model.UnknownKind(
            path="$.executable", family="executable", kind="uri:zeppelin-notebook-1.0"
        ),
        model.UnknownKind(
            path="$.compute.volumes[0]", family="volume", kind="uri:filesystem-mount"
        ),
        model.UnknownKind(path="$.data[1]", family="data", kind="uri:vospace-data"),
        model.UnknownKind(
            path="$.costs[0]", family="cost", kind="https://example.org/costs/tokens.yaml"
        ),
    )
    request = decoded.value
    assert request.executable is None
    assert request.compute is not None
    assert request.compute.volumes == []
    assert len(request.data) == 1
    assert request.costs == []


def test_an_update_of_an_unknown_kind_is_refused_naming_it():
    with pytest.raises(Invalid) as raised:
        codec.decode_update(b"{kind: uri:boolean-value-update, path: phase}", Media.YAML)
    [problem] = raised.value.problems
    assert problem.field == "$.kind"
    assert "uri:boolean-value-update" in problem.reason


def test_an_update_without_its_value_names_the_field():
    with pytest.raises(Invalid) as raised:
        codec.decode_update(b"{kind: uri:enum-value-update, path: phase}", Media.YAML)
    assert raised.value.problems[0].field == "$.value"


def test_a_body_over_the_limit_is_refused_before_parsing():
    body = b"x: " + b"a" * 10 * 1024 * 1024
    with pytest.raises(BodyTooLarge) as raised:
        codec.decode_request(body, Media.YAML, max_bytes=1_048_576)
    assert "1048576 bytes" in raised.value.problems[0].reason


BOMB = b"""
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BOMB, "expands to more than"),
        (b"a: &x [1, *x]", "refers to a node that contains it"),
        (b"[" * 200_000 + b"]" * 200_000, f"nested more than {MAX_DEPTH} levels"),
        (b"{a: " * 100_000 + b"1" + b"}" * 100_000, f"nested more than {MAX_DEPTH} levels"),
        (b"- " * 100_000 + b"x", f"nested more than {MAX_DEPTH} levels"),
        (
            b"a:\n" + b"".join(b" " * i + b"b:\n" for i in range(1, 200)),
            f"nested more than {MAX_DEPTH} levels",
        ),
    ],
)
def test_yaml_bombs_and_deep_nesting_are_refused(body, reason):
    field, got = _problem(body, max_bytes=4 * 1024 * 1024)
    assert field == "$"
    assert reason in got


def test_deep_json_nesting_is_refused():
    field, reason = _problem(b"[" * 200_000 + b"]" * 200_000, Media.JSON, max_bytes=1_000_000)
    assert (field, f"nested more than {MAX_DEPTH} levels" in reason) == ("$", True)
