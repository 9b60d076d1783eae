"""voexec.client over httpx.MockTransport: what it sends, how it reads answers and errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from broker.model import ACCELERATED_COMPUTE_KIND, KINDS
from voexec import client
from voexec.client import (
    AmbiguousName,
    AsyncBroker,
    AsyncCatalogue,
    BadRequest,
    Broker,
    Catalogue,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    NotFound,
    SessionPhase,
    Unauthorized,
    UnreadableAnswer,
    WatchTimeout,
)

SERVER = "http://voexec.test"
TOKEN = "a-long-random-token-for-the-tests"
OFFERSET_UUID = "7a2efcf3-d6e4-4326-b656-80b44c46f826"
SESSION_UUID = "6baad1dc-4667-456c-abb8-f0db8de8f394"
PYTHON_PROGRAM = "https://voexec.org/broker/kinds/executable/python-program.yaml"

Handler = Callable[[httpx.Request], httpx.Response]


def session_document(
    phase: str = "OFFERED", platform: str = "beta", **extra: Any
) -> dict[str, Any]:
    return {
        "kind": KINDS + "session/scheduled-execution-session.yaml",
        "meta": {
            "uuid": SESSION_UUID,
            "name": "lomb-scargle-periods-1.4.1-offer-1",
            # An answer may name another host; the client must not send its token there.
            "url": f"http://elsewhere.test/broker/sessions/{SESSION_UUID}",
            "messages": [
                {
                    "kind": "urn:voexec:offer-platform",
                    "level": "INFO",
                    "template": "Offered on platform {platform} ({strategy})",
                    "values": {"platform": platform, "strategy": "earliest"},
                    "message": f"Offered on platform {platform} (earliest)",
                }
            ],
            "options": [{"kind": "uri:enum-value-option", "path": "phase", "values": ["ACCEPTED"]}],
        },
        "costs": [
            {
                "kind": KINDS + "costs/simple-minmax-float-cost.yaml",
                "type": "urn:ivoa:calycopis:cost:monetary",
                "description": "EUR for the whole slot",
                "min": 0.004,
                "max": 0.004,
            }
        ],
        "phase": phase,
        "expires": "2026-12-07T04:46:36Z",
        "compute": {
            "kind": ACCELERATED_COMPUTE_KIND,
            "cores": {"min": 2, "max": 2},
            "memory": {"min": 4, "max": 4},
            "accelerators": {"count": {"min": 1, "max": 1}, "models": ["A100"]},
        },
        "schedule": {
            "preparing": {"start": "2026-12-07T04:41:36Z", "duration": "PT30S"},
            "available": {"start": "2026-12-07T04:42:06Z/PT0S", "duration": "PT5M"},
        },
        "some_future_field": {"readers": "ignore it"},
        **extra,
    }


def offer_set_document(*offers: dict[str, Any], result: str = "YES") -> dict[str, Any]:
    return {
        "kind": KINDS + "offerset/execution-offerset.yaml",
        "meta": {"uuid": OFFERSET_UUID, "url": f"{SERVER}/broker/offersets/{OFFERSET_UUID}"},
        "result": result,
        "offers": list(offers),
    }


def hit(entry_id: str, name: str) -> dict[str, Any]:
    return {
        "id": entry_id,
        "name": name,
        "title": name.title(),
        "summary": "Finds periods.",
        "version": "1.4.1",
        "kind": "python-program",
        "licence": "BSD-3-Clause",
        "gpu": "none",
        "subjects": [{"term": "light-curves", "label": "Light curves"}],
        "functions": [],
        "authors": ["Variable star working group"],
        "updated_at": "2026-12-07T04:41:32Z",
        "score": 3.5,
    }


def search_page(*hits: dict[str, Any]) -> dict[str, Any]:
    return {
        "total": len(hits),
        "hits": list(hits),
        "facets": [
            {
                "name": "kind",
                "hierarchical": False,
                "buckets": [
                    {"value": "python-program", "label": "Python program", "count": len(hits)}
                ],
            }
        ],
        "next_cursor": None,
        "sort": "relevance",
    }


SPEC: dict[str, Any] = {
    "name": "lomb-scargle-periods",
    "title": "Lomb-Scargle period search",
    "summary": "Finds periods in unevenly sampled light curves.",
    "version": "1.4.1",
    "authors": [{"name": "Variable star working group"}],
    "licence": "BSD-3-Clause",
    "needs": {"cores": 1, "memory": 1.5, "duration": "PT5M"},
    "executable": {
        "kind": PYTHON_PROGRAM,
        "location": "https://gitlab.example.org/variables/lomb-scargle-periods.git",
    },
}


def entry_document(
    entry_id: str = "lomb-scargle-periods-5d7ab1b2aa", **extra: Any
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "name": "lomb-scargle-periods",
        "withdrawn": False,
        "version": "1.4.1",
        "current_version": "1.4.1",
        "spec": SPEC,
        "subjects": [],
        "functions": [],
        "kind": "python-program",
        "gpu": "none",
        "platforms": ["beta"],
        "provenance": {"source": "demo"},
        "content_hash": "0" * 64,
        "published_at": "2026-12-07T04:41:32Z",
        "updated_at": "2026-12-07T04:41:32Z",
        "versions": [],
        **extra,
    }


def answer(status: int, body: Any, media: str = "application/json") -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": media}
    )


def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return answer(status, body, "application/problem+json")


def broker_error(status: int, title: str, *messages: tuple[str, str]) -> httpx.Response:
    items = [
        {
            "kind": "urn:input-syntax-fail",
            "level": "ERROR",
            "template": "{path}: {reason}",
            "values": {"path": path, "reason": reason},
            "message": f"{path}: {reason}",
        }
        for path, reason in messages
    ]
    body = {
        "kind": "https://voexec.org/broker/kinds/error/error-response.yaml",
        "status": status,
        "title": title,
        "meta": {"messages": items},
    }
    return answer(status, body)


class Server:
    """Records the requests and answers each with the handler for its method and path."""

    def __init__(self, routes: dict[tuple[str, str], Handler | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return problem(404, "Not Found", f"no route {request.url.path}")
        return route(request) if callable(route) else route

    def catalogue(self) -> Catalogue:
        return Catalogue(SERVER, transport=httpx.MockTransport(self))

    def broker(self, token: str | None = TOKEN) -> Broker:
        return Broker(SERVER, token=token, transport=httpx.MockTransport(self))


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


# ------------------------------------------------------------------------- catalogue
def test_search_sends_text_and_repeated_facets_and_reads_hits_and_counts() -> None:
    server = Server(
        {("GET", "/catalogue/search"): answer(200, search_page(hit("lsp-1", "lomb-scargle")))}
    )

    results = server.catalogue().search("period", kind="python-program", gpu=["none", "optional"])

    sent = server.requests[0]
    assert sent.url.params["q"] == "period"
    assert sent.url.params.get_list("gpu") == ["none", "optional"]
    assert sent.headers["accept"] == "application/json"
    assert [h.id for h in results] == ["lsp-1"]
    assert results.hits[0].subjects[0].label == "Light curves"
    assert [(v.value, v.count) for v in results.facets["kind"]] == [("python-program", 1)]


def test_an_unknown_facet_is_refused_before_anything_is_sent() -> None:
    server = Server({})

    with pytest.raises(InvalidInput) as raised:
        server.catalogue().search("period", colour="red")

    assert [m.field for m in raised.value.messages] == ["colour"]
    assert server.requests == []


def test_a_catalogue_problem_becomes_bad_request_naming_the_field() -> None:
    refusal = problem(
        400, "Validation", "Validation failed", problems=[{"field": "limit", "reason": "<= 100"}]
    )
    server = Server({("GET", "/catalogue/search"): refusal})

    with pytest.raises(BadRequest) as raised:
        server.catalogue().search(limit=500)

    assert raised.value.status == 400
    assert [(m.field, m.text) for m in raised.value.messages] == [("limit", "limit: <= 100")]
    assert "limit: <= 100" in str(raised.value)


def test_an_entry_is_found_by_its_name() -> None:
    entry_id = "lomb-scargle-periods-5d7ab1b2aa"
    server = Server(
        {
            ("GET", "/catalogue/search"): answer(
                200, search_page(hit("lomb-other-1", "lomb"), hit(entry_id, "lomb-scargle-periods"))
            ),
            ("GET", f"/catalogue/executables/{entry_id}"): answer(200, entry_document(entry_id)),
        }
    )

    entry = server.catalogue().entry("lomb-scargle-periods")

    assert (entry.id, entry.version, entry.platforms) == (entry_id, "1.4.1", ["beta"])
    assert entry.needs["duration"] == "PT5M"


def test_a_name_two_entries_share_asks_which_one_is_meant() -> None:
    server = Server(
        {
            ("GET", "/catalogue/search"): answer(
                200, search_page(hit("sofia-2-aaaa", "sofia-2"), hit("sofia-2-bbbb", "sofia-2"))
            )
        }
    )

    with pytest.raises(AmbiguousName) as raised:
        server.catalogue().entry("sofia-2")

    assert raised.value.candidates == ["sofia-2-aaaa", "sofia-2-bbbb"]
    assert "did you mean: sofia-2-aaaa, sofia-2-bbbb?" in str(raised.value)


def test_an_unknown_entry_is_not_found_with_close_names_suggested() -> None:
    server = Server(
        {
            ("GET", "/catalogue/search"): answer(
                200, search_page(hit("lsp-1", "lomb-scargle-periods"))
            )
        }
    )

    with pytest.raises(NotFound) as raised:
        server.catalogue().entry("lomb-scargle")

    assert "no route /catalogue/executables/lomb-scargle" in str(raised.value)
    assert raised.value.messages[0].suggestions == ("lomb-scargle-periods",)
    assert "did you mean: lomb-scargle-periods?" in str(raised.value)


# ------------------------------------------------------------------------- broker
def test_a_request_from_keywords_is_sent_as_json_with_the_token_and_offers_are_typed() -> None:
    server = Server(
        {("POST", "/broker/requests"): answer(303, offer_set_document(session_document()))}
    )
    executable = {"kind": PYTHON_PROGRAM, "location": "https://example.org/p.git"}
    earliest = datetime(2026, 9, 1, 10, tzinfo=UTC)

    offers = server.broker().request(
        executable=executable,
        cores=2,
        memory=3.5,
        gpus=1,
        duration=timedelta(hours=1, minutes=30),
        start=(earliest, earliest + timedelta(hours=2)),
        data=["s3://survey/field-7.fits"],
    )

    sent = server.requests[0]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "application/json"
    request = body_of(sent)
    assert request["compute"]["kind"] == ACCELERATED_COMPUTE_KIND
    assert request["compute"]["memory"] == {"min": 4}  # whole GiB, rounded up
    assert request["compute"]["accelerators"] == {"count": {"min": 1}}
    assert request["schedule"]["requested"] == {
        "start": "2026-09-01T10:00:00Z/2026-09-01T12:00:00Z",
        "duration": "PT1H30M",
    }
    assert request["data"][0]["bucket"] == "survey"
    offer = offers[0]
    assert (offers.result, len(offers), offer.phase) == ("YES", 1, SessionPhase.OFFERED)
    assert (offer.platform, offer.strategy) == ("beta", "earliest")
    assert offer.start == datetime(2026, 12, 7, 4, 42, 6, tzinfo=UTC)
    assert offer.duration == "PT5M"
    assert (offer.resources.cores, offer.resources.memory, offer.resources.gpus) == (2, 4, 1)
    assert str(offer.cost) == "0.004 EUR for the whole slot"


def test_yaml_text_is_sent_as_it_is() -> None:
    server = Server({("POST", "/broker/requests"): answer(303, offer_set_document())})
    text = "executable:\n  kind: uri:docker-container\n"

    server.broker().request(text)

    assert server.requests[0].content == text.encode()
    assert server.requests[0].headers["content-type"] == "application/yaml"


def test_a_request_needs_a_document_or_an_executable_but_not_both() -> None:
    broker = Server({}).broker()

    with pytest.raises(InvalidInput) as neither:
        broker.request(cores=2)
    with pytest.raises(InvalidInput) as both:
        broker.request({"executable": {}}, cores=2)
    with pytest.raises(InvalidInput) as wrong:
        broker.request(executable={"kind": PYTHON_PROGRAM}, cores=0)

    assert [m.field for m in neither.value.messages] == ["executable"]
    assert [m.field for m in both.value.messages] == ["cores"]
    assert [m.field for m in wrong.value.messages] == ["cores"]


def test_a_no_answer_is_an_offer_set_with_the_reasons() -> None:
    document = offer_set_document(result="NO")
    document["meta"]["messages"] = [
        {"kind": "urn:resource-limit", "level": "ERROR", "message": "small offers at most 8 cores"}
    ]
    server = Server({("POST", "/broker/requests"): answer(303, document)})

    offers = server.broker().request({"executable": {"kind": PYTHON_PROGRAM}})

    assert (offers.result, len(offers)) == ("NO", 0)
    assert [m.text for m in offers.messages] == ["small offers at most 8 cores"]


def test_broker_errors_carry_the_paths_the_broker_named() -> None:
    refusal = broker_error(400, "Bad Request", ("$.compute.cores.min", "Expected int >= 1"))
    server = Server({("POST", "/broker/requests"): refusal})

    with pytest.raises(BadRequest) as raised:
        server.broker().request({"compute": {"cores": {"min": 0}}})

    assert [m.field for m in raised.value.messages] == ["$.compute.cores.min"]
    assert "$.compute.cores.min: Expected int >= 1" in str(raised.value)


def test_a_write_without_a_token_is_unauthorized() -> None:
    server = Server(
        {("POST", "/broker/requests"): broker_error(401, "Unauthorized", ("$", "a bearer token"))}
    )

    with pytest.raises(Unauthorized):
        server.broker(token=None).request({"executable": {"kind": PYTHON_PROGRAM}})

    assert "authorization" not in server.requests[0].headers


def test_accept_updates_the_session_in_place_at_the_broker_url_given() -> None:
    server = Server(
        {
            ("POST", "/broker/requests"): answer(303, offer_set_document(session_document())),
            ("POST", f"/broker/sessions/{SESSION_UUID}"): answer(200, session_document("ACCEPTED")),
        }
    )
    offer = server.broker().request({"executable": {"kind": PYTHON_PROGRAM}})[0]

    accepted = offer.accept()

    update = server.requests[-1]
    assert update.url.host == "voexec.test"  # never the host an answer names
    assert update.headers["authorization"] == f"Bearer {TOKEN}"
    assert body_of(update) == {
        "kind": "uri:enum-value-update",
        "path": "phase",
        "value": "ACCEPTED",
    }
    assert accepted is offer
    assert offer.phase is SessionPhase.ACCEPTED


def test_an_update_the_phase_refuses_is_a_conflict_with_the_broker_message() -> None:
    message = "The session is COMPLETED; it cannot become CANCELLED. Allowed updates: none"
    refusal = broker_error(409, "Conflict")
    body = json.loads(refusal.content)
    body["meta"]["messages"] = [{"kind": "urn:voexec:illegal-update", "message": message}]
    server = Server(
        {
            ("GET", f"/broker/sessions/{SESSION_UUID}"): answer(200, session_document("COMPLETED")),
            ("POST", f"/broker/sessions/{SESSION_UUID}"): answer(409, body),
        }
    )
    session = server.broker().session(f"{SERVER}/broker/sessions/{SESSION_UUID}")

    with pytest.raises(Conflict) as raised:
        session.cancel()

    assert raised.value.messages[0].text == message
    assert "authorization" not in server.requests[0].headers  # reads carry no token


def phases_in_turn(*phases: str) -> Handler:
    """Answers a session in each phase in turn, staying in the last."""
    remaining: Iterator[str] = iter(phases)
    last = [phases[-1]]

    def handler(_: httpx.Request) -> httpx.Response:
        last[0] = next(remaining, last[0])
        return answer(200, session_document(last[0]))

    return handler


def test_watch_yields_each_new_phase_until_a_terminal_one() -> None:
    server = Server(
        {
            ("GET", f"/broker/sessions/{SESSION_UUID}"): phases_in_turn(
                "ACCEPTED", "WAITING", "WAITING", "RUNNING", "RUNNING", "COMPLETED"
            )
        }
    )
    session = server.broker().session(SESSION_UUID)

    phases = list(session.watch(poll=0.001, timeout=30))

    assert phases == ["ACCEPTED", "WAITING", "RUNNING", "COMPLETED"]
    assert session.finished


def test_watch_gives_up_after_its_timeout() -> None:
    server = Server({("GET", f"/broker/sessions/{SESSION_UUID}"): phases_in_turn("RUNNING")})
    session = server.broker().session(SESSION_UUID)

    with pytest.raises(WatchTimeout, match="still RUNNING"):
        list(session.watch(poll=0.001, timeout=0.01))


def test_an_unreachable_server_and_an_unreadable_answer_are_client_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    unreachable = Broker(SERVER, transport=httpx.MockTransport(refuse))
    page = httpx.Response(
        200, text="<html>a login page</html>", headers={"content-type": "text/html"}
    )
    unreadable = Server({("GET", f"/broker/sessions/{SESSION_UUID}"): page}).broker()

    with pytest.raises(ConnectionFailed, match="cannot reach"):
        unreachable.session(SESSION_UUID)
    with pytest.raises(UnreadableAnswer, match="text/html"):
        unreadable.session(SESSION_UUID)


# ------------------------------------------------------------------------- the hand-off
def test_offers_for_an_entry_ask_for_its_needs_with_the_overrides() -> None:
    server = Server(
        {
            ("GET", "/catalogue/executables/lsp-1"): answer(200, entry_document("lsp-1")),
            ("POST", "/broker/requests"): answer(303, offer_set_document(session_document())),
        }
    )
    entry = server.catalogue().entry("lsp-1")

    server.broker().offers_for(entry, cores=4, data=["https://example.org/lc.csv"])

    request = body_of(server.requests[-1])
    assert request["executable"]["location"] == SPEC["executable"]["location"]
    assert request["compute"]["cores"] == {"min": 4}  # the override
    assert request["compute"]["memory"] == {"min": 2}  # the declared 1.5 GiB, rounded up
    assert request["schedule"]["requested"] == {"duration": "PT5M"}
    assert request["data"][0]["location"] == "https://example.org/lc.csv"


def test_offers_for_refuses_wrong_overrides_and_withdrawn_entries() -> None:
    server = Server(
        {
            ("GET", "/catalogue/executables/lsp-1"): answer(200, entry_document("lsp-1")),
            ("GET", "/catalogue/executables/old-1"): answer(
                200, entry_document("old-1", withdrawn=True)
            ),
        }
    )
    catalogue, broker = server.catalogue(), server.broker()

    with pytest.raises(InvalidInput) as bad_data:
        broker.offers_for(catalogue.entry("lsp-1"), data=["ftp:/nowhere"])
    with pytest.raises(InvalidInput) as no_cores:
        broker.offers_for(catalogue.entry("lsp-1"), cores=0)
    with pytest.raises(InvalidInput, match="withdrawn"):
        broker.offers_for(catalogue.entry("old-1"))

    assert [m.field for m in bad_data.value.messages] == ["data[0]"]
    assert [m.field for m in no_cores.value.messages] == ["cores"]
    assert not any(r.url.path.startswith("/broker") for r in server.requests)


# ------------------------------------------------------------------------- notebooks
def test_notebook_tables_escape_what_servers_send() -> None:
    hostile = '<script>alert("x")</script>'
    server = Server(
        {
            ("POST", "/broker/requests"): answer(
                303, offer_set_document(session_document(platform=hostile))
            )
        }
    )
    offers = server.broker().request({"executable": {"kind": PYTHON_PROGRAM}})

    for html in (offers._repr_html_(), offers[0]._repr_html_()):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
    assert "0.004 EUR" in offers._repr_html_()


# ------------------------------------------------------------------------- asyncio
def test_the_async_clients_do_the_same_with_await() -> None:
    entry_id = "lomb-scargle-periods-5d7ab1b2aa"
    server = Server(
        {
            ("GET", "/catalogue/search"): answer(
                200, search_page(hit(entry_id, "lomb-scargle-periods"))
            ),
            ("GET", f"/catalogue/executables/{entry_id}"): answer(200, entry_document(entry_id)),
            ("POST", "/broker/requests"): answer(303, offer_set_document(session_document())),
            ("POST", f"/broker/sessions/{SESSION_UUID}"): answer(200, session_document("ACCEPTED")),
            ("GET", f"/broker/sessions/{SESSION_UUID}"): phases_in_turn("RUNNING", "COMPLETED"),
        }
    )

    async def scenario() -> list[SessionPhase]:
        transport = httpx.MockTransport(server)
        async with (
            AsyncCatalogue(SERVER, transport=transport) as catalogue,
            AsyncBroker(SERVER, token=TOKEN, transport=transport) as broker,
        ):
            entry = await catalogue.entry("lomb-scargle-periods")
            offers = await broker.offers_for(entry)
            session = await offers[0].accept()
            return [phase async for phase in session.watch(poll=0.001, timeout=30)]

    # In a thread of its own: when the browser tests run first, Playwright's session-wide
    # browser keeps an event loop running on the main thread, and asyncio.run refuses to nest.
    with ThreadPoolExecutor(max_workers=1) as pool:
        phases = pool.submit(lambda: asyncio.run(scenario())).result()
    assert phases == ["ACCEPTED", "RUNNING", "COMPLETED"]


# ------------------------------------------------------------------------- lightness
def test_importing_the_client_imports_no_server_library() -> None:
    heavy = ("litestar", "sqlalchemy", "tantivy", "uvicorn", "rdflib")
    code = (
        "import sys, voexec.client\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_public_names_are_exported() -> None:
    assert all(hasattr(client, name) for name in client.__all__)
