"""The catalogue's HTTP API under `/catalogue` (a Litestar `Router`).

| route | what |
|---|---|
| `POST /catalogue/executables` | publish a YAML or JSON document (packager) -> 201 report |
| `DELETE /catalogue/executables/{id}` | withdraw an entry (packager) |
| `GET /catalogue/executables/{id}` | an entry, current version |
| `GET /catalogue/executables/{id}/versions/{version}` | one version of it |
| `GET /catalogue/search` | faceted search: hits, facet trees, next cursor |
| `POST /catalogue/executables/{id}/offers` | hand-off: 303 to the broker's offer set |

Handlers are thin: parse the request, call one `CatalogueService` method (injected as the
dependency `catalogue`), answer a Struct. Who may write is asked of `core.auth.Security`:
publishing and withdrawing need a packager (or operator) identity, and a packager publishes in
its own namespace (`api_source`) and withdraws only from it, the hand-off one that may
run (anybody on a voexec without identities, like the broker); each is rate-limited per
identity (429 with `Retry-After`). Errors are `core.errors` exceptions, turned into
problem details by `voexec/problems.py`; nothing here answers 500 for bad input.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Final

import msgspec
from litestar import HttpMethod, Litestar, MediaType, Request, Response, Router, delete, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_303_SEE_OTHER

from catalogue import documents
from catalogue.model import (
    Entry,
    EntryDetail,
    HandOff,
    Provenance,
    PublishReport,
    SearchPage,
    SearchRequest,
)
from catalogue.ports import SortOrder
from catalogue.service import CatalogueService
from catalogue.web_openapi import document_openapi
from core.auth import Identity, Permission, Security
from core.errors import Forbidden, Invalid, Problem

PUBLISH_PERMISSION: Final = "publish to the catalogue"
"""What a packager's token allows, as the 401 and 403 messages say it."""
API_SOURCE: Final = "api"
"""Provenance source of documents published by hand (the API and `voexec publish`)."""


def api_source(identity: Identity) -> str:
    """The provenance source of what `identity` publishes: `api:token:alice`.

    Entry ids derive from the source, so each publisher has a namespace of its own: publishing
    a document another packager also published makes a separate entry, never a new version of
    theirs, and what an identity may withdraw is what carries its source.
    """
    return f"{API_SOURCE}:{identity.key}"


Catalogue = NamedDependency[CatalogueService]
"""The service, injected as the dependency `catalogue` (see voexec/wire_catalogue.py)."""
Values = Annotated[list[str] | None, QueryParameter(description="Repeat to select several (OR).")]


async def _document(request: Request[Any, Any, Any]) -> Any:
    """The request body as parsed data (JSON) or text (YAML); empty bodies give None."""
    body = await request.body()
    if not body.strip():
        return None
    if "json" in request.headers.get("content-type", ""):
        try:
            return msgspec.json.decode(body)
        except RecursionError as error:
            raise Invalid(
                "the body is nested too deeply",
                [Problem(documents.DOCUMENT, "is nested too deeply")],
            ) from error
        except msgspec.DecodeError as error:
            raise Invalid(
                "the body is not valid JSON",
                [Problem(documents.DOCUMENT, f"invalid JSON: {error}")],
            ) from error
    return body


def _base_url(request: Request[Any, Any, Any], public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/")


class _DocumentingRouteHandler(HTTPRouteHandler):
    """A route handler that also describes the catalogue in the app's OpenAPI document.

    Publishing and the hand-off read raw bodies, so their bodies (and the writes' security and
    error answers) are added once the app starts (`catalogue.web_openapi`).
    """

    def on_registration(self, app: Litestar) -> None:
        super().on_registration(app)
        anonymous_may_run = bool(self.opt.get("anonymous_may_run"))

        def document(app: Litestar) -> None:
            if app.openapi_config is not None:
                document_openapi(app.openapi_schema, anonymous_may_run=anonymous_may_run)

        app.on_startup.append(document)


def catalogue_router(*, security: Security, public_url: str | None = None) -> Router:
    """The `/catalogue` routes.

    Args:
        security: who may publish (packagers, operators) and ask for offers (who may run, as on
            the broker: anybody when no identity is configured); the rate limits.
        public_url: The server's public base URL, for the offer set's `location`.
    """

    def authorise(
        request: Request[Any, Any, Any], permission: Permission, kind: str, to: str
    ) -> Identity:
        address = request.client.host if request.client else None
        identity = security.auth.require(
            request.headers.get("authorization"), address, permission, to=to
        )
        security.limiter.take(kind, identity.key)
        return identity

    @_DocumentingRouteHandler(
        "/executables",
        http_method=HttpMethod.POST,
        status_code=HTTP_201_CREATED,
        opt={"anonymous_may_run": security.auth.anonymous_may_run},
    )
    async def publish(
        request: Request[Any, Any, Any], catalogue: Catalogue
    ) -> Response[PublishReport]:
        """Publish an `ivoa-executable.yaml` document (YAML or JSON body).

        201 when an entry was created or changed, 200 when everything was unchanged, 400 with
        every problem by field when the document is wrong (nothing is stored then).
        """
        identity = authorise(request, Permission.PUBLISH, "publish", PUBLISH_PERMISSION)
        document = await _document(request)
        if document is None:
            raise Invalid("empty body", [Problem(documents.DOCUMENT, "is empty")])
        provenance = Provenance(source=api_source(identity))
        report = await sync_to_thread(catalogue.publish, document, provenance)
        if not report.ok:
            problems = [Problem(p.field, p.reason, tuple(p.suggestions)) for p in report.problems]
            raise Invalid(f"the document has {len(problems)} problem(s)", problems)
        changed = [entry for entry in report.entries if entry.status != "unchanged"]
        headers = {"location": f"/catalogue/executables/{changed[0].id}"} if changed else {}
        return Response(
            report, status_code=HTTP_201_CREATED if changed else HTTP_200_OK, headers=headers
        )

    @delete("/executables/{entry_id:str}", status_code=HTTP_200_OK)
    async def withdraw(
        request: Request[Any, Any, Any], catalogue: Catalogue, entry_id: FromPath[str]
    ) -> Entry:
        """Withdraw an entry: readable, marked withdrawn, gone from search.

        A packager withdraws only what it published; an operator anything.
        """
        identity = authorise(request, Permission.PUBLISH, "publish", PUBLISH_PERMISSION)
        if not identity.may(Permission.OPERATE):
            entry = await sync_to_thread(catalogue.get, entry_id)
            if entry.provenance.source != api_source(identity):
                raise Forbidden(
                    f"{identity.describe()} may not withdraw {entry_id}: it was not published "
                    "with this identity (an operator may withdraw any entry)"
                )
        return await sync_to_thread(catalogue.withdraw, entry_id)

    @get("/executables/{entry_id:str}", sync_to_thread=True)
    def read(catalogue: Catalogue, entry_id: FromPath[str]) -> EntryDetail:
        """An entry with its current version."""
        return catalogue.get(entry_id)

    @get("/executables/{entry_id:str}/versions/{version:str}", sync_to_thread=True)
    def read_version(
        catalogue: Catalogue, entry_id: FromPath[str], version: FromPath[str]
    ) -> EntryDetail:
        """One version of an entry."""
        return catalogue.get(entry_id, version)

    @get("/search", sync_to_thread=True)
    def search(
        *,
        catalogue: Catalogue,
        q: Annotated[str, QueryParameter(description="Free text; typos are tolerated.")] = "",
        subject: Values = None,
        kind: Values = None,
        function: Values = None,
        gpu: Values = None,
        licence: Values = None,
        platform: Values = None,
        messenger: Values = None,
        sort: Annotated[SortOrder, QueryParameter(description="relevance, name or newest")] = (
            "relevance"
        ),
        cursor: Annotated[
            str | None, QueryParameter(description="the previous page's next_cursor")
        ] = None,
        limit: Annotated[int | None, QueryParameter(ge=1, le=100)] = None,
        facets: Annotated[
            list[str] | None,
            QueryParameter(
                description="Facets to count, comma-separated or repeated (default: all; "
                "empty: none). Counting is most of a search's cost: ask for those you show."
            ),
        ] = None,
    ) -> Response[SearchPage]:
        """Faceted search; facet counts ignore their own facet's selection (multi-select)."""
        selected = {
            "subject": subject,
            "kind": kind,
            "function": function,
            "gpu": gpu,
            "licence": licence,
            "platform": platform,
            "messenger": messenger,
        }
        filters = {name: tuple(values) for name, values in selected.items() if values}
        counted: tuple[str, ...] | None = None
        if facets is not None:
            counted = tuple(name.strip() for given in facets for name in given.split(","))
            counted = tuple(name for name in counted if name)
        # The service keeps answers as JSON: a repeated search is sent as it was kept.
        encoded = catalogue.search_json(
            SearchRequest(
                text=q, filters=filters, sort=sort, cursor=cursor, limit=limit, facets=counted
            )
        )
        return Response(encoded, media_type=MediaType.JSON)  # type: ignore[arg-type]

    @post("/executables/{entry_id:str}/offers", status_code=HTTP_303_SEE_OTHER)
    async def offers(
        request: Request[Any, Any, Any], catalogue: Catalogue, entry_id: FromPath[str]
    ) -> Response[dict[str, Any]]:
        """Ask the broker for offers to run this entry; 303 to the offer set (also in the body).

        The optional body (JSON or YAML) overrides the schedule (`start`, `duration`), the
        resources (`cores`, `memory`, `gpus`), the `version` and adds `data` locations.
        With identities configured, one that may run is needed (a bearer token or JWT).
        """
        identity = authorise(request, Permission.RUN, "offers", "ask the broker for offers")
        overrides = _overrides(await _document(request))
        answer = await sync_to_thread(
            functools.partial(
                catalogue.hand_off,
                entry_id,
                overrides,
                _base_url(request, public_url),
                requester=identity.key,
            )
        )
        return Response(
            answer.offer_set, status_code=HTTP_303_SEE_OTHER, headers={"location": answer.location}
        )

    return Router(
        path="/catalogue",
        route_handlers=[publish, withdraw, read, read_version, search, offers],
        tags=["catalogue"],
    )


def _overrides(document: Any) -> HandOff:
    if document is None:
        return HandOff()
    problems: list[Problem] = []
    data = documents.load(document, problems) if isinstance(document, bytes) else document
    overrides = None if problems else documents.convert(data, HandOff, "", problems)
    if overrides is None:
        raise Invalid("the offer request is wrong", problems)
    return overrides
