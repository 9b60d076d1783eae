"""What voexec's Rucio client does with answers a sound Rucio server never gives.

A small local http server stands for the Rucio server (and for the host a redirect points at):
it answers each path as a test sets it and records every request it was sent, with its headers.
The real server's behaviour is tested in `test_rucio_data`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from broker.platforms import rucio_client
from core.settings import RucioServer

TOKEN_HEADERS = {"X-Rucio-Auth-Token": "a-token", "X-Rucio-Auth-Token-Expires": ""}


@dataclass
class FakeRucio:
    """Canned answers by path (`status, headers, body`), and what was asked."""

    url: str = ""
    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

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
            status, headers, body = state.answer(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

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
