"""What a client is told when an update is refused, and the phases a session's parts show."""

from datetime import timedelta
from pathlib import Path
from typing import Any

from core.clock import ManualClock
from tests.api.test_broker_lifecycle import accepted, client_for
from tests.api.test_broker_requests import NOW, docker, offerset_of, post_request
from tests.api.test_broker_sessions import ACCEPT, CANCEL, REJECT, update


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
