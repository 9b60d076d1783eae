"""What the broker promises over HTTP: offers as alternatives, the talks' defaults, late accepts.

- The offers of one set hold, together, only what one of them takes: eight researchers asking
  for 2 cores on a 16-core platform all get an offer starting as soon as the platform can
  prepare, while all eight sets are held; a ninth is offered later starts, not NO.
- One client may hold only `broker.held_offersets_per_requester` sets at once (409 beyond).
- A blank request means what the talks say: a start between now and +24 h, 30 minutes, one
  compute resource of 2 cores and 2 GiB (offered up to twice that when it is free).
- An offer accepted after its preparation should have begun moves to a later start with its
  full preparation and duration, or is refused with 409 saying why; never shortened.
- The phase history records when each change happened, in order.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from broker import model
from broker.model import codec
from broker.model.codec import Media
from broker.service import BrokerService
from core.clock import ManualClock
from core.settings import settings_from_mapping
from tests.api.test_broker_requests import NOW, offerset_of
from tests.api.test_broker_restart import phase_history
from tests.api.test_broker_sessions import ACCEPT, REJECT, session_of, update
from tests.auth_support import researchers
from voexec.app import create_app
from voexec.wiring import build_services

P = model.SessionPhase
K = model.KINDS
PREPARATION = timedelta(minutes=1)
TOKENS = [f"researcher-{number}-token-long-enough-for-voexec" for number in range(10)]


def sixteen_cores(**more: Any) -> dict[str, Any]:
    return {
        "name": "sixteen",
        "capacity": {"cores": 16, "memory": 64},
        "executables": ["docker-container", "jupyter-notebook"],
        "preparation": "PT1M",
        "simulated": {"prepare": "PT10S", "release": "PT5S"},
        **more,
    }


def client_for(
    tmp_path: Path, clock: ManualClock, tokens: Sequence[str] = (), **broker: Any
) -> Iterator[tuple[TestClient, BrokerService]]:
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "auth": {"tokens": researchers(*tokens)},
            "broker": {"platforms": [sixteen_cores()], **broker},
        }
    )
    services = build_services(settings, clock=clock)
    with TestClient(create_app(settings, services)) as client:
        yield client, services.components["broker"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def notebook(cores: int | None = 2, **schedule: str) -> dict[str, Any]:
    """A notebook asking for exactly `cores` and 2 GiB (None: no compute resource at all)."""
    request: dict[str, Any] = {
        "executable": {"kind": K + "executable/jupyter-notebook.yaml", "location": "x.ipynb"}
    }
    if cores is not None:
        request["compute"] = {
            "kind": K + "compute/simple-compute-resource.yaml",
            "cores": {"min": cores, "max": cores},
            "memory": {"min": 2, "max": 2},
        }
    if schedule:
        request["schedule"] = {"requested": schedule}
    return request


def ask(client: TestClient, request: dict[str, Any], token: str | None = None) -> Any:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return client.post(
        "/broker/requests",
        content=codec.encode(request, Media.JSON),
        headers=headers,
        follow_redirects=False,
    )


def direct(client: TestClient, request: dict[str, Any]) -> Any:
    return client.post(
        "/broker/direct",
        content=codec.encode(request, Media.JSON),
        headers={"content-type": "application/json", "accept": "application/json"},
        follow_redirects=False,
    )


def slot_of(offer: model.AnySession) -> tuple[datetime, timedelta]:
    assert isinstance(offer, model.ScheduledExecutionSession)
    assert offer.schedule is not None
    available = offer.schedule.available
    assert available is not None
    assert available.start is not None
    assert available.duration is not None
    return available.start.start, available.duration


def url_of(offer: model.AnySession) -> str:
    assert offer.meta is not None
    assert offer.meta.url is not None
    return offer.meta.url


def phases_in(client: TestClient, offerset: model.OfferSetResponse) -> set[P]:
    assert offerset.meta is not None
    assert offerset.meta.url is not None
    again = offerset_of(client.get(offerset.meta.url))
    return {offer.phase for offer in again.offers if offer.phase is not None}


# ------------------------------------------------------------------------- holds
def test_eight_researchers_each_get_an_offer_now_and_a_ninth_later_starts(tmp_path, clock):
    for client, _broker in client_for(tmp_path, clock, tokens=TOKENS):
        soonest = NOW + PREPARATION
        sets = []
        for token in TOKENS[:8]:
            offerset = offerset_of(ask(client, notebook(cores=2, duration="PT1H"), token))
            assert offerset.result == "YES"
            assert min(slot_of(offer)[0] for offer in offerset.offers) == soonest
            assert len(offerset.offers) > 1  # alternatives, held together
            sets.append(offerset)
        # All eight sets are held at once: every offer is still open.
        assert all(phases_in(client, offerset) == {P.OFFERED} for offerset in sets)
        ninth = offerset_of(ask(client, notebook(cores=2, duration="PT1H"), TOKENS[8]))
        assert ninth.result == "YES"
        assert min(slot_of(offer)[0] for offer in ninth.offers) >= soonest + timedelta(hours=1)
        # Accepting one offer of a set frees its siblings' holds for the ninth researcher.
        update(client, url_of(sets[0].offers[0]), ACCEPT)
        tenth = offerset_of(ask(client, notebook(cores=2, duration="PT1H"), TOKENS[9]))
        assert min(slot_of(offer)[0] for offer in tenth.offers) >= soonest + timedelta(hours=1)


def test_one_client_may_hold_only_so_many_offer_sets(tmp_path, clock):
    for client, _broker in client_for(tmp_path, clock, held_offersets_per_requester=2):
        first = offerset_of(ask(client, notebook()))
        ask(client, notebook())
        refused = ask(client, notebook())
        assert refused.status_code == 409
        body = codec.decode_document(refused.content, Media.JSON, model.ErrorResponse).value
        assert body.meta is not None
        [message] = body.meta.messages
        assert "you hold 2 offer sets with open offers" in (message.message or "")
        assert "at once is 2" in (message.message or "")
        # Once one set holds nothing (all its offers rejected), the client may ask again.
        for offer in first.offers:
            update(client, url_of(offer), REJECT)
        assert ask(client, notebook()).status_code == 303
        assert ask(client, notebook()).status_code == 409
        # ... and when the offers expire.
        clock.advance(timedelta(minutes=6))
        assert ask(client, notebook()).status_code == 303


def test_clients_are_told_apart_by_their_token(tmp_path, clock):
    for client, _broker in client_for(
        tmp_path, clock, held_offersets_per_requester=1, tokens=TOKENS
    ):
        assert ask(client, notebook(), TOKENS[0]).status_code == 303
        assert ask(client, notebook(), TOKENS[0]).status_code == 409
        assert ask(client, notebook(), TOKENS[1]).status_code == 303


# ------------------------------------------------------------------------- defaults
def test_a_blank_request_gets_the_talks_defaults(tmp_path, clock):
    for client, _broker in client_for(tmp_path, clock):
        offerset = offerset_of(ask(client, notebook(cores=None)))
        assert offerset.result == "YES"
        durations, cores, memory = set(), set(), set()
        for offer in offerset.offers:
            start, duration = slot_of(offer)
            assert NOW <= start <= NOW + timedelta(hours=24)
            durations.add(duration)
            assert isinstance(offer, model.ScheduledExecutionSession)
            compute = offer.compute
            assert isinstance(compute, model.SimpleComputeResource)
            assert compute.cores is not None
            assert compute.memory is not None
            cores.add(compute.cores.min)
            memory.add(compute.memory.min)
        # 30 minutes (the `longest` strategy stretches it), 2 cores and 2 GiB, offered up to
        # twice that while it is free.
        assert min(durations) == timedelta(minutes=30)
        assert (min(cores), max(cores)) == (2, 4)
        assert (min(memory), max(memory)) == (2, 4)


def test_a_blank_start_range_reaches_a_day_ahead(tmp_path, clock):
    for client, _broker in client_for(tmp_path, clock):
        # The whole platform is booked for the next 20 hours (a 2-hour default range: NO).
        assert direct(client, notebook(cores=16, duration="PT20H")).status_code == 303
        later = offerset_of(ask(client, notebook(cores=2)))
        assert later.result == "YES"
        starts = [slot_of(offer)[0] for offer in later.offers]
        assert min(starts) >= NOW + timedelta(hours=20)
        assert max(starts) <= NOW + timedelta(hours=24)


# ------------------------------------------------------------------------- late accepts
def test_a_late_accept_moves_the_start_and_keeps_the_whole_session(tmp_path, clock):
    for client, broker in client_for(tmp_path, clock):
        [offer, *_] = offerset_of(ask(client, notebook(cores=16, duration="PT1H"))).offers
        start, duration = slot_of(offer)
        assert start == NOW + PREPARATION
        clock.advance(timedelta(minutes=3))  # preparation should have begun two minutes ago
        response = update(client, url_of(offer), ACCEPT)
        assert response.status_code == 200
        accepted = session_of(response)
        moved, kept = slot_of(accepted)
        assert (moved, kept) == (NOW + timedelta(minutes=3) + PREPARATION, duration)
        assert isinstance(accepted, model.ScheduledExecutionSession)
        assert accepted.schedule is not None
        assert accepted.schedule.preparing is not None
        assert accepted.schedule.preparing.start == NOW + timedelta(minutes=3)
        assert session_of(client.get(url_of(offer))) == accepted
        notes = [m.message or "" for m in (accepted.meta.messages if accepted.meta else [])]
        assert any("the start moved to" in note for note in notes), notes
        # The platform prepares on time for the new start and runs the full hour.
        broker.tick()
        clock.advance(PREPARATION)
        broker.tick()
        history = phase_history(session_of(client.get(url_of(offer))))
        phases = [phase for _, phase in history]
        assert phases[:6] == [P.OFFERED, P.ACCEPTED, P.WAITING, P.PREPARING, P.AVAILABLE, P.RUNNING]
        times = [at for at, _ in history]
        assert times == sorted(times)
        assert {phase: at for at, phase in history}[P.PREPARING] == NOW + timedelta(minutes=3)


def test_a_late_accept_without_room_for_the_whole_session_is_refused(tmp_path, clock):
    for client, _broker in client_for(tmp_path, clock, max_offers=1, strategies=["earliest"]):
        window = f"{NOW.isoformat()}/PT10M"
        [offer] = offerset_of(ask(client, notebook(cores=16, start=window, duration="PT1H"))).offers
        assert slot_of(offer)[0] == NOW + PREPARATION
        # Someone books the whole platform right after this offer's hour.
        booked = direct(client, notebook(cores=16, duration="PT1H"))
        assert booked.status_code == 303
        assert slot_of(session_of(booked))[0] == NOW + PREPARATION + timedelta(hours=1)
        clock.advance(timedelta(minutes=3))
        refused = update(client, url_of(offer), ACCEPT)
        assert refused.status_code == 409
        body = codec.decode_document(refused.content, Media.JSON, model.ErrorResponse).value
        assert body.meta is not None
        text = " ".join(m.message or "" for m in body.meta.messages)
        assert "had to begin by" in text
        assert "would run shorter than offered" in text
        # Nothing changed: the offer is still open and still where it was.
        still = session_of(client.get(url_of(offer)))
        assert still.phase is P.OFFERED
        assert slot_of(still)[0] == NOW + PREPARATION


def test_a_late_accept_past_the_requested_start_range_is_refused(tmp_path, clock):
    for client, _broker in client_for(tmp_path, clock):
        exact = notebook(cores=2, start=(NOW + PREPARATION).isoformat(), duration="PT1H")
        [offer, *_] = offerset_of(ask(client, exact)).offers
        clock.advance(timedelta(seconds=30))
        refused = update(client, url_of(offer), ACCEPT)
        assert refused.status_code == 409
        assert b"the requested start range ended" in refused.content
