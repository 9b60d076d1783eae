"""Federation between two real voexec processes: A forwards to B over HTTP.

Each broker is `voexec serve` in a subprocess on its own free port, with its own data
directory (`tests/live_server.py`'s way of starting it, with ports chosen first so that each
can name the other). B runs a simulated platform; A's only platform is `far`, which is B.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import free_port, live_voexec

pytestmark = pytest.mark.slow

K = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
WAIT = 60.0


@contextmanager
def broker(folder: Path, port: int, platforms: list[dict[str, Any]]) -> Iterator[str]:
    """`voexec serve` on `port` with these platforms; yields its base URL."""
    folder.mkdir()
    settings = {"broker": {"held_offersets_per_requester": 0, "platforms": platforms}}
    with live_voexec(folder, settings, demo=False, port=port) as url:
        yield url


def simulated(name: str = "near") -> dict[str, Any]:
    return {
        "name": name,
        "adapter": "simulated",
        "capacity": {"cores": 16, "memory": 64},
        "preparation": "PT1S",
        "simulated": {"prepare": "PT1S", "release": "PT1S", "run": "PT3S"},
    }


def remote(url: str, name: str = "far", timeout: str = "PT3S") -> dict[str, Any]:
    return {
        "name": name,
        "adapter": "remote",
        "capacity": {"cores": 16, "memory": 64},
        "preparation": "PT1S",
        "remote": {"url": url + "/broker", "timeout": timeout, "poll": "PT1S", "poll_max": "PT2S"},
    }


def request() -> dict[str, Any]:
    return {
        "executable": {
            "kind": f"{K}/executable/docker-container.yaml",
            "image": {"locations": ["ghcr.io/example/checksum:1.0"]},
        },
        "compute": {
            "kind": f"{K}/compute/simple-compute-resource.yaml",
            "cores": {"min": 2, "max": 4},
            "memory": {"min": 2, "max": 4},
        },
        "schedule": {"requested": {"duration": "PT20S"}},
    }


def ask(base: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    answer = httpx.post(f"{base}/broker/requests", json=body or request(), headers=JSON, timeout=30)
    assert answer.status_code == 303, answer.text
    document: dict[str, Any] = answer.json()
    return document


def messages(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document.get("meta", {}).get("messages", [])
    return found


def remote_url(offer: Mapping[str, Any]) -> str:
    (url,) = [
        m["values"]["url"] for m in messages(offer) if m["kind"] == "urn:voexec:remote-session"
    ]
    return str(url)


def phase_of(url: str) -> str:
    answer = httpx.get(url, headers=JSON, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["phase"])


def update(url: str, phase: str) -> httpx.Response:
    body = {"kind": "uri:enum-value-update", "path": "phase", "value": phase}
    return httpx.post(url, json=body, headers=JSON, timeout=30)


def wait_for_phase(url: str, wanted: set[str]) -> str:
    deadline = time.monotonic() + WAIT
    phase = phase_of(url)
    while phase not in wanted and time.monotonic() < deadline:
        time.sleep(0.2)  # between polls of a condition with a deadline
        phase = phase_of(url)
    assert phase in wanted, f"{url} is {phase}, not {wanted} after {WAIT:g} s"
    return phase


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A (whose platform is B) and B (a simulated platform)."""
    port_b = free_port()
    url_b = f"http://127.0.0.1:{port_b}"
    with (
        broker(tmp_path / "b", port_b, [simulated()]),
        broker(tmp_path / "a", free_port(), [remote(url_b)]) as a,
    ):
        yield a, url_b


def test_offers_come_from_b_and_accepting_on_a_accepts_on_b(pair):
    a, b = pair
    offerset = ask(a)
    assert offerset["result"] == "YES", messages(offerset)
    offers = offerset["offers"]
    assert len(offers) >= 2
    there = [remote_url(offer) for offer in offers]
    assert all(url.startswith(f"{b}/broker/sessions/") for url in there)
    for offer, url in zip(offers, there, strict=True):
        theirs = httpx.get(url, headers=JSON, timeout=10).json()
        assert phase_of(url) == "OFFERED"
        assert offer["expires"] <= theirs["expires"]  # never holds longer than B does
        assert offer["schedule"]["available"] == theirs["schedule"]["available"]
        assert offer["compute"]["cores"] == theirs["compute"]["cores"]
    accepted = update(offers[0]["meta"]["url"], "ACCEPTED")
    assert accepted.status_code == 200, accepted.text
    assert phase_of(there[0]) not in {"OFFERED", "REJECTED", "EXPIRED"}
    for sibling_here, sibling_there in zip(offers[1:], there[1:], strict=True):
        assert phase_of(sibling_here["meta"]["url"]) == "REJECTED"
        assert phase_of(sibling_there) == "REJECTED"  # released on B
    # Phases follow B's, to the end.
    assert wait_for_phase(offers[0]["meta"]["url"], {"COMPLETED", "FAILED"}) == "COMPLETED"
    assert phase_of(there[0]) == "COMPLETED"


def test_cancelling_on_a_cancels_on_b(pair):
    a, _ = pair
    offer = ask(a)["offers"][0]
    here, there = offer["meta"]["url"], remote_url(offer)
    assert update(here, "ACCEPTED").status_code == 200
    cancelled = update(here, "CANCELLED")
    assert cancelled.status_code == 200, cancelled.text
    assert phase_of(here) == "CANCELLED"
    assert phase_of(there) == "CANCELLED"


def test_rejecting_on_a_rejects_on_b(pair):
    a, _ = pair
    offer = ask(a)["offers"][0]
    assert update(offer["meta"]["url"], "REJECTED").status_code == 200
    assert phase_of(remote_url(offer)) == "REJECTED"


def test_an_accept_b_refuses_is_refused_on_a_and_books_nothing(pair):
    a, _ = pair
    offer = ask(a)["offers"][0]
    here, there = offer["meta"]["url"], remote_url(offer)
    assert update(there, "REJECTED").status_code == 200  # behind A's back
    refused = update(here, "ACCEPTED")
    assert refused.status_code == 409
    assert "far did not accept the offer" in refused.text
    assert phase_of(here) == "OFFERED"


def test_with_b_stopped_a_answers_within_the_timeout_naming_b(tmp_path):
    port_b = free_port()  # nobody listens there
    with broker(tmp_path / "a", free_port(), [remote(f"http://127.0.0.1:{port_b}")]) as a:
        began = time.monotonic()
        offerset = ask(a)
        assert time.monotonic() - began < 3 + 2
    assert offerset["result"] == "NO"
    texts = [m["message"] for m in messages(offerset)]
    assert any(f"far (http://127.0.0.1:{port_b}/broker) could not be reached" in t for t in texts)


def test_a_broker_that_never_answers_costs_only_its_timeout(tmp_path):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        platforms = [simulated("here"), remote(f"http://127.0.0.1:{port}", timeout="PT2S")]
        with broker(tmp_path / "a", free_port(), platforms) as a:
            began = time.monotonic()
            offerset = ask(a)
            took = time.monotonic() - began
    assert took < 2 + 2.5
    assert offerset["result"] == "YES"  # its own platform still offers
    texts = [m["message"] for m in messages(offerset)]
    assert any("did not answer within 2 s" in t for t in texts), texts


def test_a_to_b_to_a_does_not_loop(tmp_path):
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    with (
        broker(tmp_path / "b", port_b, [simulated("at-b"), remote(url_a, name="to-a")]),
        broker(tmp_path / "a", port_a, [simulated("at-a"), remote(url_b, name="to-b")]),
    ):
        offerset = ask(url_a)
        assert offerset["result"] == "YES"
        # A's own offers, and B's own offers through B; B asked A, and A refused to answer again.
        names = {
            m["values"].get("platform")
            for offer in offerset["offers"]
            for m in messages(offer)
            if m["kind"] == "urn:voexec:offer-platform"
        }
        assert names == {"at-a", "to-b"}
        remote_offers = [o for o in offerset["offers"] if "urn:voexec:remote-session" in str(o)]
        assert remote_offers
        for offer in remote_offers:
            theirs = httpx.get(remote_url(offer), headers=JSON, timeout=10).json()
            assert "urn:voexec:remote-session" not in str(theirs)  # B's own platform only
            assert theirs["phase"] == "OFFERED"
