"""The broker's HTTP routes, under `/broker`, and their OpenAPI description.

- `POST /broker/requests` (and its older name `POST /broker/offersets`): 303, `Location` of
  the offer set, and the offer set in the body;
- `GET /broker/offersets/{uuid}`: the offer set; `GET /broker/sessions/{uuid}`: the session;
- `POST /broker/sessions/{uuid}`: one update (accept, reject, cancel), the updated session;
- `POST /broker/direct`: 303 to the new session, or 400 with a FAILED session saying why.

Writes (every method but GET, HEAD and OPTIONS) need an identity whose role may run
(`core.auth`: a named token of `auth.tokens` or an OpenID Connect JWT) when any is configured:
none sent answers 401 with `WWW-Authenticate: Bearer`, a token that is not configured or a role
that may not answers 403, an expired or foreign JWT 401. The check is a router guard, so it runs
before the body is read and covers every write route, present and future; the identity it found
is kept in the request's state for the handlers (the requester, the owner). Offer requests and
direct executions are rate-limited per identity (429 with `Retry-After`). Reads stay open unless
`auth.owner_only_reads`; without identities configured (local use) writes are open too, each
caller being its client address.

Handlers take the raw body and decode it with `broker.model.codec`, so JSON, YAML and the older
dialects all work and every error names its JSON path. A request may list at most
`MAX_LISTED_RESOURCES` data resources, storage resources and volume mounts (each list): every
offer echoes them, so the count bounds the answer as the body limit bounds the request. Stored
offer sets and sessions are read back without the body limit (`broker.store.sql`).

Every answer, errors included, is a broker document in the negotiated media type: problems with
the input are an `ErrorResponse` whose `meta.messages` name the path and the reason (400, 404,
409, 413, 415), never a framework page or a stack trace (401 and 403 included). A browser
opening a broker URL (a GET whose `Accept` names `text/html` and no JSON or YAML type) gets the
YAML as `text/plain`, to read rather than download. All HTTP concerns live here: the service
never sees a request, and the codec never sees a header.

Imports Litestar, `core` and the `broker` modules.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from litestar import HttpMethod, Litestar, Request, Response, Router, get, post
from litestar.concurrency import sync_to_thread
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.params import FromPath, RawBody
from litestar.types import Guard

from broker.model import (
    ComponentMetadata,
    EnumValueOption,
    ErrorResponse,
    ExecutionRequest,
    MessageItem,
    MessageLevel,
    codec,
    message_item,
)
from broker.model.codec import BodyTooLarge, Media, UnsupportedMediaType
from broker.platforms.remote_client import PATH_HEADER
from broker.service import BrokerService, DirectExecutionFailed, IllegalUpdate
from broker.service.federation import parse_path
from broker.service.reads import DocumentRead
from broker.web_openapi import document_openapi
from core.auth import BEARER_CHALLENGE, Identity, Permission, Security
from core.errors import (
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from core.settings import ServerSettings

__all__ = ["BROKER_PATH", "BrokerHttp", "broker_router", "write_guard"]

BROKER_PATH: Final = "/broker"
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing; every other method on `/broker` is a write."""
MAX_LISTED_RESOURCES: Final = 100
"""Most data resources, storage resources or volume mounts one request may list.

Every offer echoes each of them with metadata of its own (and answers an unknown or incomplete
one with a message), so without a count a small body could make an answer and stored sessions
many times its size; real requests list a handful."""
GUARDED_WRITES: Final = "broker_guarded_writes"
"""The router's `opt` key saying whether writes need a bearer token (read when documenting)."""
WRITE_PERMISSION: Final = "change offers and sessions on this broker"
"""What a write token allows, as the 401 and 403 messages say it."""
SESSION_CHANGE: Final = "accept, reject or cancel this session"
IDENTITY_STATE: Final = "voexec_identity"
"""The request-state key under which the write guard leaves the identity it found."""
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerHttp:
    """What the routes need to know about the server: its public URL and body limit."""

    public_url: str | None
    max_body_bytes: int
    security: Security
    """Who may write, how often, who may read."""

    def base_url(self, request: Request[Any, Any, Any]) -> str:
        """The broker's absolute base URL, e.g. `https://host/broker` (for `Location`)."""
        root = self.public_url or str(request.base_url)
        return root.rstrip("/") + BROKER_PATH

    def identity(self, request: Request[Any, Any, Any]) -> Identity:
        """Who sent `request`: what the write guard found, else read from its header now."""
        found = request.state.get(IDENTITY_STATE)
        if isinstance(found, Identity):
            return found
        address = request.client.host if request.client else None
        return self.security.auth.identify(request.headers.get("authorization"), address)

    def require_owner(self, request: Request[Any, Any, Any], owner: str | None, *, to: str) -> None:
        """Let the request through only from `owner` (who asked) or an operator.

        Raises:
            Forbidden: another identity (403).
        """
        identity = self.identity(request)
        if not self.security.auth.may_act_for(identity, owner):
            raise Forbidden(
                f"{identity.describe()} may not {to}: only whoever asked for it, or an "
                "operator, may"
            )

    def require_reader(self, request: Request[Any, Any, Any], owner: str | None) -> None:
        """With `auth.owner_only_reads`, let only `owner` or an operator read.

        Raises:
            Unauthorized: an anonymous caller where identities are configured (401).
            Forbidden: another identity (403).
        """
        if not self.security.owner_only_reads:
            return
        identity = self.identity(request)
        if self.security.may_read(identity, owner):
            return
        if identity.anonymous and not self.security.auth.open:
            raise Unauthorized("a bearer token is needed to read this (only its owner may)")
        raise Forbidden(f"{identity.describe()} may not read this: only its owner or an operator")

    def requester(self, request: Request[Any, Any, Any]) -> str:
        """Who asks, as recorded on an offer set and counted by the limits.

        The identity's key: `token:alice`, `oidc:<sub>`, or `address:<client address>` when
        anonymous.
        """
        return self.identity(request).key


Broker = NamedDependency[BrokerService]
"""The service, provided by the app as the dependency `broker`."""
Http = NamedDependency[BrokerHttp]
"""The server facts, provided by the router as the dependency `http`."""


# ------------------------------------------------------------------------- answers
def _answer_media(request: Request[Any, Any, Any]) -> Media:
    return codec.negotiate(request.headers.get("accept"), request.headers.get("content-type"))


BROWSER_TEXT: Final = "text/plain"
"""What a browser is answered in: the YAML document, shown as text instead of downloaded
(Litestar adds `charset=utf-8` to text types)."""


def _names_a_document_type(media_range: str) -> bool:
    essence = media_range.split(";", 1)[0].strip().lower()
    return (
        essence in codec.JSON_TYPES
        or essence in codec.YAML_TYPES
        or essence.endswith(("+json", "+yaml"))
    )


def _is_browser_read(request: Request[Any, Any, Any]) -> bool:
    """A browser opening a broker URL: a read whose `Accept` prefers pages, not documents.

    Browsers send `text/html,...,*/*;q=0.8`, which names neither JSON nor YAML; answered
    `application/yaml` they offer a download. Machine clients (no `Accept`, `*/*`, or a JSON or
    YAML type) are unchanged.
    """
    if request.method not in READ_METHODS:
        return False
    ranges = (request.headers.get("accept") or "").split(",")
    return any(r.split(";", 1)[0].strip().lower() == "text/html" for r in ranges) and not any(
        _names_a_document_type(r) for r in ranges
    )


def _answer(
    request: Request[Any, Any, Any],
    document: object,
    status: int,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    media = _answer_media(request)
    media_type = BROWSER_TEXT if _is_browser_read(request) else media.value
    return Response(
        codec.encode(document, media),
        status_code=status,
        media_type=media_type,
        headers={"Vary": "Accept", **(headers or {})},
    )


@functools.lru_cache(maxsize=1024)
def _yaml_of(document: bytes) -> bytes:
    """The YAML of a JSON document, kept for the documents read most.

    A session reads the same until it changes, and YAML costs many times more to write than
    the JSON costs to send.
    """
    return codec.json_to_yaml(document)


def _answer_stored(
    request: Request[Any, Any, Any], document: bytes, status: int
) -> Response[bytes]:
    """`_answer` for a document already encoded as JSON (`BrokerService.read_session`)."""
    media = _answer_media(request)
    media_type = BROWSER_TEXT if _is_browser_read(request) else media.value
    body = document if media is Media.JSON else _yaml_of(document)
    return Response(body, status_code=status, media_type=media_type, headers={"Vary": "Accept"})


def _error(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    messages: list[MessageItem],
    headers: Mapping[str, str] | None = None,
    **meta: Any,
) -> Response[bytes]:
    body = ErrorResponse(
        status=status, title=title, meta=ComponentMetadata(messages=messages, **meta)
    )
    return _answer(request, body, status, headers)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _problem_messages(error: Invalid) -> list[MessageItem]:
    problems = error.problems or []
    if not problems:
        return [
            message_item("urn:input-syntax-fail", "{reason}", time=_now(), reason=error.message)
        ]
    return [
        message_item(
            "urn:input-syntax-fail",
            "{path}: {reason}",
            time=_now(),
            level=MessageLevel.ERROR,
            path=problem.field,
            reason=problem.reason,
        )
        for problem in problems
    ]


_STATUS_OF: Final[tuple[tuple[type[DomainError], int, str, str], ...]] = (
    (NotFound, 404, "Not Found", "urn:voexec:not-found"),
    (Unauthorized, 401, "Unauthorized", "urn:voexec:unauthorized"),
    (Forbidden, 403, "Forbidden", "urn:voexec:forbidden"),
    (TooManyRequests, 429, "Too Many Requests", "urn:voexec:too-many-requests"),
    (Unavailable, 503, "Service Unavailable", "urn:voexec:unavailable"),
)
"""The broker's answers to the other domain errors; anything else is a conflict (409)."""


def _status_of(error: DomainError) -> tuple[int, str, str]:
    for cls, status, title, kind in _STATUS_OF:
        if isinstance(error, cls):
            return status, title, kind
    return 409, "Conflict", "urn:voexec:conflict"


def _on_invalid(request: Request[Any, Any, Any], error: Invalid) -> Response[bytes]:
    if isinstance(error, BodyTooLarge):
        return _error(request, 413, "Content Too Large", _problem_messages(error))
    if isinstance(error, UnsupportedMediaType):
        return _error(request, 415, "Unsupported Media Type", _problem_messages(error))
    return _error(request, 400, "Bad Request", _problem_messages(error))


def _on_domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[bytes]:
    if isinstance(error, Invalid):
        return _on_invalid(request, error)
    if isinstance(error, DirectExecutionFailed):
        return _answer(request, error.session, 400)
    if isinstance(error, IllegalUpdate):
        allowed = [f"phase={phase}" for phase in error.allowed]
        message = message_item(
            "urn:voexec:illegal-update",
            "The session is {phase}; it cannot become {requested}: {why}. "
            "Allowed updates: {allowed}",
            time=_now(),
            level=MessageLevel.ERROR,
            phase=error.phase,
            requested=error.requested,
            why=error.why,
            allowed=allowed or "none",
        )
        options = [EnumValueOption(path="phase", values=list(error.allowed))] if allowed else []
        return _error(request, 409, "Conflict", [message], options=options)
    status, title, kind = _status_of(error)
    reason = message_item(
        kind, "{reason}", time=_now(), level=MessageLevel.ERROR, reason=error.message
    )
    # A 401 says how to authenticate (RFC 9110 §11.6.1): with a bearer token; a 429 when to
    # come back (RFC 9110 §10.2.3).
    headers = {"WWW-Authenticate": BEARER_CHALLENGE} if status == 401 else {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    return _error(request, status, title, [reason], headers)


def _on_http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    reason = (
        "the body is larger than the server accepts"
        if error.status_code == 413
        else str(error.detail)
    )
    message = message_item(
        "urn:voexec:http-error", "{reason}", time=_now(), level=MessageLevel.ERROR, reason=reason
    )
    title = "Content Too Large" if error.status_code == 413 else str(error.detail)
    return _error(request, error.status_code, title, [message])


def _on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    _log.exception("unexpected error on %s", request.url.path, exc_info=error)
    message = message_item(
        "urn:voexec:internal-error",
        "An unexpected error occurred; it has been logged",
        time=_now(),
        level=MessageLevel.ERROR,
    )
    return _error(request, 500, "Internal Server Error", [message])


# ------------------------------------------------------------------------- handlers
def _uuid(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"no {what} has the identifier {text!r} (not a UUID)") from None


def _read_request(
    request: Request[Any, Any, Any], body: bytes, http: BrokerHttp
) -> codec.Decoded[ExecutionRequest]:
    media = codec.media_for_body(request.headers.get("content-type"))
    decoded = codec.decode_request(body, media, max_bytes=http.max_body_bytes)
    _check_listed_resources(decoded)
    return decoded


def _check_listed_resources(decoded: codec.Decoded[ExecutionRequest]) -> None:
    """Refuse a request listing more than `MAX_LISTED_RESOURCES` items in one list.

    Items of unknown kinds count too: the codec set them aside, but each would get a message.

    Raises:
        Invalid: one problem per list that is too long, naming its path.
    """
    compute = decoded.value.compute
    counts = {
        "$.data": len(decoded.value.data),
        "$.storage": len(decoded.value.storage),
        "$.compute.volumes": len(getattr(compute, "volumes", None) or ()),
    }
    for unknown in decoded.unknown_kinds:
        for path in counts:
            if unknown.path.startswith(path + "["):
                counts[path] += 1
    problems = [
        Problem(path, f"lists {count} items; a request may list at most {MAX_LISTED_RESOURCES}")
        for path, count in counts.items()
        if count > MAX_LISTED_RESOURCES
    ]
    if problems:
        raise Invalid("the request lists too many resources", problems)


def _offers(
    request: Request[Any, Any, Any], body: bytes, broker: BrokerService, http: BrokerHttp
) -> Response[bytes]:
    requester = http.requester(request)
    http.security.limiter.take("offers", requester)
    decoded = _read_request(request, body, http)
    offerset = broker.request_offers(
        decoded.value,
        http.base_url(request),
        unknown_kinds=decoded.unknown_kinds,
        requester=requester,
        path=parse_path(request.headers.get(PATH_HEADER)),
    )
    location = offerset.meta.url if offerset.meta and offerset.meta.url else ""
    return _answer(request, offerset, 303, {"Location": location})


class _DocumentingRouteHandler(HTTPRouteHandler):
    """A route handler that also describes the broker in the app's OpenAPI document.

    Litestar builds its OpenAPI document from handler signatures; ours read raw bodies, so the
    request and response schemas are added once the app starts (`document_openapi`).
    """

    def on_registration(self, app: Litestar) -> None:
        super().on_registration(app)
        if _document_app not in app.on_startup:
            app.on_startup.append(_document_app)


def _document_app(app: Litestar) -> None:
    if app.openapi_config is not None:
        document_openapi(app.openapi_schema, writes_need_token=_writes_need_token(app))


def _writes_need_token(app: Litestar) -> bool:
    return any(
        handler.opt.get(GUARDED_WRITES, False)
        for route in app.routes
        if route.path.startswith(BROKER_PATH + "/")
        for handler in getattr(route, "route_handlers", ())
    )


@_DocumentingRouteHandler(
    "/requests",
    http_method=HttpMethod.POST,
    status_code=303,
    operation_id="ExecutionRequest",
    sync_to_thread=True,
)
def request_offers(
    request: Request[Any, Any, Any], body: RawBody, broker: Broker, http: Http
) -> Response[bytes]:
    """Ask for offers: answers 303 with the offer set's `Location` and the offer set itself."""
    return _offers(request, body, broker, http)


@post(
    "/offersets",
    status_code=303,
    operation_id="ExecutionRequestOfferSets",
    deprecated=True,
    sync_to_thread=True,
)
def request_offers_older_path(
    request: Request[Any, Any, Any], body: RawBody, broker: Broker, http: Http
) -> Response[bytes]:
    """The older name of `POST /broker/requests` (schema 1.0.4 and the Working Draft)."""
    return _offers(request, body, broker, http)


async def _read(
    broker: BrokerService, read: Callable[[UUID], DocumentRead], uuid: UUID
) -> DocumentRead:
    """Run a document read: at once on SQLite, in a worker thread where it waits on the network.

    One SQLite select by key takes less time than handing it to a thread (and a WAL reader
    never waits for the writer); a PostgreSQL round trip must not hold up the event loop.
    """
    if broker.reads_are_local:
        return read(uuid)
    return await sync_to_thread(read, uuid)


@get("/offersets/{uuid:str}", operation_id="OfferSetSelect")
async def get_offerset(
    request: Request[Any, Any, Any], uuid: FromPath[str], broker: Broker, http: Http
) -> Response[bytes]:
    """An offer set, with its offers in their current phases."""
    read = await _read(broker, broker.read_offerset, _uuid(uuid, "offer set"))
    http.require_reader(request, read.owner)
    return _answer_stored(request, read.json, 200)


@get("/sessions/{uuid:str}", operation_id="SessionSelect")
async def get_session(
    request: Request[Any, Any, Any], uuid: FromPath[str], broker: Broker, http: Http
) -> Response[bytes]:
    """A session (an offer or an accepted session) in its current phase."""
    read = await _read(broker, broker.read_session, _uuid(uuid, "session"))
    http.require_reader(request, read.owner)
    return _answer_stored(request, read.json, 200)


@post("/sessions/{uuid:str}", status_code=200, operation_id="SessionUpdate", sync_to_thread=True)
def update_session(
    request: Request[Any, Any, Any],
    uuid: FromPath[str],
    body: RawBody,
    broker: Broker,
    http: Http,
) -> Response[bytes]:
    """Apply one update (accept, reject or cancel); 409 names the phase and what is allowed.

    Only whoever asked for the session (or its offer set), or an operator, may (403).
    """
    session_id = _uuid(uuid, "session")
    media = codec.media_for_body(request.headers.get("content-type"))
    update = codec.decode_update(body, media, max_bytes=http.max_body_bytes)
    broker.get_session(session_id)  # 404 before 403: say what does not exist
    http.require_owner(request, broker.owner(session=session_id), to=SESSION_CHANGE)
    return _answer(request, broker.update_session(session_id, update), 200)


@post("/direct", status_code=303, operation_id="DirectExecution", sync_to_thread=True)
def direct(
    request: Request[Any, Any, Any], body: RawBody, broker: Broker, http: Http
) -> Response[bytes]:
    """Run at once without offers: 303 to the session, or 400 with a FAILED session."""
    http.security.limiter.take("offers", http.requester(request))
    decoded = _read_request(request, body, http)
    session = broker.direct(
        decoded.value,
        http.base_url(request),
        unknown_kinds=decoded.unknown_kinds,
        requester=http.requester(request),
    )
    location = session.meta.url if session.meta and session.meta.url else ""
    return _answer(request, session, 303, {"Location": location})


def write_guard(security: Security) -> Guard:
    """A guard letting writes through only from an identity that may run (all, when open).

    Raises (from the guard):
        Unauthorized: a write without credentials (or with a JWT that does not verify).
        Forbidden: a write with a token that is not configured, or a role that may not run.
    """

    # A coroutine: Litestar runs a plain-function guard in a worker thread, a hand-off that
    # cost reads more than their select. The check itself is CPU only (tokens, JWT signatures).
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method", "GET") in READ_METHODS:
            return
        address = connection.client.host if connection.client else None
        identity = security.auth.require(
            connection.headers.get("authorization"),
            address,
            Permission.RUN,
            to=WRITE_PERMISSION,
        )
        connection.state[IDENTITY_STATE] = identity

    return guard


def broker_router(server: ServerSettings, *, security: Security) -> Router:
    """The `/broker` router; the `BrokerService` comes from the app as dependency `broker`.

    Args:
        server: the public URL and the body limit.
        security: who may write (`auth`); with nobody configured writes are open (local use).
    """
    http = BrokerHttp(
        public_url=server.public_url,
        max_body_bytes=server.max_body_bytes,
        security=security,
    )
    guarded = not security.auth.anonymous_may_run
    return Router(
        path=BROKER_PATH,
        route_handlers=[
            request_offers,
            request_offers_older_path,
            get_offerset,
            get_session,
            update_session,
            direct,
        ],
        dependencies={"http": Provide(lambda: http, use_cache=True, sync_to_thread=False)},
        guards=[write_guard(security)],
        opt={GUARDED_WRITES: guarded},
        exception_handlers={
            DomainError: _on_domain_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
        request_max_body_size=server.max_body_bytes,
        tags=["broker"],
    )
