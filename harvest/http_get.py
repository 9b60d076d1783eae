"""Bounded HTTP GETs over kept-alive connections: how the registry harvests read the outside.

`KeepAlive` is the transport of `harvest.oaipmh.OaiPmhClient` (OAI-PMH answers and Execution
Broker descriptions) and of the GitLab client's REST reads: HTTP/1.1 GETs over the standard
library's `socket` and `ssl`, one small pool of connections per (scheme, host, port), at most
`per_host` open at once (a caller past it waits for one to be free), each kept open between
requests as long as the server allows. The protocol (status line, headers, bodies framed by
`Content-Length`, by chunks or by the end of the connection, informational answers, whether a
connection may be reused) is h11's, the only module that imports it. A request costs about
0.07 ms of CPU this way, `http.client` about 0.1 ms (its headers go through the `email`
parser) and httpx about 0.5 ms: with thousands of descriptions a run, the client was most of a
harvest's CPU.

What it guarantees, whoever calls it:

- GET only, and no redirect is ever followed: a 3xx is handed back as it is (its `Location`
  among the headers), for the caller to refuse;
- reads are bounded: an answer that says (`Content-Length`) or turns out to be longer than
  `limit` bytes is refused with `TooLarge` as soon as that is known, and its connection closed;
  a status line and headers over 64 KiB in all (checked at each read of 64 KiB), more than 100
  headers, or anything h11 finds malformed (a bad chunk size, two different lengths) is no
  answer;
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
from typing import Final
from urllib.parse import quote, urlsplit

import h11

USER_AGENT: Final = "voexec-harvest"
CONNECT_TIMEOUT: Final = 10.0
READ_TIMEOUT: Final = 60.0
MAX_HEAD: Final = 65_536
"""Bytes of an answer's status line and headers."""
MAX_HEADERS: Final = 100
RECEIVE: Final = 65_536
"""Bytes asked of the socket at a time."""
_UNSAFE: Final = re.compile(r"[\x00-\x20\x7f]")
"""What may not appear in a request target or a header name (a space, a line break...)."""
_ASCII: Final = "".join(chr(code) for code in range(0x21, 0x7F))
"""What stays as it is in a request target (the rest is percent-encoded UTF-8)."""


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
    """One connection: its socket and h11's state of it (None while closed)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.http: h11.Connection | None = None
        self.ended = False
        """Whether the server has closed its side (an answer cut there is cut short)."""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = self.http = None
        self.ended = False


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
            request = h11.Request(
                method="GET",
                target=target.encode("ascii"),
                headers=[(k.encode("ascii"), v.encode("latin-1")) for k, v in fields.items()],
            )
        except (UnicodeEncodeError, h11.LocalProtocolError) as error:
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
        connection.sock = sock
        connection.http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    def _get(
        self, pool: _Pool, key: tuple[str, str, int], request: h11.Request, url: str
    ) -> Answer:
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

    def _exchange(
        self, connection: _Connection, request: h11.Request, url: str
    ) -> tuple[Answer, bool]:
        """Send the request and read its answer; the answer and whether to keep the connection."""
        sock, http = connection.sock, connection.http
        if sock is None or http is None:
            raise _Closed("the connection is not open")
        sock.sendall(http.send(request) + http.send(h11.EndOfMessage()))
        status, headers = self._head(connection, url)
        said = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if said is not None and not chunked and int(said) > self.limit:
            raise TooLarge(f"{url} answered {int(said)} bytes, more than {self.limit}")
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                event = self._event(connection, url)
            except _Closed:
                if said is not None:
                    raise _Closed(f"the answer ended after {size} of its {said} bytes") from None
                raise
            if isinstance(event, h11.EndOfMessage):
                break
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.limit:
                    raise TooLarge(f"{url} answered more than {self.limit} bytes")
                parts.append(bytes(event.data))
        keep = http.our_state is h11.DONE and http.their_state is h11.DONE
        if keep:
            http.start_next_cycle()
        return Answer(status, headers, b"".join(parts)), keep

    def _head(self, connection: _Connection, url: str) -> tuple[int, dict[str, str]]:
        """The answer's status and headers (lower-case names), after any 1xx answers."""
        head = self._event(connection, url)
        while isinstance(head, h11.InformationalResponse):  # 1xx goes before the real answer
            head = self._event(connection, url)
        if not isinstance(head, h11.Response):
            raise ValueError(f"not an HTTP answer: {head!r}")
        if len(head.headers) > MAX_HEADERS:
            raise ValueError(f"not an HTTP answer: more than {MAX_HEADERS} headers")
        return head.status_code, {
            name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers
        }

    @staticmethod
    def _event(connection: _Connection, url: str) -> h11.Event:
        """The next event of the answer, reading from the socket as h11 needs."""
        assert connection.sock is not None
        assert connection.http is not None
        while True:
            reading = connection.http.their_state  # h11 moves to ERROR on an error
            try:
                event = connection.http.next_event()
            except h11.RemoteProtocolError as error:
                if reading is h11.SEND_BODY and connection.ended:
                    raise _Closed(f"{url}: the answer is cut short ({error})") from None
                raise ValueError(f"not an HTTP answer: {error}") from None
            if event is h11.NEED_DATA:
                data = connection.sock.recv(RECEIVE)
                connection.ended = not data
                if not data and connection.http.their_state is h11.SEND_RESPONSE:
                    raise _Closed("the connection closed before an answer")
                connection.http.receive_data(data)
                continue
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                raise _Closed("the connection closed before the answer ended")
            assert isinstance(event, h11.Event)
            return event
