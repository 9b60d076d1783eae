"""The publishing registry's HTTP routes under `/registry` (a Litestar `Router`).

| route | what |
|---|---|
| `GET, POST /registry/oai` | OAI-PMH 2.0 (`verb=...`; POST form-encoded) |
| `GET /registry/capabilities` | VOSI capabilities of the registry service |
| `GET /registry/availability` | VOSI availability |
| `GET /broker/capabilities` | VOSI capabilities of the Execution Broker (`broker_vosi_router`) |
| `GET /broker/availability` | VOSI availability of the Execution Broker |

The broker's VOSI routes live here, not in `broker`, because they answer from the broker's
registry record, which the catalogue builds; the broker itself knows nothing of VOResource.

Thin: the arguments are read as sent (repeated ones kept, so they can be refused) and handed to
`catalogue.oai_repository.OaiRepository`, which answers every protocol error inside the
document, with HTTP 200 as OAI-PMH requires. Answers are `text/xml`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # builds XML only
from typing import Any, Final
from urllib.parse import parse_qsl

from litestar import Request, Response, Router, get, post
from litestar.concurrency import sync_to_thread

from catalogue import voresource
from catalogue.oai_repository import OaiRepository

XML_MEDIA_TYPE: Final = "text/xml"  # Litestar adds `; charset=utf-8`


def _arguments(raw: str) -> list[tuple[str, str]]:
    # Bodies are bounded by `server.max_body_bytes` and query strings by the HTTP server, so
    # parsing them whole is cheap; the repository refuses whatever a verb does not take.
    return parse_qsl(raw, keep_blank_values=True)


def _xml(element: ET.Element) -> Response[bytes]:
    return Response(voresource.to_bytes(element), media_type=XML_MEDIA_TYPE)


def registry_router(repository: OaiRepository) -> Router:
    """The `/registry` routes over one repository."""

    async def answer(pairs: list[tuple[str, str]]) -> Response[bytes]:
        # A database that does not answer raises core.errors.Unavailable: a 503 problem
        # document, since OAI-PMH has no error code for it.
        return _xml(await sync_to_thread(repository.respond, pairs))

    @get("/oai", media_type=XML_MEDIA_TYPE)
    async def oai_get(request: Request[Any, Any, Any]) -> Response[bytes]:
        """OAI-PMH 2.0 publishing registry (`?verb=Identify`, `ListRecords`...)."""
        return await answer(_arguments(request.url.query or ""))

    @post("/oai", media_type=XML_MEDIA_TYPE, status_code=200)
    async def oai_post(request: Request[Any, Any, Any]) -> Response[bytes]:
        """OAI-PMH 2.0 with the arguments form-encoded in the body."""
        body = await request.body()
        return await answer(_arguments(body.decode("utf-8", errors="replace")))

    @get("/capabilities", media_type=XML_MEDIA_TYPE, sync_to_thread=True)
    def capabilities() -> Response[bytes]:
        """VOSI capabilities of the registry: OAI-PMH harvesting and VOSI itself."""
        return _xml(voresource.capabilities_document(repository.registry_record()))

    @get("/availability", media_type=XML_MEDIA_TYPE, sync_to_thread=False)
    def availability() -> Response[bytes]:
        """VOSI availability: the process answers (database failures show on the other routes)."""
        return _xml(voresource.availability_document(True))

    return Router(
        path="/registry",
        route_handlers=[oai_get, oai_post, capabilities, availability],
        tags=["registry"],
    )


def broker_vosi_router(repository: OaiRepository) -> Router:
    """VOSI for the Execution Broker under `/broker`, from its registry record."""

    @get("/capabilities", media_type=XML_MEDIA_TYPE, sync_to_thread=True)
    def broker_capabilities() -> Response[bytes]:
        """VOSI capabilities of the Execution Broker: its API and VOSI itself."""
        return _xml(voresource.capabilities_document(repository.broker_record()))

    @get("/availability", media_type=XML_MEDIA_TYPE, sync_to_thread=False)
    def broker_availability() -> Response[bytes]:
        """VOSI availability of the Execution Broker (it runs in this process)."""
        return _xml(voresource.availability_document(True))

    return Router(
        path="/broker",
        route_handlers=[broker_capabilities, broker_availability],
        tags=["registry"],
    )
