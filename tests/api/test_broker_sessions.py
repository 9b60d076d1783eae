"""Offers and sessions over HTTP: accept, reject, cancel, expiry, holds, direct execution."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.di import Provide
from litestar.testing import TestClient

from broker import model
from broker.model import codec
from broker.model.codec import Media
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from broker.web import broker_router
from core.clock import ManualClock
from core.db import make_engine
from core.settings import ServerSettings, Settings, settings_from_mapping
from tests.api.test_broker_requests import NOW, PLATFORMS, docker, offerset_of, post_request
from voexec.app import create_app
from voexec.security import build_security
from voexec.wiring import build_services

ACCEPT = {"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"}
REJECT = ACCEPT | {"value": "REJECTED"}
CANCEL = ACCEPT | {"value": "CANCELLED"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def client(tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {"platforms": PLATFORMS},
        }
    )
    with TestClient(create_app(settings, build_services(settings, clock=clock))) as client:
        yield client


def offer_url(client: TestClient, request: dict[str, Any] | None = None) -> str:
    offerset = offerset_of(post_request(client, request or docker()))
    assert offerset.result == "YES"
    meta = offerset.offers[0].meta
    assert meta is not None
    assert meta.url is not None
    return meta.url


def update(client: TestClient, url: str, body: dict[str, Any] | bytes, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else codec.encode(body, Media.JSON)
    return client.post(
        url,
        content=content,
        headers={"content-type": "application/json", "accept": "application/json", **headers},
    )


def session_of(response: Any) -> model.AnySession:
    media = codec.media_for_body(response.headers["content-type"])
    return codec.decode_session(response.content, media).value


def test_an_accepted_offer_is_accepted_everywhere_and_can_then_only_be_cancelled(client):
    url = offer_url(client)
    response = update(client, url, ACCEPT)
    assert response.status_code == 200
    session = session_of(response)
    assert session.phase is model.SessionPhase.ACCEPTED
    assert session.expires is not None  # kept, though meaningful only while OFFERED
    assert session.meta is not None
    assert session.meta.options == [model.EnumValueOption(path="phase", values=["CANCELLED"])]
    assert session_of(client.get(url)).phase is model.SessionPhase.ACCEPTED
    offerset_url = url.replace("/sessions/", "/offersets/")  # not the offer set: check 404 below
    assert client.get(offerset_url).status_code == 404


def test_the_offer_set_shows_the_current_phase_of_its_offers(client):
    response = post_request(client, docker())
    offerset = offerset_of(response)
    url = offerset.offers[0].meta.url  # type: ignore[union-attr]
    update(client, url, REJECT)
    again = offerset_of(client.get(response.headers["location"]))
    assert again.offers[0].phase is model.SessionPhase.REJECTED


def test_an_illegal_update_is_409_naming_the_phase_and_the_allowed_updates(client):
    url = offer_url(client)
    update(client, url, ACCEPT)
    response = update(client, url, ACCEPT)
    assert response.status_code == 409
    answer = response.json()
    assert answer["kind"] == model.ERROR_RESPONSE_KIND
    [message] = answer["meta"]["messages"]
    assert message["values"] == {
        "phase": "ACCEPTED",
        "requested": "ACCEPTED",
        "why": "the session was already accepted at 2026-09-01T08:00:00Z",
        "allowed": "phase=CANCELLED",
    }
    assert message["message"] == (
        "The session is ACCEPTED; it cannot become ACCEPTED: the session was already accepted "
        "at 2026-09-01T08:00:00Z. Allowed updates: phase=CANCELLED"
    )
    assert answer["meta"]["options"] == [
        {"kind": "uri:enum-value-option", "path": "phase", "values": ["CANCELLED"]}
    ]


def test_a_finished_session_allows_no_update(client):
    url = offer_url(client)
    assert session_of(update(client, url, REJECT)).phase is model.SessionPhase.REJECTED
    response = update(client, url, ACCEPT)
    assert response.status_code == 409
    [message] = response.json()["meta"]["messages"]
    assert message["values"]["phase"] == "REJECTED"
    assert message["values"]["allowed"] == "none"
    assert "options" not in response.json()["meta"]


def test_cancel_is_for_accepted_sessions_not_for_offers(client):
    url = offer_url(client)
    response = update(client, url, CANCEL)
    assert response.status_code == 409
    assert response.json()["meta"]["messages"][0]["values"]["allowed"] == (
        "phase=ACCEPTED, phase=REJECTED"
    )
    update(client, url, ACCEPT)
    assert session_of(update(client, url, CANCEL)).phase is model.SessionPhase.CANCELLED
    assert update(client, url, CANCEL).status_code == 409


def test_an_offer_expires_and_then_cannot_be_accepted(client, clock):
    response = post_request(client, docker())
    url = offerset_of(response).offers[0].meta.url  # type: ignore[union-attr]
    clock.advance(timedelta(minutes=5))
    assert session_of(client.get(url)).phase is model.SessionPhase.EXPIRED
    offerset = offerset_of(client.get(response.headers["location"]))
    assert offerset.offers[0].phase is model.SessionPhase.EXPIRED
    refused = update(client, url, ACCEPT)
    assert refused.status_code == 409
    assert refused.json()["meta"]["messages"][0]["values"]["phase"] == "EXPIRED"


def test_offers_hold_capacity_until_rejected_or_expired(client, clock):
    # 8 cores on "small" and a start at one instant: a second request cannot fit beside the first
    exact = docker(cores=8, start="2026-09-01T09:00:00Z", duration="PT1H")
    exact["executable"] = {
        "kind": model.KINDS + "executable/jupyter-notebook.yaml",
        "location": "x",
    }
    first = offerset_of(post_request(client, exact))
    assert first.result == "YES"
    refused = offerset_of(post_request(client, exact))
    assert refused.result == "NO"
    assert refused.meta is not None
    reasons = [message.message or "" for message in refused.meta.messages]
    assert any(reason.startswith("small: no free 8 cores") for reason in reasons), reasons
    # The set holds until every one of its offers (alternatives) is rejected.
    *others, last = [offer.meta.url for offer in first.offers if offer.meta and offer.meta.url]
    for url in others:
        update(client, url, REJECT)
        assert offerset_of(post_request(client, exact)).result == "NO"
    update(client, last, REJECT)
    second = offer_url(client, exact)
    assert offerset_of(post_request(client, exact)).result == "NO"
    clock.advance(timedelta(minutes=6))  # the second offer expires
    assert session_of(client.get(second)).phase is model.SessionPhase.EXPIRED
    assert offerset_of(post_request(client, exact)).result == "YES"


def test_a_later_slot_is_offered_when_the_earliest_is_held(client):
    window = docker(cores=8, start="2026-09-01T09:00:00Z/PT6H", duration="PT1H")
    window["executable"] = {
        "kind": model.KINDS + "executable/jupyter-notebook.yaml",
        "location": "x",
    }
    held_until = NOW
    for _ in range(3):
        offers = offerset_of(post_request(client, window)).offers
        slots = []
        for offer in offers:
            assert isinstance(offer, model.ScheduledExecutionSession)
            assert offer.phase is model.SessionPhase.OFFERED
            assert offer.schedule is not None
            assert offer.schedule.available is not None
            assert offer.schedule.available.start is not None
            assert offer.schedule.available.duration is not None
            start = offer.schedule.available.start.start
            slots.append((start, start + offer.schedule.available.duration))
        # Whole-platform offers of one set are alternatives at consecutive hours; a new
        # request is pushed past every hour the earlier sets still hold, not refused.
        assert len({start for start, _ in slots}) >= 2
        assert min(start for start, _ in slots) >= held_until
        held_until = max(end for _, end in slots)


@pytest.mark.parametrize(
    "body",
    [
        b"update: {type: uri:enum-value-update, path: phase, value: ACCEPTED}",
        b"{kind: uri:enum-value-update, path: /phase, value: ACCEPTED}",
    ],
)
def test_older_update_shapes_and_the_slash_path_are_accepted(client, body):
    url = offer_url(client)
    response = update(client, url, body, **{"content-type": "application/yaml"})
    assert response.status_code == 200
    assert session_of(response).phase is model.SessionPhase.ACCEPTED


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        ({"kind": "uri:integer-value-update", "path": "cores", "value": 4}, 400, "$.kind"),
        ({"kind": "uri:enum-value-update", "path": "mode", "value": "READONLY"}, 400, "$.path"),
        ({"kind": "uri:enum-value-update", "path": "phase", "value": "DONE"}, 400, "$.value"),
        ({"kind": "uri:boolean-value-update", "path": "phase"}, 400, "$.kind"),
        ({"kind": "uri:enum-value-update", "path": "phase"}, 400, "$.value"),
    ],
)
def test_updates_the_broker_does_not_support_are_400_naming_the_field(client, body, status, path):
    response = update(client, offer_url(client), body)
    assert response.status_code == status
    assert response.json()["meta"]["messages"][0]["values"]["path"] == path


@pytest.mark.parametrize(
    "path",
    [
        "/broker/sessions/6d8c1f6e-3a0c-4f55-9d53-7f0e3f1a2b3c",
        "/broker/offersets/6d8c1f6e-3a0c-4f55-9d53-7f0e3f1a2b3c",
        "/broker/sessions/not-a-uuid",
    ],
)
def test_unknown_sessions_and_offer_sets_are_404_with_a_broker_body(client, path):
    response = client.get(path, headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.json()["status"] == 404
    assert response.json()["kind"] == model.ERROR_RESPONSE_KIND
    assert update(client, path, ACCEPT).status_code == (404 if "sessions" in path else 405)


def test_direct_execution_answers_303_to_an_accepted_session(client):
    response = client.post(
        "/broker/direct",
        content=codec.encode(docker(), Media.YAML),
        headers={"content-type": "application/yaml"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert "/broker/sessions/" in location
    session = session_of(response)
    assert session.phase is model.SessionPhase.ACCEPTED
    assert session.expires is None
    assert session_of(client.get(location)) == session


def test_direct_execution_that_cannot_run_is_400_with_a_failed_session(client):
    request = docker(cores=500)
    response = client.post(
        "/broker/direct",
        content=codec.encode(request, Media.JSON),
        headers={"content-type": "application/json", "accept": "application/json"},
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    session = session_of(response)
    assert session.phase is model.SessionPhase.FAILED
    assert session.meta is not None
    texts = [m.message for m in session.meta.messages]
    assert "small: needs 500 cores, has 8 in all" in texts
    assert isinstance(session.executable, model.DockerContainer)


def test_direct_execution_of_malformed_input_is_400_naming_the_field(client):
    response = client.post(
        "/broker/direct",
        content=b"compute: {kind: uri:generic-compute, cores: {min: -1}}",
        headers={"accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["meta"]["messages"][0]["values"]["path"] == "$.compute.cores.min"


def test_the_broker_router_registers_without_deprecated_litestar_usage(recwarn, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'broker.db'}")
    store = SqlBrokerStore(engine)
    store.migrate()
    broker = BrokerService(settings_from_mapping({}).broker, ManualClock(NOW), store, {})
    app = Litestar(
        route_handlers=[broker_router(ServerSettings(), security=build_security(Settings()))],
        dependencies={"broker": Provide(lambda: broker, sync_to_thread=False)},
    )
    assert [str(w.message) for w in recwarn] == []
    with TestClient(app) as client:
        response = post_request(client, docker())
    assert offerset_of(response).result == "NO"  # no platform configured
