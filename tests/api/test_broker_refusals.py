"""What a client is told when an update or a request is refused; the phases of its parts."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from core.clock import ManualClock
from tests.api.test_broker_lifecycle import accepted, client_for
from tests.api.test_broker_requests import (
    NOW,
    broker_client,
    docker,
    offerset_of,
    post_request,
)
from tests.api.test_broker_sessions import ACCEPT, CANCEL, REJECT, update
from tests.conftest import ROOT
from voexec.ui.broker_views import offer_set_view


def refusal(response: Any) -> str:
    assert response.status_code == 409, response.text
    (message,) = response.json()["meta"]["messages"]
    assert message["kind"] == "urn:voexec:illegal-update"
    return str(message["message"])


def offer_urls(client: Any) -> list[str]:
    request = docker(cores=2, start="2026-09-01T09:00:00Z", duration="PT1H")
    return [offer.meta.url for offer in offerset_of(post_request(client, request)).offers]  # type: ignore[union-attr]


def test_accepting_a_sibling_of_an_accepted_offer_says_another_offer_was_accepted(tmp_path: Path):
    for client, _ in client_for(tmp_path, ManualClock(NOW)):
        first, second = offer_urls(client)[:2]
        assert update(client, first, ACCEPT).status_code == 200
        text = refusal(update(client, second, ACCEPT))
        assert "another offer of this set was accepted at 2026-09-01T08:00:00Z" in text


def test_rejecting_twice_and_cancelling_twice_say_it_was_already_done(tmp_path: Path):
    clock = ManualClock(NOW)
    for client, _ in client_for(tmp_path, clock):
        offer = offer_urls(client)[0]
        assert update(client, offer, REJECT).status_code == 200
        assert "this offer was already rejected" in refusal(update(client, offer, REJECT))
        url = accepted(client)
        clock.set(NOW + timedelta(minutes=3))
        assert update(client, url, CANCEL).status_code == 200
        assert "already cancelled at 2026-09-01T08:03:00Z" in refusal(update(client, url, CANCEL))


def test_accepting_an_expired_offer_says_when_it_expired(tmp_path: Path):
    clock = ManualClock(NOW)
    for client, _ in client_for(tmp_path, clock):
        offer = offer_urls(client)[0]
        expires = client.get(offer, headers={"accept": "application/json"}).json()["expires"]
        clock.set(NOW + timedelta(hours=1))
        text = refusal(update(client, offer, ACCEPT))
        assert f"this offer expired at {expires}" in text


def _component_phases(client: Any, url: str) -> dict[str, str]:
    document = client.get(url, headers={"accept": "application/json"}).json()
    return {name: document[name]["phase"] for name in ("executable", "compute")}


def test_components_follow_the_session_through_its_phases(tmp_path: Path):
    clock = ManualClock(NOW)
    for client, broker in client_for(tmp_path, clock):
        url = accepted(client)
        assert set(_component_phases(client, url).values()) == {"INITIALIZING"}
        steps = [
            (NOW, "WAITING"),
            (NOW + timedelta(minutes=59, seconds=15), "AVAILABLE"),
            (NOW + timedelta(hours=1, minutes=30), "RUNNING"),
            (NOW + timedelta(hours=2, minutes=1), "COMPLETED"),
        ]
        for instant, phase in steps:
            clock.set(instant)
            broker.tick()
            document = client.get(url, headers={"accept": "application/json"}).json()
            assert document["phase"] == phase
            assert _component_phases(client, url) == {"executable": phase, "compute": phase}


def _gpu_request(client: Any) -> Any:
    gpu = yaml.safe_load((ROOT / "docs/examples/request-gpu.yaml").read_text(encoding="utf-8"))
    gpu["schedule"] = {"requested": {"start": "2026-09-01T10:00:00Z/PT1H", "duration": "PT4H"}}
    return client.post(
        "/broker/requests",
        content=json.dumps(gpu),
        headers={"content-type": "application/json", "accept": "application/json"},
    ).json()


def test_a_no_for_want_of_gpus_advises_fewer_gpus_not_fewer_cores(tmp_path: Path):
    for client in broker_client(tmp_path):
        # The gpu platform has two A100s; two sessions of one each take them for the window.
        for _ in range(2):
            answer = _gpu_request(client)
            assert answer["result"] == "YES"
            update(client, answer["offers"][0]["meta"]["url"], ACCEPT)
        answer = _gpu_request(client)
        assert answer["result"] == "NO"
        (short,) = [m for m in answer["meta"]["messages"] if m["kind"] == "urn:voexec:no-capacity"]
        assert short["values"]["short"] == "gpus"
        advice = offer_set_view(answer).advice
        assert "fewer GPUs" in advice
        assert "cores" not in advice
        assert "memory" not in advice


def test_a_no_for_want_of_cores_advises_fewer_cores(tmp_path: Path):
    for client in broker_client(tmp_path):
        answer = post_request(client, docker(cores=100)).json()
        assert answer["result"] == "NO"
        assert offer_set_view(answer).advice.startswith("fewer cores")
