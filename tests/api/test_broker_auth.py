"""Write authorisation on `/broker`: with `auth.tokens`, every write needs a bearer token.

No token answers 401 with `WWW-Authenticate: Bearer`; a token that is not configured answers
403; either way nothing changes, and the body is the broker's own error document in the
negotiated media type. Reads stay open, and a broker without tokens (local use) takes writes
from anyone. The OpenAPI document names the bearer scheme on the writes of a broker that has
tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text

from broker import model
from broker.model import codec
from broker.model.codec import Media
from core.clock import ManualClock
from core.settings import Settings, settings_from_mapping
from tests.api.test_broker_requests import NOW, PLATFORMS, docker, offerset_of
from tests.auth_support import researchers
from voexec.app import create_app
from voexec.wiring import build_services

TOKENS = ["s3cret-alpha-long-enough-for-voexec-to-take", "s3cret-beta-long-enough-for-voexec-too"]
ACCEPT = {"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"}
JSON = {"content-type": Media.JSON.value, "accept": Media.JSON.value}


def broker_settings(tmp_path: Path, tokens: list[str]) -> Settings:
    return settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "auth": {"tokens": researchers(*tokens)},
            "broker": {"platforms": PLATFORMS},
        }
    )


def app_for(settings: Settings, clock: ManualClock | None = None) -> Litestar:
    """The real app for `settings`, as `voexec serve` builds it."""
    return create_app(settings, build_services(settings, clock=clock))


@pytest.fixture
def app(tmp_path: Path) -> Litestar:
    return app_for(broker_settings(tmp_path, TOKENS), ManualClock(NOW))


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Any]]:
    with TestClient(app) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def request_offers(client: TestClient[Any], **headers: str) -> Any:
    return client.post(
        "/broker/requests",
        content=codec.encode(docker(), Media.JSON),
        headers={**JSON, **headers},
        follow_redirects=False,
    )


def an_offer(client: TestClient[Any]) -> str:
    """The URL of a fresh offer, asked for with a good token."""
    offers = offerset_of(request_offers(client, **bearer(TOKENS[0]))).offers
    assert offers
    assert offers[0].meta is not None
    assert offers[0].meta.url is not None
    return offers[0].meta.url


def accept(client: TestClient[Any], url: str, **headers: str) -> Any:
    return client.post(url, content=codec.encode(ACCEPT, Media.JSON), headers={**JSON, **headers})


def count(app: Litestar, table: str) -> int:
    engine = app.state.services.components["engine"]
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def error_of(response: Any) -> model.ErrorResponse:
    media = codec.media_for_body(response.headers["content-type"])
    return codec.decode_document(response.content, media, model.ErrorResponse).value


def write_routes(offer: str) -> list[tuple[str, bytes]]:
    """Every write route of the broker, with a body it would accept."""
    request = codec.encode(docker(), Media.JSON)
    return [
        ("/broker/requests", request),
        ("/broker/offersets", request),
        ("/broker/direct", request),
        (offer, codec.encode(ACCEPT, Media.JSON)),
    ]


# ------------------------------------------------------------------------- refused writes
def test_every_write_without_a_token_answers_401_with_a_bearer_challenge(app, client):
    offer = an_offer(client)
    sessions, bookings = count(app, "broker_session"), count(app, "broker_booking")
    for path, body in write_routes(offer):
        response = client.post(path, content=body, headers=JSON, follow_redirects=False)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        error = error_of(response)
        assert (error.status, error.title) == (401, "Unauthorized")
        [message] = error.meta.messages
        assert message.kind == "urn:voexec:unauthorized"
        assert "Authorization: Bearer <token>" in (message.message or "")
    assert (count(app, "broker_session"), count(app, "broker_booking")) == (sessions, bookings)
    assert codec.decode_session(
        client.get(offer, headers=JSON).content, Media.JSON
    ).value.phase == (model.SessionPhase.OFFERED)


def test_a_token_that_is_not_configured_answers_403_and_changes_nothing(app, client):
    offer = an_offer(client)
    sessions = count(app, "broker_session")
    for path, body in write_routes(offer):
        response = client.post(
            path, content=body, headers={**JSON, **bearer("s3cret-gamma")}, follow_redirects=False
        )
        assert response.status_code == 403, path
        assert "www-authenticate" not in response.headers
        error = error_of(response)
        assert (error.status, error.title) == (403, "Forbidden")
        assert error.meta.messages[0].kind == "urn:voexec:forbidden"
    assert count(app, "broker_session") == sessions
    # The offer is still there for its owner to accept (another token may not: 403).
    assert accept(client, offer, **bearer(TOKENS[1])).status_code == 403
    accepted = accept(client, offer, **bearer(TOKENS[0]))
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpzM2NyZXQtYWxwaGE=", "Bearer", "Bearer   ", TOKENS[0], f"Token {TOKENS[0]}"],
)
def test_an_authorization_header_without_a_bearer_token_counts_as_none(client, authorization):
    response = request_offers(client, authorization=authorization)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_token_close_to_a_configured_one_is_refused(client):
    for near in (TOKENS[0][:-1], TOKENS[0].upper(), TOKENS[0] + TOKENS[1], f"{TOKENS[0]},x"):
        assert request_offers(client, authorization=f"Bearer {near}").status_code == 403


def test_the_token_is_checked_before_the_body_is_read(client):
    malformed = client.post(
        "/broker/requests",
        content=b"compute: [unclosed",
        headers={"content-type": "application/yaml"},
    )
    assert malformed.status_code == 401
    unsupported = client.post(
        "/broker/requests", content=b"<request/>", headers={"content-type": "application/xml"}
    )
    assert unsupported.status_code == 401


def test_a_refusal_answers_in_the_negotiated_media_type(client):
    response = client.post(
        "/broker/requests",
        content=codec.encode(docker(), Media.YAML),
        headers={"content-type": Media.YAML.value, "accept": Media.YAML.value},
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(response.text)["status"] == 401


# ------------------------------------------------------------------------- allowed writes, reads
def test_any_configured_token_writes_and_the_scheme_is_case_insensitive(client):
    created = request_offers(client, authorization=f"bearer {TOKENS[1]}")
    assert created.status_code == 303
    offer = offerset_of(created).offers[0]
    assert offer.meta is not None
    assert offer.meta.url is not None
    accepted = accept(client, offer.meta.url, authorization=f"BEARER {TOKENS[1]}")
    assert accepted.status_code == 200
    assert accepted.json()["phase"] == "ACCEPTED"
    direct = client.post(
        "/broker/direct",
        content=codec.encode(docker(), Media.JSON),
        headers={**JSON, **bearer(TOKENS[1])},
        follow_redirects=False,
    )
    assert direct.status_code == 303


def test_reads_need_no_token(client):
    created = request_offers(client, **bearer(TOKENS[0]))
    offerset = client.get(created.headers["location"], headers=JSON)
    assert offerset.status_code == 200
    session = offerset.json()["offers"][0]["meta"]["url"]
    assert client.get(session, headers=JSON).status_code == 200
    assert client.get("/broker/sessions/not-a-uuid", headers=JSON).status_code == 404


def test_without_configured_tokens_anyone_may_write(tmp_path):
    app = app_for(broker_settings(tmp_path, []), ManualClock(NOW))
    with TestClient(app) as client:
        assert request_offers(client).status_code == 303
        assert request_offers(client, **bearer("anything")).status_code == 303


def test_the_app_built_from_the_settings_alone_takes_the_write_tokens(tmp_path):
    settings = broker_settings(tmp_path, TOKENS)
    with TestClient(create_app(settings, build_services(settings))) as client:
        assert request_offers(client).status_code == 401


# ------------------------------------------------------------------------- OpenAPI
def test_the_openapi_document_names_the_bearer_scheme_on_every_write(client):
    document = client.get("/schema/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["brokerBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = [
        (method, operation)
        for path, item in document["paths"].items()
        if path.startswith("/broker/")
        for method, operation in item.items()
    ]
    writes = [operation for method, operation in operations if method == "post"]
    assert len(writes) == 4
    for operation in writes:
        assert operation["security"] == [{"brokerBearer": []}]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        assert "403" in operation["responses"]
    for method, operation in operations:
        if method == "get":
            assert "security" not in operation
            assert "401" not in operation["responses"]


def test_a_broker_without_tokens_documents_no_security(tmp_path):
    with TestClient(app_for(broker_settings(tmp_path, []))) as client:
        document = client.get("/schema/openapi.json").json()
    assert "brokerBearer" not in document["components"].get("securitySchemes", {})
    writes = [
        item["post"]
        for path, item in document["paths"].items()
        if "/broker/" in path and "post" in item
    ]
    assert writes
    assert all("security" not in operation for operation in writes)
