"""The web pages' routes in one `Router`, and the error page every one of them answers with.

Each page module's docstring lists its routes:

- `voexec.pages_catalogue`: the search (`/`), an entry (`/executables/{id}`) and its
  "Request offers" form;
- `voexec.pages_broker`: offers (`/offersets/{uuid}`), a session and its accept, reject and
  cancel buttons (`/sessions/{uuid}`), the platforms' capacity and bookings (`/platforms`);
- `voexec.pages_harvest`: harvest sources, runs and a run's problems (`/harvest`);
- `voexec.pages_validate`: the broker validator's report (`/validate?url=`);
- `voexec.page_auth`: signing in with a broker token (`/sign-in`, `/sign-out`).

The first view of each page is rendered from the services (no HTTP round trip), then the
page's script enhances it through the JSON APIs (`/catalogue`, `/broker`, `/vocabularies`).
Forms work without script. Their POSTs are refused when the browser says they come from
another site (`Sec-Fetch-Site`, `Origin`), and, when `broker.write_tokens` is set, without a
sign-in or a bearer token (`voexec.page_auth`), like the broker's own write routes.

An error on any page (an unknown entry, a refused write, a parameter of the wrong type, a bug)
answers a readable page with the right status, never a stack trace. Imports every page module;
imported only by `voexec.wire_ui`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException

from core.auth import BEARER_CHALLENGE
from core.errors import DomainError, Invalid
from voexec.page_auth import SignInNeeded, sign_in_handlers
from voexec.pages import Pages
from voexec.pages_broker import offers_page, platforms_page, session_page, update_session
from voexec.pages_catalogue import entry_page, request_offers, search_page
from voexec.pages_harvest import harvest_page
from voexec.pages_validate import validate_page
from voexec.problems import status_of

__all__ = ["page_router"]

log = logging.getLogger(__name__)

ERROR_TITLES: Final = {
    400: "Something in this address is wrong",
    401: "Sign in to continue",
    403: "Not allowed",
    404: "Not found",
    409: "That cannot be done now",
    500: "Something went wrong",
    503: "Not available right now",
}


def page_router(pages: Pages) -> Router:
    """The page routes; they need the dependencies `catalogue`, `broker` and `harvest`."""
    handler = _error_page(pages)
    return Router(
        path="/",
        route_handlers=[
            search_page,
            entry_page,
            request_offers,
            offers_page,
            session_page,
            update_session,
            platforms_page,
            harvest_page,
            validate_page,
            *sign_in_handlers(pages.auth, pages.html),
        ],
        dependencies={"pages": Provide(lambda: pages, use_cache=True, sync_to_thread=False)},
        exception_handlers={DomainError: handler, HTTPException: handler, Exception: handler},
        include_in_schema=False,
    )


def _error_page(pages: Pages) -> Callable[[Request[Any, Any, Any], Exception], Response[str]]:
    """The exception handler that renders `error.html` for whatever a page raised."""

    def handle(request: Request[Any, Any, Any], error: Exception) -> Response[str]:
        started = time.perf_counter()
        if isinstance(error, DomainError):
            status, detail = status_of(error)[0], error.message
        elif isinstance(error, HTTPException):
            status, detail = error.status_code, str(error.detail)
            if isinstance(error.extra, list):  # a parameter of the wrong type names itself
                keys = [str(item.get("key")) for item in error.extra if isinstance(item, dict)]
                detail = f"{detail}: {', '.join(keys)}" if keys else detail
        else:
            log.exception("unexpected error on %s", request.url.path, exc_info=error)
            status, detail = 500, "An unexpected error occurred; it has been logged."
        title = ERROR_TITLES.get(status, "This page cannot be shown")
        sign_in = error.sign_in_url if isinstance(error, SignInNeeded) else None
        return pages.html(
            request,
            started,
            "error.html",
            status=status,
            headers={"www-authenticate": BEARER_CHALLENGE} if status == 401 else None,
            page="error",
            nav="",
            status_code=status,
            title=title,
            detail=detail[:1].upper() + detail[1:],
            problems=error.problems if isinstance(error, Invalid) else [],
            sign_in_url=sign_in,
        )

    return handle
