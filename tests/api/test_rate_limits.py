"""Rate limits over HTTP: sign-in, offer requests (API, hand-off, pages) and publishing floods
get 429 with `Retry-After` past the configured rate, per identity (per address when anonymous)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from core.settings import settings_from_mapping
from tests.api.test_broker_requests import docker
from tests.auth_support import PUBLISH_TOKEN, named
from tests.catalogue_support import app_settings, executable
from voexec.app import create_app

pytestmark = pytest.mark.usefixtures("rate_limits")

ALICE = "alice-token-long-enough-for-voexec-to-take"
BOB = "bob-token-long-enough-for-voexec-to-take-too"
LIMITS = {
    "offers": {"requests": 3, "per": "PT1H"},
    "sign_in": {"requests": 5, "per": "PT1H"},
    "publish": {"requests": 2, "per": "PT1H"},
}
FORM = {"cores": "2", "memory": "4", "gpus": "0", "duration": "1", "unit": "h", "data": ""}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    base = msgspec.to_builtins(app_settings(tmp_path / "var", demo=True))
    base["auth"] = {
        "tokens": [
            named("publisher", PUBLISH_TOKEN, "packager"),
            named("alice", ALICE),
            named("bob", BOB),
        ],
        "limits": LIMITS,
    }
    base["broker"].update(allow_anonymous_runs=False, held_offersets_per_requester=0)
    with TestClient(create_app(settings_from_mapping(base))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def ask(client: TestClient[Any], token: str) -> Any:
    return client.post(
        "/broker/requests",
        json=docker(),
        headers={"accept": "application/json", **bearer(token)},
        follow_redirects=False,
    )


def entry(client: TestClient[Any]) -> str:
    hits = client.get("/catalogue/search", params={"q": "aoflagger"}).json()["hits"]
    return str(hits[0]["id"])


def test_a_sign_in_flood_gets_429_after_the_configured_attempts(client):
    answers = [
        client.post("/sign-in", data={"token": f"guess-{n}" * 6}, follow_redirects=False)
        for n in range(6)
    ]
    assert [a.status_code for a in answers] == [401] * 5 + [429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert "Too many attempts" in answers[-1].text
    # Even the right token waits: the bucket counts attempts, not failures.
    right = client.post("/sign-in", data={"token": ALICE}, follow_redirects=False)
    assert right.status_code == 429


def test_an_offer_request_flood_gets_429_per_identity(client):
    assert [ask(client, ALICE).status_code for _ in range(3)] == [303, 303, 303]
    refused = ask(client, ALICE)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 1200
    message = refused.json()["meta"]["messages"][0]
    assert "too many offer requests: at most 3 every 1 h" in message["values"]["reason"]
    assert ask(client, BOB).status_code == 303  # another identity has its own bucket


def test_the_hand_off_and_the_pages_draw_on_the_same_offer_bucket(client):
    for _ in range(2):
        assert ask(client, ALICE).status_code == 303
    handed = client.post(
        f"/catalogue/executables/{entry(client)}/offers",
        json={},
        headers=bearer(ALICE),
        follow_redirects=False,
    )
    assert handed.status_code == 303
    again = client.post(
        f"/catalogue/executables/{entry(client)}/offers", json={}, headers=bearer(ALICE)
    )
    assert again.status_code == 429
    assert "retry-after" in again.headers
    page = client.post(f"/executables/{entry(client)}/offers", data=FORM, headers=bearer(ALICE))
    assert page.status_code == 429


def test_a_publishing_flood_gets_429(client):
    headers = {**bearer(PUBLISH_TOKEN), "content-type": "application/json"}
    codes = [
        client.post(
            "/catalogue/executables", json=executable(name=f"flood-{n}"), headers=headers
        ).status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 429]
