"""Sessions driven by the work queue over HTTP: accept, run to the end, fail, cancel, restart."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from broker import model
from core.clock import ManualClock
from core.settings import settings_from_mapping
from tests.api.test_broker_requests import NOW, docker, offerset_of, post_request
from tests.api.test_broker_sessions import ACCEPT, CANCEL, REJECT, session_of, update
from voexec.app import create_app
from voexec.wiring import build_services

P = model.SessionPhase


def platform(**simulated: Any) -> dict[str, Any]:
    return {
        "name": "sim",
        "capacity": {"cores": 8, "memory": 32},
        "executables": ["docker-container"],
        "preparation": "PT1M",
        "simulated": {"prepare": "PT10S", "release": "PT5S", **simulated},
    }


def client_for(tmp_path: Path, clock: ManualClock, **simulated: Any) -> Iterator[Any]:
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {"platforms": [platform(**simulated)]},
        }
    )
    services = build_services(settings, clock=clock)
    with TestClient(create_app(settings, services)) as client:
        yield client, services.components["broker"]


def accepted(client: TestClient) -> str:
    request = docker(cores=2, start="2026-09-01T09:00:00Z", duration="PT1H")
    offers = offerset_of(post_request(client, request)).offers
    urls = [offer.meta.url for offer in offers]  # type: ignore[union-attr]
    assert session_of(update(client, urls[0], ACCEPT)).phase is P.ACCEPTED
    for sibling in urls[1:]:
        assert session_of(client.get(sibling)).phase is P.REJECTED
    return urls[0]


def test_an_accepted_session_walks_every_phase_to_completed(tmp_path):
    clock = ManualClock(NOW)
    for client, broker in client_for(tmp_path, clock):
        url = accepted(client)
        broker.tick()
        assert session_of(client.get(url)).phase is P.WAITING
        clock.set(NOW + timedelta(minutes=59, seconds=15))  # prepared 08:59 + 10 s
        broker.tick()
        assert session_of(client.get(url)).phase is P.AVAILABLE
        clock.set(NOW + timedelta(hours=1, minutes=30))
        broker.tick()
        assert session_of(client.get(url)).phase is P.RUNNING
        clock.set(NOW + timedelta(hours=2, minutes=1))
        broker.tick()
        assert session_of(client.get(url)).phase is P.COMPLETED


def test_a_session_that_fails_in_preparing_is_failed_with_a_message(tmp_path):
    clock = ManualClock(NOW)
    for client, broker in client_for(tmp_path, clock, fail_in="PREPARING"):
        url = accepted(client)
        clock.set(NOW + timedelta(hours=1))
        broker.tick()
        session = session_of(client.get(url))
        assert session.phase is P.FAILED
        assert session.meta is not None
        errors = [m.message or "" for m in session.meta.messages if m.level.value == "ERROR"]
        assert any("failed while preparing" in text for text in errors)


def test_cancel_while_running_stops_the_work(tmp_path):
    clock = ManualClock(NOW)
    for client, broker in client_for(tmp_path, clock):
        url = accepted(client)
        clock.set(NOW + timedelta(hours=1, minutes=10))
        broker.tick()
        assert session_of(client.get(url)).phase is P.RUNNING
        assert session_of(update(client, url, CANCEL)).phase is P.CANCELLED
        clock.set(NOW + timedelta(hours=3))
        broker.tick()
        assert session_of(client.get(url)).phase is P.CANCELLED


@pytest.mark.parametrize("unused", [REJECT])
def test_rejected_offers_stay_rejected_after_ticks(tmp_path, unused):
    clock = ManualClock(NOW)
    for client, broker in client_for(tmp_path, clock):
        request = docker(cores=2, start="2026-09-01T09:00:00Z", duration="PT1H")
        url = offerset_of(post_request(client, request)).offers[0].meta.url  # type: ignore[union-attr]
        update(client, url, unused)
        clock.set(NOW + timedelta(hours=3))
        broker.tick()
        assert session_of(client.get(url)).phase is P.REJECTED
