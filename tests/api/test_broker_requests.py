"""POST /broker/requests over HTTP: media types, 303 answers, NO answers, malformed input."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient

from broker import model
from broker.model import codec
from broker.model.codec import Media
from core.clock import ManualClock
from core.settings import settings_from_mapping
from voexec.app import create_app
from voexec.wiring import build_services

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
K = model.KINDS
NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)

PLATFORMS: list[dict[str, Any]] = [
    {
        "name": "small",
        "capacity": {"cores": 8, "memory": 32},
        "executables": ["docker-container", "jupyter-notebook"],
        "limits": {"duration": "PT12H"},
        "preparation": "PT1M",
        "cost": {"core_hour": 0.5, "gib_hour": 0.01, "unit": "EUR"},
    },
    {
        "name": "gpu",
        "capacity": {
            "cores": 64,
            "memory": 256,
            "gpus": [{"model": "A100", "memory": 80, "count": 2, "compute_capability": 8.0}],
        },
        "executables": [K + "executable/docker-container.yaml", "python-program"],
        "preparation": "PT5M",
    },
]


def broker_client(tmp_path: Path, **broker: Any) -> Iterator[TestClient]:
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {"platforms": PLATFORMS, **broker},
        }
    )
    services = build_services(settings, clock=ManualClock(NOW))
    with TestClient(create_app(settings, services)) as client:
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from broker_client(tmp_path)


def post_request(
    client: TestClient, document: dict[str, Any] | bytes, media: Media = Media.JSON, **headers: str
) -> Any:
    body = document if isinstance(document, bytes) else codec.encode(document, media)
    return client.post(
        "/broker/requests",
        content=body,
        headers={"content-type": media.value, "accept": media.value, **headers},
        follow_redirects=False,
    )


def offerset_of(response: Any) -> model.OfferSetResponse:
    media = codec.media_for_body(response.headers["content-type"])
    return codec.decode_document(response.content, media, model.OfferSetResponse).value


def docker(cores: int = 2, **schedule: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "executable": {
            "kind": K + "executable/docker-container.yaml",
            "meta": {"name": "job"},
            "image": {"locations": ["ghcr.io/example/job:1.0"]},
        },
        "compute": {
            "kind": K + "compute/simple-compute-resource.yaml",
            "cores": {"min": cores},
            "memory": {"min": 2, "max": 3},
        },
    }
    if schedule:
        request["schedule"] = {"requested": schedule}
    return request


# ------------------------------------------------------------------------- YES, both media types
def test_a_yaml_request_gets_303_with_location_and_the_offer_set_in_yaml(client):
    response = client.post(
        "/broker/requests",
        content=(EXAMPLES / "request-docker.yaml").read_bytes(),
        headers={"content-type": "application/yaml"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["content-type"].startswith("application/yaml")
    location = response.headers["location"]
    assert location.startswith("http://testserver.local/broker/offersets/")
    offerset = offerset_of(response)
    assert offerset.result == "YES"
    assert offerset.meta is not None
    assert offerset.meta.url == location
    assert 1 <= len(offerset.offers) <= 4  # one per strategy at most (max_offers: 4)
    again = client.get(location)
    assert again.status_code == 200
    assert again.headers["content-type"].startswith("application/yaml")
    assert offerset_of(again) == offerset


def test_a_json_request_gets_the_same_answer_in_json(client):
    document = json.loads((EXAMPLES / "request-docker.json").read_text())
    response = post_request(client, document)
    assert response.status_code == 303
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["result"] == "YES"
    assert answer["kind"] == model.OFFERSET_KIND
    assert response.headers["location"] == answer["meta"]["url"]


@pytest.mark.parametrize(
    ("headers", "media"),
    [
        ({}, Media.YAML),  # curl --data-binary without -H: form-urlencoded, no Accept
        ({"accept": "*/*"}, Media.YAML),
        ({"content-type": "application/json"}, Media.JSON),
        ({"content-type": "application/json", "accept": "application/yaml"}, Media.YAML),
        ({"content-type": "text/yaml", "accept": "application/json"}, Media.JSON),
        ({"accept": "application/json;q=0.5, application/x-yaml;q=0.9"}, Media.YAML),
    ],
)
def test_answers_follow_accept_then_content_type_then_yaml(client, headers, media):
    body = json.dumps(docker()).encode()  # YAML reads JSON too
    response = client.post(
        "/broker/requests", content=body, headers=headers, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["content-type"].startswith(media.value)
    assert offerset_of(response).result == "YES"


def test_the_older_path_offersets_answers_like_requests(client):
    response = client.post(
        "/broker/offersets",
        content=codec.encode(docker(), Media.YAML),
        headers={"content-type": "application/yaml"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "/broker/offersets/" in response.headers["location"]
    assert offerset_of(response).result == "YES"


def test_location_uses_the_public_url_when_configured(tmp_path):
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "server": {"public_url": "https://broker.example.org/"},
            "broker": {"platforms": PLATFORMS},
        }
    )
    with TestClient(create_app(settings)) as client:
        response = post_request(client, docker())
    location = response.headers["location"]
    assert location.startswith("https://broker.example.org/broker/offersets/")
    offer = offerset_of(response).offers[0]
    assert offer.meta is not None
    assert offer.meta.url is not None
    assert offer.meta.url.startswith("https://broker.example.org/broker/sessions/")


def test_a_legacy_request_is_answered_in_the_newest_form(client):
    response = post_request(client, (EXAMPLES / "request-legacy.yaml").read_bytes(), Media.YAML)
    assert response.status_code == 303
    text = response.text
    assert "type: uri:" not in text
    assert "/computer/" not in text
    assert "/EB/schema/" not in text
    offer = offerset_of(response).offers[0]
    assert isinstance(offer.executable, model.DockerContainer)
    assert isinstance(offer.compute, model.SimpleComputeResource)
    assert yaml.safe_load(text)["offers"][0]["compute"]["kind"] == (
        K + "compute/simple-compute-resource.yaml"
    )


def test_an_offer_says_what_when_where_and_for_how_long(client):
    request = docker(cores=2, start="2026-09-01T09:00:00Z/PT2H", duration="PT3H")
    offerset = offerset_of(post_request(client, request))
    offer = offerset.offers[0]  # the earliest strategy's offer comes first
    assert isinstance(offer, model.ScheduledExecutionSession)
    assert offer.phase is model.SessionPhase.OFFERED
    assert offer.expires == NOW + timedelta(minutes=5)
    assert offer.schedule is not None
    assert offer.schedule.available is not None
    available = offer.schedule.available
    assert available.start == model.Interval.at(datetime(2026, 9, 1, 9, tzinfo=UTC))
    assert available.duration == timedelta(hours=3)
    compute = offer.compute
    assert compute is not None
    assert compute.cores == model.SimpleComputeCores(min=4, max=4)  # 2 x min, as configured
    assert compute.memory == model.SimpleComputeMemory(min=3, max=3)  # never above max
    assert offer.meta is not None
    assert offer.meta.options == [
        model.EnumValueOption(path="phase", values=["ACCEPTED", "REJECTED"])
    ]
    [platform] = [m for m in offer.meta.messages if m.kind == "urn:voexec:offer-platform"]
    assert platform.values == {"platform": "small", "strategy": "earliest"}
    [cost] = offer.costs
    assert isinstance(cost, model.SimpleMinMaxFloatCost)
    assert cost.min == pytest.approx(3 * (4 * 0.5 + 3 * 0.01))


def test_a_gpu_request_goes_to_the_platform_with_a_matching_gpu(client):
    response = post_request(client, (EXAMPLES / "request-gpu.yaml").read_bytes(), Media.YAML)
    offers = offerset_of(response).offers
    assert {offer.meta.url is not None for offer in offers} == {True}
    offer = offers[0]
    compute = offer.compute
    assert isinstance(compute, model.AcceleratedComputeResource)
    assert compute.accelerators is not None
    assert compute.accelerators.models == ["A100"]
    count = compute.accelerators.count
    assert count is not None
    assert count.min == count.max
    assert count.min in (1, 2)  # within the request's count range; the platform has 2
    assert isinstance(offer.executable, model.PythonProgram)


def test_a_request_without_a_zone_is_read_as_utc_and_says_so(client):
    response = post_request(client, docker(start="2026-09-01T09:00:00/PT1H"))
    offerset = offerset_of(response)
    assert offerset.result == "YES"
    assert offerset.meta is not None
    [warning] = [m for m in offerset.meta.messages if m.kind == "urn:voexec:timezone-assumed"]
    assert warning.level is model.MessageLevel.WARN
    assert "UTC" in (warning.message or "")


# ------------------------------------------------------------------------- NO, with reasons
def _no_messages(client: TestClient, request: dict[str, Any]) -> list[model.MessageItem]:
    response = post_request(client, request)
    assert response.status_code == 303
    offerset = offerset_of(response)
    assert offerset.result == "NO"
    assert offerset.offers == []
    assert offerset.meta is not None
    messages = offerset.meta.messages
    for message in messages:
        assert message.template
        assert message.time == NOW
        assert message.message == model.render_template(message.template, message.values)
    return messages


def _texts(messages: list[model.MessageItem]) -> str:
    return "\n".join(message.message or "" for message in messages)


def test_an_unknown_kind_is_a_no_naming_the_kind_and_where_it_was(client):
    request = docker()
    request["executable"] = {"kind": "uri:zeppelin-notebook-1.0", "location": "x"}
    request["data"] = [{"kind": "https://example.org/kinds/vospace-node.yaml", "uri": "vos://x"}]
    messages = _no_messages(client, request)
    unknown = [m for m in messages if m.kind == "uri:unknown-type"]
    assert [m.values for m in unknown] == [
        {"family": "executable", "kind": "uri:zeppelin-notebook-1.0", "path": "$.executable"},
        {
            "family": "data",
            "kind": "https://example.org/kinds/vospace-node.yaml",
            "path": "$.data[0]",
        },
    ]
    assert "Unknown executable kind [uri:zeppelin-notebook-1.0]" in _texts(messages)
    assert "executable is required" not in _texts(messages)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda r: r["compute"].update(cores={"min": 6, "max": 4}),
            ["$.compute.cores: the minimum cores (6) is above the maximum (4)"],
        ),
        (
            lambda r: r["compute"].update(cores={"min": 100}),
            [
                "small: needs 100 cores, has 8 in all",
                "gpu: needs 100 cores, has 64 in all",
            ],
        ),
        (
            lambda r: r["compute"].update(memory={"min": 1000}),
            ["small: needs 1000 GiB of memory, has 32 in all"],
        ),
        (lambda r: r.pop("executable"), ["Description of the executable is required"]),
        (
            lambda r: r["executable"].update(image={}),
            ["DockerContainer - image location required"],
        ),
        (
            lambda r: r["executable"].update(privileged=True),
            ["DockerContainer - Privileged execution not supported"],
        ),
        (
            lambda r: r.update(schedule={"requested": {"start": "2026-08-01T00:00:00Z/PT1H"}}),
            [
                "$.schedule.requested.start: the requested start range "
                "(2026-08-01T00:00:00Z/PT1H) ended before now (2026-09-01T08:00:00Z)"
            ],
        ),
        (
            lambda r: r.update(schedule={"requested": {"start": "2026-09-01T08:00:00Z/PT30S"}}),
            ["small: the requested start range ends before the earliest possible start"],
        ),
        (
            lambda r: r["compute"].update(
                volumes=[{"kind": K + "volume/simple-volume-mount.yaml", "resource": "nothing"}]
            ),
            ["unable to locate resource [nothing]"],
        ),
    ],
)
def test_requests_the_broker_cannot_serve_are_a_no_with_rendered_reasons(client, change, expected):
    request = docker()
    change(request)
    texts = _texts(_no_messages(client, request))
    for text in expected:
        assert text in texts


def test_a_kind_no_platform_runs_and_a_too_long_session_are_explained_per_platform(client):
    notebook = {
        "executable": {"kind": K + "executable/jupyter-notebook.yaml", "location": "https://x/n"},
        "schedule": {"requested": {"duration": "PT13H"}},
    }
    texts = _texts(_no_messages(client, notebook))
    assert "small: asks for PT13H, the longest one request may have here is PT12H" in texts
    assert "gpu: does not run jupyter notebooks" in texts


def test_a_gpu_the_platforms_lack_is_a_no_naming_what_they_have(client):
    request = yaml.safe_load((EXAMPLES / "request-gpu.yaml").read_text())
    request["compute"]["accelerators"]["models"] = ["H100"]
    texts = _texts(_no_messages(client, request))
    assert "has 2 x A100 80 GiB (nvidia, compute capability 8)" in texts
    assert "small: does not run python programs" in texts


def test_a_broker_without_platforms_says_so(tmp_path):
    for client in broker_client(tmp_path, platforms=[]):
        texts = _texts(_no_messages(client, docker()))
    assert "This broker has no compute platform configured" in texts


# ------------------------------------------------------------------------- malformed input
MALFORMED = [
    (b"compute: {kind: uri:generic-compute, cores: {min: 0}}", "$.compute.cores.min", ">= 1"),
    (b"compute: {kind: uri:generic-compute, cores: {min: many}}", "$.compute.cores.min", "got str"),
    (b"compute: {kind: uri:generic-compute, cpus: 2}", "$.compute.cpus", "unknown field"),
    (b"schedule: {requested: {duration: P1M}}", "$.schedule.requested.duration", "fixed length"),
    (b"schedule: {requested: {start: 2026-09-01T25:00:00Z}}", "$.schedule.requested.start", "ISO"),
    (b"schedule: {requested: {start: PT1H/PT2H}}", "$.schedule.requested.start", "two durations"),
    (b"compute: [", "$", "invalid YAML"),
    (b"- a\n- b", "$", "expected a mapping"),
    (b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%c: &%c [" % (ord("b") + i, ord("b") + i) + b", ".join([b"*%c" % (ord("a") + i)] * 10)
        + b"]\n" for i in range(8)), "$", "expands to more than"),
    (b"[" * 5000 + b"]" * 5000, "$", "nested more than"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "reason"), MALFORMED)
def test_malformed_bodies_are_400_naming_the_json_path_and_reason(client, body, field, reason):
    response = post_request(client, body, Media.YAML, accept="application/json")
    assert response.status_code == 400
    answer = response.json()
    assert answer["kind"] == model.ERROR_RESPONSE_KIND
    assert answer["status"] == 400
    [message] = answer["meta"]["messages"]
    assert message["values"]["path"] == field
    assert reason in message["values"]["reason"]
    assert message["message"] == f"{field}: {message['values']['reason']}"


def test_malformed_json_is_a_400_too(client):
    response = post_request(client, b'{"compute": {"kind": ', Media.JSON)
    assert response.status_code == 400
    assert "invalid JSON" in response.json()["meta"]["messages"][0]["message"]


def test_errors_are_answered_in_yaml_by_default(client):
    response = client.post(
        "/broker/requests", content=b"compute: {kind: uri:generic-compute, x: 1}"
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/yaml")
    error = codec.decode_document(response.content, Media.YAML, model.ErrorResponse).value
    assert error.meta.messages[0].values["path"] == "$.compute.x"


def test_a_ten_megabyte_body_is_413_not_a_crash(client):
    body = b"x: " + b"a" * (10 * 1024 * 1024)
    response = post_request(client, body, Media.YAML, accept="application/json")
    assert response.status_code == 413
    assert response.json()["kind"] == model.ERROR_RESPONSE_KIND


def test_a_ten_megabyte_body_without_content_length_is_413_too(client):
    def chunks() -> Iterator[bytes]:
        yield b"x: "
        for _ in range(10):
            yield b"a" * (1024 * 1024)

    response = client.post(
        "/broker/requests",
        content=chunks(),
        headers={"content-type": "application/yaml", "accept": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


def test_an_xml_body_is_415_naming_what_is_supported(client):
    response = post_request(
        client, b"<request/>", Media.JSON, **{"content-type": "application/xml"}
    )
    assert response.status_code == 415
    [message] = response.json()["meta"]["messages"]
    assert message["values"]["path"] == "Content-Type"
    assert "application/yaml" in message["values"]["reason"]
