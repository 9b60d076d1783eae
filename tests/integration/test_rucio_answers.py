"""What voexec's Rucio client does with answers a sound Rucio server never gives.

A small local http server stands for the Rucio server (and for the host a redirect points at):
it answers each path as a test sets it and records every request it was sent, with its headers.
The real server's behaviour is tested in `test_rucio_data`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from broker import model
from broker.model import codec
from broker.platforms import rucio_client
from broker.platforms.data_plan import DataItem, data_items
from broker.platforms.data_reach import assess_data
from core.settings import PlatformDataSettings, RucioServer

TOKEN_HEADERS = {"X-Rucio-Auth-Token": "a-token", "X-Rucio-Auth-Token-Expires": ""}


@dataclass
class FakeRucio:
    """Canned answers by path (`status, headers, body`), and what was asked."""

    url: str = ""
    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    """Seconds each answer waits (a slow host)."""

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        for prefix, canned in self.answers.items():
            if path.startswith(prefix):
                return canned
        return 404, {}, b'{"ExceptionClass": "DataIdentifierNotFound"}'


def _handler(state: FakeRucio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            if length:
                self.rfile.read(length)
            state.seen.append((self.path, dict(self.headers.items())))
            time.sleep(state.delay)
            status, headers, body = state.answer(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = _reply  # noqa: N815
        do_GET = _reply  # noqa: N815 - http.server's names
        do_POST = _reply  # noqa: N815

    return Handler


def _serve() -> Iterator[FakeRucio]:
    state = FakeRucio()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeRucio]:
    rucio_client.clear_tokens()
    yield from _serve()
    rucio_client.clear_tokens()


@pytest.fixture
def elsewhere() -> Iterator[FakeRucio]:
    """Another host a redirect points at; it would take any credentials it is sent."""
    yield from _serve()


def test_a_redirect_is_refused_and_sends_neither_the_password_nor_the_token_on(
    fake: FakeRucio, elsewhere: FakeRucio
) -> None:
    elsewhere.answers["/"] = (200, TOKEN_HEADERS, b"")
    fake.answers["/"] = (302, {"Location": f"{elsewhere.url}/steal"}, b"")
    with_password = RucioServer(url=fake.url, account="ops", username="u", password="pw-secret")
    with pytest.raises(rucio_client.RucioError, match="redirect") as refused:
        rucio_client.file_replicas(with_password, "s", "f", timeout=5)
    assert fake.url.removeprefix("http://") in str(refused.value)
    assert f"{elsewhere.url}/steal" in str(refused.value)

    with_token = RucioServer(url=fake.url, account="ops", token="token-secret")
    with pytest.raises(rucio_client.RucioError, match="redirect"):
        rucio_client.file_replicas(with_token, "s", "f", timeout=5)

    assert elsewhere.seen == []  # nothing reached the other host
    sent = [headers for _, headers in fake.seen]
    assert sent[0]["X-Rucio-Password"] == "pw-secret"
    assert sent[1]["X-Rucio-Auth-Token"] == "token-secret"


def items(*data: dict[str, Any]) -> list[DataItem]:
    request = {
        "executable": {"kind": model.PYTHON_PROGRAM_KIND, "location": "https://e.org/job.py"},
        "data": list(data),
    }
    return data_items(codec.convert(request, model.ExecutionRequest).value.data)


def rucio_item(name: str, scope: str, did_name: str) -> dict[str, Any]:
    block = {"scope": scope, "object": did_name}
    return {
        "kind": model.KINDS + "data/rucio-data-resource.yaml",
        "meta": {"name": name},
        "rucio": block,
    }


def _account(fake: FakeRucio, **changes: object) -> RucioServer:
    return RucioServer(url=fake.url, account="ops", token="a-token", **changes)  # type: ignore[arg-type]


def _listing(*files: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
    body = b"".join(json.dumps(found).encode() + b"\n" for found in files)
    return 200, {"Content-Type": "application/x-json-stream"}, body


def _replica_file(name: str, *pfns: str) -> dict[str, object]:
    return {
        "scope": "s",
        "name": name,
        "bytes": 3,
        "adler32": None,
        "md5": None,
        "pfns": {pfn: {"rse": "DISK", "priority": number} for number, pfn in enumerate(pfns)},
        "states": {"DISK": "AVAILABLE"},
    }


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>busy</html>\n", "line 1 is not JSON"),
        (b'{"scope": "s", "name": "f", "pfns": ["http://h/f"]}\n', "pfns"),
        (b'{"scope": "s", "name": "f", "pfns": {"http://h/f": "DISK"}}\n', "pfns"),
        (b'{"scope": "s", "name": "f", "bytes": "many", "pfns": {}}\n', "bytes"),
        (b'["s", "f"]\n', "line 1 is not a JSON object"),
    ],
)
def test_a_malformed_replica_list_is_a_refusal_naming_the_server_and_the_item(
    fake: FakeRucio, body: bytes, why: str
) -> None:
    fake.answers["/replicas/list"] = (200, {}, body)
    with pytest.raises(rucio_client.RucioError, match=why) as refused:
        rucio_client.file_replicas(_account(fake), "s", "f", timeout=5)
    text = str(refused.value)
    assert f"the Rucio server {fake.url} answered a malformed replica list for s:f" in text

    data = PlatformDataSettings(rucio=[_account(fake)])
    answer = assess_data(items(rucio_item("wanted", "s", "f")), data)
    (refusal,) = answer.refusals
    assert refusal.startswith("data 'wanted': the Rucio server ")
    assert why in refusal


def test_an_answer_larger_than_the_client_reads_is_refused(
    fake: FakeRucio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rucio_client, "MAX_ANSWER", 1000)
    fake.answers["/replicas/list"] = _listing(
        *[_replica_file(f"f{n}", f"http://h/f{n}") for n in range(20)]
    )
    with pytest.raises(rucio_client.RucioError, match="more than 1000 bytes") as refused:
        rucio_client.file_replicas(_account(fake), "s", "set", timeout=5)
    assert fake.url.removeprefix("http://") in str(refused.value)
    # An error's explanation is read within a bound too, and then not quoted.
    fake.answers["/replicas/list"] = (500, {}, b'{"ExceptionMessage": "' + b"x" * 70_000 + b'"}')
    with pytest.raises(rucio_client.RucioError, match="HTTP 500") as failed:
        rucio_client.file_replicas(_account(fake), "s", "set", timeout=5)
    assert "xxxx" not in str(failed.value)


def test_more_files_than_the_platform_stages_from_one_item_is_a_no_naming_the_cap(
    fake: FakeRucio,
) -> None:
    fake.answers["/replicas/list"] = _listing(
        *[_replica_file(f"f{n}", f"http://h/f{n}") for n in range(5)]
    )
    data = PlatformDataSettings(rucio=[_account(fake, max_files=4)])
    answer = assess_data(items(rucio_item("many", "s", "set")), data)
    assert answer.refusals == (
        "data 'many': s:set holds more than 4 files, more than this platform stages from one "
        "Rucio data item (data.rucio[].max_files)",
    )


def test_a_platform_never_gets_the_answer_another_platform_s_limits_gave(
    fake: FakeRucio, elsewhere: FakeRucio
) -> None:
    elsewhere.answers["/"] = (200, {}, b"abc")
    fake.answers["/replicas/list"] = _listing(
        *[_replica_file(f"f{n}", f"{elsewhere.url}/f{n}") for n in range(5)]
    )
    lenient = PlatformDataSettings(rucio=[_account(fake, max_files=100)])
    strict = PlatformDataSettings(rucio=[_account(fake, max_files=4)])
    wanted = items(rucio_item("many", "s", "set"))
    assert assess_data(wanted, lenient).refusals == ()  # and kept for the cache's time
    (refusal,) = assess_data(wanted, strict).refusals  # not the lenient platform's YES
    assert "more than 4 files" in refusal


def test_probing_the_replicas_of_a_dataset_stops_at_the_budget_naming_the_item(
    fake: FakeRucio, elsewhere: FakeRucio
) -> None:
    # Every replica's host answers only after 2 s; the budget for the item is 1 s.
    elsewhere.delay = 2.0
    elsewhere.answers["/"] = (200, {}, b"abc")
    fake.answers["/replicas/list"] = _listing(
        *[_replica_file(f"f{n}", f"{elsewhere.url}/f{n}") for n in range(12)]
    )
    data = PlatformDataSettings(
        rucio=[_account(fake, probe_budget=timedelta(seconds=1))],
        probe_timeout=timedelta(seconds=10),
    )
    answer = assess_data(items(rucio_item("slow", "s", "set")), data)
    (refusal,) = answer.refusals
    assert refusal.startswith("data 'slow': ")
    assert "probing the replicas of s:set's 12 files took longer than" in refusal
    assert "data.rucio[].probe_budget" in refusal
