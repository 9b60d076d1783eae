"""Every write route against every kind of caller: the owner, another identity, an operator,
an anonymous caller, and OpenID Connect JWTs that are expired, from a wrong issuer or audience,
or signed by a rotated key.

One app with named tokens and an OpenID Connect provider (a local JWKS server); rate limits are
off here (tests/conftest.py) and have their own tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from core.settings import settings_from_mapping
from tests.auth_support import named
from tests.catalogue_support import app_settings, executable
from tests.oidc_support import JwksServer, jwks_server
from voexec.app import create_app

ALICE = "alice-packager-token-long-enough-for-voexec"
BOB = "bob-packager-token-long-enough-for-voexec-too"
RITA = "rita-researcher-token-long-enough-for-voexec"
OLGA = "olga-operator-token-long-enough-for-voexec-too"
JSON = {"content-type": "application/json", "accept": "application/json"}


@pytest.fixture(scope="module")
def provider() -> Iterator[JwksServer]:
    with jwks_server() as server:
        yield server


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, provider: JwksServer
) -> Iterator[TestClient[Any]]:
    base = msgspec.to_builtins(app_settings(tmp_path_factory.mktemp("who") / "var", demo=True))
    base["auth"] = {
        "tokens": [
            named("alice", ALICE, "packager"),
            named("bob", BOB, "packager"),
            named("rita", RITA, "researcher"),
            named("olga", OLGA, "operator"),
        ],
        "oidc": provider.settings(
            role_claim="groups",
            roles={"astro-packagers": "packager", "astro-ops": "operator"},
            jwks_refetch_after="PT0S",
        ),
    }
    base["broker"].update(allow_anonymous_runs=False, held_offersets_per_requester=0)
    with TestClient(create_app(settings_from_mapping(base))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def publish(client: TestClient[Any], token: str | None, name: str) -> Any:
    headers = {**JSON, **(bearer(token) if token else {})}
    return client.post("/catalogue/executables", json=executable(name=name), headers=headers)


def published_id(answer: Any) -> str:
    assert answer.status_code in {200, 201}, answer.text
    return str(answer.json()["entries"][0]["id"])


# ----------------------------------------------------------------------------- publishing
def test_publishing_needs_a_packager(client, provider):
    assert publish(client, None, "tool-anon").status_code == 401
    assert publish(client, RITA, "tool-rita").status_code == 403
    assert publish(client, ALICE, "tool-alice").status_code == 201
    assert publish(client, OLGA, "tool-olga").status_code == 201
    jwt = provider.token(sub="paula", groups=["astro-packagers"])
    assert publish(client, jwt, "tool-paula").status_code == 201
    assert publish(client, provider.token(sub="stud"), "tool-stud").status_code == 403


def test_each_packager_publishes_in_its_own_namespace(client):
    mine = published_id(publish(client, ALICE, "shared-name"))
    theirs = published_id(publish(client, BOB, "shared-name"))
    assert mine != theirs  # bob's document never becomes a version of alice's entry
    again = publish(client, ALICE, "shared-name")
    assert again.status_code == 200  # alice's own entry, unchanged
    assert published_id(again) == mine


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("other", 403), ("operator", 200), ("anonymous", 401), ("researcher", 403)],
)
def test_withdrawing_is_for_the_owner_or_an_operator(client, who, status):
    entry = published_id(publish(client, ALICE, f"withdraw-{who}"))
    token = {"owner": ALICE, "other": BOB, "operator": OLGA, "researcher": RITA}.get(who)
    answer = client.delete(
        f"/catalogue/executables/{entry}", headers=bearer(token) if token else {}
    )
    assert answer.status_code == status, answer.text
    withdrawn = client.get(f"/catalogue/executables/{entry}").json()["withdrawn"]
    assert withdrawn == (status == 200)


@pytest.mark.parametrize("problem", ["expired", "wrong issuer", "wrong audience", "unknown key"])
def test_a_bad_jwt_never_publishes(client, provider, problem):
    past = int(time.time()) - 3600
    claims = {
        "expired": {"iat": past - 60, "exp": past},
        "wrong issuer": {"iss": "https://elsewhere.example.org"},
        "wrong audience": {"aud": "another-service"},
        "unknown key": {},
    }[problem]
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "never-published"})
    token = provider.token(
        groups=["astro-packagers"], key=key if problem == "unknown key" else None, **claims
    )
    answer = publish(client, token, f"bad-{problem.replace(' ', '-')}")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_rotated_key_keeps_working(client, provider):
    before = provider.token(sub="paula", groups=["astro-packagers"])
    assert publish(client, before, "rotation-before").status_code == 201
    provider.rotate()
    after = provider.token(sub="paula", groups=["astro-packagers"])
    assert publish(client, after, "rotation-after").status_code == 201
    # The old key is gone from the provider's set: tokens it signed stop working.
    assert publish(client, before, "rotation-old").status_code == 401
