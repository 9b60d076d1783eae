"""Bounded HTTP GETs over kept-alive connections: how the registry harvests read the outside.

`KeepAlive` is the transport of `harvest.oaipmh.OaiPmhClient` (OAI-PMH answers and Execution
Broker descriptions): the standard library's `http.client`, one small pool of connections per
(scheme, host, port), at most `per_host` open at once (a caller past it waits for one to be
free), each kept open between requests as long as the server allows. A request costs about a
tenth of a millisecond of CPU this way (an httpx request about 0.5 ms): with thousands of
descriptions a run, the client was most of a harvest's CPU.

What it guarantees, whoever calls it:

- GET only, and no redirect is ever followed: a 3xx is handed back as it is (its `Location`
  among the headers), for the caller to refuse;
- reads are bounded: an answer that says (`Content-Length`) or turns out to be longer than
  `limit` bytes is refused with `TooLarge` as soon as that is known, and its connection closed;
- time is bounded: `connect_timeout` to connect, `timeout` for each read;
- a failure to get an answer (refused, reset, timed out, not HTTP) is `NoAnswer`, which the
  caller may retry; a kept-alive connection the server closed meanwhile is replaced once, at
  once, before that (a GET is safe to send again).

Which hosts may be asked is the caller's decision (`OaiPmhClient` asks only its registry's host
and `harvest.allowed_hosts`). Proxies from the environment are not used.

`Transport` is the port (one call: url, headers -> `Answer`); tests give a function.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

USER_AGENT: Final = "voexec-harvest"
CONNECT_TIMEOUT: Final = 10.0
READ_TIMEOUT: Final = 60.0


class NoAnswer(Exception):
    """No HTTP answer came back (connection refused or reset, a timeout, not HTTP)."""


class TooLarge(Exception):
    """The answer is longer than the limit."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: its status, headers (lower-case names) and whole body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


Transport = Callable[[str, Mapping[str, str]], Answer]
"""GET `url` with these request headers; raises `NoAnswer` or `TooLarge`."""


class _Timed:
    """Connects within `connect_timeout`, then reads within the connection's `timeout`."""

    connect_timeout = CONNECT_TIMEOUT
    timeout: float | None
    sock: socket.socket | None

    def connect(self) -> None:
        reading = self.timeout
        self.timeout = self.connect_timeout
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self.timeout = reading
        if self.sock is not None:
            self.sock.settimeout(reading)


class _Http(_Timed, http.client.HTTPConnection):
    pass


class _Https(_Timed, http.client.HTTPSConnection):
    pass


class _Pool:
    """The connections to one (scheme, host, port): idle ones, and a bound on open ones."""

    def __init__(self, size: int) -> None:
        self.idle: list[http.client.HTTPConnection] = []
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
    ) -> None:
        self.limit = limit
        self.per_host = max(1, per_host)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def __call__(self, url: str, headers: Mapping[str, str]) -> Answer:
        """GET `url`; see the module docstring.

        Raises:
            NoAnswer: no answer (nor after replacing a connection the server had closed).
            TooLarge: an answer longer than `limit`.
        """
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in {"http", "https"} or not host:
            raise NoAnswer(f"{url} is not an http(s) URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as error:
            raise NoAnswer(f"{url}: {error}") from error
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = {"User-Agent": USER_AGENT, **headers}
        key = (scheme, host, port)
        pool = self._pool(key)
        pool.free.acquire()
        try:
            return self._get(pool, key, target, request)
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

    def _connection(self, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        scheme, host, port = key
        connection: http.client.HTTPConnection
        if scheme == "https":
            with self._lock:
                if self._tls is None:
                    self._tls = ssl.create_default_context()
            connection = _Https(host, port, timeout=self.timeout, context=self._tls)
        else:
            connection = _Http(host, port, timeout=self.timeout)
        connection.connect_timeout = self.connect_timeout
        return connection

    def _get(
        self, pool: _Pool, key: tuple[str, str, int], target: str, headers: dict[str, str]
    ) -> Answer:
        scheme, host, port = key
        where = f"{scheme}://{host}:{port}{target}"
        with pool.lock:
            connection = pool.idle.pop() if pool.idle else None
        reused = connection is not None and connection.sock is not None
        if connection is None:
            connection = self._connection(key)
        try:
            try:
                response = self._send(connection, target, headers)
            except (http.client.RemoteDisconnected, ConnectionError):
                if not reused:
                    raise
                # The server closed the kept-alive connection meanwhile: once more, afresh.
                connection.close()
                response = self._send(connection, target, headers)
            answer = self._read(connection, response, where)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise NoAnswer(f"{where} did not answer: {error}") from error
        except BaseException:
            connection.close()
            raise
        with pool.lock:
            pool.idle.append(connection)  # one the server closes reconnects on its next use
        return answer

    @staticmethod
    def _send(
        connection: http.client.HTTPConnection, target: str, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        connection.request("GET", target, headers=headers)
        return connection.getresponse()

    def _read(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, url: str
    ) -> Answer:
        said = response.getheader("content-length")
        if said is not None and said.strip().isdigit() and int(said) > self.limit:
            connection.close()
            raise TooLarge(f"{url} answered {int(said)} bytes, more than {self.limit}")
        body = response.read(self.limit + 1)
        if len(body) <= self.limit and not response.isclosed():
            body += response.read(1)  # an answer read until the server closes: its end?
        if len(body) > self.limit:
            connection.close()
            raise TooLarge(f"{url} answered more than {self.limit} bytes")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, headers, body)
