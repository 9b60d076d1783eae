"""What every web page shares: the `Pages` object and its `html` answer.

`Pages` carries the templates' renderer, the settings, the clock and the sign-in
(`voexec.page_auth`); each page module (`voexec.pages_catalogue`, `voexec.pages_broker`,
`voexec.pages_harvest`) receives it as the dependency `pages` and answers with `Pages.html`.
Pages that change in place (search results, a live session) are rendered by one template, sent
whole or, when a script asks with the `X-Voexec-Partial` header (`wants_partial`), as the
changing part only, so there is one renderer for both. Every answer carries
`Server-Timing: app;dur=<ms>`, which the end-to-end tests read.

The named dependencies the page handlers take (`Catalogue`, `Broker`, `Harvest`) are declared
here so that every page module spells them the same way. Imports Litestar, the services'
types, `voexec.page_auth` and `voexec.ui.render`; not the page modules, which import this one
(`voexec.pages_router` assembles them).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Final

from litestar import MediaType, Request, Response
from litestar.di import NamedDependency

import voexec
from broker.service import BrokerService
from catalogue.service import CatalogueService
from core.auth import Security
from core.clock import Clock
from core.settings import Settings
from harvest.pipeline import HarvestPipeline
from voexec.page_auth import PageAuth
from voexec.ui.render import PageRenderer

__all__ = [
    "PARTIAL_HEADER",
    "Broker",
    "Catalogue",
    "Harvest",
    "Pages",
    "PagesDependency",
    "wants_partial",
]

PARTIAL_HEADER: Final = "x-voexec-partial"

Catalogue = NamedDependency[CatalogueService]
Broker = NamedDependency[BrokerService]
Harvest = NamedDependency[HarvestPipeline]


@dataclass(frozen=True)
class Pages:
    """What every page handler needs besides the services: templates, settings, the clock."""

    renderer: PageRenderer
    settings: Settings
    clock: Clock
    security: Security

    def now(self) -> datetime:
        """The current time (the app's clock, so tests can move it)."""
        return self.clock.now()

    @cached_property
    def auth(self) -> PageAuth:
        """Who may write from the pages (`auth`: the same identities as the API)."""
        return PageAuth(self.security, self.clock, public_url=self.settings.server.public_url)

    def html(
        self,
        request: Request[Any, Any, Any],
        started: float,
        template: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        here: str | None = None,
        partial: bool = False,
        **context: Any,
    ) -> Response[str]:
        """A rendered page (or the changing part of one) with its server time.

        The page shows the reader's sign-in state (`viewer`); `here` is where signing in or
        out comes back to: by default this page when it was read with GET, else the search.
        """
        if here is None:
            query = request.url.query
            read = request.method in {"GET", "HEAD"}
            here = (request.url.path + (f"?{query}" if query else "")) if read else "/"
        body = self.renderer.render(
            template,
            version=voexec.__version__,
            viewer=self.auth.state(request, here),
            **context,
        )
        elapsed = (time.perf_counter() - started) * 1000
        answer = {"Server-Timing": f"app;dur={elapsed:.1f}", "Vary": "X-Voexec-Partial"}
        if partial:
            answer["Cache-Control"] = "no-store"  # a fragment must never stand in for a page
        elif self.auth.required:
            # The page differs by sign-in (the header, the write buttons): never share it.
            answer["Cache-Control"] = "private"
        answer.update(headers or {})
        return Response(body, status_code=status, media_type=MediaType.HTML, headers=answer)


PagesDependency = NamedDependency[Pages]


def wants_partial(request: Request[Any, Any, Any], part: str) -> bool:
    """Whether the page's script asked for the changing `part` only (`X-Voexec-Partial`)."""
    return request.headers.get(PARTIAL_HEADER, "") == part
