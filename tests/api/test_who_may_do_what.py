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


# ----------------------------------------------------------------------------- broker writes
def docker_request() -> dict[str, Any]:
    return {
        "executable": {
            "kind": "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/"
            "executable/docker-container.yaml",
            "image": {"locations": ["registry.example.org/tool:1.0"]},
        }
    }


def ask(client: TestClient[Any], token: str | None, path: str = "/broker/requests") -> Any:
    headers = {**JSON, **(bearer(token) if token else {})}
    return client.post(path, json=docker_request(), headers=headers, follow_redirects=False)


def offer_ids(answer: Any) -> list[str]:
    assert answer.status_code == 303, answer.text
    return [offer["meta"]["uuid"] for offer in answer.json()["offers"]]


AFTER_AN_ACCEPT = {"ACCEPTED", "WAITING", "PREPARING", "AVAILABLE", "RUNNING", "COMPLETED"}
"""Where an accepted session can be by the next read: its work starts at once."""


def update(client: TestClient[Any], session: str, token: str | None, phase: str) -> Any:
    body = {"kind": "uri:enum-value-update", "path": "phase", "value": phase}
    headers = {**JSON, **(bearer(token) if token else {})}
    return client.post(f"/broker/sessions/{session}", json=body, headers=headers)


def bad_jwt(provider: JwksServer, problem: str) -> str:
    past = int(time.time()) - 3600
    claims = {
        "expired": {"iat": past - 60, "exp": past},
        "wrong issuer": {"iss": "https://elsewhere.example.org"},
        "wrong audience": {"aud": "another-service"},
    }[problem]
    return provider.token(sub="researcher-7", **claims)


@pytest.mark.parametrize("path", ["/broker/requests", "/broker/offersets", "/broker/direct"])
def test_asking_needs_an_identity_that_may_run(client, provider, path):
    assert ask(client, None, path).status_code == 401
    assert ask(client, "x" * 40, path).status_code == 403
    for problem in ("expired", "wrong issuer", "wrong audience"):
        refused = ask(client, bad_jwt(provider, problem), path)
        assert refused.status_code == 401, problem
        assert refused.headers["www-authenticate"] == "Bearer"
    for token in (RITA, ALICE, OLGA, provider.token(sub="researcher-7")):
        assert ask(client, token, path).status_code == 303


@pytest.mark.parametrize("phase", ["ACCEPTED", "REJECTED"])
@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("owner", 200),
        ("other", 403),
        ("operator", 200),
        ("anonymous", 401),
        ("expired", 401),
        ("wrong issuer", 401),
        ("wrong audience", 401),
    ],
)
def test_only_the_owner_or_an_operator_changes_an_offer(client, provider, who, status, phase):
    offer = offer_ids(ask(client, RITA))[0]
    named_tokens = {"owner": RITA, "other": BOB, "operator": OLGA, "anonymous": None}
    token = named_tokens[who] if who in named_tokens else bad_jwt(provider, who)
    answer = update(client, offer, token, phase)
    assert answer.status_code == status, answer.text
    now = client.get(f"/broker/sessions/{offer}", headers=JSON).json()["phase"]
    if status != 200:
        assert now == "OFFERED"
        return
    assert answer.json()["phase"] == phase
    # An accepted session's work starts at once (the work queue is woken), so by the read it
    # may have gone on; it never goes back to OFFERED.
    assert now == phase if phase == "REJECTED" else now in AFTER_AN_ACCEPT


def test_a_jwt_owner_keeps_its_sessions_across_a_key_rotation(client, provider):
    offer = offer_ids(ask(client, provider.token(sub="ruth")))[0]
    assert update(client, offer, provider.token(sub="someone-else"), "ACCEPTED").status_code == 403
    provider.rotate()
    assert update(client, offer, provider.token(sub="ruth"), "ACCEPTED").status_code == 200
    assert update(client, offer, RITA, "CANCELLED").status_code == 403  # a named token is not ruth
    assert update(client, offer, provider.token(sub="ruth"), "CANCELLED").status_code == 200


def test_a_direct_run_belongs_to_whoever_asked(client):
    made = ask(client, RITA, "/broker/direct")
    assert made.status_code == 303, made.text
    session = made.json()["meta"]["uuid"]
    assert update(client, session, BOB, "CANCELLED").status_code == 403
    assert update(client, session, RITA, "CANCELLED").status_code == 200


def test_an_unknown_session_is_404_before_any_owner_check(client):
    missing = "00000000-0000-4000-8000-000000000000"
    assert update(client, missing, BOB, "ACCEPTED").status_code == 404


def test_reads_stay_open_by_default(client):
    offer = offer_ids(ask(client, RITA))[0]
    assert client.get(f"/broker/sessions/{offer}", headers=JSON).status_code == 200


# ----------------------------------------------------------------------------- hand-off, pages
def test_the_catalogue_hand_off_records_the_owner(client):
    entry = client.get("/catalogue/search", params={"q": "aoflagger"}).json()["hits"][0]["id"]
    handed = client.post(
        f"/catalogue/executables/{entry}/offers",
        json={},
        headers=bearer(RITA),
        follow_redirects=False,
    )
    assert handed.status_code == 303, handed.text
    offer = handed.json()["offers"][0]["meta"]["uuid"]
    assert update(client, offer, BOB, "ACCEPTED").status_code == 403
    assert update(client, offer, RITA, "ACCEPTED").status_code == 200


def test_the_pages_refuse_another_identity_and_record_the_owner(client):
    offer = offer_ids(ask(client, RITA))[0]
    form = {"phase": "ACCEPTED", "next": f"/sessions/{offer}"}
    other = client.post(f"/sessions/{offer}", data=form, headers=bearer(BOB))
    assert other.status_code == 403
    assert "only whoever asked for it" in other.text
    mine = client.post(
        f"/sessions/{offer}", data=form, headers=bearer(RITA), follow_redirects=False
    )
    assert mine.status_code == 303
    entry = client.get("/catalogue/search", params={"q": "aoflagger"}).json()["hits"][0]["id"]
    page_form = {"cores": "2", "memory": "4", "gpus": "0", "duration": "1", "unit": "h"}
    made = client.post(
        f"/executables/{entry}/offers",
        data={**page_form, "data": ""},
        headers=bearer(BOB),
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    offerset = made.headers["location"].split("/offersets/")[1].split("?")[0]
    sessions = client.get(f"/broker/offersets/{offerset}", headers=JSON).json()["offers"]
    assert update(client, sessions[0]["meta"]["uuid"], RITA, "ACCEPTED").status_code == 403


# ----------------------------------------------------------------------------- owner-only reads
def test_owner_only_reads(tmp_path):
    base = msgspec.to_builtins(app_settings(tmp_path / "var", demo=True))
    base["auth"] = {
        "tokens": [named("rita", RITA), named("bob", BOB), named("olga", OLGA, "operator")],
        "owner_only_reads": True,
    }
    base["broker"].update(allow_anonymous_runs=False)
    with TestClient(create_app(settings_from_mapping(base))) as private:
        made = ask(private, RITA)
        offerset = made.headers["location"]
        offer = offer_ids(made)[0]
        for path in (offerset, f"/broker/sessions/{offer}"):
            assert private.get(path, headers={**JSON, **bearer(RITA)}).status_code == 200
            assert private.get(path, headers={**JSON, **bearer(OLGA)}).status_code == 200
            assert private.get(path, headers={**JSON, **bearer(BOB)}).status_code == 403
            assert private.get(path, headers=JSON).status_code == 401
        assert private.get(f"/sessions/{offer}", headers=bearer(BOB)).status_code == 403
        assert private.get(f"/sessions/{offer}", headers=bearer(RITA)).status_code == 200
