"""HTTP for the validator: every call to the broker under test, recorded as it went.

`Wire` wraps one `httpx.Client`. Each call is kept as an `Exchange` (method, URL, status, the
headers that matter to the standard, both bodies clipped) in the list of the scenario being
run, so each finding can show the exchange that showed it. Credentials (a bearer token or HTTP
Basic) are sent only to URLs under the broker's base URL, never to a host a `Location` names.
Bodies are decoded as the answer's `Content-Type` says (JSON, or YAML read safely); the
validator judges these plain dicts, not voexec's own model, so it sees what any client sees.

The only module of the validator that imports httpx (and the only one reading YAML).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import yaml

__all__ = [
    "JSON",
    "YAML",
    "Credentials",
    "Exchange",
    "OutsideBroker",
    "Wire",
    "decode_body",
    "media_of",
]

JSON: Final = "application/json"
YAML: Final = "application/yaml"
CLIP: Final = 2000
"""Characters of each body kept in a report: enough to see the document's start and errors."""
KEPT_HEADERS: Final = ("content-type", "accept", "location", "www-authenticate")
"""The headers the standard speaks of; others are left out of reports."""
USER_AGENT: Final = "voexec-validate/0.1 (IVOA Execution Broker conformance)"


class OutsideBroker(ValueError):
    """A URL the validator will not call: it is not under the broker's base URL."""


@dataclass(frozen=True)
class Credentials:
    """How to authenticate to the broker: a bearer token or HTTP Basic (or neither)."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def headers(self) -> dict[str, str]:
        """The `Authorization` header these credentials give (none when empty)."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.user is not None:
            basic = httpx.BasicAuth(self.user, self.password or "")
            request = next(basic.auth_flow(httpx.Request("GET", "http://localhost/")))
            return {"Authorization": request.headers["Authorization"]}
        return {}


@dataclass
class Exchange:
    """One HTTP call and its answer, as a report shows it."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None
    response_headers: dict[str, str]
    body: str
    elapsed_ms: float
    error: str | None = None

    def brief(self) -> str:
        """`POST https://host/broker/requests -> 303 (application/json)`."""
        answer = self.error or f"{self.status} ({self.response_headers.get('content-type', '')})"
        return f"{self.method} {self.url} -> {answer}"


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[:CLIP] + f"... [{len(text) - CLIP} more]"


def media_of(content_type: str | None) -> str:
    """`json`, `yaml` or the essence of another media type ('' when absent)."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    if essence == JSON or essence.endswith("+json"):
        return "json"
    if essence in {YAML, "text/yaml", "application/x-yaml", "application/yml", "text/yml"}:
        return "yaml"
    if essence.endswith("+yaml"):
        return "yaml"
    return essence


def decode_body(content_type: str | None, text: str) -> Any:
    """The answer's document as plain data, read as its media type says; None if unreadable."""
    media = media_of(content_type)
    try:
        if media == "json":
            return json.loads(text)
        if media == "yaml":
            return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return None
    return None


def encode_body(document: Mapping[str, Any], media: str) -> str:
    """A request document as JSON or YAML text."""
    if media == "yaml":
        return yaml.safe_dump(dict(document), sort_keys=False)
    return json.dumps(document)


@dataclass
class Wire:
    """The validator's HTTP client for one broker; records each exchange in `log`."""

    base: str
    credentials: Credentials = field(default_factory=Credentials)
    timeout: float = 30.0
    log: list[Exchange] = field(default_factory=list)
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.base = self.base.rstrip("/")
        # Redirects are never followed: a 303 and its Location are what is being judged.
        self.client = httpx.Client(
            timeout=self.timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    def url(self, path: str) -> str:
        """The absolute URL of `path` under the broker's base URL."""
        return self.base + path

    def under_broker(self, url: str) -> bool:
        """Whether `url` is the broker's base URL or beneath it."""
        return url == self.base or url.startswith(self.base + "/")

    def call(
        self,
        method: str,
        url: str,
        *,
        document: Mapping[str, Any] | None = None,
        text: str | None = None,
        content_type: str | None = None,
        accept: str | None = None,
    ) -> tuple[Exchange, Any]:
        """Send one request; return its recorded exchange and the decoded answer (or None).

        `document` is encoded as `content_type` says (JSON unless YAML); `text` is sent as is.
        A transport failure is recorded with `status` None and its reason in `error`.

        Raises:
            OutsideBroker: `url` is not under the broker's base URL.
        """
        if not self.under_broker(url):
            raise OutsideBroker(f"{url} is not under the broker's URL {self.base}")
        headers: dict[str, str] = {}
        if accept is not None:
            headers["Accept"] = accept
        if content_type is not None:
            headers["Content-Type"] = content_type
        body = text
        if document is not None:
            body = encode_body(document, media_of(content_type))
        sent = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
        started = time.perf_counter()
        try:
            response = self.client.request(
                method,
                url,
                content=body.encode("utf-8") if body is not None else None,
                headers={**headers, **self.credentials.headers()},
            )
        except httpx.HTTPError as error:
            exchange = Exchange(
                method, url, sent, _clip(body or ""), None, {}, "",
                (time.perf_counter() - started) * 1000, error=f"{type(error).__name__}: {error}",
            )  # fmt: skip
            self.log.append(exchange)
            return exchange, None
        kept = {k.lower(): v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
        exchange = Exchange(
            method, url, sent, _clip(body or ""), response.status_code, kept,
            _clip(response.text), (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        self.log.append(exchange)
        return exchange, decode_body(response.headers.get("content-type"), response.text)
