"""Bounded HTTP GETs over kept-alive connections: how the registry harvests read the outside.

`KeepAlive` is the transport of `harvest.oaipmh.OaiPmhClient` (OAI-PMH answers and Execution
Broker descriptions): HTTP/1.1 GETs written and read here over the standard library's `socket`
and `ssl`, one small pool of connections per (scheme, host, port), at most `per_host` open at
once (a caller past it waits for one to be free), each kept open between requests as long as
the server allows. Nothing but what a GET needs is spoken: a status line, headers, a body
framed by `Content-Length`, by chunks or by the end of the connection. A request costs about
0.02 ms of CPU this way, `http.client` about 0.1 ms (its headers go through the `email`
parser) and httpx about 0.5 ms: with thousands of descriptions a run, the client was most of a
harvest's CPU.

What it guarantees, whoever calls it:

- GET only, and no redirect is ever followed: a 3xx is handed back as it is (its `Location`
  among the headers), for the caller to refuse;
- reads are bounded: an answer that says (`Content-Length`) or turns out to be longer than
  `limit` bytes is refused with `TooLarge` as soon as that is known, and its connection closed;
  a status line or header line over 64 KiB, or more than 100 headers, is no answer;
- reading is strict, since a registry may be anyone's server: a chunk size that is not plain
  hexadecimal, a Content-Length that is not plain digits or two different ones, a header line
  without a name or folded onto the next, are no answer (h11 reads the same answers alike but
  cost 0.2 ms of CPU a record more in the OAI-PMH benchmark: a third of a harvest);
- time is bounded: `connect_timeout` to connect, `timeout` for each read;
- a URL or header with control characters or spaces where they cannot be is refused before
  anything is sent (nothing can be slipped into the request);
- a failure to get an answer (refused, reset, timed out, not HTTP) is `NoAnswer`, which the
  caller may retry; a kept-alive connection the server closed meanwhile is replaced once, at
  once, before that (a GET is safe to send again).

Which hosts may be asked is the caller's decision (`OaiPmhClient` asks only its registry's host
and `harvest.allowed_hosts`). Proxies from the environment are not used.

`Transport` is the port (one call: url, headers -> `Answer`); tests give a function.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Final
from urllib.parse import quote, urlsplit

USER_AGENT: Final = "voexec-harvest"
CONNECT_TIMEOUT: Final = 10.0
READ_TIMEOUT: Final = 60.0
MAX_LINE: Final = 65_536
MAX_HEADERS: Final = 100
_UNSAFE: Final = re.compile(r"[\x00-\x20\x7f]")
"""What may not appear in a request target or a header name (a space, a line break...)."""
_ASCII: Final = "".join(chr(code) for code in range(0x21, 0x7F))
"""What stays as it is in a request target (the rest is percent-encoded UTF-8)."""
_LENGTH: Final = re.compile(r"[0-9]{1,18}")
"""A Content-Length: ASCII digits only."""
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
"""A chunk's size: hexadecimal digits only (no sign, no `0x`), as RFC 9112 writes it."""


class NoAnswer(Exception):
    """No HTTP answer came back (connection refused or reset, a timeout, not HTTP)."""


class TooLarge(Exception):
    """The answer is longer than the limit."""


class Unsendable(Exception):
    """The URL or a header cannot be sent as given (not http(s), control characters)."""


class _Closed(ConnectionError):
    """The server closed the connection before answering."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: its status, headers (lower-case names) and whole body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


Transport = Callable[[str, Mapping[str, str]], Answer]
"""GET `url` with these request headers; raises `NoAnswer`, `TooLarge` or `Unsendable`."""


class _Connection:
    """One connection: its socket and the buffered reader over it (None while closed)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.reader: BinaryIO | None = None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None


class _Pool:
    """The connections to one (scheme, host, port): idle ones, and a bound on open ones."""

    def __init__(self, size: int) -> None:
        self.idle: list[_Connection] = []
        self.free = threading.BoundedSemaphore(size)
        self.lock = threading.Lock()


class KeepAlive:
    """A `Transport`: GETs over a few kept-alive connections per host; see the module docstring."""

    def __init__(
        self,
        *,
        limit: int,
        per_host: int = 4,
        timeout: float = READ_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: how https servers are verified (the system's CAs and host names unless given)."""
        self.limit = limit
        self.per_host = max(1, per_host)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._lock = threading.Lock()
        self._tls = tls

    def __call__(self, url: str, headers: Mapping[str, str]) -> Answer:
        """GET `url`; see the module docstring.

        Raises:
            NoAnswer: no answer (nor after replacing a connection the server had closed).
            TooLarge: an answer longer than `limit`.
            Unsendable: a URL or header that cannot be sent.
        """
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in {"http", "https"} or not host:
            raise Unsendable(f"{url} is not an http(s) URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as error:
            raise Unsendable(f"{url}: {error}") from error
        # Beyond ASCII: the path as UTF-8, percent-encoded; the host name in its IDNA form.
        target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), _ASCII)
        try:
            name = host if host.isascii() else host.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise Unsendable(f"{url}: the host name cannot be sent ({error})") from error
        name = f"[{name}]" if ":" in name else name
        default = 443 if scheme == "https" else 80
        fields = {"Host": name if port == default else f"{name}:{port}"}
        fields |= {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        if _UNSAFE.search(url) or any(
            _UNSAFE.search(key) or "\r" in value or "\n" in value or "\0" in value
            for key, value in fields.items()
        ):
            raise Unsendable(f"{url!r}: a request with spaces or control characters is not sent")
        try:
            request = (
                f"GET {target} HTTP/1.1\r\n"
                + "".join(f"{key}: {value}\r\n" for key, value in fields.items())
                + "\r\n"
            ).encode("latin-1")
        except UnicodeEncodeError as error:
            raise Unsendable(f"{url}: a header cannot be sent ({error})") from error
        key = (scheme, host, port)
        pool = self._pool(key)
        pool.free.acquire()
        try:
            return self._get(pool, key, request, url)
        finally:
            pool.free.release()

    def close(self) -> None:
        """Close every idle connection (those in use close when their request ends)."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            with pool.lock:
                idle, pool.idle = pool.idle, []
            for connection in idle:
                connection.close()

    # ------------------------------------------------------------------ internals
    def _pool(self, key: tuple[str, str, int]) -> _Pool:
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _Pool(self.per_host)
            return pool

    def _open(self, connection: _Connection, key: tuple[str, str, int]) -> None:
        scheme, host, port = key
        sock = socket.create_connection((host, port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                with self._lock:
                    if self._tls is None:
                        self._tls = ssl.create_default_context()
                sock = self._tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(self.timeout)
        except BaseException:
            sock.close()
            raise
        connection.sock, connection.reader = sock, sock.makefile("rb")

    def _get(self, pool: _Pool, key: tuple[str, str, int], request: bytes, url: str) -> Answer:
        with pool.lock:
            connection = pool.idle.pop() if pool.idle else _Connection()
        reused = connection.sock is not None
        try:
            try:
                if not reused:
                    self._open(connection, key)
                answer, keep = self._exchange(connection, request, url)
            except ConnectionError:
                if not reused:
                    raise
                # The server closed the kept-alive connection meanwhile: once more, afresh.
                connection.close()
                self._open(connection, key)
                answer, keep = self._exchange(connection, request, url)
        except (OSError, ValueError) as error:
            connection.close()
            raise NoAnswer(f"{url} did not answer: {error}") from error
        except BaseException:
            connection.close()
            raise
        if not keep:
            connection.close()
        with pool.lock:
            pool.idle.append(connection)  # a closed one opens again on its next use
        return answer

    def _exchange(self, connection: _Connection, request: bytes, url: str) -> tuple[Answer, bool]:
        """Send the request and read its answer; the answer and whether to keep the connection."""
        sock, reader = connection.sock, connection.reader
        if sock is None or reader is None:
            raise _Closed("the connection is not open")
        sock.sendall(request)
        while True:
            line = reader.readline(MAX_LINE + 1)
            if not line:
                raise _Closed("the connection closed before an answer")
            version, status = _status(line)
            headers = _headers(reader)
            if not 100 <= status < 200:  # an informational answer goes before the real one
                break
        keep = version == b"HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if status in {204, 304}:
            return Answer(status, headers), keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Answer(status, headers, self._chunks(reader, url)), keep
        said = headers.get("content-length")
        if said is not None:
            if not _LENGTH.fullmatch(said):
                raise ValueError(f"not an HTTP answer: the Content-Length {said!r} is not a length")
            if int(said) > self.limit:
                raise TooLarge(f"{url} answered {int(said)} bytes, more than {self.limit}")
            body = reader.read(int(said))
            if len(body) < int(said):
                raise _Closed(f"the answer ended after {len(body)} of its {said} bytes")
            return Answer(status, headers, body), keep
        body = reader.read(self.limit + 1)  # framed by the end of the connection
        if len(body) > self.limit:
            raise TooLarge(f"{url} answered more than {self.limit} bytes")
        return Answer(status, headers, body), False

    def _chunks(self, reader: BinaryIO, url: str) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = reader.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE or not line.endswith(b"\n"):
                raise _Closed("a chunk size line is cut or too long")
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise ValueError(f"not an HTTP answer: a chunk size of {size_text[:20]!r}")
            length = int(size_text, 16)
            if length == 0:
                _headers(reader)  # trailers, read and dropped
                return b"".join(parts)
            size += length
            if size > self.limit:
                raise TooLarge(f"{url} answered more than {self.limit} bytes")
            chunk = reader.read(length)
            if len(chunk) < length or reader.readline(3) not in {b"\r\n", b"\n"}:
                raise _Closed("a chunk is cut short")
            parts.append(chunk)


def _status(line: bytes) -> tuple[bytes, int]:
    """The version and status of a status line (`HTTP/1.1 200 OK`)."""
    if len(line) > MAX_LINE:
        raise ValueError("not an HTTP answer: the status line is too long")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {line[:80]!r}")
    return parts[0], int(parts[1])


def _headers(reader: BinaryIO) -> dict[str, str]:
    """Header lines up to the empty one, by lower-case name (a repeated one keeps the last)."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ValueError("not an HTTP answer: a header line is too long")
        if line in {b"\r\n", b"\n"}:
            return headers
        if not line:
            raise _Closed("the connection closed in the headers")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise ValueError(f"not an HTTP answer: not a header line: {line[:80]!r}")
        name, value = name.lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            raise ValueError("not an HTTP answer: two different Content-Lengths")
        headers[name] = value
    raise ValueError(f"not an HTTP answer: more than {MAX_HEADERS} headers")
