"""No request, however odd, makes the broker answer 5xx or store a record it cannot read back.

Random requests (odd instants and durations, huge and negative numbers, unknown kinds, many
data items, JSON and YAML) go through `POST /broker/requests`; after each one every offer set
and session it stored is read back, `/platforms` is rendered and the worker ticks. The probes
that once broke the broker are kept as examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from broker import model
from broker.web import MAX_LISTED_RESOURCES
from core.clock import ManualClock
from core.settings import settings_from_mapping
from core.time import LATEST_INSTANT, LONGEST_DURATION
from tests.api.test_broker_requests import NOW, PLATFORMS, docker
from tests.api.test_broker_sessions import ACCEPT
from voexec.app import create_app
from voexec.wiring import build_services

K = model.KINDS
PLUS_TWO = timezone(timedelta(hours=2))
DATA_KINDS = [
    K + "data/simple-data-resource.yaml",
    K + "data/S3-data-resource.yaml",
    K + "data/ivoa-data-resource.yaml",
    "https://example.org/kinds/data/unknown.yaml",
]
EXECUTABLE_KINDS = [
    K + "executable/docker-container.yaml",
    K + "executable/jupyter-notebook.yaml",
    K + "executable/singularity-container.yaml",
    model.PYTHON_PROGRAM_KIND,
    "https://example.org/kinds/executable/unknown.yaml",
    "uri:docker-container",
]


class Broker:
    """One app for the whole module: a request that breaks a later one must show up too."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(NOW)
        settings_ = settings_from_mapping(
            {
                "data_dir": str(tmp_path / "var"),
                "vocabularies": {"offline": True},
                # The whole module is one requester on a stopped clock: the limit on the offer
                # sets it holds at once would refuse requests depending on how many of the
                # random ones before were answered YES.
                "broker": {"platforms": PLATFORMS, "held_offersets_per_requester": 0},
            }
        )
        self.services = build_services(settings_, clock=self.clock)
        self.app = create_app(settings_, self.services)
        self.stored: list[tuple[str, list[str]]] = []
        """The URL of each offer set stored so far, with the URLs of its sessions."""

    def tick(self) -> None:
        self.services.components["broker"].tick()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, TestClient]]:
    state = Broker(tmp_path_factory.mktemp("robustness"))
    with TestClient(state.app, raise_server_exceptions=False) as client:
        yield state, client


# ------------------------------------------------------------------------- strategies
def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Four times in five a usual value, else an odd one: most requests reach the scheduler."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda n: odd if n == 0 else usual)


def offset_instants() -> st.SearchStrategy[Any]:
    """An instant as a time from now; the test writes it out at the clock's time."""
    return st.builds(
        lambda hours, form: ("offset", hours, form),
        st.integers(min_value=-48, max_value=24 * 400),
        st.sampled_from(["Z", "+02:00", "", "date", "fraction"]),
    )


odd_instant_texts = st.sampled_from(
    [
        "0144-07-02T10:00:00Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "2999-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "2026-02-30T10:00:00Z",
        "2026-09-01T24:00:00Z",
        "2026-W36-2",
        "20260901T100000Z",
        "144-07-02T10:00:00Z",
        "",
        "soon",
    ]
)
odd_durations = st.one_of(
    st.sampled_from(
        [
            "PT1H",
            "P2W",
            "PT0S",
            "PT0.5S",
            "-PT1H",
            "P3000000D",
            "PT99999999999999999999H",
            "P1M",
            "P1Y",
            "PT1,5S",
            "P3660D",
            "P3661D",
            "PT",
            "P",
            "PT1H" * 30,
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.from_regex(r"\A-?P([0-9]{1,8}[WD]){0,2}(T([0-9]{1,8}(\.[0-9]{1,3})?[HMS]){1,3})?\Z"),
)
durations = mostly(st.sampled_from(["PT1H", "PT30M", "P1D", "PT2H30M"]), odd_durations)
instants = mostly(offset_instants(), odd_instant_texts)
starts = mostly(
    st.one_of(
        instants,
        st.tuples(instants, instants),
        st.tuples(instants, durations),
        st.tuples(durations, instants),
    ),
    st.one_of(st.lists(instants, max_size=2), st.integers()),  # the older list form; junk
)
numbers = mostly(
    st.integers(min_value=1, max_value=70),
    st.one_of(
        st.integers(min_value=-5, max_value=0),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.just("8"),
    ),
)


@st.composite
def min_max(draw: st.DrawFn) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if draw(st.booleans()):
        block["min"] = draw(numbers)
    if draw(st.booleans()):
        block["max"] = draw(numbers)
    return block


@st.composite
def data_items(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(
        st.one_of(
            st.integers(min_value=0, max_value=4),
            st.sampled_from([MAX_LISTED_RESOURCES, MAX_LISTED_RESOURCES + 1, 2000]),
        )
    )
    kind = draw(st.sampled_from(DATA_KINDS))
    with_meta = draw(st.booleans())
    items = []
    for index in range(count):
        item: dict[str, Any] = {"kind": kind}
        if "S3" in kind:
            item["bucket"] = f"bucket-{index}"
        elif "ivoa" in kind:
            item["ivoa"] = {"ivoid": f"ivo://example.org/data?{index}"}
        else:
            item["location"] = f"https://data.example.org/{index}"
        if with_meta:
            item["meta"] = {"name": f"d{index}", "created": "0144-07-02T10:00:00Z"}
        items.append(item)
    return items


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    document = docker(cores=2)
    document["executable"]["kind"] = draw(
        mostly(st.just(EXECUTABLE_KINDS[0]), st.sampled_from(EXECUTABLE_KINDS))
    )
    if draw(st.booleans()):
        document["executable"]["meta"]["created"] = draw(
            mostly(st.just("2026-08-01T10:00:00Z"), odd_instant_texts)
        )
    if draw(st.booleans()):
        document["compute"]["cores"] = draw(min_max())
    if draw(st.booleans()):
        document["compute"]["memory"] = draw(min_max())
    if draw(st.booleans()):
        document["compute"]["kind"] = model.ACCELERATED_COMPUTE_KIND
        document["compute"]["accelerators"] = {"count": draw(min_max())}
    if draw(st.booleans()):
        document["data"] = draw(data_items())
    if draw(st.booleans()):
        document["storage"] = [
            {"kind": K + "storage/simple-storage-resource.yaml", "size": draw(min_max())}
        ]
    requested: dict[str, Any] = {}
    if draw(st.booleans()):
        requested["start"] = draw(starts)
    if draw(st.booleans()):
        requested["duration"] = draw(durations)
    if requested:
        document["schedule"] = {"requested": requested}
    if draw(st.integers(0, 9)) == 0:
        del document["executable"]
    return document


# ------------------------------------------------------------------------- writing requests out
def _instant_text(value: Any, now: datetime) -> Any:
    if not (isinstance(value, tuple) and value[:1] == ("offset",)):
        return value
    _, hours, form = value
    instant = now + timedelta(hours=hours)
    if form == "date":
        return instant.date().isoformat()
    if form == "fraction":
        return (instant + timedelta(microseconds=250_000)).isoformat().replace("+00:00", "Z")
    if form == "+02:00":
        return instant.astimezone(PLUS_TWO).isoformat()
    return instant.replace(tzinfo=None).isoformat() + form


def _written(document: Any, now: datetime) -> Any:
    """The request with every instant written out relative to `now`; tuples become intervals."""
    if isinstance(document, dict):
        return {key: _written(value, now) for key, value in document.items()}
    if isinstance(document, list):
        return [_written(value, now) for value in document]
    if isinstance(document, tuple) and document[:1] == ("offset",):
        return _instant_text(document, now)
    if isinstance(document, tuple):
        return "/".join(str(_written(part, now)) for part in document)
    return document


def _body(document: dict[str, Any], as_yaml: bool) -> tuple[bytes, str]:
    if as_yaml:
        return yaml.safe_dump(document).encode(), "application/yaml"
    return json.dumps(document).encode(), "application/json"


def _read_back_everything(broker: Broker, client: TestClient, since: int = 0) -> None:
    """Offer sets stored from the `since`-th on, and their sessions, read back; the platforms
    page renders; the worker ticks."""
    for offerset, sessions in broker.stored[since:]:
        for url in (offerset, *sessions):
            answer = client.get(url)
            assert answer.status_code == 200, (url, answer.text[:1000])
    platforms = client.get("/platforms")
    assert platforms.status_code == 200, platforms.text[:500]
    broker.tick()


def _post(broker: Broker, client: TestClient, document: dict[str, Any], as_yaml: bool) -> Any:
    body, media = _body(_written(document, broker.clock.now()), as_yaml)
    response = client.post(
        "/broker/requests",
        content=body,
        headers={"content-type": media, "accept": "application/json"},
        follow_redirects=False,
    )
    assert response.status_code < 500, response.text[:1000]
    if response.status_code == 303:
        offers = response.json().get("offers", [])
        broker.stored.append(
            (response.headers["location"], [offer["meta"]["url"] for offer in offers])
        )
    return response


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=requests(), as_yaml=st.booleans(), accept=st.booleans(), later=st.integers(0, 90))
def test_no_request_breaks_the_broker(broker, document, as_yaml, accept, later):
    state, client = broker
    state.clock.advance(timedelta(minutes=later))
    stored = len(state.stored)
    response = _post(state, client, document, as_yaml)
    event(f"answered {response.status_code}")  # shown by --hypothesis-show-statistics
    if response.status_code == 303 and accept and response.json().get("offers"):
        url = response.json()["offers"][0]["meta"]["url"]
        answer = client.post(url, json=ACCEPT)
        assert answer.status_code < 500, answer.text[:1000]
    # This request's records here (all of them, each time, would cost quadratic time); every
    # record of the module is read back once more by the last test.
    _read_back_everything(state, client, since=stored)


# ------------------------------------------------------------------------- the probes
def _probe_request(**schedule: Any) -> dict[str, Any]:
    return docker(cores=2, **schedule)


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"start": "0144-07-02T10:00:00Z/PT1H"}, "$.schedule.requested.start"),
        ({"start": "0144-07-02T10:00:00Z/2026-09-03T00:00:00Z"}, "$.schedule.requested.start"),
        ({"duration": "P3000000D"}, "$.schedule.requested.duration"),
        ({"start": "9999-12-31T10:00:00Z/PT1H"}, "$.schedule.requested.start"),
        ({"start": "0001-01-01T00:00:00Z"}, "$.schedule.requested.start"),
        ({"start": "2999-12-31T00:00:00Z/P3D"}, "$.schedule.requested.start"),
        ({"duration": "-PT1H"}, "$.schedule.requested.duration"),
    ],
)
def test_instants_and_durations_out_of_bounds_answer_400_naming_the_field(broker, schedule, field):
    state, client = broker
    response = _post(state, client, _probe_request(**schedule), as_yaml=False)
    assert response.status_code == 400
    message = response.json()["meta"]["messages"][0]
    assert message["values"]["path"] == field
    assert "out of range" in message["message"] or "duration" in message["message"]
    _read_back_everything(state, client)


def test_the_bounds_themselves_give_an_answer(broker):
    state, client = broker
    latest = LATEST_INSTANT.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    for schedule in (
        {"start": f"{latest}", "duration": "PT1H"},
        {"duration": f"P{LONGEST_DURATION.days}D"},
    ):
        response = _post(state, client, _probe_request(**schedule), as_yaml=False)
        assert response.status_code == 303, response.text[:500]
    _read_back_everything(state, client)


@pytest.mark.parametrize("count", [MAX_LISTED_RESOURCES + 1, 5000])
def test_too_many_data_items_answer_400_naming_the_list(broker, count):
    state, client = broker
    document = _probe_request()
    document["data"] = [
        {"kind": K + "data/simple-data-resource.yaml", "location": "s3://b/k"}
    ] * count
    response = _post(state, client, document, as_yaml=False)
    assert response.status_code == 400
    message = response.json()["meta"]["messages"][0]
    assert message["values"]["path"] == "$.data"
    assert str(MAX_LISTED_RESOURCES) in message["message"]
    _read_back_everything(state, client)


def test_the_most_data_items_make_an_answer_of_bounded_size(broker):
    state, client = broker
    document = _probe_request()
    document["data"] = [
        {"kind": K + "data/simple-data-resource.yaml", "location": f"s3://b/{index}"}
        for index in range(MAX_LISTED_RESOURCES)
    ]
    body = json.dumps(document).encode()
    response = _post(state, client, document, as_yaml=False)
    assert response.status_code == 303
    offers = len(response.json()["offers"])
    assert offers >= 1
    # Each offer echoes the request, each item with about 150 bytes of metadata of its own.
    assert len(response.content) < offers * (len(body) + MAX_LISTED_RESOURCES * 200) + 10_000
    _read_back_everything(state, client)


def test_a_stored_session_larger_than_the_body_limit_reads_back(tmp_path):
    settings_ = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "server": {"max_body_bytes": 20_000},
            "broker": {"platforms": PLATFORMS},
        }
    )
    services = build_services(settings_, clock=ManualClock(NOW))
    document = _probe_request()
    document["data"] = [
        {"kind": K + "data/simple-data-resource.yaml", "location": f"s3://b/{index}"}
        for index in range(MAX_LISTED_RESOURCES)
    ]
    body = json.dumps(document).encode()
    assert len(body) < 20_000
    with TestClient(create_app(settings_, services)) as client:
        response = client.post(
            "/broker/requests",
            content=body,
            headers={"content-type": "application/json", "accept": "application/json"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        offer = response.json()["offers"][0]["meta"]["url"]
        session = client.get(offer)
        assert session.status_code == 200
        assert len(session.content) > 20_000  # larger than any body a client may send
        assert client.get(response.headers["location"]).status_code == 200
        assert client.get("/platforms").status_code == 200


def test_every_record_stored_by_this_module_still_reads_back(broker):
    state, client = broker
    if not state.stored:  # run alone: store something first
        assert _post(state, client, _probe_request(), as_yaml=True).status_code == 303
    state.clock.advance(timedelta(hours=2))
    _read_back_everything(state, client)
