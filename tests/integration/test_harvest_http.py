"""The harvest's HTTP reads (`harvest.http_get.KeepAlive` under `harvest.oaipmh.OaiPmhClient`)
against a real HTTP server on a loopback port: kept-alive connections, bounded answers, no
redirect followed, only allowed hosts, retries, conditional GETs."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harvest.http_get import Answer, KeepAlive, NoAnswer, TooLarge, Unsendable
from harvest.model import SourceNotFound, SourceUnavailable
from harvest.oaipmh import OaiPmhClient, Validators

BODY = b'{"spec": {"name": "x"}}'
ETAG = '"' + hashlib.sha256(BODY).hexdigest()[:16] + '"'


class Registry(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.failures = 0
        """How many of the next requests of /flaky answer 503."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Registry

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers.items())))
        route = getattr(
            self, "answer_" + self.path.split("?")[0].strip("/").replace("-", "_"), None
        )
        if route is None:
            self.send(404)
        else:
            route()

    def answer_desc(self) -> None:
        if self.headers.get("If-None-Match") == ETAG:
            self.send(304, ETag=ETAG)
        else:
            self.send(200, BODY, ETag=ETAG, Last_Modified="Tue, 03 Mar 2026 10:00:00 GMT")

    def answer_moved(self) -> None:
        self.send(302, Location="http://elsewhere.test/desc")

    def answer_big(self) -> None:
        self.send(200, b"x" * 2000)

    def answer_big_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(4):
            self.wfile.write(b"1f4\r\n" + b"x" * 500 + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def answer_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n")

    def answer_early_hints(self) -> None:
        self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        self.send(200, b"after the hints")

    def answer_garbage(self) -> None:
        self.wfile.write(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")
        self.close_connection = True

    def answer_cut(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"only some")
        self.close_connection = True

    def answer_negative_chunk(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"-5\r\n" + b"x" * 5000)
        self.close_connection = True

    def answer_two_lengths(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4000\r\n\r\nabc")
        self.close_connection = True

    def answer_many_headers(self) -> None:
        self.send_response(200)
        for number in range(101):
            self.send_header(f"X-{number}", "x")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def answer_huge_header(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 200_000 + b"\r\n\r\n")
        self.close_connection = True

    def answer_until_close(self) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"all of it")
        self.close_connection = True

    def answer_flaky(self) -> None:
        if self.server.failures > 0:
            self.server.failures -= 1
            self.send(503)
        else:
            self.send(200, b"at last")

    def answer_hang_up(self) -> None:
        self.close_connection = True  # no answer at all

    def log_message(self, *_: object) -> None:
        """Quiet."""


@pytest.fixture
def registry() -> Iterator[Registry]:
    server = Registry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def client(registry: Registry, **kwargs) -> OaiPmhClient:
    return OaiPmhClient(f"{registry.base}/oai", max_retries=0, sleep=lambda _: None, **kwargs)


def test_connections_are_kept_alive_and_bounded_per_host(registry):
    transport = KeepAlive(limit=1000, per_host=2)
    answers: list[Answer] = []
    threads = [
        threading.Thread(
            target=lambda: answers.extend(transport(f"{registry.base}/desc", {}) for _ in range(10))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    transport.close()
    assert [a.body for a in answers] == [BODY] * 40
    assert answers[0].headers["etag"] == ETAG  # header names lower-case
    assert 1 <= registry.connections <= 2  # 40 requests, never more than 2 connections
    assert all(headers["User-Agent"] == "voexec-harvest" for _, headers in registry.requests)


def test_a_connection_the_server_closed_is_replaced_at_once(registry):
    transport = KeepAlive(limit=1000, per_host=1)
    assert transport(f"{registry.base}/until-close", {}).body == b"all of it"
    assert transport(f"{registry.base}/desc", {}).body == BODY
    # the kept-alive connection is cut under it: the next GET goes out again on a new one
    [pooled] = next(iter(transport._pools.values())).idle
    assert pooled.sock is not None
    pooled.sock.shutdown(socket.SHUT_RDWR)
    assert transport(f"{registry.base}/desc", {}).body == BODY
    transport.close()


def test_answers_longer_than_the_limit_are_refused_however_they_come(registry):
    transport = KeepAlive(limit=1000)
    with pytest.raises(TooLarge, match="2000 bytes, more than 1000"):
        transport(f"{registry.base}/big", {})  # said by its Content-Length
    with pytest.raises(TooLarge, match="more than 1000 bytes"):
        transport(f"{registry.base}/big-chunked", {})  # known only by reading
    assert transport(f"{registry.base}/until-close", {}).body == b"all of it"
    assert transport(f"{registry.base}/desc", {}).body == BODY  # the pool still works
    transport.close()


def test_answers_framed_every_way_are_read_whole(registry):
    transport = KeepAlive(limit=1000, per_host=1)
    assert transport(f"{registry.base}/chunked", {}).body == b"hello, world"
    assert transport(f"{registry.base}/early-hints", {}).body == b"after the hints"
    assert transport(f"{registry.base}/desc", {}).body == BODY
    assert transport(f"{registry.base}/until-close", {}).body == b"all of it"
    assert transport(f"{registry.base}/desc", {}).body == BODY
    assert registry.connections == 2  # kept alive, but after the one the server closed
    transport.close()


def test_what_is_beyond_ascii_is_sent_encoded_or_refused(registry):
    transport = KeepAlive(limit=1000)
    assert transport(f"{registry.base}/d\u00e9sc?q=\u00e9", {}).status == 404
    assert registry.requests[-1][0] == "/d%C3%A9sc?q=%C3%A9"
    with pytest.raises(Unsendable, match="a header cannot be sent"):
        transport(f"{registry.base}/desc", {"Accept": "\u2603"})
    transport.close()


def test_nothing_can_be_slipped_into_a_request(registry):
    transport = KeepAlive(limit=1000)
    for url, headers in [
        (f"{registry.base}/desc HTTP/1.1\r\nX-Evil: 1", {}),
        (f"{registry.base}/de\nsc", {}),
        (f"{registry.base}/desc", {"Accept": "text/xml\r\nX-Evil: 1"}),
        (f"{registry.base}/desc", {"Bad Name": "x"}),
    ]:
        with pytest.raises(Unsendable, match="spaces or control characters"):
            transport(url, headers)
    assert registry.requests == []
    transport.close()


def test_no_answer_is_no_answer(registry):
    transport = KeepAlive(limit=1000)
    with pytest.raises(NoAnswer, match="did not answer"):
        transport(f"{registry.base}/hang-up", {})
    with pytest.raises(NoAnswer, match="not an HTTP answer"):
        transport(f"{registry.base}/garbage", {})
    with pytest.raises(NoAnswer, match="ended after 9 of its 100 bytes"):
        transport(f"{registry.base}/cut", {})
    for malformed in ("negative-chunk", "two-lengths", "many-headers", "huge-header"):
        with pytest.raises(NoAnswer, match="not an HTTP answer"):
            transport(f"{registry.base}/{malformed}", {})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(NoAnswer):
        transport(f"http://127.0.0.1:{closed}/desc", {})
    with pytest.raises(Unsendable, match="not an http"):
        transport("ftp://127.0.0.1/desc", {})
    transport.close()


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("/moved", SourceUnavailable, "302, a redirect to http://elsewhere.test/desc"),
        ("/big", SourceUnavailable, "more than"),
        ("/nothing", SourceNotFound, "404"),
        ("/hang-up", SourceUnavailable, "did not answer"),
    ],
)
def test_the_client_names_what_went_wrong(registry, monkeypatch, path, error, words):
    monkeypatch.setattr("harvest.oaipmh.MAX_ANSWER_BYTES", 1000)
    reader = client(registry)
    with pytest.raises(error, match=words):
        reader.get(f"{registry.base}{path}")
    reader.close()


def test_a_url_that_cannot_be_sent_fails_at_once(registry):
    pauses: list[float] = []
    reader = OaiPmhClient(f"{registry.base}/oai", max_retries=3, sleep=pauses.append)
    with pytest.raises(SourceUnavailable, match="spaces or control characters"):
        reader.get(f"{registry.base}/a b/desc")
    assert pauses == []  # not retried
    assert registry.requests == []
    reader.close()


def test_redirects_are_not_followed(registry):
    reader = client(registry, allowed_hosts=["elsewhere.test"])
    with pytest.raises(SourceUnavailable, match="follows no redirects"):
        reader.get(f"{registry.base}/moved")
    assert [path for path, _ in registry.requests] == ["/moved"]  # nothing else asked
    reader.close()


def test_only_the_registry_and_allowed_hosts_are_asked(registry):
    reader = client(registry)
    with pytest.raises(SourceUnavailable, match="not the registry's host nor an allowed host"):
        reader.get("http://localhost:1/desc")
    assert registry.requests == []


def test_busy_answers_are_retried_then_given_up(registry):
    pauses: list[float] = []
    reader = OaiPmhClient(f"{registry.base}/oai", max_retries=2, sleep=pauses.append)
    registry.failures = 2
    assert reader.get(f"{registry.base}/flaky") == b"at last"
    assert len(pauses) == 2
    registry.failures = 5
    with pytest.raises(SourceUnavailable, match=r"503 \(3 attempts\)"):
        reader.get(f"{registry.base}/flaky")
    reader.close()


def test_parameters_and_headers_are_sent(registry):
    reader = client(registry)
    reader.get(f"{registry.base}/desc", {"verb": "ListRecords", "set": "a b"}, accept="text/xml")
    path, headers = registry.requests[-1]
    assert path == "/desc?verb=ListRecords&set=a+b"
    assert headers["Accept"] == "text/xml"
    reader.close()


def test_a_conditional_get_hears_what_did_not_change(registry):
    reader = client(registry)
    first = reader.fetch(f"{registry.base}/desc")
    assert first.body == BODY
    assert first.validators == Validators(ETAG, "Tue, 03 Mar 2026 10:00:00 GMT")
    again = reader.fetch(f"{registry.base}/desc", first.validators)
    assert again.body is None  # 304
    assert again.validators == first.validators  # kept though the 304 left one out
    _, headers = registry.requests[-1]
    assert headers["If-None-Match"] == ETAG
    assert headers["If-Modified-Since"] == "Tue, 03 Mar 2026 10:00:00 GMT"
    stale = reader.fetch(f"{registry.base}/desc", Validators('"other"'))
    assert stale.body == BODY
    reader.close()


def test_a_304_without_a_conditional_get_is_refused():
    def answer(url: str, headers) -> Answer:
        return Answer(304)

    reader = OaiPmhClient("http://registry.test/oai", max_retries=0, transport=answer)
    with pytest.raises(SourceUnavailable, match="304"):
        reader.fetch("http://registry.test/desc")


# ----------------------------------------------------------------------------- https
def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, in PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_servers_are_verified_and_kept_alive(tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    server = Registry()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/desc"
    try:
        trusting = KeepAlive(limit=1000, tls=ssl.create_default_context(cafile=str(cert_file)))
        assert [trusting(url, {}).body for _ in range(3)] == [BODY] * 3
        assert server.connections == 1
        trusting.close()
        with pytest.raises(NoAnswer, match="CERTIFICATE_VERIFY_FAILED"):
            KeepAlive(limit=1000)(url, {})  # the system's CAs do not know it
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
