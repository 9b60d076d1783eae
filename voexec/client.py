"""A typed Python client for a voexec catalogue and any IVOA Execution Broker, for notebooks.

    from voexec.client import Broker, Catalogue

    catalogue = Catalogue("http://127.0.0.1:8000")
    hits = catalogue.search("period search", kind="python-program")
    entry = catalogue.entry("lomb-scargle-periods")          # a name works as an id
    broker = Broker("http://127.0.0.1:8000", token="...")    # the token for writes, if needed
    offers = broker.offers_for(entry, duration="PT10M")
    session = offers[0].accept()
    for phase in session.watch(poll=1, timeout=300):
        print(phase)

`AsyncCatalogue`, `AsyncBroker` and `AsyncSession` are the same with `await` (and
`async for` over `watch`). Results and errors are in `voexec.client_views` and re-exported here.

**One protocol, two drivers.** Each operation is written once, as a generator that yields the
`httpx.Request`s it needs and receives their responses (`_CatalogueCalls`, `_BrokerCalls`):
building requests and reading answers is shared, and the sync and async classes only differ
in how they send (`_drive`, `_drive_async`). Looking an entry up by name takes two requests,
and is still written once.

**The wire.** The broker answers YAML unless asked: the client sends `Accept:
application/json`, and sends requests as JSON (a dict) or as the YAML text given. Its errors
carry `meta.messages`; the catalogue's are RFC 9457 problem details with `problems`; both become
`ServerError` subclasses whose `messages` name the fields. Broker writes send the token as
`Authorization: Bearer`; reads send none. Session URLs are built from the broker URL given here,
never from URLs in answers, so the token only goes where it was meant to.

**The hand-off.** `Broker.offers_for(entry)` builds the ExecutionRequest with the catalogue's
own `catalogue.handoff` (the same code the catalogue's hand-off route runs) and sends it to this
broker, so an entry from one server can be offered by any Execution Broker.

Imports httpx, msgspec, `catalogue.handoff` and `broker.model` (both pure) and nothing heavy:
importing it does not import Litestar, SQLAlchemy or tantivy (a test checks).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import httpx
import msgspec

import voexec
from broker.model import ACCELERATED_COMPUTE_KIND, KINDS, SessionPhase
from core.time import InvalidTime, format_duration, format_instant
from voexec.client_views import (
    ERROR_OF_STATUS,
    AmbiguousName,
    BadRequest,
    ClientError,
    Conflict,
    ConnectionFailed,
    Connector,
    Cost,
    Entry,
    FacetValue,
    Forbidden,
    InvalidInput,
    Message,
    NotFound,
    OfferSet,
    Resources,
    SearchHit,
    SearchResults,
    ServerError,
    SessionData,
    Unauthorized,
    Unavailable,
    UnreadableAnswer,
    WatchTimeout,
    _EntryDocument,
    _SearchPage,
    _WireMessage,
    broker_message,
    read_offer_set,
)

__all__ = [
    "AmbiguousName",
    "AsyncBroker",
    "AsyncCatalogue",
    "AsyncSession",
    "BadRequest",
    "Broker",
    "Catalogue",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Connector",
    "Cost",
    "Entry",
    "FacetValue",
    "Forbidden",
    "InvalidInput",
    "Message",
    "NotFound",
    "OfferSet",
    "Resources",
    "SearchHit",
    "SearchResults",
    "ServerError",
    "Session",
    "SessionPhase",
    "Unauthorized",
    "Unavailable",
    "UnreadableAnswer",
    "WatchTimeout",
    "execution_request",
]

T = TypeVar("T")
Flow = Generator[httpx.Request, httpx.Response, T]
"""An operation: yields the requests it needs, receives each response, returns its result."""

JSON: Final = "application/json"
FACETS: Final = ("subject", "kind", "function", "gpu", "licence", "platform", "messenger")
"""The catalogue's facets, as `search()` keywords."""
NAME_CANDIDATES: Final = 20
"""How many search hits are read when an entry is looked up by name."""
SIMPLE_COMPUTE: Final = KINDS + "compute/simple-compute-resource.yaml"
DEFAULT_TIMEOUT: Final = 30.0
USER_AGENT: Final = f"voexec-client/{voexec.__version__}"

Start = str | datetime | tuple[datetime, datetime]
"""When a session may start: an ISO-8601 interval or instant, an instant, or (earliest, latest)."""
Length = str | timedelta
"""A duration: ISO-8601 (`PT1H`) or a timedelta."""


# ------------------------------------------------------------------------- reading answers
def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        media = response.headers.get("content-type", "")
        raise UnreadableAnswer(
            f"{response.request.url} answered {media or 'an untyped body'}, not JSON"
        ) from None


def _messages_of(body: Any) -> list[Message]:
    """The messages of an error body: a broker ErrorResponse or RFC 9457 problem details."""
    if not isinstance(body, dict):
        return []
    meta = body.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("messages"), list):
        items = msgspec.convert(meta["messages"], list[_WireMessage], strict=False)
        return [broker_message(item) for item in items]
    messages = [
        Message(
            text=f"{p.get('field')}: {p.get('reason')}",
            field=p.get("field"),
            suggestions=tuple(p.get("suggestions") or ()),
        )
        for p in body.get("problems") or ()
        if isinstance(p, dict)
    ]
    if not messages and body.get("detail"):
        messages.append(Message(text=str(body["detail"])))
    return messages


def _read(response: httpx.Response) -> Any:
    """The decoded body of a successful answer (2xx, or the broker's 303 with its document).

    Raises:
        ServerError: the server refused; the subclass follows the status.
    """
    if response.status_code < 400:
        return _decode(response)
    try:
        body = msgspec.json.decode(response.content) if response.content else None
    except msgspec.DecodeError:
        body = None
    messages = _messages_of(body)
    if not messages and response.text.strip():
        messages = [Message(text=response.text.strip()[:500])]
    title = body.get("title") if isinstance(body, dict) else None
    error = ERROR_OF_STATUS.get(response.status_code, ServerError)
    raise error(
        response.status_code,
        str(title or response.reason_phrase),
        messages,
        url=str(response.request.url),
    )


def _as(data: Any, kind: type[T], what: str) -> T:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as error:
        raise UnreadableAnswer(f"the {what} is not readable: {error}") from None


# ------------------------------------------------------------------------- building requests
def _iso_duration(value: Length) -> str:
    if isinstance(value, str):
        return value
    try:
        return format_duration(value)
    except InvalidTime as error:
        raise InvalidInput(str(error), [Message(text=str(error), field="duration")]) from None


def _iso_instant(value: datetime) -> str:
    try:
        return format_instant(value)
    except InvalidTime:
        raise InvalidInput(
            "a start time needs a time zone",
            [Message(text="give an aware datetime (tzinfo=UTC)", field="start")],
        ) from None


def _iso_start(value: Start) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return _iso_instant(value)
    earliest, latest = value
    return f"{_iso_instant(earliest)}/{_iso_instant(latest)}"


def _data_resource(location: str | Mapping[str, Any], index: int) -> dict[str, Any]:
    if isinstance(location, Mapping):
        return dict(location)
    from catalogue import handoff

    meta = {"name": f"input-{index + 1}", "description": location}
    if location.startswith("s3://"):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        return {"kind": handoff.S3_DATA, "meta": meta, "bucket": bucket, "object": key}
    if location.startswith("ivo://"):
        return {"kind": handoff.IVOA_DATA, "meta": meta, "ivoa": {"ivoid": location}}
    return {"kind": handoff.SIMPLE_DATA, "meta": meta, "location": location}


def execution_request(
    executable: Mapping[str, Any],
    *,
    cores: int | None = None,
    memory: float | None = None,
    gpus: int = 0,
    duration: Length | None = None,
    start: Start | None = None,
    data: Sequence[str | Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """An ExecutionRequest document from keywords (what `Broker.request(...)` sends).

    Args:
        executable: the wire `executable` block (`kind`, `image`, `location`...).
        cores: the fewest cores needed.
        memory: the least memory needed, GiB (rounded up: the broker counts whole GiB).
        gpus: the GPUs needed (voexec's accelerated compute kind when more than 0).
        duration: how long it runs.
        start: when it may start: an interval, an instant, or (earliest, latest).
        data: input locations (http(s)://, s3://bucket/key, ivo://...) or wire data resources.

    Raises:
        InvalidInput: a value is out of range; the message names it.
    """
    problems = [
        Message(text=f"{name}: must be at least {low}", field=name)
        for name, value, low in (("cores", cores, 1), ("memory", memory, 0), ("gpus", gpus, 0))
        if value is not None and value < low
    ]
    if problems:
        raise InvalidInput("the request is wrong", problems)
    request: dict[str, Any] = {"executable": dict(executable)}
    compute: dict[str, Any] = {"kind": SIMPLE_COMPUTE, "meta": {"name": "compute"}}
    if cores is not None:
        compute["cores"] = {"min": cores}
    if memory is not None:
        compute["memory"] = {"min": max(1, math.ceil(memory))}
    if gpus:
        compute["kind"] = ACCELERATED_COMPUTE_KIND
        compute["accelerators"] = {"count": {"min": gpus}}
    if len(compute) > 2:
        request["compute"] = compute
    if data:
        request["data"] = [_data_resource(location, i) for i, location in enumerate(data)]
    requested: dict[str, str] = {}
    if start is not None:
        requested["start"] = _iso_start(start)
    if duration is not None:
        requested["duration"] = _iso_duration(duration)
    if requested:
        request["schedule"] = {"requested": requested}
    return request


def _hand_off(
    entry: Entry,
    *,
    start: Start | None,
    duration: Length | None,
    cores: int | None,
    memory: float | None,
    gpus: int | None,
    data: Sequence[str],
) -> dict[str, Any]:
    """The ExecutionRequest for an entry, built by the catalogue's own hand-off code."""
    from catalogue import handoff
    from catalogue.model import ExecutableSpec, HandOff
    from core.errors import Invalid

    if entry.withdrawn:
        raise InvalidInput(f"entry {entry.id!r} is withdrawn; it cannot be run")
    overrides: dict[str, Any] = {
        "start": _iso_start(start) if start is not None else None,
        "duration": _iso_duration(duration) if duration is not None else None,
        "cores": cores,
        "memory": memory,
        "gpus": gpus,
        "data": list(data),
    }
    try:
        wanted = msgspec.convert({k: v for k, v in overrides.items() if v is not None}, HandOff)
    except msgspec.ValidationError as error:
        # msgspec says where: "Expected `int` >= 1 - at `$.cores`".
        reason, _, path = str(error).rpartition(" - at `$.")
        field = path.rstrip("`") or None
        message = Message(text=f"{field}: {reason}" if field else str(error), field=field)
        raise InvalidInput(message.text, [message]) from None
    spec = _as(entry.spec, ExecutableSpec, "entry's document")
    try:
        return handoff.execution_request(spec, wanted, name=f"{entry.name}-{entry.version}")
    except Invalid as error:
        problems = [Message(text=f"{p.field}: {p.reason}", field=p.field) for p in error.problems]
        raise InvalidInput(error.message, problems) from None


# ------------------------------------------------------------------------- the protocol
def _root(url: str, suffix: str) -> str:
    return url.rstrip("/").removesuffix(suffix)


class _CatalogueCalls:
    """The catalogue's operations as flows (no I/O): `/catalogue/search` and entries."""

    def __init__(self, url: str) -> None:
        self.base = _root(url, "/catalogue") + "/catalogue"

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Request:
        return httpx.Request("GET", self.base + path, params=params, headers={"accept": JSON})

    def search(
        self,
        text: str,
        facets: Mapping[str, str | Sequence[str]],
        sort: str,
        limit: int | None,
        cursor: str | None,
    ) -> Flow[SearchResults]:
        unknown = sorted(set(facets) - set(FACETS))
        if unknown:
            raise InvalidInput(
                f"unknown facet {', '.join(unknown)}; the facets are {', '.join(FACETS)}",
                [Message(text="is not a facet", field=name) for name in unknown],
            )
        params: dict[str, Any] = {"q": text, "sort": sort}
        for name, values in facets.items():
            params[name] = [values] if isinstance(values, str) else list(values)
        if limit is not None:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        answer = yield self._get("/search", params)
        return SearchResults(_as(_read(answer), _SearchPage, "search answer"))

    def entry(self, id_or_name: str, version: str | None) -> Flow[Entry]:
        path = f"/executables/{_segment(id_or_name)}"
        if version:
            path += f"/versions/{_segment(version)}"
        answer = yield self._get(path)
        if answer.status_code != 404:
            return Entry(_as(_read(answer), _EntryDocument, "catalogue entry"))
        # Not an id: perhaps a name, which entries from two repositories may share.
        found = yield self._get("/search", {"q": id_or_name, "limit": NAME_CANDIDATES})
        hits = _as(_read(found), _SearchPage, "search answer").hits
        named = [hit.id for hit in hits if hit.name == id_or_name]
        if len(named) > 1:
            raise AmbiguousName(id_or_name, named)
        if not named:
            close_names = tuple(dict.fromkeys(hit.name for hit in hits))[:5]
            raise _not_found(answer, close_names)
        return (yield from self.entry(named[0], version))


def _not_found(answer: httpx.Response, suggestions: tuple[str, ...]) -> NotFound:
    """The catalogue's 404, with close names as suggestions."""
    try:
        _read(answer)
    except NotFound as error:
        messages = error.messages or [Message(text=f"no entry at {error.url}")]
        if suggestions:
            messages = [msgspec.structs.replace(m, suggestions=suggestions) for m in messages]
        return NotFound(error.status, error.title, messages, url=error.url)
    raise UnreadableAnswer(f"{answer.request.url} answered {answer.status_code}, not 404")


def _segment(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


class _BrokerCalls:
    """The broker's operations as flows (no I/O): requests, offer sets, sessions, updates."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = httpx.URL(url.rstrip("/"))
        # The server's root means its built-in broker; any other path is a broker's own base.
        self.base = str(parts) + ("/broker" if parts.path in {"", "/"} else "")
        self.token = token

    def _headers(self, write: bool, content_type: str | None = None) -> dict[str, str]:
        headers = {"accept": JSON}
        if content_type:
            headers["content-type"] = content_type
        if write and self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def _url(self, collection: str, ref: str) -> str:
        uuid = ref.rstrip("/").rsplit("/", 1)[-1]
        return f"{self.base}/{collection}/{_segment(uuid)}"

    def request(self, document: Mapping[str, Any] | str) -> Flow[dict[str, Any]]:
        if isinstance(document, str):
            content, media = document.encode("utf-8"), "application/yaml"
        else:
            content, media = msgspec.json.encode(dict(document)), JSON
        answer = yield httpx.Request(
            "POST", self.base + "/requests", content=content, headers=self._headers(True, media)
        )
        return self._document(answer)

    def ask(
        self, document: Mapping[str, Any] | str | None, **keywords: Any
    ) -> Flow[dict[str, Any]]:
        """Offers for a request given whole, or built from `execution_request`'s keywords."""
        return self.request(_request_document(document, keywords))

    def offers_for(self, entry: Entry, **overrides: Any) -> Flow[dict[str, Any]]:
        """Offers to run a catalogue entry, its declared needs overridden by `overrides`."""
        return self.request(_hand_off(entry, **overrides))

    def offer_set(self, ref: str) -> Flow[dict[str, Any]]:
        answer = yield httpx.Request(
            "GET", self._url("offersets", ref), headers=self._headers(False)
        )
        return self._document(answer)

    def session(self, ref: str) -> Flow[dict[str, Any]]:
        answer = yield httpx.Request(
            "GET", self._url("sessions", ref), headers=self._headers(False)
        )
        return self._document(answer)

    def update(self, ref: str, phase: SessionPhase) -> Flow[dict[str, Any]]:
        body = {"kind": "uri:enum-value-update", "path": "phase", "value": phase.value}
        answer = yield httpx.Request(
            "POST",
            self._url("sessions", ref),
            content=msgspec.json.encode(body),
            headers=self._headers(True, JSON),
        )
        return self._document(answer)

    @staticmethod
    def _document(answer: httpx.Response) -> dict[str, Any]:
        body = _read(answer)
        if not isinstance(body, dict):
            raise UnreadableAnswer(f"{answer.request.url} answered no broker document")
        return body


# ------------------------------------------------------------------------- the drivers
def _drive(flow: Flow[T], send: Callable[[httpx.Request], httpx.Response]) -> T:
    try:
        request = next(flow)
        while True:
            request = flow.send(send(request))
    except StopIteration as done:
        result: T = done.value
        return result


async def _drive_async(
    flow: Flow[T], send: Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]
) -> T:
    try:
        request = next(flow)
        while True:
            request = flow.send(await send(request))
    except StopIteration as done:
        result: T = done.value
        return result


def _unreachable(request: httpx.Request, error: httpx.TransportError) -> ConnectionFailed:
    return ConnectionFailed(f"cannot reach {request.url}: {str(error) or type(error).__name__}")


def _client_options(
    timeout: float, transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None
) -> dict[str, Any]:
    options: dict[str, Any] = {"timeout": timeout, "headers": {"user-agent": USER_AGENT}}
    if transport is not None:
        options["transport"] = transport
    return options


class _SyncHttp:
    """One `httpx.Client`, closed with the object (or by `with`)."""

    def __init__(self, timeout: float, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(**_client_options(timeout, transport))

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._http.send(request)
        except httpx.TransportError as error:
            raise _unreachable(request, error) from error

    def _run(self, flow: Flow[T]) -> T:
        return _drive(flow, self._send)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _AsyncHttp:
    """One `httpx.AsyncClient`, closed by `aclose()` (or by `async with`)."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None) -> None:
        self._http = httpx.AsyncClient(**_client_options(timeout, transport))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._http.send(request)
        except httpx.TransportError as error:
            raise _unreachable(request, error) from error

    async def _run(self, flow: Flow[T]) -> T:
        return await _drive_async(flow, self._send)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


# ------------------------------------------------------------------------- watching
class _Watch:
    """When to poll next, and when to give up: shared by `Session` and `AsyncSession`."""

    def __init__(self, session: SessionData, poll: float, timeout: float) -> None:
        if poll <= 0 or timeout < 0:
            raise InvalidInput(
                "poll must be positive and timeout not negative",
                [Message(text="out of range", field="poll" if poll <= 0 else "timeout")],
            )
        self.session = session
        self.poll = poll
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.seen: SessionPhase | None = None

    def changed(self) -> SessionPhase | None:
        """The session's phase if it is new since the last call."""
        phase = self.session.phase
        if phase is self.seen:
            return None
        self.seen = phase
        return phase

    def pause(self) -> float:
        """Seconds to wait before the next poll.

        Raises:
            WatchTimeout: the deadline has passed.
        """
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WatchTimeout(
                f"session {self.session.uuid} is still {self.session.phase.value} after "
                f"{self.timeout:g} s"
            )
        return min(self.poll, left)


# ------------------------------------------------------------------------- catalogue
class Catalogue(_SyncHttp):
    """A voexec catalogue: faceted search and entries.

    Args:
        url: the server's URL (`http://127.0.0.1:8000`; a trailing `/catalogue` is fine).
        timeout: seconds to wait for each answer.
        transport: an httpx transport (tests use `httpx.MockTransport`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(timeout, transport)
        self._calls = _CatalogueCalls(url)

    def search(
        self,
        text: str = "",
        *,
        sort: str = "relevance",
        limit: int | None = None,
        cursor: str | None = None,
        **facets: str | Sequence[str],
    ) -> SearchResults:
        """Search the catalogue; facets as keywords (`kind="python-program"`, `gpu=["none"]`).

        Several values of one facet select any of them; `results.facets` holds the counts.

        Raises:
            InvalidInput: a keyword is not a facet.
            BadRequest: a value is out of range (the message names it).
        """
        return self._run(self._calls.search(text, facets, sort, limit, cursor))

    def entry(self, id_or_name: str, version: str | None = None) -> Entry:
        """An entry by id or by name, in its current version or the one asked for.

        Raises:
            AmbiguousName: several entries have this name (their ids are suggested).
            NotFound: no entry has this id or name (close names are suggested).
        """
        return self._run(self._calls.entry(id_or_name, version))


class AsyncCatalogue(_AsyncHttp):
    """`Catalogue` for asyncio: the same methods, awaited."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(timeout, transport)
        self._calls = _CatalogueCalls(url)

    async def search(
        self,
        text: str = "",
        *,
        sort: str = "relevance",
        limit: int | None = None,
        cursor: str | None = None,
        **facets: str | Sequence[str],
    ) -> SearchResults:
        """See `Catalogue.search`."""
        return await self._run(self._calls.search(text, facets, sort, limit, cursor))

    async def entry(self, id_or_name: str, version: str | None = None) -> Entry:
        """See `Catalogue.entry`."""
        return await self._run(self._calls.entry(id_or_name, version))


# ------------------------------------------------------------------------- sessions
class Session(SessionData):
    """An offer or a session on a broker, with what can be done to it now.

    `accept()`, `reject()`, `cancel()` and `refresh()` update the object in place (and return
    it); `watch()` follows it until it ends.
    """

    def __init__(self, document: dict[str, Any], broker: Broker) -> None:
        self._broker = broker
        self._load(document)

    def _apply(self, flow: Flow[dict[str, Any]]) -> Session:
        self._load(self._broker._run(flow))
        return self

    def refresh(self) -> Session:
        """Read the session again."""
        return self._apply(self._broker._calls.session(self.uuid))

    def accept(self) -> Session:
        """Accept the offer: it becomes a session (its sibling offers are rejected).

        Raises:
            Conflict: the offer is no longer OFFERED (expired, accepted or rejected).
        """
        return self._apply(self._broker._calls.update(self.uuid, SessionPhase.ACCEPTED))

    def reject(self) -> Session:
        """Reject the offer, freeing what it holds."""
        return self._apply(self._broker._calls.update(self.uuid, SessionPhase.REJECTED))

    def cancel(self) -> Session:
        """Cancel an accepted session: the work is stopped."""
        return self._apply(self._broker._calls.update(self.uuid, SessionPhase.CANCELLED))

    def watch(self, *, poll: float = 2.0, timeout: float = 3600.0) -> Iterator[SessionPhase]:
        """Yield the phase now and each new phase until a terminal one (polling `poll` s).

        Raises:
            WatchTimeout: no terminal phase within `timeout` seconds.
        """
        watch = _Watch(self, poll, timeout)
        while True:
            phase = watch.changed()
            if phase is not None:
                yield phase
            if self.finished:
                return
            time.sleep(watch.pause())
            self.refresh()


class AsyncSession(SessionData):
    """`Session` for asyncio: the same methods, awaited; `async for` over `watch()`."""

    def __init__(self, document: dict[str, Any], broker: AsyncBroker) -> None:
        self._broker = broker
        self._load(document)

    async def _apply(self, flow: Flow[dict[str, Any]]) -> AsyncSession:
        self._load(await self._broker._run(flow))
        return self

    async def refresh(self) -> AsyncSession:
        """See `Session.refresh`."""
        return await self._apply(self._broker._calls.session(self.uuid))

    async def accept(self) -> AsyncSession:
        """See `Session.accept`."""
        return await self._apply(self._broker._calls.update(self.uuid, SessionPhase.ACCEPTED))

    async def reject(self) -> AsyncSession:
        """See `Session.reject`."""
        return await self._apply(self._broker._calls.update(self.uuid, SessionPhase.REJECTED))

    async def cancel(self) -> AsyncSession:
        """See `Session.cancel`."""
        return await self._apply(self._broker._calls.update(self.uuid, SessionPhase.CANCELLED))

    async def watch(
        self, *, poll: float = 2.0, timeout: float = 3600.0
    ) -> AsyncIterator[SessionPhase]:
        """See `Session.watch`."""
        watch = _Watch(self, poll, timeout)
        while True:
            phase = watch.changed()
            if phase is not None:
                yield phase
            if self.finished:
                return
            await asyncio.sleep(watch.pause())
            await self.refresh()


# ------------------------------------------------------------------------- brokers
def _request_document(
    document: Mapping[str, Any] | str | None, keywords: Mapping[str, Any]
) -> Mapping[str, Any] | str:
    given = [name for name, value in keywords.items() if value]  # 0 GPUs, no data: defaults
    if document is not None:
        if given:
            raise InvalidInput(
                "give a document or keywords, not both",
                [Message(text="given with a document", field=name) for name in given],
            )
        return document
    executable = keywords.get("executable")
    if executable is None:
        raise InvalidInput(
            "a request needs a document or an executable",
            [Message(text="is required", field="executable")],
        )
    return execution_request(**keywords)


class Broker(_SyncHttp):
    """An IVOA Execution Broker: ask for offers, then accept, watch and cancel sessions.

    Args:
        url: the broker's base URL (`http://host:8000/broker`); a server's root URL means its
            built-in broker.
        token: a bearer token for writes (requests, accept, reject, cancel), when the broker
            needs one.
        timeout: seconds to wait for each answer.
        transport: an httpx transport (tests use `httpx.MockTransport`).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(timeout, transport)
        self._calls = _BrokerCalls(url, token)

    def _offer_set(self, document: dict[str, Any]) -> OfferSet[Session]:
        offers = [Session(offer, self) for offer in read_offer_set(document).offers]
        return OfferSet(document, offers)

    def request(
        self,
        document: Mapping[str, Any] | str | None = None,
        *,
        executable: Mapping[str, Any] | None = None,
        cores: int | None = None,
        memory: float | None = None,
        gpus: int = 0,
        duration: Length | None = None,
        start: Start | None = None,
        data: Sequence[str | Mapping[str, Any]] = (),
    ) -> OfferSet[Session]:
        """Ask for offers: an ExecutionRequest as a dict or YAML text, or built from keywords.

        A request the broker cannot serve is not an error: the offer set says `result == "NO"`
        and its `messages` say why.

        Raises:
            InvalidInput: both a document and keywords, or neither.
            BadRequest: the document is malformed (the messages name the JSON paths).
        """
        flow = self._calls.ask(
            document, executable=executable, cores=cores, memory=memory, gpus=gpus,
            duration=duration, start=start, data=data,
        )  # fmt: skip
        return self._offer_set(self._run(flow))

    def offers_for(
        self,
        entry: Entry,
        *,
        start: Start | None = None,
        duration: Length | None = None,
        cores: int | None = None,
        memory: float | None = None,
        gpus: int | None = None,
        data: Sequence[str] = (),
    ) -> OfferSet[Session]:
        """Offers to run a catalogue entry, with its declared needs unless overridden here.

        Raises:
            InvalidInput: an override is wrong (the message names it), or the entry is withdrawn.
        """
        flow = self._calls.offers_for(
            entry, start=start, duration=duration, cores=cores, memory=memory, gpus=gpus, data=data
        )
        return self._offer_set(self._run(flow))

    def offer_set(self, url_or_uuid: str) -> OfferSet[Session]:
        """An offer set again, its offers in their current phases."""
        return self._offer_set(self._run(self._calls.offer_set(url_or_uuid)))

    def session(self, url_or_uuid: str) -> Session:
        """A session (or an offer) by URL or uuid."""
        return Session(self._run(self._calls.session(url_or_uuid)), self)


class AsyncBroker(_AsyncHttp):
    """`Broker` for asyncio: the same methods, awaited."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(timeout, transport)
        self._calls = _BrokerCalls(url, token)

    def _offer_set(self, document: dict[str, Any]) -> OfferSet[AsyncSession]:
        offers = [AsyncSession(offer, self) for offer in read_offer_set(document).offers]
        return OfferSet(document, offers)

    async def request(
        self,
        document: Mapping[str, Any] | str | None = None,
        *,
        executable: Mapping[str, Any] | None = None,
        cores: int | None = None,
        memory: float | None = None,
        gpus: int = 0,
        duration: Length | None = None,
        start: Start | None = None,
        data: Sequence[str | Mapping[str, Any]] = (),
    ) -> OfferSet[AsyncSession]:
        """See `Broker.request`."""
        flow = self._calls.ask(
            document, executable=executable, cores=cores, memory=memory, gpus=gpus,
            duration=duration, start=start, data=data,
        )  # fmt: skip
        return self._offer_set(await self._run(flow))

    async def offers_for(
        self,
        entry: Entry,
        *,
        start: Start | None = None,
        duration: Length | None = None,
        cores: int | None = None,
        memory: float | None = None,
        gpus: int | None = None,
        data: Sequence[str] = (),
    ) -> OfferSet[AsyncSession]:
        """See `Broker.offers_for`."""
        flow = self._calls.offers_for(
            entry, start=start, duration=duration, cores=cores, memory=memory, gpus=gpus, data=data
        )
        return self._offer_set(await self._run(flow))

    async def offer_set(self, url_or_uuid: str) -> OfferSet[AsyncSession]:
        """See `Broker.offer_set`."""
        return self._offer_set(await self._run(self._calls.offer_set(url_or_uuid)))

    async def session(self, url_or_uuid: str) -> AsyncSession:
        """See `Broker.session`."""
        return AsyncSession(await self._run(self._calls.session(url_or_uuid)), self)
