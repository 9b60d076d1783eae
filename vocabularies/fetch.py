"""Fetching vocabulary documents over HTTP: the `Fetcher` port and its httpx adapter.

The registry asks a `Fetcher` for one URL with one `Accept` header and gets back the bytes and
the media type the server chose. The only adapter here uses httpx; tests pass their own
function or point this one at a loopback server. Failures are translated at this boundary into
`core.errors`: `Unavailable` when the server cannot be reached or fails, `NotFound` when it
says the document does not exist.
"""

from __future__ import annotations

from typing import Final, Protocol

import httpx
import msgspec

from core.errors import NotFound, Unavailable

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds to wait for a connection or a read; short, because start-up waits for it."""
MAX_BYTES: Final = 32 * 1024 * 1024
"""Largest document accepted (the full UAT is under 2 MB in any serialisation)."""


class Fetched(msgspec.Struct, frozen=True):
    """A document as a server sent it."""

    body: bytes
    media_type: str
    """The `Content-Type` without parameters, lower case (`application/x-desise+json`)."""
    url: str
    """Where it finally came from, after redirects (IVOA answers 303 to a versioned file)."""


class Fetcher(Protocol):
    """Gets one document: `fetch(url, accept)`.

    Raises:
        Unavailable: the server cannot be reached, times out or answers with an error.
        NotFound: the server answers 404 or 410.
    """

    def __call__(self, url: str, accept: str) -> Fetched:
        """Fetch `url` asking for the media types in `accept`."""
        ...


class HttpFetcher:
    """The real `Fetcher`: HTTP GET with redirects followed and the answer's size bounded."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_BYTES) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes

    def __call__(self, url: str, accept: str) -> Fetched:
        """Fetch `url` asking for `accept`; see `Fetcher`."""
        headers = {"Accept": accept, "User-Agent": "voexec-vocabularies"}
        try:
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=True) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code in (404, 410):
                    raise NotFound(f"{url} answered {response.status_code}: no such vocabulary")
                if response.status_code >= 400:
                    raise Unavailable(f"{url} answered HTTP {response.status_code}")
                body = self._read_bounded(response, url)
                media_type = response.headers.get("content-type", "").partition(";")[0]
                return Fetched(body, media_type.strip().lower(), str(response.url))
        except httpx.HTTPError as error:
            reason = str(error) or type(error).__name__
            raise Unavailable(f"cannot fetch {url}: {reason}") from error

    def _read_bounded(self, response: httpx.Response, url: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise Unavailable(f"{url} sent more than {self.max_bytes} bytes; refused")
            chunks.append(chunk)
        return b"".join(chunks)
