"""Every request form shown in the IVOA Execution Broker talks (2023-2025) gets YES offers.

The forms are in `tests/data/historic/` (copies of `../shared/spec/historic/`, which the last
test compares when it is there). Each is POSTed as written (YAML) and as JSON, and the answer
must be a YES offer set in the newest form: kind URIs of schema v1.0, `meta.name` for names,
one compute resource, the requested minimums offered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
import pytest
import yaml
from litestar.testing import TestClient

from broker import model
from broker.model import codec
from broker.model.codec import Media
from core.clock import ManualClock
from core.settings import settings_from_mapping
from tests.conftest import shared_path
from voexec.app import create_app
from voexec.wiring import build_services

HISTORIC = Path(__file__).resolve().parents[1] / "data" / "historic"
FORMS = sorted(path.name for path in HISTORIC.glob("*.yaml"))
K = model.KINDS
NOW = datetime(2024, 8, 29, 8, 0, tzinfo=UTC)
"""Before the 2024 prototype's requested start range (10:00-11:00 that day)."""

PLATFORM: dict[str, Any] = {
    "name": "talks",
    "capacity": {"cores": 16, "memory": 64},
    "executables": ["docker-container", "jupyter-notebook", "python-program"],
    "preparation": "PT1M",
}


def _client(tmp_path: Path, platform: dict[str, Any]) -> Iterator[TestClient]:
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {"platforms": [platform]},
        }
    )
    services = build_services(settings, clock=ManualClock(NOW))
    with TestClient(create_app(settings, services)) as client:
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, PLATFORM)


def _post(client: TestClient, name: str, media: Media) -> Any:
    text = (HISTORIC / name).read_bytes()
    body = text if media is Media.YAML else json.dumps(yaml.safe_load(text)).encode()
    return client.post(
        "/broker/requests",
        content=body,
        headers={"content-type": media.value, "accept": media.value},
        follow_redirects=False,
    )


def _offer_set(response: Any) -> model.OfferSetResponse:
    media = codec.media_for_body(response.headers["content-type"])
    return codec.decode_document(response.content, media, model.OfferSetResponse).value


def test_all_seven_forms_are_here():
    assert len(FORMS) == 7


@pytest.mark.parametrize("media", [Media.YAML, Media.JSON], ids=["yaml", "json"])
@pytest.mark.parametrize("name", FORMS)
def test_each_form_gets_yes_offers_in_the_newest_form(client, name, media):
    response = _post(client, name, media)
    assert response.status_code == 303, response.text
    assert response.headers["content-type"].startswith(media.value)
    answer = _offer_set(response)
    messages = [m.message for m in answer.meta.messages] if answer.meta else []
    assert answer.result == "YES", messages
    assert answer.offers
    for offer in answer.offers:
        assert offer.executable is not None
        assert offer.compute is not None
        # the newest kind URIs, whatever the form called them
        assert codec.to_builtins(offer.executable)["kind"].startswith((K, model.EXTENSION_KINDS))
        assert codec.to_builtins(offer.compute)["kind"].startswith(K)
        # nothing of the older forms is echoed (messages aside, which have URN kinds)
        components = json.dumps(
            [
                codec.to_builtins(part)
                for part in (offer.executable, offer.compute, *offer.data, *offer.storage)
            ]
        )
        for older in ("urn:", "uri:", "/rdf/", '"type"', "requested", "offered", '"spec"'):
            assert older not in components, older


def _first_offer(client: TestClient, name: str) -> model.ScheduledExecutionSession:
    response = _post(client, name, Media.YAML)
    assert response.status_code == 303, response.text
    offer = _offer_set(response).offers[0]
    assert isinstance(offer, model.ScheduledExecutionSession)
    return offer


def test_the_prototype_start_range_duration_and_minimums_are_honoured(client):
    offer = _first_offer(client, "2024-08-prototype-notebook.yaml")
    assert isinstance(offer.compute, model.SimpleComputeResource)
    assert offer.compute.cores is not None
    assert offer.compute.cores.min is not None
    assert offer.compute.cores.min >= 4
    assert offer.compute.memory is not None
    assert offer.compute.memory.min is not None
    assert offer.compute.memory.min >= 8
    assert offer.schedule is not None
    assert offer.schedule.available is not None
    available = offer.schedule.available
    assert available.start is not None
    assert datetime(2024, 8, 29, 10, tzinfo=UTC) <= available.start.start
    assert available.start.start <= datetime(2024, 8, 29, 11, tzinfo=UTC)
    assert available.duration is not None
    assert available.duration.total_seconds() == 4 * 3600


def test_the_prototype_volume_mounts_its_named_data(client):
    offer = _first_offer(client, "2024-08-prototype-data.yaml")
    assert offer.compute is not None
    assert offer.compute.meta is not None
    assert offer.compute.meta.name == "Compute 001"
    [volume] = offer.compute.volumes
    assert (volume.path, volume.resource) == ("/my-data", "Resource 001")
    [data] = offer.data
    assert isinstance(data, model.SimpleDataResource)
    assert data.meta is not None
    assert data.meta.name == "Resource 001"
    assert data.location == "http://data.example.org/downloads/data-001"


def test_the_packagers_image_is_offered_with_its_location_and_digest(client):
    offer = _first_offer(client, "2024-12-packager-docker.yaml")
    assert isinstance(offer.executable, model.DockerContainer)
    assert offer.executable.meta is not None
    assert offer.executable.meta.name == "Newton Rahpson tool"
    assert offer.executable.image == model.DockerImageSpec(
        locations=["example.org/ivoa/analytics/Newton-Rahpson-example:2024.12.02"],
        digest="sha256:ac1b5e0c2d7f4a9b8e6c3d2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4ffc70",
    )


def test_the_developers_requirements_are_offered_as_constraint_and_packages(client):
    offer = _first_offer(client, "2024-12-developer-python.yaml")
    assert isinstance(offer.executable, model.PythonProgram)
    assert offer.executable.python_version == ">3.10"
    assert offer.executable.requirements == ["numpy>2.1.1"]


def test_the_2025_answer_shape_carries_requested_and_offered_in_the_newest_form(client):
    """The talk's answer put `requested` and `offered` side by side. In schema v1.0 the request
    holds what was asked and each offer holds what is offered (min = max): POSTing the talk's
    answer back asks again for what it requested, and our offer carries at least that."""
    shown = yaml.safe_load((HISTORIC / "2025-02-response-notebook.yaml").read_text())
    compute = shown["resources"]["compute"][0]
    offer = _first_offer(client, "2025-02-response-notebook.yaml")
    assert isinstance(offer.compute, model.SimpleComputeResource)
    assert offer.compute.cores is not None
    assert offer.compute.memory is not None
    cores, memory = offer.compute.cores, offer.compute.memory
    assert cores.min is not None
    assert memory.min is not None
    assert cores.min >= compute["cores"]["requested"]["min"]
    assert memory.min >= compute["memory"]["requested"]["min"]
    assert (cores.max, memory.max) == (cores.min, memory.min)


def test_the_copies_are_the_forms_of_the_shared_folder():
    shared = shared_path("spec", "historic")
    assert sorted(path.name for path in shared.glob("*.yaml")) == FORMS
    for name in FORMS:
        assert (HISTORIC / name).read_bytes() == (shared / name).read_bytes(), name


@pytest.mark.parametrize(("python", "result"), [("3.11.9", "YES"), ("3.9.18", "NO")])
def test_the_developers_python_constraint_is_met_or_named_in_the_no(tmp_path, python, result):
    platform = {**PLATFORM, "simulated": {"python_version": python}}
    for client in _client(tmp_path, platform):
        answer = _offer_set(_post(client, "2024-12-developer-python.yaml", Media.JSON))
        assert answer.result == result
        if result == "NO":
            assert answer.meta is not None
            texts = [m.message or "" for m in answer.meta.messages]
            assert any("Python 3.9.18" in t and ">3.10" in t for t in texts), texts


def test_the_local_platform_installs_the_developers_packages_in_the_sessions_environment():
    from broker.platforms.port import SessionPlan
    from broker.platforms.recipe import Layout, Tools, prepare_script, refusals

    document = yaml.safe_load((HISTORIC / "2024-12-developer-python.yaml").read_text())
    request = codec.convert(document, model.ExecutionRequest).value
    program = request.executable
    assert isinstance(program, model.PythonProgram)
    tools = Tools(python="/usr/bin/python3", python_version="3.12.3")
    # the talk's metadata names no program location: a platform that runs it for real says so
    assert refusals(program, tools) == ["needs the program's location to fetch it from"]
    assert refusals(program, Tools(python="python3", python_version="3.9.18")) == [
        "runs Python 3.9.18, not Python >3.10 as the program asks",
        "needs the program's location to fetch it from",
    ]
    located = msgspec.structs.replace(program, location="https://example.org/fit.py")
    plan = SessionPlan(
        session_id="s1",
        executable=located,
        cores=1,
        memory=1.0,
        gpus=0,
        start=NOW,
        end=NOW,
    )
    script = prepare_script(plan, tools, Layout(PurePosixPath("/work/s1")))
    assert "/usr/bin/python3 -m venv venv\n" in script
    assert "venv/bin/python -m pip install" in script
    assert "'numpy>2.1.1'" in script
