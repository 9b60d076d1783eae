"""An HTTP client for another IVOA Execution Broker, in the dialects brokers actually speak.

The only module of the broker that talks HTTP to other brokers (httpx). It speaks the newest
schema's routes (`POST /requests`, `GET /offersets/{uuid}`, `GET|POST /sessions/{uuid}`) in
JSON, and reads what two implementations answer:

* another voexec: 303 with `Location` and the body, 409 with a message for an update the
  session's phase refuses, `meta.messages` or RFC 9457 problem bodies on errors;
* the reference implementation (Calycopis): always 303 with the body, `POST /offersets` on its
  older versions, empty bodies on 404, HTTP Basic on every POST (401 otherwise), Spring's
  `{timestamp, status, error, path}` bodies on 400 and 500, JSON when asked, an update it does
  not apply answered 200 with the unchanged session (so the phase answered is checked), no
  session-level schedule (the compute resource's schedule says when), and compute kinds
  spelled `.../computer/...`.

Documents are read loosely, as plain JSON: only the fields federation needs (phases, URLs,
times, cores, memory, messages), so that a broker's extra or misspelt kinds do not stop it from
being understood. Every failure is a `RemoteError` that says which broker failed and how.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urljoin

import httpx

from core.time import InvalidTime, parse_duration, parse_instant

__all__ = [
    "PATH_HEADER",
    "RemoteBrokerClient",
    "RemoteError",
    "RemoteOffer",
    "RemoteOfferSet",
    "RemoteSession",
    "basic_auth",
    "bearer_auth",
]

PATH_HEADER: Final = "X-Execution-Broker-Path"
"""The brokers a forwarded request has passed through, comma-separated, first asker first."""

JSON: Final = "application/json"
ENUM_UPDATE: Final = "uri:enum-value-update"
MOST_BYTES: Final = 4 * 1024 * 1024
"""The largest answer read from another broker (an offer set of a few offers is a few KiB)."""


class RemoteError(Exception):
    """Another broker failed to answer as asked; the message says which broker and how.

    `transient` is True for failures that may pass (unreachable, too slow, 5xx): they count
    towards opening the circuit. A clear refusal (401, 404, 409) is not transient.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class RemoteOffer:
    """One offer of another broker, as far as federation needs it."""

    url: str
    """The remote session's absolute URL."""
    start: datetime
    end: datetime
    cores: int
    memory: float
    """GiB, as the remote broker says (the reference implementation writes the cores here)."""
    expires: datetime | None


@dataclass(frozen=True, slots=True)
class RemoteOfferSet:
    """Another broker's answer to a request."""

    url: str | None
    result: str
    offers: tuple[RemoteOffer, ...]
    """Its offers still OFFERED that could be read."""
    messages: tuple[str, ...]
    """Its messages, rendered (the message, else the template with its values)."""
    unreadable: tuple[str, ...] = ()
    """Why some offers could not be read (they are left out)."""


@dataclass(frozen=True, slots=True)
class RemoteSession:
    """A remote session's phase and what it says."""

    url: str
    phase: str
    messages: tuple[str, ...]


def bearer_auth(token: str) -> dict[str, str]:
    """Headers for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def basic_auth(username: str, password: str) -> httpx.Auth:
    """HTTP Basic, as the reference implementation wants on every POST."""
    return httpx.BasicAuth(username, password)


class RemoteBrokerClient:
    """Speaks to one other broker at `base_url` (its API root, e.g. `https://host/broker`).

    Thread-safe (one httpx client, which pools connections). `timeout` bounds each call.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: timedelta,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.Client(
            timeout=timeout.total_seconds(),
            headers={"Accept": JSON, "User-Agent": "voexec-federation", **(headers or {})},
            auth=auth,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    # ------------------------------------------------------------------ calls
    def request_offers(
        self, body: bytes, path: Sequence[str], *, duration: timedelta
    ) -> RemoteOfferSet:
        """POST a request (JSON) and read the offer set it answers.

        Args:
            body: the request, in JSON.
            path: the brokers it has passed through, this one last (sent as `PATH_HEADER`).
            duration: the requested duration, for offers whose slot says only its start.

        Raises:
            RemoteError: unreachable, too slow, refused, or an answer that is no offer set.
        """
        headers = {"Content-Type": JSON, PATH_HEADER: ", ".join(path)}
        answer = self._send("POST", self.base_url + "/requests", content=body, headers=headers)
        if answer.status_code in (404, 405):  # an older broker: the request route's old name
            answer = self._send("POST", self.base_url + "/offersets", content=body, headers=headers)
        document = self._document(answer, "the request for offers", redirect_ok=True)
        return self._offerset(document, answer, duration)

    def session(self, url: str) -> RemoteSession:
        """GET a remote session.

        Raises:
            RemoteError: unreachable, too slow, unknown session, or no session in the answer.
        """
        answer = self._send("GET", url)
        return self._session(self._document(answer, f"reading session {url}"), url)

    def update(self, url: str, phase: str) -> RemoteSession:
        """Ask the remote broker to move a session to `phase` (ACCEPTED, REJECTED, CANCELLED).

        Raises:
            RemoteError: the update was refused (said so, or answered with another phase), or
                the broker could not be reached.
        """
        body = {"kind": ENUM_UPDATE, "path": "phase", "value": phase}
        answer = self._send("POST", url, json=body, headers={"Content-Type": JSON})
        session = self._session(self._document(answer, f"{phase} of {url}"), url)
        # The reference implementation answers 200 with the unchanged session when it does not
        # apply an update: only the phase it answers tells.
        if not _reached(session.phase, phase):
            said = "; ".join(session.messages[-2:])
            raise RemoteError(
                f"{self.name} did not make {url} {phase}: it is {session.phase}"
                + (f" ({said})" if said else ""),
                transient=False,
            )
        return session

    # ------------------------------------------------------------------ HTTP
    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self._client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise RemoteError(
                f"{self.name} ({self.base_url}) did not answer within "
                f"{self.timeout.total_seconds():g} s",
                transient=True,
            ) from None
        except httpx.HTTPError as error:
            raise RemoteError(
                f"{self.name} ({self.base_url}) could not be reached: {type(error).__name__}: "
                f"{str(error) or 'no detail'}",
                transient=True,
            ) from None
        if len(answer.content) > MOST_BYTES:
            raise RemoteError(
                f"{self.name} answered {len(answer.content)} bytes, more than the "
                f"{MOST_BYTES} read from a broker",
                transient=False,
            )
        return answer

    def _document(
        self, answer: httpx.Response, what: str, *, redirect_ok: bool = False
    ) -> dict[str, Any]:
        status = answer.status_code
        if redirect_ok and status in (301, 302, 303, 307, 308):
            document = _json(answer)
            if document is not None:
                return document  # both voexec and Calycopis send the body with the 303
            location = answer.headers.get("Location")
            if not location:
                raise RemoteError(
                    f"{self.name} answered {status} without Location to {what}", transient=False
                )
            return self._document(self._send("GET", urljoin(str(answer.url), location)), what)
        if status == 200:
            document = _json(answer)
            if document is None:
                raise RemoteError(
                    f"{self.name} answered {what} with no JSON document "
                    f"({answer.headers.get('Content-Type', 'no Content-Type')})",
                    transient=False,
                )
            return document
        said = _error_text(answer)
        detail = f": {said}" if said else ""
        match status:
            case 401 | 403:
                message = f"{self.name} refused our credentials for {what} ({status}){detail}"
            case 404:
                message = f"{self.name} does not know {answer.url} ({what}, 404){detail}"
            case 409:
                message = f"{self.name} refused {what} (409){detail}"
            case _:
                message = f"{self.name} answered {status} to {what}{detail}"
        raise RemoteError(message, transient=status >= 500 or status == 429)

    # ------------------------------------------------------------------ documents
    def _url(self, node: Mapping[str, Any], family: str, base: str) -> str | None:
        meta = _mapping(node.get("meta"))
        url = meta.get("url")
        if isinstance(url, str) and url:
            return urljoin(base + "/", url)
        uuid = meta.get("uuid")
        if isinstance(uuid, str) and uuid:
            return f"{self.base_url}/{family}/{uuid}"
        return None

    def _offerset(
        self, document: dict[str, Any], answer: httpx.Response, duration: timedelta
    ) -> RemoteOfferSet:
        result = document.get("result")
        if result not in ("YES", "NO"):
            raise RemoteError(
                f"{self.name} answered no offer set (no result YES or NO)", transient=False
            )
        offers: list[RemoteOffer] = []
        unreadable: list[str] = []
        raw = document.get("offers")
        for index, node in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(node, dict) or node.get("phase", "OFFERED") != "OFFERED":
                continue
            try:
                offers.append(self._offer(node, duration))
            except (ValueError, TypeError) as error:
                unreadable.append(f"offer {index + 1}: {error}")
        location = answer.headers.get("Location")
        url = self._url(document, "offersets", self.base_url) or (
            urljoin(str(answer.url), location) if location else None
        )
        return RemoteOfferSet(
            url=url,
            result=str(result),
            offers=tuple(offers),
            messages=_messages(document),
            unreadable=tuple(unreadable),
        )

    def _offer(self, node: dict[str, Any], duration: timedelta) -> RemoteOffer:
        url = self._url(node, "sessions", self.base_url)
        if url is None:
            raise ValueError("it has neither meta.url nor meta.uuid")
        compute = _mapping(node.get("compute"))
        # voexec writes a session-level schedule; the reference implementation only the
        # compute resource's.
        available = _mapping(_mapping(node.get("schedule")).get("available")) or _mapping(
            _mapping(compute.get("schedule")).get("available")
        )
        start_text = available.get("start")
        if not isinstance(start_text, str):
            raise ValueError("its schedule gives no available start")
        start = _instant(start_text.split("/", 1)[0], "schedule.available.start")
        length = available.get("duration")
        span = parse_duration(length) if isinstance(length, str) else duration
        cores = _mapping(compute.get("cores")).get("min")
        memory = _mapping(compute.get("memory")).get("min")
        if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
            raise ValueError(f"compute.cores.min is {cores!r}, not a whole number of cores")
        if not isinstance(memory, int | float) or isinstance(memory, bool) or memory < 0:
            raise ValueError(f"compute.memory.min is {memory!r}, not GiB")
        expires = node.get("expires")
        return RemoteOffer(
            url=url,
            start=start,
            end=start + span,
            cores=cores,
            memory=float(memory),
            expires=_instant(expires, "expires") if isinstance(expires, str) else None,
        )

    def _session(self, document: dict[str, Any], url: str) -> RemoteSession:
        phase = document.get("phase")
        if not isinstance(phase, str):
            raise RemoteError(f"{self.name} answered no session for {url}", transient=False)
        return RemoteSession(url=url, phase=phase, messages=_messages(document))


# ---------------------------------------------------------------------- helpers
_AFTER_ACCEPT: Final = frozenset(
    {"ACCEPTED", "WAITING", "PREPARING", "READY", "AVAILABLE", "RUNNING", "RELEASING", "COMPLETED"}
)


def _reached(phase: str, wanted: str) -> bool:
    """Whether a session in `phase` did what an update to `wanted` asked."""
    if wanted == "ACCEPTED":
        return phase in _AFTER_ACCEPT or phase == "FAILED"  # failed after it was accepted
    return phase == wanted


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json(answer: httpx.Response) -> dict[str, Any] | None:
    if not answer.content.strip():
        return None
    try:
        document = answer.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _instant(text: str, field: str) -> datetime:
    try:
        return parse_instant(text)[0]
    except InvalidTime as error:
        raise ValueError(f"{field}: {error}") from None


def _messages(document: Mapping[str, Any]) -> tuple[str, ...]:
    """Rendered messages of a broker document, rendering templates whose text is missing."""
    items = _mapping(document.get("meta")).get("messages")
    out: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        text = item.get("message")
        if not isinstance(text, str) or not text:
            text = str(item.get("template") or item.get("kind") or "")
            for key, value in _mapping(item.get("values")).items():
                text = text.replace("${" + key + "}", str(value)).replace(
                    "{" + key + "}", str(value)
                )
        if text:
            out.append(text)
    return tuple(out)


def _error_text(answer: httpx.Response) -> str:
    """What an error answer says: a problem's detail, broker messages, Spring's error."""
    document = _json(answer)
    if document is None:
        text = answer.text.strip()
        return text[:200] if text and not text.startswith("<") else ""
    messages = _messages(document)
    if messages:
        return "; ".join(messages)
    for key in ("detail", "title", "message", "error"):
        value = document.get(key)
        if isinstance(value, str) and value:
            path = document.get("path")
            return f"{value} ({path})" if key == "error" and isinstance(path, str) else value
    return ""
